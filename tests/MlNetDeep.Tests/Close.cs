namespace MlNetDeep.Tests;

/// <summary>
/// The tests' one tolerance for floating-point results that the same arithmetic may round differently. A matrix kernel
/// chooses its blocking and summation order by the batch's shape, by the processor (Intel and AMD machines differ in
/// the last bits) and by the number of threads; ONNX Runtime is another engine altogether. So:
/// <list type="bullet">
/// <item>bit-exact assertions (<c>Assert.Equal</c>) only where the same computation runs on the same batch in the same
/// process: a seed's determinism, a model and its saved copy scoring the same rows, a value read back unchanged;</item>
/// <item>everything else here: the same network on another batch (a PredictionEngine's one row against Transform's
/// batches, micro-batched requests, a transformer's scoring batches against a helper's), a loss averaged over other
/// batches, scores made on other threads, and (with <see cref="OtherEngine"/>) ONNX Runtime against TorchSharp.</item>
/// </list>
/// A value passes when |actual - expected| &lt;= tolerance * (1 + |expected|): the tolerance both absolute (near 0, where
/// a sum's cancellation leaves rounding of the size of its terms) and relative (for large values). NaN matches NaN and
/// an infinity itself.
/// </summary>
internal static class Close
{
    /// <summary>
    /// One computation on another batch, processor or thread count: 1e-5 absolute plus 1e-5 relative. Float32 rounds at
    /// about 6e-8 relative; a few hundred terms summed in another order stay well within this, while any real error
    /// (another row's value, other weights, a wrong slot) is far outside it.
    /// </summary>
    public const double Tolerance = 1e-5;

    /// <summary>ONNX Runtime against TorchSharp (other convolution algorithms and activation formulas): 1e-4 absolute plus 1e-4 relative.</summary>
    public const double OtherEngine = 1e-4;

    /// <summary>Whether <paramref name="actual"/> is within <paramref name="tolerance"/> of <paramref name="expected"/> (for checks inside threads).</summary>
    public static bool Within(double expected, double actual, double tolerance = Tolerance) =>
        expected.Equals(actual) || Math.Abs(actual - expected) <= tolerance * (1 + Math.Abs(expected));

    public static void Equal(double expected, double actual, double tolerance = Tolerance)
    {
        if (!Within(expected, actual, tolerance)) Assert.Fail(Difference("the value", expected, actual, tolerance));
    }

    public static void Equal(IEnumerable<float> expected, IEnumerable<float> actual, double tolerance = Tolerance) =>
        Equal(expected.Select(v => (double)v).ToList(), actual.Select(v => (double)v).ToList(), tolerance, "");

    public static void Equal(IEnumerable<double> expected, IEnumerable<double> actual, double tolerance = Tolerance) =>
        Equal(expected.ToList(), actual.ToList(), tolerance, "");

    /// <summary>Rows of values (a vector column, a list of images): the same number of rows, of the same lengths, each value close.</summary>
    public static void Equal(IEnumerable<float[]> expected, IEnumerable<float[]> actual, double tolerance = Tolerance)
    {
        var e = expected.ToList();
        var a = actual.ToList();
        if (e.Count != a.Count) Assert.Fail($"Expected {e.Count} rows, got {a.Count}.");
        for (int row = 0; row < e.Count; row++)
            Equal(e[row].Select(v => (double)v).ToList(), a[row].Select(v => (double)v).ToList(), tolerance, $"row {row}, ");
    }

    private static void Equal(List<double> expected, List<double> actual, double tolerance, string where)
    {
        if (expected.Count != actual.Count) Assert.Fail($"{where}expected {expected.Count} values, got {actual.Count}.");
        for (int i = 0; i < expected.Count; i++)
            if (!Within(expected[i], actual[i], tolerance))
                Assert.Fail(Difference($"{where}index {i}", expected[i], actual[i], tolerance) + $" ({expected.Count} values)");
    }

    private static string Difference(string where, double expected, double actual, double tolerance) =>
        $"Not within tolerance at {where}: expected {expected:R}, got {actual:R} (difference {Math.Abs(actual - expected):G3}, allowed {tolerance * (1 + Math.Abs(expected)):G3}).";
}
