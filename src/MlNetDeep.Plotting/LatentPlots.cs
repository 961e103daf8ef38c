using ScottPlot;

namespace MlNetDeep.Plotting;

/// <summary>Pictures of a latent space: 2-D codes as a scatter plot coloured by label.</summary>
public static class LatentPlots
{
    /// <summary>
    /// Saves a scatter plot of 2-D points (the first two values of each code), one colour per distinct label, with a legend.
    /// </summary>
    public static void Scatter(string path, IReadOnlyList<float[]> points, IReadOnlyList<string> labels, string title = "Latent space",
        string xLabel = "z1", string yLabel = "z2", int width = 900, int height = 800)
    {
        ArgumentNullException.ThrowIfNull(points);
        ArgumentNullException.ThrowIfNull(labels);
        if (points.Count != labels.Count) throw new ArgumentException($"{points.Count} points but {labels.Count} labels.");
        if (points.Count == 0) throw new ArgumentException("No points to plot.", nameof(points));
        if (points.Any(p => p.Length < 2)) throw new ArgumentException("Each point needs at least 2 coordinates.", nameof(points));
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        int index = 0;
        foreach (var group in Enumerable.Range(0, points.Count).GroupBy(i => labels[i]).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var xs = group.Select(i => (double)points[i][0]).ToArray();
            var ys = group.Select(i => (double)points[i][1]).ToArray();
            var markers = plot.Add.Markers(xs, ys, MarkerShape.FilledCircle, 3, palette.GetColor(index++));
            markers.LegendText = group.Key;
        }
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
        plot.ShowLegend(Alignment.UpperRight);
        Charts.Save(plot, path, width, height);
    }
}
