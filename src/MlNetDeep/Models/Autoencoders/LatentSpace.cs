namespace MlNetDeep.Models.Autoencoders;

/// <summary>Tools for looking at an autoencoder's latent space: interpolation between inputs and grid sweeps of a 2-D code.</summary>
public static class LatentSpace
{
    /// <summary>
    /// Encodes <paramref name="from"/> and <paramref name="to"/>, walks the straight line between their codes in
    /// <paramref name="steps"/> evenly spaced points (both ends included) and decodes each point.
    /// </summary>
    public static float[][] Interpolate(AutoencoderTransformerBase model, float[] from, float[] to, int steps)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (steps < 2) throw new ArgumentOutOfRangeException(nameof(steps), steps, "Interpolation needs at least 2 steps (the two ends).");
        var codes = model.Encode([from, to]);
        var path = new float[steps][];
        for (int s = 0; s < steps; s++)
        {
            float t = (float)s / (steps - 1);
            path[s] = codes[0].Zip(codes[1], (a, b) => (1 - t) * a + t * b).ToArray();
        }
        return model.Decode(path);
    }

    /// <summary>
    /// The latent points of a <paramref name="steps"/> x <paramref name="steps"/> grid over a 2-D code, row by row from
    /// the top (largest second coordinate) to the bottom, left (smallest first coordinate) to right.
    /// </summary>
    public static float[][] GridPoints(int steps, (double Min, double Max) x, (double Min, double Max) y)
    {
        if (steps < 2) throw new ArgumentOutOfRangeException(nameof(steps), steps, "A grid needs at least 2 steps per axis.");
        if (!(x.Max > x.Min) || !(y.Max > y.Min)) throw new ArgumentException("Each axis range needs Max > Min.");
        var points = new float[steps * steps][];
        for (int r = 0; r < steps; r++)
        for (int c = 0; c < steps; c++)
        {
            double u = x.Min + (x.Max - x.Min) * c / (steps - 1);
            double v = y.Max - (y.Max - y.Min) * r / (steps - 1);
            points[r * steps + c] = [(float)u, (float)v];
        }
        return points;
    }

    /// <summary>Decodes the <see cref="GridPoints"/> of a model with a 2-D latent code: the images of a latent-space sweep.</summary>
    public static float[][] DecodeGrid(AutoencoderTransformerBase model, int steps, (double Min, double Max) x, (double Min, double Max) y)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.LatentSize != 2)
            throw new ArgumentException($"A latent grid sweep needs a 2-D latent code; this model's '{model.LatentColumnName}' has {model.LatentSize} values.", nameof(model));
        return model.Decode(GridPoints(steps, x, y));
    }

    /// <summary>The range of each of the first two latent coordinates over <paramref name="latents"/>, cut to the given quantiles (robust to outliers).</summary>
    public static ((double Min, double Max) X, (double Min, double Max) Y) Range(IReadOnlyList<float[]> latents, double lowQuantile = 0.01, double highQuantile = 0.99)
    {
        if (latents.Count == 0) throw new ArgumentException("No latent codes.", nameof(latents));
        (double, double) Axis(int d)
        {
            var values = latents.Select(l => (double)l[d]).Order().ToArray();
            return (values[(int)(lowQuantile * (values.Length - 1))], values[(int)(highQuantile * (values.Length - 1))]);
        }
        return (Axis(0), Axis(1));
    }
}
