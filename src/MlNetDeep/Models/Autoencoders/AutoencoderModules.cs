using MlNetDeep.Networks;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Autoencoders;

/// <summary>What the autoencoder families' modules offer the transformers and latent tools.</summary>
internal interface IAutoencoderModule
{
    /// <summary>The latent code [n, latent size] (a VAE's mean) of inputs [n, ...input shape].</summary>
    Tensor EncodeLatent(Tensor inputs);

    /// <summary>Reconstructions [n, ...input shape] of latent codes [n, latent size].</summary>
    Tensor Decode(Tensor latents);

    /// <summary>The decoder part alone (latent shape in, the decoder's own output shape out).</summary>
    nn.Module<Tensor, Tensor> DecoderModule { get; }

    /// <summary>The encoder body as built from its spec (a VAE's heads come after it).</summary>
    nn.Module<Tensor, Tensor> EncoderModule { get; }
}

/// <summary>An encoder and a decoder; forward reconstructs its input.</summary>
internal sealed class AutoencoderModule : nn.Module<Tensor, Tensor>, IAutoencoderModule
{
    private readonly nn.Module<Tensor, Tensor> encoder;
    private readonly nn.Module<Tensor, Tensor> decoder;
    private readonly long[] _inputShape, _latentShape;

    /// <summary>Builds both parts for inputs of <paramref name="inputShape"/> (task-sized layers already resolved).</summary>
    public AutoencoderModule(NetworkSpec encoderSpec, NetworkSpec decoderSpec, int[] inputShape) : base("Autoencoder")
    {
        var latentShape = encoderSpec.OutputShape(inputShape);
        encoder = encoderSpec.Build(inputShape);
        decoder = decoderSpec.Build(latentShape);
        _inputShape = [-1, .. inputShape.Select(d => (long)d)];
        _latentShape = [-1, .. latentShape.Select(d => (long)d)];
        RegisterComponents();
    }

    public nn.Module<Tensor, Tensor> DecoderModule => decoder;

    public nn.Module<Tensor, Tensor> EncoderModule => encoder;

    public Tensor EncodeLatent(Tensor inputs) => encoder.call(inputs).flatten(1);

    public Tensor Decode(Tensor latents) => decoder.call(latents.reshape(_latentShape)).reshape(_inputShape);

    public override Tensor forward(Tensor input) => Decode(EncodeLatent(input));
}

/// <summary>
/// A variational autoencoder: the encoder body, two dense heads for the latent mean and log-variance, and the decoder.
/// Forward decodes the mean (deterministic); training samples z = mean + exp(logvar / 2) * noise.
/// </summary>
internal sealed class VariationalAutoencoderModule : nn.Module<Tensor, Tensor>, IAutoencoderModule
{
    private readonly nn.Module<Tensor, Tensor> encoder;
    private readonly nn.Module<Tensor, Tensor> mean;
    private readonly nn.Module<Tensor, Tensor> logVariance;
    private readonly nn.Module<Tensor, Tensor> decoder;
    private readonly long[] _inputShape;

    /// <summary>Builds the parts for inputs of <paramref name="inputShape"/>; the encoder body's (flattened) output feeds the two heads.</summary>
    public VariationalAutoencoderModule(NetworkSpec encoderSpec, NetworkSpec decoderSpec, int[] inputShape, int latentSize) : base("VariationalAutoencoder")
    {
        int features = encoderSpec.OutputShape(inputShape).Aggregate(1, (a, b) => a * b);
        StateBudget.Charge(2 * (Shapes.Values(features, latentSize) + latentSize), $"The latent heads ({features} -> {latentSize})");
        encoder = encoderSpec.Build(inputShape);
        mean = nn.Linear(features, latentSize);
        logVariance = nn.Linear(features, latentSize);
        decoder = decoderSpec.Build([latentSize]);
        _inputShape = [-1, .. inputShape.Select(d => (long)d)];
        LatentSize = latentSize;
        RegisterComponents();
    }

    public int LatentSize { get; }

    public nn.Module<Tensor, Tensor> EncoderModule => encoder;

    /// <summary>The head that gives the latent mean from the flattened encoder output.</summary>
    internal nn.Module<Tensor, Tensor> MeanHead => mean;

    /// <summary>The head that gives the latent log-variance from the flattened encoder output.</summary>
    internal nn.Module<Tensor, Tensor> LogVarianceHead => logVariance;

    public nn.Module<Tensor, Tensor> DecoderModule => decoder;

    /// <summary>The latent mean and log-variance, each [n, latent size].</summary>
    public (Tensor Mean, Tensor LogVariance) Encode(Tensor inputs)
    {
        var h = encoder.call(inputs).flatten(1);
        return (mean.call(h), logVariance.call(h));
    }

    public Tensor EncodeLatent(Tensor inputs) => Encode(inputs).Mean;

    public Tensor Decode(Tensor latents) => decoder.call(latents).reshape(_inputShape);

    /// <summary>z = mean + exp(logvar / 2) * noise (the reparameterisation: gradients flow to mean and log-variance).</summary>
    public static Tensor Reparameterise(Tensor mean, Tensor logVariance, Tensor noise) => mean + (logVariance * 0.5).exp() * noise;

    public override Tensor forward(Tensor input) => Decode(EncodeLatent(input));
}
