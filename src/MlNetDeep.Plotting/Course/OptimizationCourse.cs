using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Classical;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Training;
using ScottPlot;
using TorchSharp;
using static MlNetDeep.Plotting.Course.CourseReport;
using static TorchSharp.torch;

namespace MlNetDeep.Plotting.Course;

/// <summary>A 2-D error surface: its formula in words, the function on a parameter tensor, its minimum and the view drawn.</summary>
public sealed record ErrorSurface(string Name, Func<Tensor, Tensor> Loss, (double X, double Y) Minimum, (double X, double Y) Start,
    (double XMin, double XMax, double YMin, double YMax) View)
{
    /// <summary>A Rosenbrock-like banana valley: (1 - x)² + 10 (y - x²)², minimum 0 at (1, 1); starts at (-1.5, 2).</summary>
    public static ErrorSurface Banana { get; } = new("(1 - x)² + 10 (y - x²)²",
        p => (1 - p[0]).pow(2) + 10 * (p[1] - p[0].pow(2)).pow(2), (1, 1), (-1.5, 2), (-2, 2, -1, 3));

    /// <summary>An elongated quadratic bowl: x²/2 + 5 y², minimum 0 at (0, 0); gradient descent is stable for rates below 0.2.</summary>
    public static ErrorSurface Bowl { get; } = new("x²/2 + 5 y²", p => 0.5 * p[0].pow(2) + 5 * p[1].pow(2), (0, 0), (-4, 1.5), (-4.5, 1.5, -2, 2));

    /// <summary>The error at (x, y).</summary>
    public double At(double x, double y)
    {
        using var scope = NewDisposeScope();
        return Loss(tensor(new[] { x, y }, float64)).item<double>();
    }
}

/// <summary>One optimiser's walk on an error surface: the points visited (start first) and the error before each step and at the end.</summary>
public sealed record DescentPath(string Name, IReadOnlyList<(double X, double Y)> Points, IReadOnlyList<double> Losses)
{
    /// <summary>Distance of the last point from <paramref name="minimum"/>.</summary>
    public double DistanceTo((double X, double Y) minimum) => Math.Sqrt(Math.Pow(Points[^1].X - minimum.X, 2) + Math.Pow(Points[^1].Y - minimum.Y, 2));

    /// <summary>The first step after which the point is within <paramref name="radius"/> of <paramref name="minimum"/> for good; null if it never is.</summary>
    public int? StepsToReach((double X, double Y) minimum, double radius)
    {
        int? reached = null;
        for (int i = Points.Count - 1; i >= 0; i--)
        {
            if (Math.Sqrt(Math.Pow(Points[i].X - minimum.X, 2) + Math.Pow(Points[i].Y - minimum.Y, 2)) > radius) break;
            reached = i;
        }
        return reached;
    }
}

/// <summary>
/// Optimisation, visibly: TorchSharp's own optimisers (through the library's <see cref="OptimizerSpec"/>s) walking a 2-D
/// error surface, learning rates too small, right and too large, decay schedules, mini-batch size, and an untrained
/// network answering at chance.
/// </summary>
public static class OptimizationCourse
{
    /// <summary>The optimisers of the path figure: the course's SGD, momentum and Nesterov momentum at one rate, Adam, and Adadelta at its paper's rate and a larger one.</summary>
    public static IReadOnlyList<(string Name, OptimizerSpec Optimizer)> PathOptimizers { get; } =
    [
        ("SGD, lr 0.002", new Sgd(0.002)),
        ("momentum 0.9, lr 0.002", new Sgd(0.002, Momentum: 0.9)),
        ("Nesterov 0.9, lr 0.002", new Sgd(0.002, Momentum: 0.9, Nesterov: true)),
        ("Adam, lr 0.05", new Adam(0.05)),
        ("Adadelta, lr 1 (paper)", new Adadelta(1.0)),
        ("Adadelta, lr 5", new Adadelta(5.0)),
    ];

    /// <summary>The chapter: five experiments.</summary>
    public static CourseChapter Chapter { get; } = new("optimization", "Optimisation, visibly",
        "Gradient descent and its refinements on a 2-D error surface, the learning rate, decay schedules, mini-batch size, and a network before and after training.",
        [Paths, LearningRates, Schedules, BatchSizes, UntrainedAndTrained]);

    /// <summary>
    /// Walks <paramref name="surface"/> from its start for <paramref name="steps"/> steps with the TorchSharp optimiser that
    /// <paramref name="optimizer"/> creates for one 2-element parameter tensor (double precision).
    /// </summary>
    public static DescentPath Descend(ErrorSurface surface, string name, OptimizerSpec optimizer, int steps)
    {
        Native.TorchRuntime.EnsureLoaded();
        using var parameter = new TorchSharp.Modules.Parameter(tensor(new[] { surface.Start.X, surface.Start.Y }, float64));
        using var optim = optimizer.Create([parameter]);
        var points = new List<(double, double)> { surface.Start };
        var losses = new List<double>();
        for (int step = 0; step < steps; step++)
        {
            optim.zero_grad();
            using (NewDisposeScope())
            {
                var loss = surface.Loss(parameter);
                loss.backward();
                losses.Add(loss.item<double>());
            }
            optim.step();
            var p = parameter.data<double>().ToArray();
            points.Add((p[0], p[1]));
            if (!double.IsFinite(p[0]) || !double.IsFinite(p[1]) || Math.Abs(p[0]) > 1e6 || Math.Abs(p[1]) > 1e6) break;
        }
        losses.Add(surface.At(points[^1].Item1, points[^1].Item2));
        return new DescentPath(name, points, losses);
    }

    /// <summary>The surface's contour lines (of log10 of the error) with each path drawn on top (a dot where it ended) and the minimum marked.</summary>
    public static Plot PathPlot(ErrorSurface surface, IReadOnlyList<DescentPath> paths, string title, Alignment legend = Alignment.UpperRight)
    {
        var plot = new Plot();
        var (xMin, xMax, yMin, yMax) = surface.View;
        const int n = 120;
        var grid = new Coordinates3d[n, n];
        for (int r = 0; r < n; r++)
            for (int c = 0; c < n; c++)
            {
                double x = xMin + (xMax - xMin) * c / (n - 1), y = yMin + (yMax - yMin) * r / (n - 1);
                grid[r, c] = new Coordinates3d(x, y, Math.Log10(surface.At(x, y) + 1e-3));
            }
        var contours = plot.Add.ContourLines(grid);
        contours.ContourLineCount = 22;
        contours.LineColor = Colors.Gray.WithAlpha(0.6);
        contours.LabelStyle.IsVisible = false;
        for (int i = 0; i < paths.Count; i++)
        {
            var shown = paths[i].Points.Where(p => p.X >= xMin - 1 && p.X <= xMax + 1 && p.Y >= yMin - 1 && p.Y <= yMax + 1).ToList();
            var line = plot.Add.Scatter(shown.Select(p => p.X).ToArray(), shown.Select(p => p.Y).ToArray());
            line.Color = PointCharts.ClassColor(i);
            // Wider lines first, so that paths that run together stay visible under one another.
            line.LineWidth = Math.Max(2, 2 * (paths.Count - i));
            line.MarkerSize = 0;
            line.LegendText = paths[i].Name;
        }
        for (int i = 0; i < paths.Count; i++)
        {
            var end = paths[i].Points[^1];
            if (end.X < xMin || end.X > xMax || end.Y < yMin || end.Y > yMax) continue;
            var mark = plot.Add.Marker(end.X, end.Y, MarkerShape.FilledCircle, 11);
            mark.Color = PointCharts.ClassColor(i);
        }
        var minimum = plot.Add.Marker(surface.Minimum.X, surface.Minimum.Y, MarkerShape.FilledDiamond, 16);
        minimum.Color = Colors.Black;
        minimum.LegendText = "minimum";
        var start = plot.Add.Marker(surface.Start.X, surface.Start.Y, MarkerShape.FilledCircle, 10);
        start.Color = Colors.Green;
        start.LegendText = "start";
        plot.Axes.SetLimits(xMin, xMax, yMin, yMax);
        plot.Title(title);
        plot.XLabel("x (weight 1)");
        plot.YLabel("y (weight 2)");
        plot.ShowLegend(legend);
        return plot;
    }

    /// <summary>The error after each step, log scale.</summary>
    public static Plot LossPlot(IReadOnlyList<DescentPath> paths, string title, double ceiling = 1e4)
    {
        var plot = new Plot();
        for (int i = 0; i < paths.Count; i++)
        {
            var y = paths[i].Losses.Select(l => Math.Log10(Math.Clamp(double.IsFinite(l) ? l : ceiling, 1e-12, ceiling))).ToArray();
            var line = plot.Add.Scatter(Enumerable.Range(0, y.Length).Select(s => (double)s).ToArray(), y);
            line.Color = PointCharts.ClassColor(i);
            line.LineWidth = 2;
            line.MarkerSize = 0;
            line.LegendText = paths[i].Name;
        }
        plot.Title(title);
        plot.XLabel("step");
        plot.YLabel("log10(error)");
        plot.ShowLegend(Alignment.LowerLeft);
        return plot;
    }

    private static CourseExperiment Paths(CourseRun run)
    {
        var surface = ErrorSurface.Banana;
        const int steps = 300;
        var paths = PathOptimizers.Select(o => Descend(surface, o.Name, o.Optimizer, steps)).ToList();
        var path = Path.Combine(run.Output, "optimization-paths.png");
        PlotGrid.Save(path, [PathPlot(surface, paths, $"{steps} steps on {surface.Name}"), LossPlot(paths, "Error after each step")], 2, 640, 560,
            "TorchSharp's optimisers on a banana-shaped valley (minimum at (1, 1))");
        var rows = paths.Select(p => (IReadOnlyList<string>)[p.Name, F(p.Losses[^1], "G3"), F(p.DistanceTo(surface.Minimum)),
            p.StepsToReach(surface.Minimum, 0.1)?.ToString() ?? "never"]).ToList();
        var sgd = paths[0].DistanceTo(surface.Minimum);
        var momentum = paths[1].DistanceTo(surface.Minimum);
        var nesterov = paths[2].DistanceTo(surface.Minimum);
        var adam = paths[3].DistanceTo(surface.Minimum);
        bool agrees = momentum < sgd && nesterov < sgd && adam < sgd;
        return new CourseExperiment("Paths of SGD, momentum, Nesterov, Adam and Adadelta",
            "Plain gradient descent creeps along a flat valley floor; momentum carries the steps on and gets further in the same number of steps, " +
            "Nesterov's look-ahead a little better still; adaptive methods (Adam) scale each weight's step and reach the bottom quickly.",
            $"After {steps} steps from (-1.5, 2): SGD is {F(sgd)} from the minimum, momentum {F(momentum)}, Nesterov {F(nesterov)}, Adam {F(adam)}; " +
            $"Adadelta at its paper's rate 1 is {F(paths[4].DistanceTo(surface.Minimum))} away: its first steps are about √ε = 0.001 and grow slowly.",
            agrees, [path],
            [new CourseTable($"{steps} steps on {surface.Name}, TorchSharp optimisers on one 2-element parameter", ["optimiser", "final error", "distance to minimum", "steps to stay within 0.1"], rows)],
            $"mlnetdeep course optimization{run.QuickFlag} -o report");
    }

    private static CourseExperiment LearningRates(CourseRun run)
    {
        var surface = ErrorSurface.Bowl;
        const int steps = 60;
        var paths = new[] { ("too small: 0.005", 0.005), ("right: 0.1", 0.1), ("too large: 0.21", 0.21) }
            .Select(r => Descend(surface, $"lr {r.Item1}", new Sgd(r.Item2), steps)).ToList();
        var path = Path.Combine(run.Output, "optimization-learning-rates.png");
        PlotGrid.Save(path, [PathPlot(surface, paths, $"SGD on {surface.Name}", Alignment.LowerRight), LossPlot(paths, "Error after each step", ceiling: 1e12)], 2, 640, 520,
            "Learning rate too small, right and too large (gradient descent, TorchSharp SGD)");
        var rows = paths.Select(p => (IReadOnlyList<string>)[p.Name, F(p.Losses[0], "G3"), F(p.Losses[10], "G3"), F(p.Losses[^1], "G3")]).ToList();
        double small = paths[0].Losses[^1], right = paths[1].Losses[^1], large = paths[2].Losses[^1];
        return new CourseExperiment("Learning rate too small, right, too large",
            "Too small a learning rate takes forever to get down the slope; a good one gets to the bottom quickly; too large a one overshoots " +
            "and oscillates across the valley, and the error grows.",
            $"After {steps} steps the error is {F(small, "G3")} (too small), {F(right, "G3")} (right) and {F(large, "G3")} (too large, starting from {F(paths[2].Losses[0], "G3")}).",
            right < small && large > paths[2].Losses[0], [path],
            [new CourseTable($"SGD on {surface.Name} from (-4, 1.5)", ["learning rate", "error at start", "after 10 steps", $"after {steps} steps"], rows)],
            $"mlnetdeep course optimization{run.QuickFlag} -o report");
    }

    /// <summary>A made-up validation loss that falls and then flattens (with a little noise), to drive ReduceOnPlateau.</summary>
    public static double PlateauingLoss(int epoch) => 0.3 + 0.7 * Math.Exp(-epoch / 5.0) + 0.002 * Math.Sin(epoch * 1.7);

    private static CourseExperiment Schedules(CourseRun run)
    {
        const int epochs = 50;
        const double baseRate = 0.1;
        var monitor = new MonitoredMetric("val_loss");
        var schedules = new (string Name, LearningRateSchedule Schedule)[]
        {
            ("constant", new StepDecay(epochs + 1, 1)),
            ("step: x0.5 every 10 epochs", new StepDecay(10, 0.5)),
            ("exponential: x0.93 per epoch", new ExponentialDecay(0.93)),
            ("cosine annealing to 0", new CosineAnnealing()),
            ("on plateau: x0.5 after 3 flat epochs", new ReduceOnPlateau(0.5, 3, 1e-3)),
        };
        var series = new List<Charts.Series>();
        var rates = new List<double[]>();
        foreach (var (name, schedule) in schedules)
        {
            var scheduler = schedule.Start(baseRate, new ScheduleRun(epochs, monitor));
            var r = new double[epochs];
            r[0] = baseRate;
            for (int e = 1; e < epochs; e++) r[e] = scheduler.Next(e, PlateauingLoss(e - 1));
            rates.Add(r);
            series.Add(new Charts.Series(name, Enumerable.Range(1, epochs).Select(e => (double)e).ToList(), r));
        }
        var plot = new Plot();
        for (int i = 0; i < series.Count; i++)
        {
            var line = plot.Add.Scatter(series[i].X.ToArray(), series[i].Y.ToArray());
            line.LegendText = series[i].Name;
            line.Color = i == 0 ? Colors.Black : PointCharts.ClassColor(i);
            line.LineWidth = i == 0 ? 1.5f : 2.5f;
            if (i == 0) line.LinePattern = LinePattern.Dashed;
            line.MarkerSize = 0;
        }
        var loss = plot.Add.Scatter(Enumerable.Range(1, epochs).Select(e => (double)e).ToArray(), Enumerable.Range(0, epochs).Select(e => PlateauingLoss(e) / 10).ToArray());
        loss.LegendText = "monitored loss / 10 (drives the plateau rule)";
        loss.Color = Colors.Gray;
        loss.LinePattern = LinePattern.Dotted;
        loss.MarkerSize = 0;
        plot.Title($"Learning-rate decay schedules (MlNetDeep.Training), base rate {baseRate}");
        plot.XLabel("epoch");
        plot.YLabel("learning rate");
        plot.ShowLegend(Alignment.UpperRight);
        var path = Path.Combine(run.Output, "optimization-schedules.png");
        Charts.Save(plot, path, 1000, 560);
        int[] shown = [1, 5, 10, 20, 30, 40, 50];
        var rows = schedules.Select((s, i) => (IReadOnlyList<string>)[s.Name, .. shown.Select(e => F(rates[i][e - 1], "G3"))]).ToList();
        bool decays = rates.Skip(1).All(r => r[^1] < r[0]);
        return new CourseExperiment("Learning-rate decay schedules",
            "Start with big steps and shrink them as learning goes on (like sweeping a metal detector ever more finely): each schedule lowers the rate, " +
            "by steps, smoothly, or when the error stops improving.",
            $"Every schedule ends below its base rate 0.1: step {F(rates[1][^1], "G3")}, exponential {F(rates[2][^1], "G3")}, cosine {F(rates[3][^1], "G3")}, on plateau {F(rates[4][^1], "G3")}.",
            decays, [path],
            [new CourseTable("Learning rate by epoch", ["schedule", .. shown.Select(e => $"epoch {e}")], rows)],
            $"mlnetdeep course optimization{run.QuickFlag} -o report");
    }

    private static CourseExperiment BatchSizes(CourseRun run)
    {
        int rows = run.Quick ? 600 : 5_000, epochs = run.Quick ? 2 : 3, testRows = run.Quick ? 1_000 : 10_000;
        var train = run.Ml.Data.Cache(run.Ml.Data.LoadMnist(MnistSplit.Train, maxRows: rows));
        var test = run.Ml.Data.Cache(run.Ml.Data.LoadMnist(MnistSplit.Test, maxRows: testRows));
        var results = new List<(int Batch, long Updates, double Seconds, double Accuracy)>();
        // One untimed fit first, so that no timed run pays for loading and warming up the native library.
        run.Ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", Network = Networks.Networks.Mlp(128), Epochs = 1, BatchSize = 128, Seed = run.Seed,
        }).Fit(train);
        foreach (int batch in new[] { 1, 32, 128, rows })
        {
            var clock = Stopwatch.StartNew();
            var model = run.Ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
            {
                FeatureColumnName = "Pixels", Network = Networks.Networks.Mlp(128), Epochs = epochs, BatchSize = batch, Optimizer = new Sgd(0.05), Seed = run.Seed,
            }).Fit(train);
            double seconds = clock.Elapsed.TotalSeconds;
            double accuracy = run.Ml.MulticlassClassification.Evaluate(model.Transform(test)).MicroAccuracy;
            long updates = (long)epochs * ((rows + batch - 1) / batch);
            results.Add((batch, updates, seconds, accuracy));
            run.Log.WriteLine($"batch {batch,5}: {updates,6} updates, {seconds:F1} s, test accuracy {accuracy:P2}");
        }
        var plot = new Plot();
        for (int i = 0; i < results.Count; i++)
        {
            var r = results[i];
            var m = plot.Add.Marker(r.Seconds, r.Accuracy, MarkerShape.FilledCircle, 14);
            m.Color = PointCharts.ClassColor(i);
            m.LegendText = r.Batch == rows ? $"full batch ({rows}): {r.Updates} updates" : $"batch {r.Batch}: {r.Updates} updates";
        }
        plot.Title($"Mini-batch size: MLP(128), SGD lr 0.05, {epochs} epochs on {rows:N0} MNIST images");
        plot.XLabel("training seconds");
        plot.YLabel($"test accuracy ({testRows:N0} images)");
        plot.Axes.SetLimitsY(0, 1);
        plot.ShowLegend(Alignment.LowerRight);
        var path = Path.Combine(run.Output, "optimization-batch-size.png");
        Charts.Save(plot, path, 900, 520);
        var one = results[0];
        var thirtyTwo = results[1];
        var full = results[^1];
        bool agrees = one.Seconds > thirtyTwo.Seconds && thirtyTwo.Accuracy > full.Accuracy;
        return new CourseExperiment("Mini-batch size against time and accuracy",
            "Updating after every sample makes many small, noisy steps and is slow per epoch; one update per pass over all the data (full batch) " +
            "is fast per epoch but learns little per epoch; mini-batches of a few dozen samples are the usual compromise.",
            $"Batch 1: {F(one.Seconds, "F1")} s, {P(one.Accuracy)}; batch 32: {F(thirtyTwo.Seconds, "F1")} s, {P(thirtyTwo.Accuracy)}; full batch: {F(full.Seconds, "F1")} s, {P(full.Accuracy)} " +
            $"after {full.Updates} updates.",
            agrees, [path],
            [new CourseTable($"MLP(128), SGD lr 0.05, {epochs} epochs, {rows:N0} training images", ["batch size", "updates", "seconds", "test accuracy"],
                results.Select(r => (IReadOnlyList<string>)[r.Batch == rows ? $"{r.Batch} (full)" : r.Batch.ToString(), r.Updates.ToString(), F(r.Seconds, "F1"), P(r.Accuracy, 2)]).ToList())],
            $"mlnetdeep course optimization{run.QuickFlag} -o report");
    }

    private static CourseExperiment UntrainedAndTrained(CourseRun run)
    {
        int rows = run.Quick ? 2_000 : 10_000, testRows = run.Quick ? 1_000 : 10_000, epochs = 2;
        var train = run.Ml.Data.Cache(run.Ml.Data.LoadMnist(MnistSplit.Train, maxRows: rows));
        var test = run.Ml.Data.Cache(run.Ml.Data.LoadMnist(MnistSplit.Test, maxRows: testRows));
        var network = Networks.Networks.Mlp(128);
        var pixels = KMeansCourse.TestColumn(test, "Pixels");
        var labels = KMeansAnalysis.ReadLabels(test, "Label");

        Native.TorchRuntime.EnsureLoaded();
        torch.manual_seed(run.Seed);
        int[] untrained;
        using (var module = network.WithTaskOutputs(10).Build([Mnist.PixelCount]))
        using (NewDisposeScope())
        using (no_grad())
        {
            module.eval();
            var input = tensor(pixels.SelectMany(p => p).ToArray(), [pixels.Length, Mnist.PixelCount]);
            untrained = module.forward(input).argmax(1).data<long>().Select(v => (int)v).ToArray();
        }
        double untrainedAccuracy = untrained.Zip(labels).Count(p => p.First == p.Second) / (double)labels.Length;
        var commonest = untrained.GroupBy(v => v).MaxBy(g => g.Count())!;

        var model = run.Ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", Network = network, Epochs = epochs, BatchSize = 32, Seed = run.Seed,
        }).Fit(train);
        var scored = model.Transform(test);
        double trainedAccuracy = run.Ml.MulticlassClassification.Evaluate(scored).MicroAccuracy;
        var trained = scored.GetColumn<float[]>("Score").Select(s => Array.IndexOf(s, s.Max())).ToArray();
        run.Log.WriteLine($"MLP(128) untrained: {untrainedAccuracy:P2}; after {epochs} epochs on {rows:N0} images: {trainedAccuracy:P2}");

        var path = Path.Combine(run.Output, "optimization-untrained-vs-trained.png");
        ImageGrid.Save(path, pixels.Take(20).ToList(), Mnist.Side, Mnist.Side, 10, scale: 4,
            captions: Enumerable.Range(0, 20).Select(i => $"{untrained[i]} -> {trained[i]}").ToList(),
            title: "Untrained answer -> trained answer (MLP 128)");
        return new CourseExperiment("An untrained network, then trained",
            "Before training the weights are random, so the network's answers are guesses: about 10 % right on ten digits. Training is what makes it right.",
            $"Untrained: {P(untrainedAccuracy)} right on {testRows:N0} test digits ({P(commonest.Count() / (double)untrained.Length, 0)} of its answers are \"{commonest.Key}\"); " +
            $"after {epochs} epochs on {rows:N0} images: {P(trainedAccuracy)}.",
            untrainedAccuracy is > 0.03 and < 0.2 && trainedAccuracy > 0.75, [path],
            [new CourseTable($"MLP(128) on {testRows:N0} MNIST test digits", ["network", "test accuracy", "most frequent answer"],
            [
                ["untrained (random initial weights)", P(untrainedAccuracy, 2), $"{commonest.Key} ({P(commonest.Count() / (double)untrained.Length, 0)})"],
                [$"after {epochs} epochs (Adam, {rows:N0} images)", P(trainedAccuracy, 2),
                    $"{trained.GroupBy(v => v).MaxBy(g => g.Count())!.Key} ({P(trained.GroupBy(v => v).Max(g => g.Count()) / (double)trained.Length, 0)})"],
            ])],
            $"mlnetdeep course optimization{run.QuickFlag} -o report");
    }
}
