namespace MlNetDeep.Models.Autoencoders;

/// <summary>How close reconstructions are to their references (values in [0, 1], e.g. pixels).</summary>
/// <param name="MeanSquaredError">Mean squared error over all values of all rows.</param>
/// <param name="Psnr">Mean over rows of each row's peak signal-to-noise ratio, 10 log10(1 / MSE), in dB (a row's MSE is floored at 1e-10).</param>
public sealed record ReconstructionMetrics(double MeanSquaredError, double Psnr)
{
    /// <summary>Compares <paramref name="estimates"/> with <paramref name="references"/>, row by row.</summary>
    public static ReconstructionMetrics Compute(IReadOnlyList<float[]> references, IReadOnlyList<float[]> estimates)
    {
        ArgumentNullException.ThrowIfNull(references);
        ArgumentNullException.ThrowIfNull(estimates);
        if (references.Count != estimates.Count) throw new ArgumentException($"{references.Count} references but {estimates.Count} estimates.");
        if (references.Count == 0) throw new ArgumentException("Nothing to compare.");
        double total = 0, psnr = 0;
        long values = 0;
        for (int i = 0; i < references.Count; i++)
        {
            var (a, b) = (references[i], estimates[i]);
            if (a.Length != b.Length) throw new ArgumentException($"Row {i}: the reference has {a.Length} values, the estimate {b.Length}.");
            double sum = 0;
            for (int j = 0; j < a.Length; j++) { double d = a[j] - b[j]; sum += d * d; }
            total += sum;
            values += a.Length;
            psnr += 10 * Math.Log10(1 / Math.Max(sum / a.Length, 1e-10));
        }
        return new ReconstructionMetrics(total / values, psnr / references.Count);
    }
}
