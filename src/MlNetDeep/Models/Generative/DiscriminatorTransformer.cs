using Microsoft.ML;
using MlNetDeep.Models.Common;
using MlNetDeep.Networks;
using MlNetDeep.Persistence;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Generative;

/// <summary>
/// A trained GAN's discriminator as an ML.NET transformer: reads an image column (values in [0, 1]; for a conditional
/// GAN one more value at the end holding the class index; a self-conditioned GAN finds each image's cluster itself) and adds a <c>Realness</c> column, the discriminator's
/// probability that the image is real. Made by <see cref="GeneratorTransformer.CreateDiscriminator"/>; it holds its
/// own copy of the weights.
/// </summary>
public sealed class DiscriminatorTransformer : DeepTransformer
{
    internal const string KindName = "GanDiscriminator";

    private readonly GanModule _gan;

    internal DiscriminatorTransformer(GanModule module, NetworkSpec generator, NetworkSpec discriminator, string imageColumnName, string outputColumnName,
        int labelEmbeddingSize, Device device, int scoringBatchSize)
        : base(module, discriminator, imageColumnName, InputShapeOf(module), device, scoringBatchSize)
    {
        _gan = module;
        Generator = generator;
        LabelEmbeddingSize = labelEmbeddingSize;
        OutputColumns = [new ScalarOutputColumn(outputColumnName, 0)];
    }

    private static int[] InputShapeOf(GanModule module) => module.Classes > 0 && !module.SelfConditioned
        ? [module.ImageShape.Aggregate(1, (a, b) => a * b) + 1]
        : module.ImageShape;

    /// <summary>The generator's spec (saved with it, since the module holds both networks).</summary>
    public NetworkSpec Generator { get; }
    internal int LabelEmbeddingSize { get; }

    /// <summary>Classes of a conditional GAN; 0 for an unconditional one.</summary>
    public int Classes => _gan.Classes;

    internal override IReadOnlyList<OutputColumn> OutputColumns { get; }
    public override int OutputWidth => 1;
    public override string Kind => KindName;

    protected override Tensor Forward(Tensor inputs)
    {
        int pixels = _gan.ImageShape.Aggregate(1, (a, b) => a * b);
        var flat = inputs.reshape(inputs.shape[0], -1);
        var images = flat.narrow(1, 0, pixels) * 2 - 1;
        var labels = _gan.SelfConditioned ? _gan.NearestClusters(flat.narrow(1, 0, pixels))
            : Classes > 0 ? _gan.ClassIndices(flat.select(1, pixels), "The last value of each row is the image's class") : null;
        return _gan.Discriminate(images, labels).Logits.sigmoid().reshape(-1, 1);
    }

    internal override TransformerRecord ToRecord() => GanRecords.Write(NewRecord(), _gan, Generator, LabelEmbeddingSize, OutputColumns[0].Name);
}

/// <summary>How a saved <see cref="DiscriminatorTransformer"/> is read back.</summary>
internal sealed class DiscriminatorTransformerFormat : NetworkModelFormat
{
    public override string Kind => DiscriminatorTransformer.KindName;

    public override nn.Module BuildModule(TransformerRecord record) => GanRecords.BuildModule(record, record.Get<NetworkSpec>("generator"), record.Network);

    public override ITransformer Create(TransformerRecord record, nn.Module module, Device device) =>
        new DiscriminatorTransformer((GanModule)module, record.Get<NetworkSpec>("generator"), record.Network, record.FeatureColumnName,
            record.Get<string>("outputColumn"), record.Get<int>("labelEmbeddingSize"), device, record.ScoringBatchSize);
}

/// <summary>What the generator's and the discriminator's records share: the GAN module's shape.</summary>
internal static class GanRecords
{
    public static TransformerRecord Write(TransformerRecord record, GanModule gan, NetworkSpec otherNetwork, int labelEmbeddingSize, string outputColumn) => record
        .With(record.Kind == GeneratorTransformer.KindName ? "discriminator" : "generator", otherNetwork)
        .With("imageShape", gan.ImageShape)
        .With("latentSize", gan.LatentSize)
        .With("classes", gan.Classes)
        .With("labelEmbeddingSize", labelEmbeddingSize)
        .With("outputColumn", outputColumn)
        .With("minibatchStdDev", gan.MinibatchStdDev)
        .With("keptSpread", gan.KeepsSpread)
        .With("classShares", gan.ClassShares);

    /// <summary>
    /// The module a record describes. A minibatch-standard-deviation GAN saved before the module kept its training
    /// batches' spread has no "keptSpread" setting (and no spread buffers in its weights): it loads and generates, and
    /// its discriminator refuses to score with a message saying why.
    /// </summary>
    public static GanModule BuildModule(TransformerRecord record, NetworkSpec generator, NetworkSpec discriminator) =>
        new(generator, discriminator, record.Get<int[]>("imageShape"), record.Get<int>("latentSize"), record.Get<int>("classes"), record.Get<int>("labelEmbeddingSize"),
            record.GetOrDefault<bool>("minibatchStdDev"), record.GetOrDefault<double[]>("classShares"), keepsSpread: record.GetOrDefault<bool>("keptSpread"));
}
