using Microsoft.ML;
using MlNetDeep.Data;

namespace MlNetDeep;

/// <summary>
/// Entry points for the classical techniques on ML.NET's catalogs: toy data sets and splits on <c>mlContext.Data</c>,
/// the polynomial-features transform on <c>mlContext.Transforms</c>.
/// </summary>
public static class ClassicalCatalog
{
    /// <summary>Two interleaving half-moons (classes 0 and 1, column <c>Label</c> UInt32; <c>Features</c> vector&lt;float&gt;[2]), seeded.</summary>
    public static IDataView HalfMoons(this DataOperationsCatalog catalog, int count = 200, double noise = 0.1, int seed = 0) =>
        catalog.LoadFromEnumerable(ToyData.HalfMoons(count, noise, seed));

    /// <summary>A large circle (class 0) around a small one (class 1), seeded.</summary>
    public static IDataView Circles(this DataOperationsCatalog catalog, int count = 200, double noise = 0.05, double factor = 0.5, int seed = 0) =>
        catalog.LoadFromEnumerable(ToyData.Circles(count, noise, seed, factor));

    /// <summary>Gaussian blobs (label = blob index), seeded.</summary>
    public static IDataView Blobs(this DataOperationsCatalog catalog, int count = 300, int centers = 3, double spread = 1.0, int seed = 0) =>
        catalog.LoadFromEnumerable(ToyData.Blobs(count, centers, spread, seed));

    /// <summary>Samples of y = f(x) + noise: columns <c>X</c> (Single) and <c>Label</c> (Single), seeded.</summary>
    public static IDataView Curve(this DataOperationsCatalog catalog, int count, Func<double, double> function, double min = -1, double max = 1, double noise = 0.1, int seed = 0) =>
        catalog.LoadFromEnumerable(ToyData.Curve(count, function, min, max, noise, seed));

    /// <summary>Seeded train/validation/test split (see <see cref="Splits.TrainValidationTestSplit"/>).</summary>
    public static TrainValidationTestData TrainValidationTestSplit(this DataOperationsCatalog catalog, IDataView data,
        double validationFraction = 0.1, double testFraction = 0.1, int? seed = null) =>
        Splits.TrainValidationTestSplit(catalog, data, validationFraction, testFraction, seed);

    /// <summary>
    /// Expands <paramref name="inputColumnName"/> (a float or float vector) into its powers 1..<paramref name="degree"/>
    /// in <paramref name="outputColumnName"/> (vector&lt;float&gt;[size·degree]).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="degree"/> is below 1.</exception>
    public static PolynomialFeaturesEstimator PolynomialFeatures(this TransformsCatalog catalog, string outputColumnName, string? inputColumnName = null, int degree = 2) =>
        new(outputColumnName, inputColumnName ?? outputColumnName, degree);

}
