using Microsoft.ML;

namespace MlNetDeep.Data;

/// <summary>Three disjoint parts of one data set: train on the first, tune on the second, report on the third.</summary>
public sealed record TrainValidationTestData(IDataView TrainSet, IDataView ValidationSet, IDataView TestSet);

/// <summary>Split helpers built on ML.NET's own seeded <c>TrainTestSplit</c>.</summary>
public static class Splits
{
    /// <summary>
    /// Splits <paramref name="data"/> at random (seeded) into train, validation and test parts holding about
    /// 1 - v - t, v and t of the rows.
    /// </summary>
    public static TrainValidationTestData TrainValidationTestSplit(DataOperationsCatalog catalog, IDataView data,
        double validationFraction = 0.1, double testFraction = 0.1, int? seed = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (validationFraction is <= 0 or >= 1 || double.IsNaN(validationFraction))
            throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction, "validationFraction must be in (0, 1).");
        if (testFraction is <= 0 or >= 1 || double.IsNaN(testFraction))
            throw new ArgumentOutOfRangeException(nameof(testFraction), testFraction, "testFraction must be in (0, 1).");
        if (validationFraction + testFraction >= 1)
            throw new ArgumentOutOfRangeException(nameof(testFraction), $"validationFraction + testFraction ({validationFraction + testFraction}) must leave rows to train on (be below 1).");
        var first = catalog.TrainTestSplit(data, testFraction, seed: seed);
        var second = catalog.TrainTestSplit(first.TrainSet, validationFraction / (1 - testFraction), seed: seed is null ? null : seed + 1);
        return new TrainValidationTestData(second.TrainSet, second.TestSet, first.TestSet);
    }
}
