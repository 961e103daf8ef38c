using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Common;
using MlNetDeep.Networks;
using MlNetDeep.Persistence;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Generative;

/// <summary>
/// A trained GAN's generator as an ML.NET transformer: reads a noise column (vector of <see cref="LatentSize"/> values,
/// plus the class index as one more value for a conditional GAN) and adds an image column (values in [0, 1]).
/// <see cref="Generate(int, int)"/> and <see cref="Generate(IReadOnlyList{int}, int)"/> draw images directly;
/// <see cref="NoiseData"/> makes noise rows for a pipeline. The discriminator is saved with it.
/// </summary>
public sealed class GeneratorTransformer : DeepTransformer
{
    internal const string KindName = "GenerativeAdversarialNetwork";

    private readonly GanModule _gan;

    internal GeneratorTransformer(GanModule module, NetworkSpec generator, NetworkSpec discriminator, string noiseColumnName, string outputColumnName,
        int labelEmbeddingSize, Device device, int scoringBatchSize)
        : base(module, generator, noiseColumnName, [module.LatentSize + (module.Classes > 0 ? 1 : 0)], device, scoringBatchSize)
    {
        _gan = module;
        Discriminator = discriminator;
        LabelEmbeddingSize = labelEmbeddingSize;
        ImageSize = module.ImageShape.Aggregate(1, (a, b) => a * b);
        OutputColumns = [new VectorOutputColumn(outputColumnName, 0, ImageSize)];
    }

    /// <summary>The discriminator's spec (its weights are saved with the generator's).</summary>
    public NetworkSpec Discriminator { get; }

    public int LatentSize => _gan.LatentSize;

    /// <summary>Classes of a conditional GAN (for a self-conditioned one, its clusters); 0 for an unconditional one.</summary>
    public int Classes => _gan.Classes;

    /// <summary>
    /// Whether the classes are the GAN's own k-means clusters (<see cref="GanOptions.SelfConditioning"/>): then
    /// <see cref="Generate(int, int)"/> and <see cref="NoiseData"/> draw each image's cluster from the clusters' shares of
    /// the training images, and <see cref="Generate(IReadOnlyList{int}, int)"/> draws from chosen clusters.
    /// </summary>
    public bool SelfConditioned => _gan.SelfConditioned;

    /// <summary>The share of the training images in each cluster of a self-conditioned GAN; null otherwise.</summary>
    public IReadOnlyList<double>? ClassShares => _gan.ClassShares;

    /// <summary>The generated images' shape [channels, height, width].</summary>
    public int[] ImageShape => _gan.ImageShape;

    public int ImageSize { get; }
    internal int LabelEmbeddingSize { get; }

    internal override IReadOnlyList<OutputColumn> OutputColumns { get; }
    public override int OutputWidth => ImageSize;
    public override string Kind => KindName;

    protected override Tensor Forward(Tensor inputs)
    {
        var noise = inputs.narrow(1, 0, LatentSize);
        var labels = Classes > 0 ? _gan.ClassIndices(inputs.select(1, LatentSize), "The last value of each noise row is the class to draw") : null;
        return _gan.GeneratePixels(noise, labels);
    }

    /// <summary>
    /// Noise rows for <paramref name="count"/> images from <paramref name="seed"/> (the same seed gives the same rows), with the
    /// classes to draw for a conditional GAN (a self-conditioned GAN draws its clusters from their shares when no labels are
    /// given): a column named as the model's noise column, ready for Transform.
    /// </summary>
    public IDataView NoiseData(MLContext mlContext, int count, int seed, IReadOnlyList<int>? labels = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        var rows = NoiseRows(count, seed, labels).Select(r => new NoiseRow { Noise = r }).ToList();
        var schema = SchemaDefinition.Create(typeof(NoiseRow));
        schema[0].ColumnName = FeatureColumnName;
        schema[0].ColumnType = new VectorDataViewType(NumberDataViewType.Single, FeatureSize);
        return mlContext.Data.LoadFromEnumerable(rows, schema);
    }

    private sealed class NoiseRow
    {
        public float[] Noise { get; set; } = [];
    }

    /// <summary><paramref name="count"/> images (each [channels x height x width] values in [0, 1]) from <paramref name="seed"/>; unconditional and self-conditioned GANs.</summary>
    public float[][] Generate(int count, int seed)
    {
        if (Classes > 0 && !SelfConditioned) throw new InvalidOperationException($"This is a conditional GAN: say which of its {Classes} classes to draw with Generate(labels, seed).");
        return Draw(NoiseRows(count, seed, null));
    }

    /// <summary>One image of each requested class (0-based class indices), from <paramref name="seed"/>; conditional GANs only.</summary>
    public float[][] Generate(IReadOnlyList<int> labels, int seed)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (Classes == 0) throw new InvalidOperationException("This GAN was trained without labels: use Generate(count, seed).");
        return Draw(NoiseRows(labels.Count, seed, labels));
    }

    private float[][] NoiseRows(int count, int seed, IReadOnlyList<int>? labels)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), count, "Ask for at least one image.");
        if (SelfConditioned && labels is null)
        {
            Native.TorchRuntime.EnsureLoaded();
            using var clusters = new Generator((ulong)(uint)seed ^ 0x5EED_C1A5_5E5UL);
            using var drawn = _gan.DrawClasses(count, clusters);
            labels = drawn.data<long>().Select(l => (int)l).ToArray();
        }
        if (Classes > 0)
        {
            if (labels is null) throw new ArgumentException($"This is a conditional GAN: give the class (0 to {Classes - 1}) of each image.", nameof(labels));
            if (labels.Count != count) throw new ArgumentException($"{labels.Count} labels for {count} images.", nameof(labels));
            var bad = labels.Select((l, i) => (l, i)).FirstOrDefault(p => p.l < 0 || p.l >= Classes);
            if (bad.l < 0 || bad.l >= Classes)
                throw new ArgumentOutOfRangeException(nameof(labels), bad.l, $"Label {bad.l} (position {bad.i}) is not one of the trained classes 0 to {Classes - 1}.");
        }
        else if (labels is not null) throw new ArgumentException("This GAN was trained without labels.", nameof(labels));
        Native.TorchRuntime.EnsureLoaded();
        using var scope = NewDisposeScope();
        using var generator = new Generator((ulong)(uint)seed);
        var noise = randn([count, LatentSize], generator: generator).data<float>().ToArray();
        int width = FeatureSize;
        return Enumerable.Range(0, count).Select(i =>
        {
            var row = new float[width];
            noise.AsSpan(i * LatentSize, LatentSize).CopyTo(row);
            if (Classes > 0) row[LatentSize] = labels![i];
            return row;
        }).ToArray();
    }

    private float[][] Draw(float[][] noise)
    {
        var images = new float[noise.Length][];
        var output = new float[ScoringBatchSize * ImageSize];
        for (int start = 0; start < noise.Length; start += ScoringBatchSize)
        {
            int rows = Math.Min(ScoringBatchSize, noise.Length - start);
            var flat = noise.Skip(start).Take(rows).SelectMany(r => r).ToArray();
            Score(flat, rows, output);
            for (int i = 0; i < rows; i++) images[start + i] = output.AsSpan(i * ImageSize, ImageSize).ToArray();
        }
        return images;
    }

    /// <summary>
    /// The discriminator's probability that each image is real (images [n][values in [0, 1]], with classes for a conditional
    /// GAN; a self-conditioned GAN gives each image its nearest cluster unless clusters are given).
    /// </summary>
    public float[] Realness(IReadOnlyList<float[]> images, IReadOnlyList<int>? labels = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0) return [];
        if (images.Any(i => i.Length != ImageSize)) throw new ArgumentException($"Each image must have {ImageSize} values ([{string.Join(", ", ImageShape)}]).", nameof(images));
        if (Classes > 0 && !(SelfConditioned && labels is null) && (labels is null || labels.Count != images.Count || labels.Any(l => l < 0 || l >= Classes)))
            throw new ArgumentException($"A conditional GAN's discriminator needs one class (0 to {Classes - 1}) per image.", nameof(labels));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = tensor(images.SelectMany(i => i).ToArray(), [images.Count, .. ImageShape.Select(d => (long)d)]).to(Device) * 2 - 1;
        var y = SelfConditioned && labels is null ? WithModule(_ => _gan.NearestClusters((x + 1) / 2))
            : Classes > 0 ? tensor(labels!.Select(l => (long)l).ToArray()).to(Device) : null;
        return WithModule(_ => _gan.Discriminate(x, y).Logits.sigmoid().to(CPU).data<float>().ToArray());
    }

    /// <summary>
    /// The generator as ONNX: the noise column [N, LatentSize (+1 for the class)] in, the image column [N, pixels] in [0, 1]
    /// out; ML.NET's <c>ApplyOnnxModel</c> scores it without MlNetDeep. A conditional generator reads its label
    /// embedding with a Gather on the rounded class index.
    /// </summary>
    private protected override byte[] ExportOnnx(string outputName)
    {
        var graph = new Persistence.Onnx.OnnxGraph();
        string input = FeatureColumnName;
        string z = input;
        if (Classes > 0)
        {
            z = graph.Node("Slice", [input, graph.Int64Initializer("starts", [0]), graph.Int64Initializer("ends", [LatentSize]), graph.Int64Initializer("axes", [1])]);
            var label = graph.Node("Slice", [input, graph.Int64Initializer("starts", [LatentSize]), graph.Int64Initializer("ends", [LatentSize + 1]), graph.Int64Initializer("axes", [1])]);
            var index = graph.Node("Squeeze", [graph.Node("Cast", [graph.Node("Round", [label])], ("to", 7L)), graph.Int64Initializer("axes", [1])]);
            var embedded = graph.Node("Gather", [Persistence.Onnx.OnnxExporter.Constant(graph, "embedding", _gan.GeneratorLabelEmbedding!), index], ("axis", 0L));
            z = graph.Node("Concat", [z, embedded], ("axis", 1L));
        }
        var (image, _) = Persistence.Onnx.OnnxExporter.EmitNetwork(graph, Network, _gan.GeneratorLayers, z, [LatentSize + (Classes > 0 ? LabelEmbeddingSize : 0)]);
        var scaled = graph.Node("Mul", [graph.Node("Add", [image, Persistence.Onnx.OnnxExporter.Constant(graph, 1f)]), Persistence.Onnx.OnnxExporter.Constant(graph, 0.5f)]);
        var clipped = graph.Node("Clip", [scaled, Persistence.Onnx.OnnxExporter.Constant(graph, 0f), Persistence.Onnx.OnnxExporter.Constant(graph, 1f)]);
        var flat = graph.Node("Flatten", [clipped], ("axis", 1L));
        return graph.ToModel(Network.Name, input, FeatureSize, flat, outputName, ImageSize);
    }

    internal override TransformerRecord ToRecord() => GanRecords.Write(NewRecord(), _gan, Discriminator, LabelEmbeddingSize, OutputColumns[0].Name);

    /// <summary>
    /// The discriminator as a transformer of its own (a copy of the weights): reads <paramref name="imageColumnName"/>
    /// (values in [0, 1]; for a conditional GAN a vector of the pixels followed by the class index) and adds
    /// <paramref name="outputColumnName"/>, the probability that each image is real.
    /// </summary>
    public DiscriminatorTransformer CreateDiscriminator(string imageColumnName = "Pixels", string outputColumnName = "Realness")
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(imageColumnName);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputColumnName);
        var copy = new GanModule(Network, Discriminator, ImageShape, LatentSize, Classes, LabelEmbeddingSize, _gan.MinibatchStdDev, _gan.ClassShares?.ToArray(), _gan.KeepsSpread);
        try
        {
            WithModule(_ => CopyWeights(_gan, copy));
            copy.to(Device);
            return new DiscriminatorTransformer(copy, Network, Discriminator, imageColumnName, outputColumnName, LabelEmbeddingSize, Device, ScoringBatchSize);
        }
        catch
        {
            copy.Dispose();
            throw;
        }
    }
}

/// <summary>How a saved <see cref="GeneratorTransformer"/> is read back.</summary>
internal sealed class GeneratorTransformerFormat : NetworkModelFormat
{
    public override string Kind => GeneratorTransformer.KindName;

    public override nn.Module BuildModule(TransformerRecord record) => GanRecords.BuildModule(record, record.Network, record.Get<NetworkSpec>("discriminator"));

    public override ITransformer Create(TransformerRecord record, nn.Module module, Device device) =>
        new GeneratorTransformer((GanModule)module, record.Network, record.Get<NetworkSpec>("discriminator"), record.FeatureColumnName,
            record.Get<string>("outputColumn"), record.Get<int>("labelEmbeddingSize"), device, record.ScoringBatchSize);
}
