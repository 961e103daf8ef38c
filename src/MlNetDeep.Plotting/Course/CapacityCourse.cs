using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Regression;
using MlNetDeep.Networks;
using MlNetDeep.Training;
using static MlNetDeep.Plotting.Course.CourseReport;

namespace MlNetDeep.Plotting.Course;

/// <summary>One network of a capacity experiment: its name, its size and its error (MSE) or accuracy on the training and test data.</summary>
public sealed record CapacityResult(string Name, long Parameters, double Train, double Test);

/// <summary>
/// The workshop's capacity experiments: networks of different width, depth and activation fitting a 1-D curve
/// (two hidden layers of 4 against 8 units; one ReLU layer of 80 against two tanh layers of 40) and classifying
/// half-moons (one layer of 2 against 10 units; two layers of 20 against five layers of 1,000).
/// </summary>
public static class CapacityCourse
{
    /// <summary>The chapter: four experiments.</summary>
    public static CourseChapter Chapter { get; } = new("capacity", "Capacity: width, depth and activation",
        "The workshop's universal-approximation and capacity experiments: curves fitted by networks of 4 and 8 units, ReLU against tanh, " +
        "and half-moons classified by networks from 2 units to five layers of 1,000.",
        [FourAgainstEight, ReluAgainstTanh, MoonsNarrowAgainstWide, MoonsSmallAgainstHuge]);

    /// <summary>The curve the regression experiments fit: sin(2x) + 0.5 cos(5x) on [-3, 3].</summary>
    public static double Curve(double x) => RegressionCourse.Bumpy(x);

    /// <summary>Fits each network to 200 noisy points of <see cref="Curve"/> (noise 0.1) and scores it on 400 fresh points; returns the results and the fitted curves.</summary>
    public static (IReadOnlyList<CapacityResult> Results, IReadOnlyList<Charts.Series> Fits, IReadOnlyList<CurvePoint> Train) FitCurves(
        MLContext ml, IReadOnlyList<(string Name, NetworkSpec Network)> networks, int epochs, int seed = 1)
    {
        var train = ml.Data.Curve(200, Curve, -3, 3, noise: 0.1, seed: seed);
        var test = ml.Data.Curve(400, Curve, -3, 3, noise: 0.1, seed: seed + 100);
        var grid = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 300).Select(i => new CurvePoint { X = -3 + 6 * i / 299f }));
        var gridX = grid.GetColumn<float>("X").Select(v => (double)v).ToList();
        var results = new List<CapacityResult>();
        var fits = new List<Charts.Series>();
        foreach (var (name, network) in networks)
        {
            var model = ml.Transforms.Concatenate("Features", "X").Append(ml.Regression.Trainers.NeuralNetwork(new NeuralNetworkRegressorOptions
            {
                Network = network, Epochs = epochs, BatchSize = 32, Optimizer = new Adam(1e-2), Seed = seed,
            })).Fit(train);
            double trainMse = ml.Regression.Evaluate(model.Transform(train)).MeanSquaredError;
            double testMse = ml.Regression.Evaluate(model.Transform(test)).MeanSquaredError;
            results.Add(new CapacityResult(name, network.WithTaskOutputs(1).ParameterCount([1]), trainMse, testMse));
            fits.Add(new Charts.Series($"{name} (train MSE {trainMse:F3})", gridX, model.Transform(grid).GetColumn<float>("Score").Select(v => (double)v).ToList()));
        }
        var points = train.GetColumn<float>("X").Zip(train.GetColumn<float>("Label"), (x, y) => new CurvePoint { X = x, Label = y }).ToList();
        return (results, fits, points);
    }

    /// <summary>
    /// Trains each network on <paramref name="train"/> half-moons, scores it on <paramref name="test"/> and draws its decision
    /// regions; returns the results and one plot per network.
    /// </summary>
    public static (IReadOnlyList<CapacityResult> Results, IReadOnlyList<ScottPlot.Plot> Plots) Classify(MLContext ml,
        IReadOnlyList<(string Name, NetworkSpec Network)> networks, IReadOnlyList<ToyPoint> train, IReadOnlyList<ToyPoint> test, int epochs,
        double learningRate = 1e-2, int seed = 1)
    {
        var trainData = ml.Data.LoadFromEnumerable(train);
        var testData = ml.Data.LoadFromEnumerable(test);
        var grid = new DecisionGrid(ml, train);
        var results = new List<CapacityResult>();
        var plots = new List<ScottPlot.Plot>();
        foreach (var (name, network) in networks)
        {
            var model = ml.Transforms.Conversion.MapValueToKey("Label")
                .Append(ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
                {
                    Network = network, Epochs = epochs, BatchSize = 32, Optimizer = new Adam(learningRate), Seed = seed,
                })).Fit(trainData);
            double trainAccuracy = ml.MulticlassClassification.Evaluate(model.Transform(trainData)).MicroAccuracy;
            double testAccuracy = ml.MulticlassClassification.Evaluate(model.Transform(testData)).MicroAccuracy;
            results.Add(new CapacityResult(name, network.WithTaskOutputs(2).ParameterCount([2]), trainAccuracy, testAccuracy));
            plots.Add(grid.Plot(model, train, $"{name}: train {trainAccuracy:P1}, test {testAccuracy:P1}"));
        }
        return (results, plots);
    }

    private static CourseTable CurveTable(string title, IReadOnlyList<CapacityResult> results) =>
        new(title, ["network", "parameters", "training MSE", "test MSE"],
            results.Select(r => (IReadOnlyList<string>)[r.Name, r.Parameters.ToString("N0"), F(r.Train, "F4"), F(r.Test, "F4")]).ToList());

    private static CourseTable AccuracyTable(string title, IReadOnlyList<CapacityResult> results) =>
        new(title, ["network", "parameters", "training accuracy", "test accuracy"],
            results.Select(r => (IReadOnlyList<string>)[r.Name, r.Parameters.ToString("N0"), P(r.Train), P(r.Test)]).ToList());

    private static string SaveFits(CourseRun run, string file, string title, (IReadOnlyList<CapacityResult>, IReadOnlyList<Charts.Series> Fits, IReadOnlyList<CurvePoint> Train) fit)
    {
        var plot = PointCharts.Fits(fit.Train.Select(p => (double)p.X).ToList(), fit.Train.Select(p => (double)p.Label).ToList(), fit.Fits, title, "sin(2x) + 0.5 cos(5x)", Curve);
        plot.Axes.SetLimitsY(-2.2, 2.2);
        plot.ShowLegend(ScottPlot.Alignment.LowerLeft);
        var path = Path.Combine(run.Output, file);
        Charts.Save(plot, path, 1000, 520);
        run.Log.WriteLine($"Wrote {path}");
        return path;
    }

    private static CourseExperiment FourAgainstEight(CourseRun run)
    {
        int epochs = run.Quick ? 200 : 1000;
        var fit = FitCurves(run.Ml,
        [
            ("2 hidden x 4 (tanh)", Networks.Networks.Mlp([4, 4], ActivationKind.Tanh)),
            ("2 hidden x 8 (tanh)", Networks.Networks.Mlp([8, 8], ActivationKind.Tanh)),
        ], epochs, run.Seed);
        var path = SaveFits(run, "capacity-4-vs-8.png", $"Two hidden layers of 4 against 8 tanh units ({epochs} epochs)", fit);
        var (four, eight) = (fit.Results[0], fit.Results[1]);
        return new CourseExperiment("Two hidden layers: 4 against 8 units",
            "More units in each hidden layer give the network more bends to spend: the wider network follows the curve more closely (lower training error), " +
            "and on this smooth curve with plenty of points it does better on new points too.",
            $"4 units per layer: training MSE {F(four.Train, "F4")}, test {F(four.Test, "F4")}; 8 units: training {F(eight.Train, "F4")}, test {F(eight.Test, "F4")} " +
            "(the noise alone gives an MSE of 0.01).",
            eight.Train < four.Train && eight.Test < four.Test, [path],
            [CurveTable($"Fitting sin(2x) + 0.5 cos(5x) from 200 noisy points (test: 400 new points), Adam 0.01, {epochs} epochs", fit.Results)],
            $"mlnetdeep course capacity{run.QuickFlag}");
    }

    private static CourseExperiment ReluAgainstTanh(CourseRun run)
    {
        int epochs = run.Quick ? 200 : 1000;
        var fit = FitCurves(run.Ml,
        [
            ("1 hidden x 80 (ReLU)", Networks.Networks.Mlp([80], ActivationKind.ReLU)),
            ("2 hidden x 40 (tanh)", Networks.Networks.Mlp([40, 40], ActivationKind.Tanh)),
        ], epochs, run.Seed);
        var path = SaveFits(run, "capacity-relu-vs-tanh.png", $"One layer of 80 ReLU units against two layers of 40 tanh units ({epochs} epochs)", fit);
        var (relu, tanh) = (fit.Results[0], fit.Results[1]);
        return new CourseExperiment("80 ReLU units in one layer against 40 tanh units in each of two",
            "Both networks approximate the curve (the universal approximation theorem: one hidden layer suffices with enough units, whatever the " +
            "non-linearity): here, a test MSE below 0.05, under a tenth of the curve's variance (0.63); the ReLU network's fit is made of straight pieces with kinks, the tanh network's is smooth.",
            $"ReLU 80: training MSE {F(relu.Train, "F4")}, test {F(relu.Test, "F4")}; tanh 40 + 40: training {F(tanh.Train, "F4")}, test {F(tanh.Test, "F4")}. " +
            $"{(tanh.Test < relu.Test ? "The deeper tanh network fits better here." : "The one-layer ReLU network fits better here.")}",
            relu.Test < 0.05 && tanh.Test < 0.05, [path],
            [CurveTable($"Fitting sin(2x) + 0.5 cos(5x) from 200 noisy points (test: 400 new points), Adam 0.01, {epochs} epochs", fit.Results)],
            $"mlnetdeep course capacity{run.QuickFlag}");
    }

    private static CourseExperiment MoonsNarrowAgainstWide(CourseRun run)
    {
        int epochs = run.Quick ? 100 : 300;
        var train = ToyData.HalfMoons(300, 0.2, run.Seed);
        var test = ToyData.HalfMoons(1000, 0.2, run.Seed + 1000);
        var (results, plots) = Classify(run.Ml,
        [
            ("1 hidden x 2", Networks.Networks.Mlp([2], ActivationKind.Tanh)),
            ("1 hidden x 10", Networks.Networks.Mlp([10], ActivationKind.Tanh)),
        ], train, test, epochs, learningRate: 3e-2, seed: run.Seed);
        var path = Path.Combine(run.Output, "capacity-moons-2-vs-10.png");
        PlotGrid.Save(path, plots, 2, 520, 440, "Half-moons: one hidden layer of 2 against 10 tanh units (background: P(class 1))");
        run.Log.WriteLine($"Wrote {path}");
        var (two, ten) = (results[0], results[1]);
        return new CourseExperiment("Half-moons: one hidden layer of 2 against 10 units",
            "Two hidden units can bend the boundary only a little, so the tips of the moons end up on the wrong side; ten units follow the moons' shape.",
            $"2 units: training {P(two.Train)}, test {P(two.Test)}; 10 units: training {P(ten.Train)}, test {P(ten.Test)}.",
            ten.Test > two.Test && ten.Test > 0.95, [path],
            [AccuracyTable($"Half-moons (noise 0.2): 300 training and 1,000 test points, tanh, Adam 0.03, {epochs} epochs", results)],
            $"mlnetdeep course capacity{run.QuickFlag}");
    }

    private static CourseExperiment MoonsSmallAgainstHuge(CourseRun run)
    {
        int epochs = run.Quick ? 60 : 150, huge = run.Quick ? 200 : 1000;
        var train = ToyData.HalfMoons(200, 0.35, run.Seed);
        var test = ToyData.HalfMoons(1000, 0.35, run.Seed + 1000);
        var (results, plots) = Classify(run.Ml,
        [
            ("2 hidden x 20", Networks.Networks.Mlp([20, 20], ActivationKind.ReLU)),
            ($"5 hidden x {huge:N0}", Networks.Networks.Mlp(Enumerable.Repeat(huge, 5), ActivationKind.ReLU)),
        ], train, test, epochs, learningRate: 1e-3, seed: run.Seed);
        var path = Path.Combine(run.Output, "capacity-moons-20-vs-huge.png");
        PlotGrid.Save(path, plots, 2, 520, 440, $"Noisy half-moons: two layers of 20 against five layers of {huge:N0} ReLU units");
        run.Log.WriteLine($"Wrote {path}");
        var (small, big) = (results[0], results[1]);
        return new CourseExperiment($"Half-moons: two layers of 20 against five layers of {huge:N0}",
            "A network with far more weights than there are points learns the function it thinks the data has, not the one you have in mind: " +
            "it bends its boundary around single noisy points, so it scores higher on the training points and no better (or worse) on new ones." +
            (run.Quick ? " (The quick run shrinks the 1,000-unit layers to 200.)" : ""),
            $"2 x 20 ({small.Parameters:N0} weights): training {P(small.Train)}, test {P(small.Test)}; 5 x {huge:N0} ({big.Parameters:N0} weights): " +
            $"training {P(big.Train)}, test {P(big.Test)}.",
            big.Train > small.Train && big.Test <= small.Test + 0.005, [path],
            [AccuracyTable($"Noisy half-moons (noise 0.35): 200 training and 1,000 test points, ReLU, Adam 0.001, {epochs} epochs", results)],
            $"mlnetdeep course capacity{run.QuickFlag}");
    }
}
