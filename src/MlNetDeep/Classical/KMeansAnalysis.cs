using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;

namespace MlNetDeep.Classical;

/// <summary>One fitted k-means clustering: its k, inertia, label agreement, centroids and each row's cluster (0-based).</summary>
public sealed record KMeansResult(int K, double Inertia, double? NormalizedMutualInformation, double? Purity, float[][] Centroids, int[] Clusters, TimeSpan Duration);

/// <summary>
/// Fits ML.NET's own k-means (<c>mlContext.Clustering.Trainers.KMeans</c>) and scores the clustering: inertia from the
/// centroids, and NMI and purity against a label column when one is given. Used to choose k by sweeping it.
/// </summary>
public static class KMeansAnalysis
{
    /// <summary>Clusters <paramref name="data"/>'s <paramref name="featureColumn"/> into <paramref name="k"/> clusters.</summary>
    /// <exception cref="ArgumentOutOfRangeException">k is below 1 or above the number of rows, or a column is missing or of the wrong type.</exception>
    public static KMeansResult Fit(MLContext ml, IDataView data, string featureColumn, int k, string? labelColumn = null)
    {
        ArgumentNullException.ThrowIfNull(ml);
        ArgumentNullException.ThrowIfNull(data);
        var column = ColumnChecks.Find(data.Schema, featureColumn, "feature");
        int size = ColumnChecks.RequireFloatFeatures(column);
        var points = DataViewTensors.Load(data, featureColumn, size, null, LabelKind.None);
        if (k < 1 || k > points.Rows)
            throw new ArgumentOutOfRangeException(nameof(k), k, $"k (the number of clusters) must be between 1 and the number of rows ({points.Rows}).");
        int[]? labels = labelColumn is null ? null : ReadLabels(data, labelColumn);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var model = ml.Clustering.Trainers.KMeans(featureColumn, numberOfClusters: k).Fit(data);
        clock.Stop();
        VBuffer<float>[] buffers = [];
        model.Model.GetClusterCentroids(ref buffers, out int found);
        var centroids = buffers.Take(found).Select(b => b.DenseValues().ToArray()).ToArray();
        var clusters = model.Transform(data).GetColumn<uint>("PredictedLabel").Select(c => (int)c - 1).ToArray();

        var rows = Enumerable.Range(0, points.Rows).Select(i => points.Features.AsSpan(i * size, size).ToArray()).ToArray();
        double inertia = ClusteringScores.Inertia(rows, clusters, centroids);
        return new KMeansResult(k, inertia,
            labels is null ? null : ClusteringScores.NormalizedMutualInformation(labels, clusters),
            labels is null ? null : ClusteringScores.Purity(labels, clusters), centroids, clusters, clock.Elapsed);
    }

    /// <summary>Fits k-means for every k in <paramref name="ks"/> (the elbow and label-agreement curves).</summary>
    public static IReadOnlyList<KMeansResult> Sweep(MLContext ml, IDataView data, string featureColumn, IEnumerable<int> ks, string? labelColumn = null) =>
        ks.Select(k => Fit(ml, data, featureColumn, k, labelColumn)).ToList();

    /// <summary>
    /// A label column as 0-based class indices: a key (its index), an unsigned or signed integer, or a float holding whole numbers.
    /// </summary>
    public static int[] ReadLabels(IDataView data, string labelColumn)
    {
        var column = data.Schema.GetColumnOrNull(labelColumn)
            ?? throw new ArgumentOutOfRangeException(nameof(labelColumn), $"The label column '{labelColumn}' is not in the data. Columns present: {string.Join(", ", data.Schema.Select(c => c.Name))}.");
        return column.Type switch
        {
            KeyDataViewType => data.GetColumn<uint>(column).Select(v => (int)v - 1).ToArray(),
            var t when t == NumberDataViewType.UInt32 => data.GetColumn<uint>(column).Select(v => (int)v).ToArray(),
            var t when t == NumberDataViewType.Int32 => data.GetColumn<int>(column).ToArray(),
            var t when t == NumberDataViewType.Single => data.GetColumn<float>(column).Select(v => (int)v).ToArray(),
            _ => throw new ArgumentOutOfRangeException(nameof(labelColumn), $"The label column '{labelColumn}' must be a key, UInt32, Int32 or Single, but is {column.Type}."),
        };
    }
}
