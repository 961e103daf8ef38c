namespace MlNetDeep.Classical;

/// <summary>
/// How well a clustering agrees with known classes (normalized mutual information, purity) and how tight it is
/// (inertia: the sum of squared distances of points to their centroid).
/// </summary>
public static class ClusteringScores
{
    /// <summary>
    /// Normalized mutual information 2 I(C; L) / (H(C) + H(L)) between cluster assignments and labels, in [0, 1]
    /// (1 when the clusters are the classes up to renaming); the arithmetic normalisation, scikit-learn's default, so
    /// figures compare with its normalized_mutual_info_score. Defined as 1 when both have a single value.
    /// </summary>
    public static double NormalizedMutualInformation(IReadOnlyList<int> labels, IReadOnlyList<int> clusters)
    {
        var (joint, labelCounts, clusterCounts, n) = Contingency(labels, clusters);
        double hL = Entropy(labelCounts.Values, n), hC = Entropy(clusterCounts.Values, n);
        if (hL == 0 && hC == 0) return 1;
        if (hL == 0 || hC == 0) return 0;
        double mi = 0;
        foreach (var ((l, c), count) in joint)
            mi += count / n * Math.Log(count * n / ((double)labelCounts[l] * clusterCounts[c]));
        return Math.Clamp(2 * mi / (hL + hC), 0, 1);
    }

    /// <summary>Purity: the fraction of points whose cluster's most common label is their own label.</summary>
    public static double Purity(IReadOnlyList<int> labels, IReadOnlyList<int> clusters)
    {
        var (joint, _, _, n) = Contingency(labels, clusters);
        return joint.GroupBy(kv => kv.Key.Cluster).Sum(g => g.Max(kv => kv.Value)) / n;
    }

    /// <summary>Inertia: the sum over points of the squared Euclidean distance to the centroid of their cluster (0-based).</summary>
    public static double Inertia(IReadOnlyList<float[]> points, IReadOnlyList<int> clusters, IReadOnlyList<float[]> centroids)
    {
        if (points.Count != clusters.Count) throw new ArgumentException($"{points.Count} points but {clusters.Count} cluster assignments.", nameof(clusters));
        double sum = 0;
        for (int i = 0; i < points.Count; i++)
        {
            int c = clusters[i];
            if (c < 0 || c >= centroids.Count) throw new ArgumentOutOfRangeException(nameof(clusters), c, $"Point {i} is in cluster {c}, but there are {centroids.Count} centroids.");
            var p = points[i];
            var m = centroids[c];
            if (p.Length != m.Length) throw new ArgumentException($"Point {i} has {p.Length} values, centroid {c} has {m.Length}.", nameof(points));
            for (int j = 0; j < p.Length; j++) { double d = p[j] - m[j]; sum += d * d; }
        }
        return sum;
    }

    private static (Dictionary<(int Label, int Cluster), int> Joint, Dictionary<int, int> Labels, Dictionary<int, int> Clusters, double N) Contingency(
        IReadOnlyList<int> labels, IReadOnlyList<int> clusters)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(clusters);
        if (labels.Count != clusters.Count) throw new ArgumentException($"{labels.Count} labels but {clusters.Count} cluster assignments.", nameof(clusters));
        if (labels.Count == 0) throw new ArgumentException("No points to score.", nameof(labels));
        var joint = new Dictionary<(int, int), int>();
        var l = new Dictionary<int, int>();
        var c = new Dictionary<int, int>();
        for (int i = 0; i < labels.Count; i++)
        {
            joint[(labels[i], clusters[i])] = joint.GetValueOrDefault((labels[i], clusters[i])) + 1;
            l[labels[i]] = l.GetValueOrDefault(labels[i]) + 1;
            c[clusters[i]] = c.GetValueOrDefault(clusters[i]) + 1;
        }
        return (joint, l, c, labels.Count);
    }

    private static double Entropy(IEnumerable<int> counts, double n) => -counts.Sum(k => k / n * Math.Log(k / n));
}
