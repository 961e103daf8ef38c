using Microsoft.ML;
using MlNetDeep.Data;
using MlNetDeep.Models.Common;
using MlNetDeep.Networks;
using MlNetDeep.Persistence;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Autoencoders;

/// <summary>A VAE's evidence lower bound on some data, per sample: ELBO = -(reconstruction loss + KL).</summary>
/// <param name="Elbo">Mean ELBO per sample (nats, for binary cross-entropy: the log-likelihood bound of the pixels).</param>
/// <param name="Reconstruction">Mean reconstruction loss per sample (summed over its values).</param>
/// <param name="KL">Mean KL divergence of q(z|x) from N(0, I) per sample.</param>
/// <param name="Rows">Rows evaluated.</param>
public sealed record ElboResult(double Elbo, double Reconstruction, double KL, long Rows);

/// <summary>
/// A trained variational autoencoder: adds <c>Latent</c> (the latent mean), <c>Reconstruction</c> (decoded from the mean)
/// and, when asked, a sampled latent column. Generates new images from random latents.
/// </summary>
public sealed class VariationalAutoencoderTransformer : AutoencoderTransformerBase
{
    internal const string KindName = "VariationalAutoencoder";

    private readonly string? _sampleColumn;

    internal VariationalAutoencoderTransformer(nn.Module module, NetworkSpec network, NetworkSpec encoder, NetworkSpec decoder, int latentSize,
        string featureColumnName, int[] inputShape, Device device, int scoringBatchSize, string latentColumnName, string reconstructionColumnName,
        string? sampleColumnName, int sampleSeed, ReconstructionLoss reconstructionLoss)
        : base(module, network, encoder, decoder, [latentSize], featureColumnName, inputShape, device, scoringBatchSize, latentColumnName, reconstructionColumnName)
    {
        _sampleColumn = sampleColumnName;
        SampleSeed = sampleSeed;
        ReconstructionLoss = reconstructionLoss;
        var columns = new List<OutputColumn>
        {
            new VectorOutputColumn(latentColumnName, 0, latentSize),
            new VectorOutputColumn(reconstructionColumnName, latentSize, FeatureSize),
        };
        if (sampleColumnName is not null) columns.Add(new VectorOutputColumn(sampleColumnName, latentSize + FeatureSize, latentSize));
        OutputColumns = columns;
    }

    /// <summary>The seed of the sampled latent column's noise.</summary>
    public int SampleSeed { get; }

    /// <summary>The reconstruction loss it was trained with (and that <see cref="EvaluateElbo"/> uses).</summary>
    public ReconstructionLoss ReconstructionLoss { get; }

    private VariationalAutoencoderModule Vae => (VariationalAutoencoderModule)Module;

    internal override IReadOnlyList<OutputColumn> OutputColumns { get; }
    public override int OutputWidth => LatentSize * (_sampleColumn is null ? 1 : 2) + FeatureSize;
    public override string Kind => KindName;

    protected override Tensor Forward(Tensor inputs)
    {
        long n = inputs.shape[0];
        var (mean, logVariance) = Vae.Encode(inputs);
        var reconstruction = Vae.Decode(mean).reshape(n, -1);
        if (_sampleColumn is null) return cat([mean, reconstruction], 1);
        var z = VariationalAutoencoderModule.Reparameterise(mean, logVariance, RowNoise(inputs, LatentSize, SampleSeed).to(mean.device));
        return cat([mean, reconstruction, z], 1);
    }

    /// <summary>
    /// Standard normal noise [n, size] where row i depends only on <paramref name="seed"/> and row i's values, so a row's
    /// sample is the same whatever batch it is scored in, in Transform, PredictionEngine or after a reload.
    /// </summary>
    private static Tensor RowNoise(Tensor inputs, int size, int seed)
    {
        long n = inputs.shape[0];
        var values = inputs.reshape(n, -1).to(CPU).to(float32).contiguous().data<float>().ToArray();
        int width = (int)(values.Length / Math.Max(n, 1));
        var rows = new Tensor[n];
        for (int i = 0; i < n; i++)
        {
            ulong hash = 14695981039346656037UL ^ (uint)seed;
            foreach (var v in values.AsSpan(i * width, width))
            {
                hash ^= BitConverter.SingleToUInt32Bits(v);
                hash *= 1099511628211UL;
            }
            using var generator = new Generator(hash);
            rows[i] = randn([size], generator: generator);
        }
        return stack(rows);
    }

    /// <summary>
    /// The log-variances of q(z|x) for <paramref name="inputs"/> (each of the feature column's size); with the means of
    /// <see cref="AutoencoderTransformerBase.Encode"/> they give draws z = mean + exp(logVariance / 2) * noise, as many per
    /// input as wanted (the sampled column holds one seeded draw per row).
    /// </summary>
    public float[][] EncodeLogVariance(IReadOnlyList<float[]> inputs) => Run(inputs, FeatureSize, InputShape, x => Vae.Encode(x).LogVariance, LatentSize);

    /// <summary>New images decoded from <paramref name="count"/> latents drawn from N(0, I), reproducibly for <paramref name="seed"/>.</summary>
    public float[][] Generate(int count, int seed)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), count, "Generate at least one image.");
        float[] latents;
        using (var generator = new Generator((ulong)(uint)seed))
        using (var z = randn([count, LatentSize], generator: generator))
            latents = z.data<float>().ToArray();
        return Decode(Enumerable.Range(0, count).Select(i => latents.AsSpan(i * LatentSize, LatentSize).ToArray()).ToArray());
    }

    /// <summary>
    /// The evidence lower bound on <paramref name="data"/>'s feature column (one latent sample per row, seeded): for
    /// binary cross-entropy, a bound on the log-likelihood of the pixels in nats per image.
    /// </summary>
    public ElboResult EvaluateElbo(IDataView data, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(data);
        CheckInput(data.Schema);
        var loaded = DataViewTensors.Load(data, FeatureColumnName, FeatureSize, null, LabelKind.None);
        using var all = loaded.ToTensorData(InputShape);
        using var generator = new Generator((ulong)(uint)seed);
        double reconstruction = 0, kl = 0;
        long rows = all.Count;
        WithModule(_ =>
        {
            using var noGrad = no_grad();
            for (long start = 0; start < rows; start += ScoringBatchSize)
            {
                using var scope = NewDisposeScope();
                long end = Math.Min(rows, start + ScoringBatchSize);
                var x = all.Inputs.slice(0, start, end, 1).to(Device);
                var (r, k) = VariationalObjective.Terms(Vae, x, x, m => randn(m.shape, generator: generator).to(m.device), ReconstructionLoss, FeatureColumnName, checkRange: true);
                reconstruction += r.sum().to(float64).item<double>();
                kl += k.sum().to(float64).item<double>();
            }
            return true;
        });
        return new ElboResult(-(reconstruction + kl) / rows, reconstruction / rows, kl / rows, rows);
    }

    internal override TransformerRecord ToRecord() => NewRecord()
        .With("encoder", Encoder)
        .With("decoder", Decoder)
        .With("latentSize", LatentSize)
        .With("latentColumn", LatentColumnName)
        .With("reconstructionColumn", ReconstructionColumnName)
        .With("sampleColumn", _sampleColumn)
        .With("sampleSeed", SampleSeed)
        .With("reconstructionLoss", ReconstructionLoss);
}

/// <summary>How a saved <see cref="VariationalAutoencoderTransformer"/> is read back.</summary>
internal sealed class VariationalAutoencoderTransformerFormat : NetworkModelFormat
{
    public override string Kind => VariationalAutoencoderTransformer.KindName;

    public override nn.Module BuildModule(TransformerRecord record) =>
        new VariationalAutoencoderModule(record.Get<NetworkSpec>("encoder"), record.Get<NetworkSpec>("decoder"), record.InputShape, record.Get<int>("latentSize"));

    public override Microsoft.ML.ITransformer Create(TransformerRecord record, nn.Module module, Device device) =>
        new VariationalAutoencoderTransformer(module, record.Network, record.Get<NetworkSpec>("encoder"), record.Get<NetworkSpec>("decoder"),
            record.Get<int>("latentSize"), record.FeatureColumnName, record.InputShape, device, record.ScoringBatchSize,
            record.Get<string>("latentColumn"), record.Get<string>("reconstructionColumn"), record.GetOrDefault<string>("sampleColumn"),
            record.Get<int>("sampleSeed"), record.Get<ReconstructionLoss>("reconstructionLoss"));
}
