using ScottPlot;

namespace MlNetDeep.Plotting;

/// <summary>2-D data drawn as points coloured by class or cluster, decision regions, and fitted curves.</summary>
public static class PointCharts
{
    /// <summary>Distinct colours for classes and clusters (Category10).</summary>
    public static Color ClassColor(int index) => new ScottPlot.Palettes.Category10().GetColor(index);

    /// <summary>A plot with the points of each class (or cluster) in its own colour.</summary>
    public static Plot Scatter(IReadOnlyList<float[]> points, IReadOnlyList<int> classes, string title, float markerSize = 5)
    {
        var plot = new Plot();
        AddClasses(plot, points, classes, markerSize);
        plot.Title(title);
        return plot;
    }

    /// <summary>Adds the points, one colour per class.</summary>
    public static void AddClasses(Plot plot, IReadOnlyList<float[]> points, IReadOnlyList<int> classes, float markerSize = 5)
    {
        foreach (var group in Enumerable.Range(0, points.Count).GroupBy(i => classes[i]).OrderBy(g => g.Key))
        {
            var scatter = plot.Add.ScatterPoints(group.Select(i => (double)points[i][0]).ToArray(), group.Select(i => (double)points[i][1]).ToArray());
            scatter.Color = ClassColor(group.Key);
            scatter.MarkerSize = markerSize;
        }
    }

    /// <summary>Adds large black-edged markers (e.g. cluster centroids).</summary>
    public static void AddCentroids(Plot plot, IReadOnlyList<float[]> centroids)
    {
        var marks = plot.Add.ScatterPoints(centroids.Select(c => (double)c[0]).ToArray(), centroids.Select(c => (double)c[1]).ToArray());
        marks.MarkerShape = MarkerShape.FilledDiamond;
        marks.MarkerSize = 14;
        marks.Color = Colors.Black;
    }

    /// <summary>
    /// A decision-region plot for a two-class problem: <paramref name="probability"/>[row, column] (the probability of
    /// class 1 on a grid covering x in [xMin, xMax] and y in [yMin, yMax], row 0 at yMin) as a blue-to-orange background,
    /// with the points on top.
    /// </summary>
    public static Plot DecisionRegions(double[,] probability, double xMin, double xMax, double yMin, double yMax,
        IReadOnlyList<float[]> points, IReadOnlyList<int> classes, string title)
    {
        var plot = new Plot();
        int rows = probability.GetLength(0), columns = probability.GetLength(1);
        var flipped = new double[rows, columns];
        for (int r = 0; r < rows; r++) for (int c = 0; c < columns; c++) flipped[rows - 1 - r, c] = probability[r, c];
        var heatmap = plot.Add.Heatmap(flipped);
        heatmap.Colormap = new ScottPlot.Colormaps.CustomInterpolated([Blend(ClassColor(0), 0.35), Colors.White, Blend(ClassColor(1), 0.35)]);
        heatmap.ManualRange = new ScottPlot.Range(0, 1);
        heatmap.Position = new CoordinateRect(xMin, xMax, yMin, yMax);
        AddClasses(plot, points, classes, 4);
        plot.Axes.SetLimits(xMin, xMax, yMin, yMax);
        plot.Title(title);
        return plot;
    }

    /// <summary>Data points and fitted curves: <paramref name="curves"/> are (name, xs, ys) drawn as lines over the points.</summary>
    public static Plot Fits(IReadOnlyList<double> x, IReadOnlyList<double> y, IEnumerable<Charts.Series> curves, string title, string? truthName = null, Func<double, double>? truth = null)
    {
        var plot = new Plot();
        var data = plot.Add.ScatterPoints(x.ToArray(), y.ToArray());
        data.Color = Colors.Gray;
        data.MarkerSize = 5;
        data.LegendText = "data";
        if (truth is not null)
        {
            double lo = x.Min(), hi = x.Max();
            var xs = Enumerable.Range(0, 200).Select(i => lo + (hi - lo) * i / 199).ToArray();
            var line = plot.Add.ScatterLine(xs, xs.Select(truth).ToArray());
            line.Color = Colors.Black;
            line.LinePattern = LinePattern.Dashed;
            line.LegendText = truthName ?? "truth";
        }
        int index = 0;
        foreach (var curve in curves)
        {
            var line = plot.Add.ScatterLine(curve.X.ToArray(), curve.Y.ToArray());
            line.LegendText = curve.Name;
            line.LineWidth = 2;
            line.Color = ClassColor(index++);
        }
        plot.Title(title);
        plot.ShowLegend(Alignment.UpperLeft);
        return plot;
    }

    private static Color Blend(Color color, double amount) => new(
        (byte)(255 - (255 - color.R) * amount), (byte)(255 - (255 - color.G) * amount), (byte)(255 - (255 - color.B) * amount));
}
