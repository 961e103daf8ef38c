using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Models.Regression;
using MlNetDeep.Networks;
using MlNetDeep.Training;

namespace MlNetDeep.Plotting.Course;

/// <summary>What the regression experiments measured.</summary>
public sealed record RegressionResult(double Slope, double Intercept, IReadOnlyList<(int Degree, double TrainMse, double ValidationMse)> Degrees,
    IReadOnlyList<(int Width, double Mse)> Widths, IReadOnlyList<string> Files);

/// <summary>Linear regression, polynomial under/overfitting by degree, and the network regressor as a universal approximator.</summary>
public static class RegressionCourse
{
    /// <summary>The 1-D function of the overfitting demo.</summary>
    public static double Wave(double x) => Math.Sin(2 * Math.PI * x);

    /// <summary>The 1-D function of the universal-approximation demo.</summary>
    public static double Bumpy(double x) => Math.Sin(2 * x) + 0.5 * Math.Cos(5 * x);

    /// <summary>Runs the three regression experiments and writes their PNGs.</summary>
    public static RegressionResult Run(MLContext ml, string output, TextWriter log, int seed = 1, int networkEpochs = 300)
    {
        var files = new List<string>();

        // 1. A line with noise, fitted by ML.NET's online gradient descent on the squared loss (SDCA's dual updates
        //    diverge or stop short of the bias on 60 unnormalised points), checked against the exact least-squares line.
        var line = ml.Data.Curve(60, x => 2 * x + 1, -2, 2, noise: 0.4, seed: seed);
        var linear = ml.Transforms.Concatenate("Features", "X")
            .Append(ml.Regression.Trainers.OnlineGradientDescent(numberOfIterations: 1000)).Fit(line);
        var trained = linear.LastTransformer.Model;
        double slope = trained.Weights[0], intercept = trained.Bias;
        var lineX = line.GetColumn<float>("X").Select(v => (double)v).ToList();
        var lineY = line.GetColumn<float>("Label").Select(v => (double)v).ToList();
        var (exactSlope, exactIntercept) = LeastSquaresLine(lineX, lineY);
        log.WriteLine($"Linear regression (ML.NET OnlineGradientDescent, squared loss) on y = 2x + 1 + noise (std 0.4), 60 points: y = {slope:F3} x + {intercept:F3}" +
            $"   (exact least squares: y = {exactSlope:F3} x + {exactIntercept:F3})");
        var linePlot = PointCharts.Fits(lineX, lineY, [new Charts.Series($"fit: y = {slope:F2}x + {intercept:F2}", [-2, 2], [intercept - 2 * slope, intercept + 2 * slope])],
            "Linear regression (ML.NET, squared loss)", "truth y = 2x + 1", x => 2 * x + 1);

        // 2. Polynomial features of degree d -> least squares: training vs validation error by degree.
        var train = ml.Data.Curve(15, Wave, 0, 1, noise: 0.2, seed: seed);
        var validation = ml.Data.Curve(300, Wave, 0, 1, noise: 0.2, seed: seed + 100);
        var grid = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 200).Select(i => new CurvePoint { X = i / 199f }));
        var degrees = new List<(int, double, double)>();
        var fits = new List<Charts.Series>();
        foreach (int degree in Enumerable.Range(1, 12))
        {
            var model = Polynomial(ml, degree).Fit(train);
            double trainMse = ml.Regression.Evaluate(model.Transform(train)).MeanSquaredError;
            double validationMse = ml.Regression.Evaluate(model.Transform(validation)).MeanSquaredError;
            degrees.Add((degree, trainMse, validationMse));
            log.WriteLine($"degree {degree,2}: training MSE {trainMse:F4}   validation MSE {validationMse:F4}");
            if (degree is 1 or 3 or 12)
                fits.Add(new Charts.Series($"degree {degree}", grid.GetColumn<float>("X").Select(v => (double)v).ToList(),
                    model.Transform(grid).GetColumn<float>("Score").Select(v => (double)Math.Clamp(v, -3, 3)).ToList()));
        }
        var polyFits = PointCharts.Fits(train.GetColumn<float>("X").Select(v => (double)v).ToList(), train.GetColumn<float>("Label").Select(v => (double)v).ToList(),
            fits, "Polynomial least-squares fits to 15 noisy points", "sin(2πx)", Wave);
        polyFits.Axes.SetLimitsY(-2, 2);
        var errorPlot = new ScottPlot.Plot();
        var ds = degrees.Select(d => (double)d.Item1).ToArray();
        var tr = errorPlot.Add.Scatter(ds, degrees.Select(d => Math.Log10(d.Item2)).ToArray());
        tr.LegendText = "training";
        var va = errorPlot.Add.Scatter(ds, degrees.Select(d => Math.Log10(d.Item3)).ToArray());
        va.LegendText = "validation";
        errorPlot.Title("Under- and overfitting by degree");
        errorPlot.XLabel("polynomial degree");
        errorPlot.YLabel("log10(mean squared error)");
        errorPlot.ShowLegend(ScottPlot.Alignment.UpperCenter);
        var curves = Path.Combine(output, "regression-linear-and-polynomial.png");
        PlotGrid.Save(curves, [linePlot, polyFits, errorPlot], 3, 480, 400, "Regression: a least-squares line, polynomial features by degree");
        files.Add(curves);

        // 3. One hidden layer of width 1..16 fitting a bumpy function.
        var bumpy = ml.Data.Curve(400, Bumpy, -3, 3, noise: 0.05, seed: seed);
        var features = ml.Transforms.Concatenate("Features", "X");
        var xsGrid = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 200).Select(i => new CurvePoint { X = -3 + 6 * i / 199f }));
        var widths = new List<(int, double)>();
        var nnFits = new List<Charts.Series>();
        foreach (int width in new[] { 1, 2, 4, 8, 16 })
        {
            var model = features.Append(ml.Regression.Trainers.NeuralNetwork(new NeuralNetworkRegressorOptions
            {
                Network = Networks.Networks.Mlp(width, ActivationKind.Tanh), Epochs = networkEpochs, BatchSize = 32, Optimizer = new Adam(1e-2), Seed = seed,
            })).Fit(bumpy);
            double mse = ml.Regression.Evaluate(model.Transform(bumpy)).MeanSquaredError;
            widths.Add((width, mse));
            log.WriteLine($"one hidden layer of {width,2} tanh units: training MSE {mse:F4}");
            nnFits.Add(new Charts.Series($"width {width} (MSE {mse:F3})", xsGrid.GetColumn<float>("X").Select(v => (double)v).ToList(),
                model.Transform(xsGrid).GetColumn<float>("Score").Select(v => (double)v).ToList()));
        }
        var nnPlot = PointCharts.Fits(bumpy.GetColumn<float>("X").Select(v => (double)v).ToList(), bumpy.GetColumn<float>("Label").Select(v => (double)v).ToList(),
            nnFits, "A network with one hidden layer of width 1-16 fitting sin(2x) + 0.5 cos(5x)", "truth", Bumpy);
        var nnPath = Path.Combine(output, "regression-universal-approximation.png");
        Charts.Save(nnPlot, nnPath, 1000, 560);
        files.Add(nnPath);
        foreach (var f in files) log.WriteLine($"Wrote {f}");
        return new RegressionResult(slope, intercept, degrees, widths, files);
    }

    /// <summary>
    /// X -> powers 1..degree -> min-max normalised -> least squares (a linear network trained full-batch with Adam: SDCA
    /// does not converge on 15 points with high powers).
    /// </summary>
    public static IEstimator<ITransformer> Polynomial(MLContext ml, int degree, int seed = 1) =>
        ml.Transforms.PolynomialFeatures("Features", "X", degree)
            .Append(ml.Transforms.NormalizeMinMax("Features"))
            .Append(ml.Regression.Trainers.NeuralNetwork(new NeuralNetworkRegressorOptions
            {
                Network = Networks.Networks.Linear, Epochs = 3000, BatchSize = 64, Optimizer = new Adam(5e-2), Shuffle = false, Seed = seed,
            }));

    /// <summary>The exact least-squares line through (x, y): slope and intercept from the normal equations.</summary>
    public static (double Slope, double Intercept) LeastSquaresLine(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        double mx = x.Average(), my = y.Average();
        double sxy = x.Zip(y).Sum(p => (p.First - mx) * (p.Second - my)), sxx = x.Sum(v => (v - mx) * (v - mx));
        return (sxy / sxx, my - sxy / sxx * mx);
    }
}
