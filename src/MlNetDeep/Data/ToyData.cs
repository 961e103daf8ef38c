using Microsoft.ML.Data;

namespace MlNetDeep.Data;

/// <summary>One labelled 2-D point of a toy classification set: <see cref="Features"/> (x, y) and the class index.</summary>
public sealed class ToyPoint
{
    /// <summary>The class, 0-based (map it to a key with MapValueToKey before a classifier).</summary>
    public uint Label { get; set; }

    /// <summary>The point's coordinates (x, y).</summary>
    [VectorType(2)]
    public float[] Features { get; set; } = [];
}

/// <summary>One sample of a 1-D regression set: <see cref="X"/> and the noisy target <see cref="Label"/>.</summary>
public sealed class CurvePoint
{
    /// <summary>The input.</summary>
    public float X { get; set; }

    /// <summary>The target: f(X) plus noise.</summary>
    public float Label { get; set; }
}

/// <summary>
/// Seeded generators of the course's toy data sets (as in scikit-learn's make_moons, make_circles, make_blobs), as plain
/// arrays; <see cref="ClassicalCatalog"/> exposes them as IDataViews on <c>mlContext.Data</c>.
/// </summary>
public static class ToyData
{
    /// <summary>Two interleaving half circles (classes 0 and 1), with Gaussian noise of standard deviation <paramref name="noise"/>.</summary>
    public static ToyPoint[] HalfMoons(int count, double noise, int seed)
    {
        Check(count, noise, 2);
        var random = new Random(seed);
        int outer = count / 2;
        var points = new ToyPoint[count];
        for (int i = 0; i < count; i++)
        {
            bool first = i < outer;
            int index = first ? i : i - outer, size = first ? outer : count - outer;
            double t = Math.PI * (size == 1 ? 0 : (double)index / (size - 1));
            double x = first ? Math.Cos(t) : 1 - Math.Cos(t);
            double y = first ? Math.Sin(t) : 0.5 - Math.Sin(t);
            points[i] = Point(x + noise * Gaussian(random), y + noise * Gaussian(random), first ? 0u : 1u);
        }
        return Shuffle(points, random);
    }

    /// <summary>A large circle (class 0) around a smaller one (class 1) whose radius is <paramref name="factor"/> of the large one's.</summary>
    public static ToyPoint[] Circles(int count, double noise, int seed, double factor = 0.5)
    {
        Check(count, noise, 2);
        if (factor is <= 0 or >= 1 || double.IsNaN(factor)) throw new ArgumentOutOfRangeException(nameof(factor), factor, "factor (inner radius / outer radius) must be in (0, 1).");
        var random = new Random(seed);
        int outer = count / 2;
        var points = new ToyPoint[count];
        for (int i = 0; i < count; i++)
        {
            bool isOuter = i < outer;
            int index = isOuter ? i : i - outer, size = isOuter ? outer : count - outer;
            double t = 2 * Math.PI * index / size, r = isOuter ? 1 : factor;
            points[i] = Point(r * Math.Cos(t) + noise * Gaussian(random), r * Math.Sin(t) + noise * Gaussian(random), isOuter ? 0u : 1u);
        }
        return Shuffle(points, random);
    }

    /// <summary>
    /// Gaussian blobs around <paramref name="centers"/> centres drawn uniformly in [-10, 10]², each point's label its blob;
    /// <paramref name="spread"/> is the standard deviation of each blob.
    /// </summary>
    public static ToyPoint[] Blobs(int count, int centers, double spread, int seed)
    {
        Check(count, spread, centers);
        if (centers < 1) throw new ArgumentOutOfRangeException(nameof(centers), centers, "centers must be at least 1.");
        var random = new Random(seed);
        // Centres uniform in [-10, 10]², redrawn (up to 100 times) when closer than 5 spreads to an earlier one, so that
        // the blobs are told apart by eye as well as by their labels.
        var centres = new List<(double X, double Y)>();
        for (int c = 0; c < centers; c++)
        {
            (double X, double Y) centre = default;
            for (int attempt = 0; attempt < 100; attempt++)
            {
                centre = (random.NextDouble() * 20 - 10, random.NextDouble() * 20 - 10);
                if (centres.All(o => Math.Sqrt((o.X - centre.X) * (o.X - centre.X) + (o.Y - centre.Y) * (o.Y - centre.Y)) >= 5 * spread)) break;
            }
            centres.Add(centre);
        }
        var points = new ToyPoint[count];
        for (int i = 0; i < count; i++)
        {
            int c = i % centers;
            points[i] = Point(centres[c].X + spread * Gaussian(random), centres[c].Y + spread * Gaussian(random), (uint)c);
        }
        return Shuffle(points, random);
    }

    /// <summary>
    /// <paramref name="count"/> samples of y = f(x) + N(0, noise²) with x uniform in [<paramref name="min"/>, <paramref name="max"/>].
    /// </summary>
    public static CurvePoint[] Curve(int count, Func<double, double> function, double min, double max, double noise, int seed)
    {
        ArgumentNullException.ThrowIfNull(function);
        Check(count, noise, 1);
        if (!(max > min)) throw new ArgumentOutOfRangeException(nameof(max), max, $"max must be greater than min ({min}).");
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ =>
        {
            double x = min + (max - min) * random.NextDouble();
            return new CurvePoint { X = (float)x, Label = (float)(function(x) + noise * Gaussian(random)) };
        }).ToArray();
    }

    /// <summary>A standard normal sample (Box-Muller).</summary>
    public static double Gaussian(Random random)
    {
        double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    private static ToyPoint Point(double x, double y, uint label) => new() { Features = [(float)x, (float)y], Label = label };

    private static ToyPoint[] Shuffle(ToyPoint[] points, Random random)
    {
        random.Shuffle(points);
        return points;
    }

    private static void Check(int count, double noise, int minimumCount)
    {
        if (count < minimumCount) throw new ArgumentOutOfRangeException(nameof(count), count, $"count must be at least {minimumCount}.");
        if (noise < 0 || !double.IsFinite(noise)) throw new ArgumentOutOfRangeException(nameof(noise), noise, "The noise (standard deviation) must be finite and >= 0.");
    }
}
