using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Classical;
using MlNetDeep.Data;

namespace MlNetDeep.Plotting.Course;

/// <summary>Settings of the k-means experiments.</summary>
public sealed class KMeansSettings
{
    /// <summary>MNIST training images clustered (the first N).</summary>
    public int Rows { get; set; } = 10_000;

    /// <summary>The values of k swept.</summary>
    public int[] Ks { get; set; } = [2, 5, 10, 15, 20];

    /// <summary>PCA components for the "PCA features" run (ML.NET's ProjectToPrincipalComponents).</summary>
    public int PcaComponents { get; set; } = 50;
}

/// <summary>What the MNIST k-means sweep measured.</summary>
public sealed record KMeansMnistResult(IReadOnlyList<KMeansResult> Raw, IReadOnlyList<KMeansResult> Pca, IReadOnlyList<string> Files);

/// <summary>What the 2-D k-means runs measured: each data set and k with its scores, and the PNG written.</summary>
public sealed record KMeansToyResult(IReadOnlyList<(string DataSet, KMeansResult Result)> Runs, string Path);

/// <summary>k-means (ML.NET's KMeans) on MNIST and on 2-D toy data, with the choice of k plotted.</summary>
public static class KMeansCourse
{
    /// <summary>
    /// Clusters MNIST digits on raw pixels and on PCA features for each k, prints inertia, NMI and purity, and writes the
    /// choice-of-k plot and the k = 10 centroids as images.
    /// </summary>
    public static KMeansMnistResult RunMnist(MLContext ml, KMeansSettings settings, string output, TextWriter log)
    {
        var data = ml.Data.LoadMnist(MnistSplit.Train, maxRows: settings.Rows);
        data = ml.Data.Cache(data);
        log.WriteLine($"k-means on {settings.Rows:N0} MNIST training images (ML.NET KMeans, k-means|| init).");
        var raw = Sweep(ml, data, "Pixels", settings.Ks, "raw pixels", log);
        var pcaModel = ml.Transforms.ProjectToPrincipalComponents("PcaFeatures", "Pixels", rank: settings.PcaComponents).Fit(data);
        var projected = ml.Data.Cache(pcaModel.Transform(data));
        var pca = Sweep(ml, projected, "PcaFeatures", settings.Ks, $"PCA({settings.PcaComponents})", log);

        var files = new List<string>();
        var ks = settings.Ks.Select(k => (double)k).ToList();
        var inertia = new ScottPlot.Plot();
        AddLine(inertia, ks, raw.Select(r => r.Inertia / settings.Rows), "raw pixels", 0);
        AddLine(inertia, ks, pca.Select(r => r.Inertia / settings.Rows), $"PCA({settings.PcaComponents})", 1);
        inertia.Title("Inertia per image (elbow)");
        inertia.XLabel("k");
        inertia.YLabel("mean squared distance to centroid");
        inertia.ShowLegend(ScottPlot.Alignment.UpperRight);
        var agreement = new ScottPlot.Plot();
        AddLine(agreement, ks, raw.Select(r => r.NormalizedMutualInformation ?? 0), "NMI, raw", 0);
        AddLine(agreement, ks, pca.Select(r => r.NormalizedMutualInformation ?? 0), $"NMI, PCA({settings.PcaComponents})", 1);
        AddLine(agreement, ks, raw.Select(r => r.Purity ?? 0), "purity, raw", 2);
        AddLine(agreement, ks, pca.Select(r => r.Purity ?? 0), $"purity, PCA({settings.PcaComponents})", 3);
        agreement.Title("Agreement with the true digits");
        agreement.XLabel("k");
        agreement.Axes.SetLimitsY(0, 1);
        agreement.ShowLegend(ScottPlot.Alignment.LowerRight);
        var chooseK = Path.Combine(output, "kmeans-mnist-choose-k.png");
        PlotGrid.Save(chooseK, [inertia, agreement], 2, 560, 420, $"k-means on {settings.Rows:N0} MNIST digits: choosing k");
        files.Add(chooseK);

        var ten = raw.FirstOrDefault(r => r.K == 10) ?? raw[^1];
        var labels = KMeansAnalysis.ReadLabels(data, "Label");
        var captions = Enumerable.Range(0, ten.K).Select(c =>
        {
            var members = Enumerable.Range(0, labels.Length).Where(i => ten.Clusters[i] == c).Select(i => labels[i]).ToList();
            if (members.Count == 0) return $"#{c}: empty";
            var top = members.GroupBy(l => l).MaxBy(g => g.Count())!;
            return $"#{c}: {top.Key} {100.0 * top.Count() / members.Count:F0}%";
        }).ToList();
        var centroids = Path.Combine(output, $"kmeans-mnist-centroids-k{ten.K}.png");
        ImageGrid.Save(centroids, ten.Centroids, Mnist.Side, Mnist.Side, 5, scale: 4, captions: captions,
            title: $"k={ten.K} centroids (raw pixels), most common digit");
        files.Add(centroids);
        foreach (var f in files) log.WriteLine($"Wrote {f}");
        return new KMeansMnistResult(raw, pca, files);
    }

    /// <summary>
    /// k-means on 2-D blobs (4 centres) and half-moons with k too small, right and too large, clusters coloured and
    /// centroids marked; writes one PNG and returns the scores.
    /// </summary>
    public static KMeansToyResult RunToy(MLContext ml, string output, TextWriter log, int seed = 1)
    {
        var plots = new List<ScottPlot.Plot>();
        var runs = new List<(string, KMeansResult)>();
        foreach (var (name, data, ks) in new[]
        {
            ("blobs (4 centres)", ml.Data.Blobs(400, 4, 1.2, seed), new[] { 2, 4, 8 }),
            ("half-moons", ml.Data.HalfMoons(400, 0.08, seed), new[] { 2, 4, 8 }),
        })
        {
            var points = TestColumn(data, "Features");
            foreach (int k in ks)
            {
                var result = KMeansAnalysis.Fit(ml, data, "Features", k, "Label");
                string verdict = name.StartsWith("blobs") ? (k < 4 ? "k too small" : k > 4 ? "k too large" : "k right") : (k == 2 ? "k = classes, yet wrong" : "k too large");
                var plot = PointCharts.Scatter(points, result.Clusters, $"{name}, k={k} ({verdict})\nNMI {result.NormalizedMutualInformation:F2}, inertia {result.Inertia:F0}");
                PointCharts.AddCentroids(plot, result.Centroids);
                plots.Add(plot);
                runs.Add((name, result));
                log.WriteLine($"{name,-18} k={k,2}: inertia {result.Inertia,9:F1}  NMI {result.NormalizedMutualInformation:F3}  purity {result.Purity:F3}");
            }
        }
        var path = Path.Combine(output, "kmeans-toy.png");
        PlotGrid.Save(path, plots, 3, 420, 380, "k-means on 2-D data: clusters coloured, centroids as black diamonds");
        log.WriteLine($"Wrote {path}");
        return new KMeansToyResult(runs, path);
    }

    private static IReadOnlyList<KMeansResult> Sweep(MLContext ml, IDataView data, string column, int[] ks, string name, TextWriter log)
    {
        var results = new List<KMeansResult>();
        foreach (int k in ks)
        {
            var r = KMeansAnalysis.Fit(ml, data, column, k, "Label");
            results.Add(r);
            log.WriteLine($"{name,-14} k={k,2}: inertia {r.Inertia,14:F1}  NMI {r.NormalizedMutualInformation:F3}  purity {r.Purity:F3}  ({r.Duration.TotalSeconds:F1} s)");
        }
        return results;
    }

    private static void AddLine(ScottPlot.Plot plot, List<double> x, IEnumerable<double> y, string name, int color)
    {
        var line = plot.Add.Scatter(x.ToArray(), y.ToArray());
        line.LegendText = name;
        line.Color = PointCharts.ClassColor(color);
        line.LineWidth = 2;
    }

    internal static float[][] TestColumn(IDataView data, string column) =>
        data.GetColumn<VBuffer<float>>(column).Select(v => v.DenseValues().ToArray()).ToArray();
}
