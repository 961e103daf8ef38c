using MlNetDeep.Networks;
using MlNetDeep.Training;

namespace MlNetDeep.Models.Autoencoders;

/// <summary>How a reconstruction is compared with its (clean) input.</summary>
public enum ReconstructionLoss
{
    /// <summary>Mean squared error over all values.</summary>
    MeanSquaredError,

    /// <summary>Binary cross-entropy per value: for inputs in [0, 1] (e.g. pixels) and a decoder ending in a sigmoid.</summary>
    BinaryCrossEntropy,
}

/// <summary>What autoencoders and variational autoencoders share: the encoder, the decoder, the latent size and the column names.</summary>
public abstract class AutoencoderOptionsBase : DeepTrainerOptions
{
    /// <summary>
    /// The encoder: input shape to the latent code. A <c>Dense(Dense.TaskOutputs)</c> layer is sized to <see cref="LatentSize"/>;
    /// without one, the latent code is the encoder's whole (flattened) output, e.g. 32x7x7 for the convolutional denoiser.
    /// </summary>
    public NetworkSpec Encoder { get; set; } = AutoencoderNetworks.DenseEncoder;

    /// <summary>
    /// The decoder: latent code to a reconstruction with as many values as the input (it is reshaped to the input's shape).
    /// A <c>Dense(Dense.TaskOutputs)</c> layer is sized to the input's size.
    /// </summary>
    public NetworkSpec Decoder { get; set; } = AutoencoderNetworks.DenseDecoder;

    /// <summary>Size of the latent code (the width of the encoder's <c>Dense(Dense.TaskOutputs)</c> layer).</summary>
    public int LatentSize { get; set; } = 32;

    /// <summary>Output column of the latent code, vector&lt;float&gt;[latent size] (a VAE's latent mean).</summary>
    public string LatentColumnName { get; set; } = "Latent";

    /// <summary>Output column of the reconstruction, vector&lt;float&gt; of the input's size.</summary>
    public string ReconstructionColumnName { get; set; } = "Reconstruction";

    /// <summary>How reconstructions are scored in training.</summary>
    public abstract ReconstructionLoss ReconstructionLoss { get; set; }

    /// <summary>
    /// Corrupts the training inputs (Gaussian noise, salt-and-pepper, masking), seeded by the training seed, while the
    /// clean input stays the target: a denoising autoencoder. The same setting as <see cref="DeepTrainerOptions.TrainingInputTransform"/>.
    /// </summary>
    public InputCorruption? Corruption
    {
        get => TrainingInputTransform as InputCorruption;
        set => TrainingInputTransform = value;
    }

    internal override void Validate()
    {
        base.Validate();
        if (Encoder is null) throw new ArgumentNullException(nameof(Encoder), "Encoder must be a network.");
        if (Decoder is null) throw new ArgumentNullException(nameof(Decoder), "Decoder must be a network.");
        if (LatentSize <= 0) throw new ArgumentOutOfRangeException(nameof(LatentSize), LatentSize, "LatentSize must be at least 1.");
        if (string.IsNullOrWhiteSpace(LatentColumnName)) throw new ArgumentException("LatentColumnName must name a column.", nameof(LatentColumnName));
        if (string.IsNullOrWhiteSpace(ReconstructionColumnName)) throw new ArgumentException("ReconstructionColumnName must name a column.", nameof(ReconstructionColumnName));
        if (!Enum.IsDefined(ReconstructionLoss)) throw new ArgumentOutOfRangeException(nameof(ReconstructionLoss), ReconstructionLoss, "Unknown reconstruction loss.");
        CheckColumnNames();
    }

    /// <summary>The output columns' names, by option.</summary>
    private protected virtual IEnumerable<(string Option, string? Name)> OutputColumnNames =>
        [(nameof(LatentColumnName), LatentColumnName), (nameof(ReconstructionColumnName), ReconstructionColumnName)];

    /// <summary>The outputs' names are distinct and none is the feature column (checked at construction, Fit and GetOutputSchema).</summary>
    internal void CheckColumnNames() => Common.OutputColumnNames.Check(OutputColumnNames, [(nameof(FeatureColumnName), FeatureColumnName, "feature")]);

    /// <summary>The latent code's shape for this encoder (its output, for a plain autoencoder).</summary>
    internal virtual int[] LatentShapeOf(NetworkSpec encoder, int[] inputShape) => encoder.OutputShape(inputShape);

    /// <summary>The encoder and decoder with their task-sized layers resolved, for an input of <paramref name="inputShape"/>.</summary>
    public (NetworkSpec Encoder, NetworkSpec Decoder, int[] LatentShape) Resolve(int[] inputShape)
    {
        int inputSize = inputShape.Aggregate(1, (a, b) => a * b);
        var encoder = Encoder.WithTaskOutputs(LatentSize);
        var decoder = Decoder.WithTaskOutputs(inputSize);
        var latentShape = LatentShapeOf(encoder, inputShape);
        var output = decoder.OutputShape(latentShape);
        if (output.Aggregate(1, (a, b) => a * b) != inputSize)
            throw new ArgumentException($"The decoder '{Decoder.Name}' outputs [{string.Join(", ", output)}] for a latent code [{string.Join(", ", latentShape)}], " +
                $"but the input [{string.Join(", ", inputShape)}] has {inputSize} values. End the decoder with Dense(Dense.TaskOutputs) or match the input's shape.", nameof(Decoder));
        return (encoder, decoder, latentShape);
    }
}

/// <summary>Options of the (dense or convolutional, optionally denoising) autoencoder.</summary>
public sealed class AutoencoderOptions : AutoencoderOptionsBase
{
    /// <summary>Mean squared error by default.</summary>
    public override ReconstructionLoss ReconstructionLoss { get; set; } = ReconstructionLoss.MeanSquaredError;
}

/// <summary>Options of the variational autoencoder.</summary>
public sealed class VariationalAutoencoderOptions : AutoencoderOptionsBase
{
    /// <summary>Creates the options with the VAE's dense encoder (hidden features, no latent layer: the mean and log-variance heads are added) and decoder.</summary>
    public VariationalAutoencoderOptions()
    {
        Encoder = AutoencoderNetworks.VaeEncoder;
        Decoder = AutoencoderNetworks.VaeDecoder;
        LatentSize = 2;
    }

    /// <summary>Binary cross-entropy by default (a Bernoulli likelihood of the pixels), summed over the values of a sample.</summary>
    public override ReconstructionLoss ReconstructionLoss { get; set; } = ReconstructionLoss.BinaryCrossEntropy;

    /// <summary>Weight of the KL divergence in the loss (1 is the ELBO; above 1 a beta-VAE).</summary>
    public double Beta { get; set; } = 1.0;

    /// <summary>An extra output column holding a sample z = mean + sigma * noise per row; null (the default) adds none.</summary>
    public string? SampleColumnName { get; set; }

    /// <summary>Seed of the sampled column's noise: a row's sample depends only on this seed and the row's features.</summary>
    public int SampleSeed { get; set; }

    /// <summary>The mean and log-variance heads turn the encoder body's output into [LatentSize].</summary>
    internal override int[] LatentShapeOf(NetworkSpec encoder, int[] inputShape)
    {
        encoder.OutputShape(inputShape);
        return [LatentSize];
    }

    internal override void Validate()
    {
        base.Validate();
        if (Beta < 0 || !double.IsFinite(Beta)) throw new ArgumentOutOfRangeException(nameof(Beta), Beta, "Beta must be a finite number >= 0.");
        if (SampleColumnName is not null && string.IsNullOrWhiteSpace(SampleColumnName))
            throw new ArgumentException("SampleColumnName must be null or name a column.", nameof(SampleColumnName));
    }

    private protected override IEnumerable<(string Option, string? Name)> OutputColumnNames =>
        [.. base.OutputColumnNames, (nameof(SampleColumnName), SampleColumnName)];
}
