using MlNetDeep.Training;
using ScottPlot;

namespace MlNetDeep.Plotting;

/// <summary>PNG charts for training runs and experiments (ScottPlot).</summary>
public static class Charts
{
    /// <summary>One named series of (x, y) points.</summary>
    public sealed record Series(string Name, IReadOnlyList<double> X, IReadOnlyList<double> Y);

    /// <summary>A bar chart (one bar per category, e.g. each digit's share of generated images), saved as PNG.</summary>
    public static void Bars(string path, string title, string yLabel, IReadOnlyList<string> categories, IReadOnlyList<double> values,
        double? lowerGuide = null, double? upperGuide = null, int width = 800, int height = 500)
    {
        if (categories.Count != values.Count) throw new ArgumentException("One value per category.", nameof(values));
        var plot = new Plot();
        plot.Add.Bars(values.ToArray());
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, categories.Count).Select(i => (double)i).ToArray(), categories.ToArray());
        if (lowerGuide is { } low) plot.Add.HorizontalLine(low).LinePattern = LinePattern.Dashed;
        if (upperGuide is { } high) plot.Add.HorizontalLine(high).LinePattern = LinePattern.Dashed;
        plot.Axes.Margins(bottom: 0);
        plot.Title(title);
        plot.YLabel(yLabel);
        Save(plot, path, width, height);
    }

    /// <summary>A line chart of several series, saved as PNG.</summary>
    public static void Lines(string path, string title, string xLabel, string yLabel, IEnumerable<Series> series, int width = 800, int height = 500, bool logY = false)
    {
        var plot = new Plot();
        foreach (var s in series)
        {
            var y = s.Y.Select(v => logY ? Math.Log10(Math.Max(v, 1e-12)) : v).ToArray();
            var line = plot.Add.Scatter(s.X.ToArray(), y);
            line.LegendText = s.Name;
        }
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(logY ? $"log10({yLabel})" : yLabel);
        plot.ShowLegend(Alignment.UpperRight);
        Save(plot, path, width, height);
    }

    /// <summary>
    /// Every metric a training run reported, per epoch, in two panels of one PNG: the losses (names with "loss") and
    /// the rest (accuracies, distances...). Validation metrics (val_*) are drawn beside their training twins.
    /// </summary>
    public static void TrainingCurves(string path, TrainingHistory history, string title = "Training", string validationName = "validation")
    {
        var epochs = history.Epochs.Select(e => (double)e.Epoch + 1).ToArray();
        var multi = new Multiplot();
        multi.AddPlots(2);
        multi.Layout = new ScottPlot.MultiplotLayouts.Columns();
        var losses = history.MetricNames.Where(n => n.Contains("loss", StringComparison.Ordinal)).ToList();
        var others = history.MetricNames.Except(losses).ToList();
        string Label(string name) => name.StartsWith(TrainingLoop.ValidationPrefix, StringComparison.Ordinal)
            ? $"{validationName} {name[TrainingLoop.ValidationPrefix.Length..].Replace('_', ' ')}"
            : name == TrainingStep.Loss || name == TrainingStep.Accuracy ? $"train {name}" : name.Replace('_', ' ');
        var loss = multi.GetPlot(0);
        foreach (var name in losses) AddLine(loss, epochs, history.Values(name), Label(name));
        loss.Title($"{title}: {(losses.Count == 1 ? "loss" : "losses")}");
        loss.XLabel("epoch");
        loss.ShowLegend(Alignment.UpperRight);
        var rest = multi.GetPlot(1);
        foreach (var name in others) AddLine(rest, epochs, history.Values(name), Label(name));
        if (others.Count > 0) rest.ShowLegend(Alignment.LowerRight);
        rest.Title(others.All(n => n.Contains("accuracy", StringComparison.Ordinal)) ? $"{title}: accuracy" : $"{title}: metrics");
        IntegerTicks(loss);
        IntegerTicks(rest);
        rest.XLabel("epoch");
        EnsureFolder(path);
        multi.SavePng(path, 1200, 480);
    }

    private static void IntegerTicks(Plot plot) =>
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };

    private static void AddLine(Plot plot, double[] x, IEnumerable<double> y, string name)
    {
        var line = plot.Add.Scatter(x, y.ToArray());
        line.LegendText = name;
    }

    /// <summary>Saves a ScottPlot plot as PNG, creating the folder.</summary>
    public static void Save(Plot plot, string path, int width = 800, int height = 500)
    {
        EnsureFolder(path);
        plot.SavePng(path, width, height);
    }

    internal static void EnsureFolder(string path)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (folder is not null) Directory.CreateDirectory(folder);
    }
}
