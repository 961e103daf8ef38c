using static TorchSharp.torch;

namespace MlNetDeep.Training;

/// <summary>
/// The random numbers a training run's modules draw while they train (dropout masks, a VAE's reparameterisation
/// noise). Each fit owns one generator, made current on the thread that trains it for the length of the run, so
/// trainings running at the same time in one process never draw from each other's stream. Draws are made where the
/// generator lives (the CPU) and moved to the tensor's device, so a seed gives the same numbers on every device.
/// Outside a run no generator is current and the draws come from torch's global generator, as torch's own modules'
/// do.
/// </summary>
internal static class TrainingRandom
{
    [ThreadStatic] private static Generator? _current;

    /// <summary>The generator of the run training on this thread; null outside a run.</summary>
    public static Generator? Current => _current;

    /// <summary>Makes <paramref name="generator"/> current on this thread until the returned scope is disposed (scopes nest).</summary>
    public static IDisposable Use(Generator generator)
    {
        ArgumentNullException.ThrowIfNull(generator);
        var previous = _current;
        _current = generator;
        return new Scope(previous);
    }

    /// <summary>Standard normal noise shaped and typed like <paramref name="like"/>, on its device.</summary>
    public static Tensor NormalLike(Tensor like) =>
        _current is { } generator ? Normal(like.shape, like.dtype, generator, like.device) : randn_like(like);

    /// <summary>Standard normal numbers drawn where <paramref name="generator"/> lives and moved to <paramref name="device"/>.</summary>
    public static Tensor Normal(long[] shape, ScalarType dtype, Generator generator, Device device) =>
        randn(shape, dtype, generator.device, generator: generator).to(device);

    /// <summary>Uniform numbers in [0, 1) drawn where <paramref name="generator"/> lives and moved to <paramref name="device"/>.</summary>
    public static Tensor Uniform(long[] shape, ScalarType dtype, Generator generator, Device device) =>
        rand(shape, dtype, generator.device, generator: generator).to(device);

    /// <summary>
    /// Inverted dropout of <paramref name="input"/>: each value is kept with probability 1 - <paramref name="rate"/> and
    /// scaled by 1 / (1 - rate). The mask comes from the current run's generator, drawn exactly as torch's dropout draws
    /// it on the CPU (a Bernoulli tensor divided by the keep probability), so a run on the CPU gives the numbers torch's
    /// own dropout gives from the same generator state.
    /// </summary>
    public static Tensor Dropout(Tensor input, double rate)
    {
        if (rate == 0 || input.numel() == 0) return input.alias();
        if (_current is not { } generator) return nn.functional.dropout(input, rate, training: true);
        double keep = 1 - rate;
        var noise = empty_like(input, device: generator.device);
        noise.bernoulli_(keep, generator);
        noise.div_(keep);
        return input * noise.to(input.device);
    }

    private sealed class Scope(Generator? previous) : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            _current = previous;
        }
    }
}
