using MlNetDeep.Networks;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Generative;

/// <summary>
/// The two networks of a GAN in one module (so they are saved and moved together): the generator, from noise z (joined
/// to a label embedding when conditional) to an image in [-1, 1]; the discriminator, from an image (with the label's
/// embedding as one more channel when conditional) through its hidden features to one logit.
/// </summary>
internal sealed class GanModule : nn.Module
{
    private readonly nn.Module<Tensor, Tensor> generator;
    private readonly nn.Module<Tensor, Tensor> discriminatorFeatures;
    private readonly nn.Module<Tensor, Tensor> discriminatorHead;
    private readonly nn.Module<Tensor, Tensor>? generatorLabels;
    private readonly nn.Module<Tensor, Tensor>? discriminatorLabels;
    private readonly long[] _imageShape;

    public GanModule(NetworkSpec generatorSpec, NetworkSpec discriminatorSpec, int[] imageShape, int latentSize, int classes, int labelEmbeddingSize,
        bool minibatchStdDev = false, double[]? classShares = null)
        : this(generatorSpec, discriminatorSpec, imageShape, latentSize, classes, labelEmbeddingSize, minibatchStdDev, classShares, keepsSpread: true)
    {
    }

    // keepsSpread: whether a minibatch-standard-deviation discriminator keeps the spread of its training batches
    // (KeepsSpread): false only for a model saved before it did, whose weights file lacks the two buffers.
    internal GanModule(NetworkSpec generatorSpec, NetworkSpec discriminatorSpec, int[] imageShape, int latentSize, int classes, int labelEmbeddingSize,
        bool minibatchStdDev, double[]? classShares, bool keepsSpread)
        : base("GenerativeAdversarialNetwork")
    {
        MinibatchStdDev = minibatchStdDev;
        KeepsSpread = minibatchStdDev && keepsSpread;
        if (KeepsSpread)
        {
            register_buffer(SpreadAverageName, zeros(1));
            register_buffer(SpreadUpdatesName, zeros(1, int64));
        }
        if (classShares is not null)
        {
            if (classes < 2 || classShares.Length != classes)
                throw new ArgumentException($"A self-conditioned GAN needs one share per class: {classShares.Length} shares for {classes} classes.", nameof(classShares));
            if (classShares.Any(v => !double.IsFinite(v) || v < 0) || Math.Abs(classShares.Sum() - 1) > 1e-3)
                throw new ArgumentException("The class shares of a self-conditioned GAN must be non-negative and sum to 1.", nameof(classShares));
            ClassShares = classShares.ToArray();
            register_buffer(ClusterCentresName, zeros(classes, imageShape.Aggregate(1L, (a, b) => a * b)));
        }
        if (discriminatorSpec.Layers.Count < 2) throw new ArgumentException($"The discriminator '{discriminatorSpec.Name}' needs hidden layers and an output layer.");
        Classes = classes;
        LatentSize = latentSize;
        ImageShape = imageShape;
        _imageShape = [-1, .. imageShape.Select(d => (long)d)];
        int[] generatorInput = [latentSize + (classes > 0 ? labelEmbeddingSize : 0)];
        var produced = generatorSpec.OutputShape(generatorInput);
        if (!produced.SequenceEqual(imageShape))
            throw new ArgumentException($"The generator '{generatorSpec.Name}' produces [{string.Join(", ", produced)}] from noise of {generatorInput[0]}, but the images are [{string.Join(", ", imageShape)}].");
        int[] discriminatorInput = classes > 0 ? [imageShape[0] + 1, imageShape[1], imageShape[2]] : imageShape;
        if (discriminatorSpec.InputsOf(discriminatorSpec.Layers.Count - 1) is not [var headSource] || headSource != discriminatorSpec.Layers.Count - 2)
            throw new ArgumentException($"The discriminator '{discriminatorSpec.Name}' must end in an output layer that reads the layer before it.");
        var featureSpec = discriminatorSpec.Prefix(discriminatorSpec.Layers.Count - 1) with { Name = discriminatorSpec.Name + "-features" };
        var featureShape = featureSpec.OutputShape(discriminatorInput);
        var head = discriminatorSpec.Layers[^1];
        if (minibatchStdDev)
        {
            if (featureShape.Length != 1)
                throw new ArgumentException($"Minibatch standard deviation joins one value to the discriminator's flat hidden features, but '{discriminatorSpec.Name}' ends its hidden layers with shape [{string.Join(", ", featureShape)}]: end them with Flatten.");
            featureShape = [featureShape[0] + 1];
        }
        var logits = head.OutputShape(featureShape);
        if (logits.Aggregate(1, (a, b) => a * b) != 1)
            throw new ArgumentException($"The discriminator '{discriminatorSpec.Name}' must end in one output (a logit), not [{string.Join(", ", logits)}].");
        StateBudget.Charge(head.StateSize(featureShape) + (classes > 0 ? Shapes.Values(classes, (long)labelEmbeddingSize + (long)imageShape[1] * imageShape[2]) : 0),
            $"The discriminator's head and the label embeddings of {classes} classes");
        generator = generatorSpec.Build(generatorInput);
        discriminatorFeatures = featureSpec.Build(discriminatorInput);
        discriminatorHead = head.Build(featureShape);
        if (classes > 0)
        {
            generatorLabels = nn.Embedding(classes, labelEmbeddingSize);
            discriminatorLabels = nn.Embedding(classes, imageShape[1] * imageShape[2]);
        }
        RegisterComponents();
    }

    /// <summary>Classes of a conditional GAN; 0 when unconditional.</summary>
    public int Classes { get; }

    /// <summary>
    /// For a self-conditioned GAN (<see cref="GanOptions.SelfConditioning"/>): the share of the training images in each
    /// k-means cluster, from which unconditional generation draws the cluster; null otherwise.
    /// </summary>
    public IReadOnlyList<double>? ClassShares { get; }

    /// <summary>Whether the classes are the GAN's own clusters of its training images rather than labels a user gave.</summary>
    public bool SelfConditioned => ClassShares is not null;

    private const string ClusterCentresName = "cluster_centres";

    /// <summary>The k-means centres buffer (looked up by name, so that it is the one a move to another device made).</summary>
    private Tensor? ClusterCentres => SelfConditioned ? Buffer(ClusterCentresName) : null;

    /// <summary>Sets the k-means centres [classes, pixels] (pixel values in [0, 1]) of a self-conditioned GAN, so that it can give any image its cluster.</summary>
    internal void SetClusterCentres(float[] centres)
    {
        var table = ClusterCentres ?? throw new InvalidOperationException("Only a self-conditioned GAN has cluster centres.");
        if (centres.Length != table.numel()) throw new ArgumentException($"{centres.Length} centre values for a [{string.Join(", ", table.shape)}] table.", nameof(centres));
        using var noGrad = no_grad();
        using var values = tensor(centres, table.shape);
        table.copy_(values);
    }

    /// <summary>
    /// The cluster of each image [n, pixels] (pixel values in [0, 1]) of a self-conditioned GAN: the nearest k-means centre,
    /// as the k-means model that made the training labels assigns it.
    /// </summary>
    public Tensor NearestClusters(Tensor pixels)
    {
        var centres = ClusterCentres ?? throw new InvalidOperationException("Only a self-conditioned GAN assigns clusters.");
        var x = pixels.reshape(pixels.shape[0], -1).to(centres.dtype).to(centres.device);
        var distances = x.square().sum(1, keepdim: true) - 2 * x.matmul(centres.t()) + centres.square().sum(1).unsqueeze(0);
        return distances.argmin(1);
    }

    /// <summary><paramref name="count"/> class indices drawn from <see cref="ClassShares"/> with <paramref name="generator"/> (on the CPU); self-conditioned GANs only.</summary>
    public Tensor DrawClasses(long count, Generator generator)
    {
        if (ClassShares is null) throw new InvalidOperationException("Only a self-conditioned GAN draws its own classes.");
        using var shares = tensor(ClassShares.ToArray(), float64);
        return multinomial(shares, count, replacement: true, generator: generator);
    }

    /// <summary>Whether the discriminator's head also sees the minibatch standard deviation of its features.</summary>
    public bool MinibatchStdDev { get; }
    public int LatentSize { get; }
    public int[] ImageShape { get; }

    /// <summary>Images [n, ...ImageShape] in [-1, 1] from noise [n, LatentSize] (and class indices [n], conditional).</summary>
    public Tensor Generate(Tensor noise, Tensor? labels)
    {
        var input = Classes > 0 ? cat([noise, generatorLabels!.call(RequireLabels(labels))], 1) : noise;
        return generator.call(input).reshape(_imageShape);
    }

    /// <summary>Images as pixels in [0, 1], flattened to [n, pixels]: what the generator's transformer and sample grids show.</summary>
    public Tensor GeneratePixels(Tensor noise, Tensor? labels) =>
        ((Generate(noise, labels) + 1) / 2).clamp(0, 1).reshape(noise.shape[0], -1);

    /// <summary>
    /// The discriminator's logit [n] and last hidden features [n, f] for images [n, ...ImageShape] in [-1, 1];
    /// <paramref name="realImages"/> says that they are a batch of training images (whose spread the module keeps).
    /// </summary>
    internal (Tensor Logits, Tensor Features) Discriminate(Tensor images, Tensor? labels, bool realImages)
    {
        var input = images.reshape(_imageShape);
        if (Classes > 0)
        {
            var map = discriminatorLabels!.call(RequireLabels(labels)).reshape(-1, 1, ImageShape[1], ImageShape[2]);
            input = cat([input, map], 1);
        }
        var hidden = discriminatorFeatures.call(input);
        var features = hidden.flatten(1);
        var headInput = MinibatchStdDev ? cat([features, Spread(features, realImages)], 1) : hidden;
        return (discriminatorHead.call(headInput).reshape(-1), features);
    }

    /// <summary>The discriminator's logit [n] and last hidden features [n, f] for images [n, ...ImageShape] in [-1, 1].</summary>
    public (Tensor Logits, Tensor Features) Discriminate(Tensor images, Tensor? labels) => Discriminate(images, labels, realImages: false);

    /// <summary>
    /// The spread column joined to the features [n, f] of a minibatch-standard-deviation discriminator. In training, the
    /// batch's own spread (and, for a batch of real images, an update of the kept average); in eval mode, the kept
    /// average, so that an image's realness does not depend on the other images scored with it.
    /// </summary>
    private Tensor Spread(Tensor features, bool realImages)
    {
        if (training)
        {
            var spread = BatchSpread(features);
            if (realImages && KeepsSpread) KeepSpread(spread);
            return spread.expand(features.shape[0], 1);
        }
        if (!KeepsSpread)
            throw new InvalidOperationException("This GAN's discriminator (minibatch standard deviation) was saved before it kept the spread of its training " +
                "batches: its realness of an image would depend on the other images scored with it. Train it again to score images; generating works as before.");
        return Buffer(SpreadAverageName).to(features.dtype).expand(features.shape[0], 1);
    }

    /// <summary>
    /// Minibatch standard deviation (Karras et al.): the mean over features of their standard deviation across the batch,
    /// joined to every sample's features, lets the discriminator see a batch of near-identical samples, so that a
    /// collapsing generator is caught. One sample alone has a spread of 0.
    /// </summary>
    private static Tensor BatchSpread(Tensor features) =>
        features.shape[0] > 1 ? (features.var(0, unbiased: false) + 1e-8).sqrt().mean() : zeros([], features.dtype, features.device);

    /// <summary>
    /// One update of the kept spread with a real batch's: the plain mean of the first ten batches, then an exponential
    /// moving average (momentum 0.1, as batch normalisation keeps its statistics) that follows the features as they train.
    /// </summary>
    private void KeepSpread(Tensor spread)
    {
        using var noGrad = no_grad();
        var average = Buffer(SpreadAverageName);
        var updates = Buffer(SpreadUpdatesName);
        updates.add_(1);
        using var weight = updates.to(average.dtype).reciprocal().clamp_min(SpreadMomentum);
        using var step = (spread.detach().reshape(1).to(average.dtype) - average) * weight;
        average.add_(step);
    }

    private const double SpreadMomentum = 0.1;
    private const string SpreadAverageName = "spread_average", SpreadUpdatesName = "spread_updates";

    /// <summary>
    /// Whether the discriminator keeps the spread of the real batches it trained on (minibatch standard deviation), which
    /// it joins to every image's features in eval mode instead of the spread of the batch being scored.
    /// </summary>
    public bool KeepsSpread { get; }

    /// <summary>The kept spread of the real training batches (minibatch standard deviation); null when none is kept.</summary>
    public double? KeptSpread => KeepsSpread ? Buffer(SpreadAverageName).cpu().item<float>() : null;

    /// <summary>A buffer of this module by name (the one a move to another device made).</summary>
    private Tensor Buffer(string name) => named_buffers(recurse: false).First(b => b.name == name).buffer;

    private List<(Tensor Live, Tensor Average)>? _average;
    private long _averageUpdates;

    /// <summary>Whether an average of the generator's weights is being kept (<see cref="GanOptions.GeneratorAverage"/>).</summary>
    public bool HasGeneratorAverage => _average is not null;

    /// <summary>Starts an exponential moving average of the generator's weights and its floating-point buffers (batch-norm statistics).</summary>
    internal void StartGeneratorAverage()
    {
        using var noGrad = no_grad();
        _average?.ForEach(p => p.Average.Dispose());
        _average = GeneratorState().Select(t => (t, t.detach().clone())).ToList();
        _averageUpdates = 0;
    }

    /// <summary>
    /// One update of the average after a generator step: average = d * average + (1 - d) * weights, with
    /// d = min(decay, (1 + n) / (10 + n)) after n updates, so that the first steps do not leave the average stuck near the
    /// random initialisation.
    /// </summary>
    internal void UpdateGeneratorAverage(double decay)
    {
        if (_average is null) throw new InvalidOperationException("No generator average was started.");
        using var noGrad = no_grad();
        _averageUpdates++;
        double d = Math.Min(decay, (1.0 + _averageUpdates) / (10.0 + _averageUpdates));
        foreach (var (live, average) in _average) average.mul_(d).add_(live, alpha: 1 - d);
    }

    /// <summary>
    /// The averaged generator in place of the trained one until the result is disposed (e.g. to draw samples after each
    /// epoch); nothing changes when no average is kept.
    /// </summary>
    public IDisposable WithAveragedGenerator()
    {
        if (_average is null) return new Swap(null);
        using var noGrad = no_grad();
        var saved = _average.Select(p => p.Live.detach().clone()).ToList();
        foreach (var (live, average) in _average) live.copy_(average);
        return new Swap(() =>
        {
            using var restore = no_grad();
            foreach (var ((live, _), value) in _average.Zip(saved)) live.copy_(value);
            saved.ForEach(t => t.Dispose());
        });
    }

    /// <summary>Makes the average the generator's weights for good (at the end of training) and stops averaging.</summary>
    internal void KeepGeneratorAverage()
    {
        if (_average is null) return;
        using (no_grad())
            foreach (var (live, average) in _average) live.copy_(average);
        _average.ForEach(p => p.Average.Dispose());
        _average = null;
    }

    private IEnumerable<Tensor> GeneratorState() =>
        GeneratorParameters().Cast<Tensor>().Concat(generator.buffers().Concat(generatorLabels?.buffers() ?? []).Where(b => b.is_floating_point()));

    private sealed class Swap(Action? undo) : IDisposable
    {
        private Action? _undo = undo;
        public void Dispose() { _undo?.Invoke(); _undo = null; }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) { _average?.ForEach(p => p.Average.Dispose()); _average = null; }
        base.Dispose(disposing);
    }

    /// <summary>The generator's layers (built from its spec; for export).</summary>
    internal nn.Module GeneratorLayers => generator;

    /// <summary>The generator's label embedding weights [classes, size] (conditional GANs; for export).</summary>
    internal Tensor? GeneratorLabelEmbedding => generatorLabels is null ? null : generatorLabels.parameters().Single();

    /// <summary>The generator's parameters (its layers and label embedding).</summary>
    public IEnumerable<TorchSharp.Modules.Parameter> GeneratorParameters() =>
        generator.parameters().Concat(generatorLabels?.parameters() ?? []);

    /// <summary>The discriminator's parameters (its layers and label embedding).</summary>
    public IEnumerable<TorchSharp.Modules.Parameter> DiscriminatorParameters() =>
        discriminatorFeatures.parameters().Concat(discriminatorHead.parameters()).Concat(discriminatorLabels?.parameters() ?? []);

    /// <summary>Radford et al.'s initialisation: convolution and dense weights from N(0, 0.02), batch-norm scales from N(1, 0.02), biases 0.</summary>
    public void InitialiseAsDcgan()
    {
        using var noGrad = no_grad();
        foreach (var (_, module) in named_modules())
        {
            switch (module)
            {
                case TorchSharp.Modules.Conv2d or TorchSharp.Modules.ConvTranspose2d or TorchSharp.Modules.Linear:
                    foreach (var (name, p) in module.named_parameters(recurse: false))
                        if (name == "weight") nn.init.normal_(p, 0, 0.02); else nn.init.zeros_(p);
                    break;
                case TorchSharp.Modules.BatchNorm1d or TorchSharp.Modules.BatchNorm2d:
                    foreach (var (name, p) in module.named_parameters(recurse: false))
                        if (name == "weight") nn.init.normal_(p, 1, 0.02); else nn.init.zeros_(p);
                    break;
            }
        }
    }

    /// <summary>Class indices from float values that must be whole numbers 0 to Classes - 1; <paramref name="what"/> names them in the error.</summary>
    internal Tensor ClassIndices(Tensor values, string what)
    {
        var labels = values.round().to(int64);
        if (values.ne(labels.to(values.dtype)).any().item<bool>() || labels.min().item<long>() < 0 || labels.max().item<long>() >= Classes)
            throw new ArgumentOutOfRangeException(nameof(values), $"{what}: a whole number from 0 to {Classes - 1}.");
        return labels;
    }

    private static Tensor RequireLabels(Tensor? labels) =>
        labels ?? throw new ArgumentException("A conditional GAN needs the class of each image.");
}
