using MlNetDeep.Networks;
using MlNetDeep.Training;

namespace MlNetDeep.Models.Generative;

/// <summary>The course's GAN architectures.</summary>
public enum GanKind
{
    /// <summary>Multilayer perceptrons for both networks (the course's first GAN).</summary>
    Dense,
    /// <summary>Radford et al.'s DCGAN: transposed convolutions with batch normalisation and ReLU; strided convolutions with LeakyReLU.</summary>
    Dcgan,
}

/// <summary>The adversarial loss.</summary>
public enum GanLoss
{
    /// <summary>Binary cross-entropy, with the generator maximising log D(G(z)) (Goodfellow's non-saturating form).</summary>
    NonSaturating,
    /// <summary>Hinge loss (Lim and Ye; Miyato et al.): D minimises relu(1 - D(x)) + relu(1 + D(G(z))), G minimises -D(G(z)).</summary>
    Hinge,
}

/// <summary>
/// Options of <c>mlContext.Transforms.GenerativeAdversarialNetwork</c>: a generator and a discriminator trained against
/// each other on an image column (values in [0, 1]). With <see cref="LabelColumnName"/> set, both networks see the label
/// (a conditional GAN) and the generator draws the digit it is asked for.
/// <see cref="DeepTrainerOptions.Optimizer"/> is the generator's optimizer, <see cref="DiscriminatorOptimizer"/> the
/// discriminator's; both default to DCGAN's Adam(2e-4, beta1 0.5).
/// </summary>
public sealed class GanOptions : DeepTrainerOptions
{
    public GanOptions()
    {
        FeatureColumnName = "Pixels";
        InputShape = [1, 28, 28];
        Epochs = 5;
        BatchSize = 64;
        Optimizer = new Adam(2e-4, Beta1: 0.5);
    }

    /// <summary>The architecture of both networks when <see cref="Generator"/>/<see cref="Discriminator"/> are not given.</summary>
    public GanKind Kind { get; set; } = GanKind.Dcgan;

    /// <summary>Size of the generator's noise vector z.</summary>
    public int LatentSize { get; set; } = 100;

    /// <summary>A key label column for a conditional GAN; null trains an unconditional one.</summary>
    public string? LabelColumnName { get; set; }

    /// <summary>
    /// Self-conditioning (after Liu et al., "Diverse Image Generation via Self-Conditioned GANs"): this many k-means
    /// clusters of the training images (ML.NET's k-means on the image column) become the labels of a conditional GAN, and
    /// generation draws each image's cluster from the clusters' shares of the training data, so that every part of the data
    /// keeps its share of the samples (a cure for mode collapse that needs no labels). 0 = off; not with
    /// <see cref="LabelColumnName"/>.
    /// </summary>
    public int SelfConditioning { get; set; }

    /// <summary>Size of the label embedding joined to the noise (conditional GAN).</summary>
    public int LabelEmbeddingSize { get; set; } = 10;

    /// <summary>The generator's layers from the noise (and label embedding) to the image, ending in Tanh; null for <see cref="Kind"/>'s preset.</summary>
    public NetworkSpec? Generator { get; set; }

    /// <summary>The discriminator's layers from the image to one logit; null for <see cref="Kind"/>'s preset.</summary>
    public NetworkSpec? Discriminator { get; set; }

    /// <summary>The discriminator's optimizer.</summary>
    public OptimizerSpec DiscriminatorOptimizer { get; set; } = new Adam(2e-4, Beta1: 0.5);

    public GanLoss Loss { get; set; } = GanLoss.NonSaturating;

    /// <summary>One-sided label smoothing: the discriminator's target for real images (1 = off, 0.9 is usual).</summary>
    public double RealLabel { get; set; } = 1.0;

    /// <summary>Instance noise: Gaussian noise of this standard deviation (in [-1, 1] pixel units) added to every image the
    /// discriminator sees, decaying linearly to 0 over the epochs; 0 = off.</summary>
    public double InstanceNoise { get; set; }

    /// <summary>Feature matching (Salimans et al.): the generator matches the mean of the discriminator's last hidden
    /// features on real images instead of fooling its output.</summary>
    public bool FeatureMatching { get; set; }

    /// <summary>Minibatch standard deviation (Karras et al.): the discriminator's output layer also sees how much its hidden
    /// features vary across the batch, so a generator that draws one thing for every z is caught (a cure for mode collapse).</summary>
    public bool MinibatchStdDev { get; set; }

    /// <summary>
    /// An exponential moving average of the generator's weights (Yazıcı et al.; as in ProGAN, BigGAN and StyleGAN) with this
    /// decay per generator step, e.g. 0.999; the fitted generator is the average, which smooths the oscillations of the
    /// adversarial game. 0 = off.
    /// </summary>
    public double GeneratorAverage { get; set; }

    /// <summary>Initialise weights from N(0, 0.02) (batch-norm scales from N(1, 0.02)), as Radford et al.; DCGAN's default.</summary>
    public bool? DcganInitialisation { get; set; }

    internal const int MaxClusters = 1000;

    /// <summary>Name of the image column the fitted generator adds.</summary>
    public string OutputColumnName { get; set; } = "Image";

    /// <summary>Name of the noise column the fitted generator reads (vector of <see cref="LatentSize"/>, one more value holding
    /// the class index for a conditional GAN); <see cref="GeneratorTransformer.NoiseData"/> makes such rows.</summary>
    public string NoiseColumnName { get; set; } = "Noise";

    internal override void Validate()
    {
        base.Validate();
        if (InputShape is not { Length: 3 }) throw new ArgumentException("A GAN needs InputShape [channels, height, width], e.g. [1, 28, 28].", nameof(InputShape));
        if (Kind == GanKind.Dcgan && Generator is null && (InputShape[1] % 4 != 0 || InputShape[2] % 4 != 0))
            throw new ArgumentException($"The DCGAN preset doubles the size twice: height and width must be multiples of 4, not {InputShape[1]}x{InputShape[2]}.", nameof(InputShape));
        if (LatentSize <= 0) throw new ArgumentOutOfRangeException(nameof(LatentSize), LatentSize, "LatentSize must be at least 1.");
        if (LabelEmbeddingSize <= 0) throw new ArgumentOutOfRangeException(nameof(LabelEmbeddingSize), LabelEmbeddingSize, "LabelEmbeddingSize must be at least 1.");
        if (DiscriminatorOptimizer is null) throw new ArgumentNullException(nameof(DiscriminatorOptimizer));
        DiscriminatorOptimizer.Validate();
        if (RealLabel is <= 0.5 or > 1 || double.IsNaN(RealLabel)) throw new ArgumentOutOfRangeException(nameof(RealLabel), RealLabel, "RealLabel must be in (0.5, 1].");
        if (InstanceNoise < 0 || !double.IsFinite(InstanceNoise)) throw new ArgumentOutOfRangeException(nameof(InstanceNoise), InstanceNoise, "InstanceNoise must be >= 0.");
        if (SelfConditioning < 0 || SelfConditioning == 1 || SelfConditioning > MaxClusters)
            throw new ArgumentOutOfRangeException(nameof(SelfConditioning), SelfConditioning, $"SelfConditioning is a number of clusters from 2 to {MaxClusters} (0 = off).");
        if (SelfConditioning > 0 && LabelColumnName is not null)
            throw new ArgumentException($"SelfConditioning makes its own labels from clusters; it cannot be combined with the label column '{LabelColumnName}'.", nameof(SelfConditioning));
        if (GeneratorAverage is < 0 or >= 1 || double.IsNaN(GeneratorAverage)) throw new ArgumentOutOfRangeException(nameof(GeneratorAverage), GeneratorAverage, "GeneratorAverage is a decay in [0, 1) (0 = off, 0.999 is usual).");
        if (string.IsNullOrWhiteSpace(OutputColumnName)) throw new ArgumentException("OutputColumnName must name a column.", nameof(OutputColumnName));
        if (string.IsNullOrWhiteSpace(NoiseColumnName)) throw new ArgumentException("NoiseColumnName must name a column.", nameof(NoiseColumnName));
        CheckColumnNames();
        if (ValidationFraction > 0 || ValidationData is not null) throw new ArgumentException("A GAN has no validation loss to watch; leave ValidationFraction and ValidationData unset.");
        if (TrainingInputTransform is not null)
            throw new ArgumentException("A GAN takes no TrainingInputTransform: its discriminator sees the training images as they are (InstanceNoise adds noise to every image it sees).", nameof(TrainingInputTransform));
        if (AdversarialTraining is not null)
            throw new ArgumentException("A GAN takes no AdversarialTraining: it has no labelled loss to attack.", nameof(AdversarialTraining));
    }

    /// <summary>The generator's output column is not its noise column, the column it reads (checked at construction, Fit and GetOutputSchema).</summary>
    internal void CheckColumnNames() =>
        Models.Common.OutputColumnNames.Check([(nameof(OutputColumnName), OutputColumnName)], [(nameof(NoiseColumnName), NoiseColumnName, "noise")]);

    /// <summary>The generator and discriminator specs for an image shape (presets unless given).</summary>
    public (NetworkSpec Generator, NetworkSpec Discriminator) Resolve(int[] imageShape) =>
        (Generator ?? GanNetworks.Generator(Kind, imageShape), Discriminator ?? GanNetworks.Discriminator(Kind, imageShape));
}
