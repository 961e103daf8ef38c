using System.Runtime.Loader;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Plotting;
using MlNetDeep.Training;
using SkiaSharp;

namespace MlNetDeep.Tests;

/// <summary>ScottPlot's charts and ML.NET's image transforms in one process, on one SkiaSharp.</summary>
public sealed class PlottingTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "mlnetdeep-plots-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    /// <summary>Decodes a PNG and checks its size and that something was drawn in colour.</summary>
    private static void AssertDrawnPng(string path, int width, int height)
    {
        Assert.True(File.Exists(path), path);
        using var bitmap = SKBitmap.Decode(path);
        Assert.NotNull(bitmap);
        Assert.Equal((width, height), (bitmap.Width, bitmap.Height));
        int inked = 0, coloured = 0;
        for (int y = 0; y < bitmap.Height; y++)
        for (int x = 0; x < bitmap.Width; x++)
        {
            var c = bitmap.GetPixel(x, y);
            if (c.Red < 200 || c.Green < 200 || c.Blue < 200) inked++;
            if (Math.Max(c.Red, Math.Max(c.Green, c.Blue)) - Math.Min(c.Red, Math.Min(c.Green, c.Blue)) > 60) coloured++;
        }
        int pixels = width * height;
        Assert.True(inked > pixels / 200, $"{inked} of {pixels} pixels are not white: the chart looks blank");
        Assert.True(coloured > 100, $"only {coloured} coloured pixels: the series were not drawn");
    }

    /// <summary>Writes two classes of small grey PNGs and reads them back through ML.NET's LoadImages/ExtractPixels.</summary>
    private void ReadImagesThroughMlNet(string name)
    {
        var folder = Path.Combine(_root, name);
        var written = new Dictionary<string, float[]>();
        for (int i = 0; i < 6; i++)
        {
            var pixels = Enumerable.Range(0, 8 * 10).Select(p => (float)Math.Round((p * 7 + i * 31) % 256 / 255.0 * 255) / 255).ToArray();
            var path = Path.Combine(folder, i % 2 == 0 ? "even" : "odd", $"{i}.png");
            ImageFiles.SavePng(path, pixels, 1, 8, 10);
            written[path] = pixels;
        }
        var scan = ImageFolder.Scan(folder);
        Assert.Equal(["even", "odd"], scan.Classes);
        Assert.Equal((10, 8), scan.CommonSize);
        var ml = new MLContext(seed: 1);
        var rows = scan.PixelPipeline(ml, grayscale: true).Fit(scan.ToDataView(ml.Data)).Transform(scan.ToDataView(ml.Data));
        var read = rows.GetColumn<string>("ImagePath").Zip(rows.GetColumn<float[]>("Pixels")).ToList();
        Assert.Equal(6, read.Count);
        foreach (var (path, pixels) in read)
        {
            Assert.Equal(80, pixels.Length);
            for (int p = 0; p < pixels.Length; p++) Assert.Equal(written[path][p], pixels[p], 5);
        }
    }

    private static TrainingHistory History()
    {
        var history = new TrainingHistory();
        for (int epoch = 0; epoch < 6; epoch++)
        {
            var values = new Dictionary<string, double>
            {
                [SupervisedStep.Loss] = 2.0 / (epoch + 1),
                [SupervisedStep.Accuracy] = 0.5 + 0.08 * epoch,
                [TrainingLoop.ValidationPrefix + SupervisedStep.Loss] = 2.2 / (epoch + 1) + 0.1,
                [TrainingLoop.ValidationPrefix + SupervisedStep.Accuracy] = 0.45 + 0.07 * epoch,
            };
            history.Add(new EpochMetrics(epoch, values, 1e-3, TimeSpan.FromSeconds(1), 100));
        }
        return history;
    }

    [Fact]
    public void ChartsAndMlNetsImageTransformsWorkInOneProcess()
    {
        ReadImagesThroughMlNet("before");

        var curves = Path.Combine(_root, "charts", "curves.png");
        Charts.TrainingCurves(curves, History(), "test run");
        AssertDrawnPng(curves, 1200, 480);
        var lines = Path.Combine(_root, "charts", "lines.png");
        var x = Enumerable.Range(0, 50).Select(i => (double)i).ToArray();
        Charts.Lines(lines, "sine and cosine", "x", "y",
            [new Charts.Series("sin", x, x.Select(v => Math.Sin(v / 8)).ToArray()), new Charts.Series("cos", x, x.Select(v => Math.Cos(v / 8)).ToArray())],
            width: 640, height: 400);
        AssertDrawnPng(lines, 640, 400);

        ReadImagesThroughMlNet("after");

        // One SkiaSharp (3.x) serves both, in the default load context: ScottPlot's SKCanvas and ML.NET's images are its types.
        var skia = Assert.Single(AppDomain.CurrentDomain.GetAssemblies(), a => a.GetName().Name == "SkiaSharp");
        Assert.Equal(3, skia.GetName().Version!.Major);
        Assert.Same(AssemblyLoadContext.Default, AssemblyLoadContext.GetLoadContext(skia));
        Assert.Same(AssemblyLoadContext.Default, AssemblyLoadContext.GetLoadContext(typeof(ScottPlot.Plot).Assembly));
        var canvas = typeof(ScottPlot.Plot).GetMethods().SelectMany(m => m.GetParameters()).First(p => p.ParameterType.Name == "SKCanvas").ParameterType;
        Assert.Same(skia, canvas.Assembly);
        Assert.Contains(typeof(MLImage).Assembly.GetReferencedAssemblies(), a => a.Name == "SkiaSharp" && a.Version!.Major == 3);

        if (OperatingSystem.IsLinux())
        {
            // And one native library.
            var native = File.ReadAllLines("/proc/self/maps").Where(l => l.Contains("libSkiaSharp", StringComparison.Ordinal))
                .Select(l => l[l.IndexOf('/')..]).Distinct().ToList();
            Assert.Single(native);
        }
    }

    [Fact]
    public void APlotGridOfPointChartsIsOnePng()
    {
        var random = new Random(4);
        var points = Enumerable.Range(0, 120).Select(i => new[] { (float)(random.NextDouble() + i % 3), (float)random.NextDouble() * 2 }).ToList();
        var classes = Enumerable.Range(0, 120).Select(i => i % 3).ToList();
        var scatter = PointCharts.Scatter(points, classes, "three clusters");
        PointCharts.AddCentroids(scatter, [[0.5f, 1], [1.5f, 1], [2.5f, 1]]);
        var probability = new double[20, 30];
        for (int r = 0; r < 20; r++) for (int c = 0; c < 30; c++) probability[r, c] = c / 29.0;
        var regions = PointCharts.DecisionRegions(probability, 0, 3, 0, 2, points, classes.Select(c => c == 0 ? 0 : 1).ToList(), "regions");
        var xs = Enumerable.Range(0, 20).Select(i => i / 19.0).ToArray();
        var fits = PointCharts.Fits(xs, xs.Select(v => v * v + 0.05 * random.NextDouble()).ToArray(),
            [new Charts.Series("quadratic", xs, xs.Select(v => v * v).ToArray())], "fit", "x^2", v => v * v);

        var path = Path.Combine(_root, "grid.png");
        PlotGrid.Save(path, [scatter, regions, fits], columns: 2, panelWidth: 300, panelHeight: 240, title: "a grid of panels");
        AssertDrawnPng(path, 2 * 300, 34 + 2 * 240);

        ReadImagesThroughMlNet("grid");
    }
}
