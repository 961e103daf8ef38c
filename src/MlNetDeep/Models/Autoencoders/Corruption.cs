using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Autoencoders;

/// <summary>
/// Corrupts a batch of inputs for a denoising autoencoder (the clean input stays the target). Applied only to
/// training batches, with the training run's seeded generator; never when scoring. Never changes the batch in place.
/// The random numbers are drawn where the generator lives (the CPU) and moved to the batch's device, so a seed gives
/// the same corrupted batches on every device.
/// </summary>
public abstract record InputCorruption : IBatchTransform
{
    /// <summary>The corrupted copy of <paramref name="batch"/>.</summary>
    public abstract Tensor Apply(Tensor batch, Generator generator);

    /// <summary>A short description for logs.</summary>
    public abstract string Describe();

    /// <summary>Corrupts rows of values (e.g. to make noisy test images), reproducibly for <paramref name="seed"/>.</summary>
    public float[][] Corrupt(IReadOnlyList<float[]> rows, int seed)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Count == 0) return [];
        int width = rows[0].Length;
        if (rows.Any(r => r.Length != width)) throw new ArgumentException("All rows must have the same length.", nameof(rows));
        Native.TorchRuntime.EnsureLoaded();
        using var scope = NewDisposeScope();
        using var generator = new Generator((ulong)(uint)seed);
        var x = tensor(rows.SelectMany(r => r).ToArray(), [rows.Count, width]);
        var y = Apply(x, generator).contiguous().data<float>().ToArray();
        return Enumerable.Range(0, rows.Count).Select(i => y.AsSpan(i * width, width).ToArray()).ToArray();
    }
}

/// <summary>Adds Gaussian noise of standard deviation <paramref name="StdDev"/>, then (by default) clips to [0, 1].</summary>
public sealed record GaussianCorruption(double StdDev, bool Clip = true) : InputCorruption
{
    public override Tensor Apply(Tensor batch, Generator generator)
    {
        if (StdDev < 0 || !double.IsFinite(StdDev)) throw new ArgumentOutOfRangeException(nameof(StdDev), StdDev, "The noise's standard deviation must be >= 0.");
        var noisy = batch + TrainingRandom.Normal(batch.shape, batch.dtype, generator, batch.device) * StdDev;
        return Clip ? noisy.clamp(0, 1) : noisy;
    }

    public override string Describe() => $"Gaussian noise, std {StdDev}{(Clip ? ", clipped to [0, 1]" : "")}";
}

/// <summary>Sets a fraction <paramref name="Fraction"/> of the values to 0 (pepper) or 1 (salt), half each on average.</summary>
public sealed record SaltAndPepperCorruption(double Fraction) : InputCorruption
{
    public override Tensor Apply(Tensor batch, Generator generator)
    {
        if (Fraction is < 0 or > 1 || double.IsNaN(Fraction)) throw new ArgumentOutOfRangeException(nameof(Fraction), Fraction, "The fraction must be in [0, 1].");
        var u = TrainingRandom.Uniform(batch.shape, batch.dtype, generator, batch.device);
        return batch.masked_fill(u < Fraction, 1).masked_fill(u < Fraction / 2, 0);
    }

    public override string Describe() => $"salt-and-pepper noise on {Fraction:P0} of the values";
}

/// <summary>Sets a random fraction <paramref name="Fraction"/> of the values to zero (masking noise).</summary>
public sealed record MaskingCorruption(double Fraction) : InputCorruption
{
    public override Tensor Apply(Tensor batch, Generator generator)
    {
        if (Fraction is < 0 or > 1 || double.IsNaN(Fraction)) throw new ArgumentOutOfRangeException(nameof(Fraction), Fraction, "The fraction must be in [0, 1].");
        var u = TrainingRandom.Uniform(batch.shape, batch.dtype, generator, batch.device);
        return batch.masked_fill(u < Fraction, 0);
    }

    public override string Describe() => $"masking of {Fraction:P0} of the values";
}
