using Microsoft.ML;
using Microsoft.ML.Data;
using ScottPlot;
using static MlNetDeep.Plotting.Course.CourseReport;
using static TorchSharp.torch;

namespace MlNetDeep.Plotting.Course;

/// <summary>A trained threshold unit: weights, bias, and the mistakes it made in each pass over the data.</summary>
public sealed record PerceptronResult(double[] Weights, double Bias, IReadOnlyList<int> ErrorsPerEpoch)
{
    /// <summary>Whether some pass over the data made no mistake (the rule then stops changing the weights).</summary>
    public bool Converged => ErrorsPerEpoch.Count > 0 && ErrorsPerEpoch[^1] == 0;

    /// <summary>The unit's answer: +1 when w·x + b > 0, else -1.</summary>
    public int Predict(IReadOnlyList<float> x) => Weights.Select((w, i) => w * x[i]).Sum() + Bias > 0 ? 1 : -1;
}

/// <summary>A 2-D point with a label of +1 or -1.</summary>
public sealed record LabelledPoint(float[] X, int Label);

/// <summary>
/// The classic perceptron: a threshold unit trained with Rosenblatt's rule on data that a line separates and on data it
/// does not, beside ML.NET's logistic regression; activation functions and their derivatives (by TorchSharp's autograd);
/// softmax worked through.
/// </summary>
public static class PerceptronCourse
{
    /// <summary>The chapter: three experiments.</summary>
    public static CourseChapter Chapter { get; } = new("perceptron", "The classic perceptron",
        "A threshold unit and the perceptron learning rule, activation functions and their derivatives, and softmax.",
        [Rule, Activations, Softmax]);

    /// <summary>
    /// Rosenblatt's rule: for each point in turn, when sign(w·x + b) differs from its label y (±1), w += rate·y·x and
    /// b += rate·y. Passes stop after the first pass without a mistake, or after <paramref name="maxEpochs"/>.
    /// </summary>
    public static PerceptronResult Train(IReadOnlyList<LabelledPoint> points, int maxEpochs = 100, double rate = 1.0)
    {
        if (points.Count == 0) throw new ArgumentException("No points.", nameof(points));
        int dims = points[0].X.Length;
        var w = new double[dims];
        double b = 0;
        var errors = new List<int>();
        for (int epoch = 0; epoch < maxEpochs; epoch++)
        {
            int mistakes = 0;
            foreach (var p in points)
            {
                double s = b;
                for (int i = 0; i < dims; i++) s += w[i] * p.X[i];
                int answer = s > 0 ? 1 : -1;
                if (answer == p.Label) continue;
                mistakes++;
                for (int i = 0; i < dims; i++) w[i] += rate * p.Label * p.X[i];
                b += rate * p.Label;
            }
            errors.Add(mistakes);
            if (mistakes == 0) break;
        }
        return new PerceptronResult(w, b, errors);
    }

    /// <summary>Two Gaussian clusters around (-1.5, -1) (label -1) and (1.5, 1) (label +1), spread 0.5: a line separates them.</summary>
    public static IReadOnlyList<LabelledPoint> Separable(int count = 100, int seed = 1)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(i =>
        {
            int label = i % 2 == 0 ? 1 : -1;
            return new LabelledPoint([(float)(1.5 * label + 0.5 * Gaussian(random)), (float)(label + 0.5 * Gaussian(random))], label);
        }).ToList();
    }

    /// <summary>XOR-like data: four clusters at (±1, ±1), labelled +1 where x and y have the same sign: no line separates them.</summary>
    public static IReadOnlyList<LabelledPoint> Xor(int count = 100, int seed = 1)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(i =>
        {
            int sx = i % 2 == 0 ? 1 : -1, sy = i / 2 % 2 == 0 ? 1 : -1;
            return new LabelledPoint([(float)(sx + 0.35 * Gaussian(random)), (float)(sy + 0.35 * Gaussian(random))], sx == sy ? 1 : -1);
        }).ToList();
    }

    private static double Gaussian(Random random) => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    private sealed class BinaryRow
    {
        public bool Label { get; set; }

        [VectorType(2)]
        public float[] Features { get; set; } = [];
    }

    /// <summary>ML.NET's L-BFGS logistic regression on the points: its weights, bias and training accuracy.</summary>
    public static (double[] Weights, double Bias, double Accuracy) Logistic(MLContext ml, IReadOnlyList<LabelledPoint> points)
    {
        var data = ml.Data.LoadFromEnumerable(points.Select(p => new BinaryRow { Label = p.Label > 0, Features = p.X }));
        var model = ml.BinaryClassification.Trainers.LbfgsLogisticRegression().Fit(data);
        var linear = model.Model.SubModel;
        double accuracy = ml.BinaryClassification.Evaluate(model.Transform(data)).Accuracy;
        return (linear.Weights.Select(w => (double)w).ToArray(), linear.Bias, accuracy);
    }

    private static double Accuracy(PerceptronResult unit, IReadOnlyList<LabelledPoint> points) => points.Count(p => unit.Predict(p.X) == p.Label) / (double)points.Count;

    private static void AddBoundary(Plot plot, double[] w, double b, string name, Color color, LinePattern pattern, double xMin, double xMax)
    {
        if (Math.Abs(w[1]) < 1e-9) return;
        var line = plot.Add.Line(xMin, -(b + w[0] * xMin) / w[1], xMax, -(b + w[0] * xMax) / w[1]);
        line.Color = color;
        line.LineWidth = 2.5f;
        line.LinePattern = pattern;
        line.LegendText = name;
    }

    private static CourseExperiment Rule(CourseRun run)
    {
        const int maxEpochs = 100;
        var sets = new[] { ("two separable clusters", Separable(100, run.Seed)), ("XOR-like, not separable", Xor(100, run.Seed)) };
        var plots = new List<Plot>();
        var rows = new List<IReadOnlyList<string>>();
        var units = new List<PerceptronResult>();
        var errorsPlot = new Plot();
        for (int s = 0; s < sets.Length; s++)
        {
            var (name, points) = sets[s];
            var unit = Train(points, maxEpochs);
            var logistic = Logistic(run.Ml, points);
            units.Add(unit);
            var plot = PointCharts.Scatter(points.Select(p => p.X).ToList(), points.Select(p => p.Label > 0 ? 1 : 0).ToList(),
                $"{name}\nperceptron {P(Accuracy(unit, points), 0)}, logistic regression {P(logistic.Accuracy, 0)} right", 6);
            AddBoundary(plot, unit.Weights, unit.Bias, $"perceptron ({(unit.Converged ? $"converged in {unit.ErrorsPerEpoch.Count} passes" : $"still {unit.ErrorsPerEpoch[^1]} mistakes after {maxEpochs}")})",
                Colors.Black, LinePattern.Solid, -3, 3);
            AddBoundary(plot, logistic.Weights, logistic.Bias, $"logistic regression (ML.NET), {P(logistic.Accuracy, 0)}", Colors.Magenta, LinePattern.Dashed, -3, 3);
            plot.Axes.SetLimits(-3, 3, -3, 3);
            plot.ShowLegend(Alignment.UpperLeft);
            plots.Add(plot);
            var line = errorsPlot.Add.Scatter(Enumerable.Range(1, unit.ErrorsPerEpoch.Count).Select(e => (double)e).ToArray(), unit.ErrorsPerEpoch.Select(e => (double)e).ToArray());
            line.LegendText = name;
            line.Color = PointCharts.ClassColor(s + 2);
            line.LineWidth = 2;
            rows.Add([name, unit.Converged ? $"yes, {unit.ErrorsPerEpoch.Count} passes" : $"no ({maxEpochs} passes)", unit.ErrorsPerEpoch[^1].ToString(),
                P(Accuracy(unit, points), 0), P(logistic.Accuracy, 0)]);
            run.Log.WriteLine($"perceptron on {name}: errors per pass {string.Join(" ", unit.ErrorsPerEpoch.Take(12))}{(unit.ErrorsPerEpoch.Count > 12 ? " ..." : "")}");
        }
        errorsPlot.Title("Mistakes in each pass over the data");
        errorsPlot.XLabel("pass (epoch)");
        errorsPlot.YLabel("misclassified points");
        errorsPlot.ShowLegend(Alignment.UpperRight);
        plots.Add(errorsPlot);
        var path = Path.Combine(run.Output, "perceptron-rule.png");
        PlotGrid.Save(path, plots, 3, 480, 440, "A threshold unit trained with the perceptron rule, beside logistic regression");
        bool agrees = units[0].Converged && units[0].ErrorsPerEpoch[^1] == 0 && !units[1].Converged;
        return new CourseExperiment("The perceptron rule: separable and not",
            "The perceptron rule finds a separating line in a finite number of passes when one exists (the convergence theorem); when the classes " +
            "are not linearly separable, as in XOR, it never stops making mistakes, and no single unit, logistic regression included, does much better than half right.",
            $"Separable clusters: {(units[0].Converged ? $"no mistakes after {units[0].ErrorsPerEpoch.Count} passes" : "not converged")}; XOR-like: " +
            $"{units[1].ErrorsPerEpoch[^1]} mistakes still in pass {units[1].ErrorsPerEpoch.Count}.",
            agrees, [path],
            [new CourseTable("Perceptron rule (rate 1, weights from 0) and ML.NET's LbfgsLogisticRegression, 100 points each",
                ["data", "converged", "mistakes in last pass", "perceptron accuracy", "logistic accuracy"], rows)],
            $"mlnetdeep course perceptron{run.QuickFlag} -o report");
    }

    /// <summary>The activation functions of the course, each as a TorchSharp function of a tensor.</summary>
    public static IReadOnlyList<(string Name, Func<Tensor, Tensor> Function)> ActivationFunctions { get; } =
    [
        ("step", x => (x.sign() + 1) / 2),
        ("sigmoid", x => x.sigmoid()),
        ("tanh", x => x.tanh()),
        ("ReLU", x => nn.functional.relu(x)),
        ("leaky ReLU (0.1)", x => nn.functional.leaky_relu(x, 0.1)),
        ("ELU", x => nn.functional.elu(x, 1.0)),
        ("softplus", x => nn.functional.softplus(x)),
        ("swish (SiLU)", x => nn.functional.silu(x)),
    ];

    /// <summary>Each activation and its derivative (by autograd) at <paramref name="xs"/>.</summary>
    public static IReadOnlyList<(string Name, double[] Values, double[] Derivatives)> Evaluate(double[] xs)
    {
        Native.TorchRuntime.EnsureLoaded();
        var results = new List<(string, double[], double[])>();
        foreach (var (name, function) in ActivationFunctions)
        {
            using var scope = NewDisposeScope();
            var x = tensor(xs, float64).requires_grad_(true);
            var y = function(x);
            y.sum().backward();
            results.Add((name, y.detach().data<double>().ToArray(), x.grad!.data<double>().ToArray()));
        }
        return results;
    }

    private static CourseExperiment Activations(CourseRun run)
    {
        var xs = Enumerable.Range(0, 401).Select(i => -4 + 8 * i / 400.0).ToArray();
        var curves = Evaluate(xs);
        var plots = new List<Plot>();
        foreach (var (name, values, derivatives) in curves)
        {
            var plot = new Plot();
            var f = plot.Add.ScatterLine(xs, values);
            f.LegendText = name;
            f.LineWidth = 2.5f;
            f.Color = PointCharts.ClassColor(0);
            var d = plot.Add.ScatterLine(xs, derivatives);
            d.LegendText = "derivative (autograd)";
            d.LineWidth = 2;
            d.LinePattern = LinePattern.Dashed;
            d.Color = PointCharts.ClassColor(3);
            plot.Axes.SetLimits(-4, 4, -1.5, 2.5);
            plot.Title(name);
            plot.ShowLegend(Alignment.UpperLeft);
            plots.Add(plot);
        }
        var path = Path.Combine(run.Output, "perceptron-activations.png");
        PlotGrid.Save(path, plots, 4, 340, 300, "Activation functions (solid) and their derivatives from TorchSharp's autograd (dashed)");
        double[] at = [-2, -0.5, 0.5, 2];
        var table = Evaluate(at);
        var sigmoid = Evaluate([0]).Single(c => c.Name == "sigmoid").Derivatives[0];
        var step = table.Single(c => c.Name == "step").Derivatives;
        var relu = table.Single(c => c.Name == "ReLU").Derivatives;
        bool agrees = Math.Abs(sigmoid - 0.25) < 1e-9 && step.All(v => v == 0) && relu[0] == 0 && relu[3] == 1;
        return new CourseExperiment("Activation functions and their derivatives",
            "The step function's derivative is zero wherever it is defined, so gradient descent cannot learn through it; smooth functions " +
            "(sigmoid, tanh, softplus, swish) have useful slopes, sigmoid's at most 1/4; ReLU passes the gradient unchanged for positive inputs and blocks it for negative ones, " +
            "which leaky ReLU and ELU soften.",
            $"Autograd gives the step a zero derivative everywhere, sigmoid's derivative at 0 is {F(sigmoid, "F4")}, ReLU's is {F(relu[0], "F0")} at -2 and {F(relu[3], "F0")} at 2.",
            agrees, [path],
            [new CourseTable("Value and derivative (autograd) at four inputs", ["function", .. at.SelectMany(a => new[] { $"f({F(a, "G3")})", $"f'({F(a, "G3")})" })],
                table.Select(c => (IReadOnlyList<string>)[c.Name, .. c.Values.Zip(c.Derivatives).SelectMany(p => new[] { F(p.First, "F3"), F(p.Second, "F3") })]).ToList())],
            $"mlnetdeep course perceptron{run.QuickFlag} -o report");
    }

    /// <summary>The softmax of <paramref name="scores"/> computed by hand: exp, sum, divide (the largest score subtracted first).</summary>
    public static double[] SoftmaxByHand(IReadOnlyList<double> scores)
    {
        double max = scores.Max();
        var e = scores.Select(s => Math.Exp(s - max)).ToArray();
        double sum = e.Sum();
        return e.Select(v => v / sum).ToArray();
    }

    private static CourseExperiment Softmax(CourseRun run)
    {
        double[] scores = [2.0, 1.0, 0.1, -1.0];
        string[] classes = ["cat", "dog", "bird", "fish"];
        var byHand = SoftmaxByHand(scores);
        var scaled = SoftmaxByHand(scores.Select(s => 3 * s).ToArray());
        var shifted = SoftmaxByHand(scores.Select(s => s + 10).ToArray());
        Native.TorchRuntime.EnsureLoaded();
        double[] torchValues;
        using (NewDisposeScope())
            torchValues = tensor(scores, float64).softmax(0).data<double>().ToArray();
        double sumExp = scores.Sum(Math.Exp);
        var rows = classes.Select((c, i) => (IReadOnlyList<string>)[c, F(scores[i], "F1"), F(Math.Exp(scores[i]), "F3"), F(byHand[i], "F4"), F(torchValues[i], "F4"),
            F(shifted[i], "F4"), F(scaled[i], "F4")]).Append(["sum", "", F(sumExp, "F3"), F(byHand.Sum(), "F4"), F(torchValues.Sum(), "F4"), F(shifted.Sum(), "F4"), F(scaled.Sum(), "F4")]).ToList();
        double worst = byHand.Zip(torchValues).Max(p => Math.Abs(p.First - p.Second));
        bool order = Enumerable.Range(1, scores.Length - 1).All(i => byHand[i] < byHand[i - 1]);
        bool agrees = Math.Abs(byHand.Sum() - 1) < 1e-12 && worst < 1e-12 && order && byHand.Zip(shifted).All(p => Math.Abs(p.First - p.Second) < 1e-12) && scaled[0] > byHand[0];
        return new CourseExperiment("Softmax, worked",
            "Softmax turns a network's scores into probabilities: exponentiate, then divide by the sum. They add up to 1, keep the scores' order, " +
            "do not change when every score moves by the same amount, and grow more decisive when the scores are spread further apart.",
            $"Scores 2, 1, 0.1, -1 give {string.Join(", ", byHand.Select(v => F(v, "F3")))} (sum {F(byHand.Sum(), "F3")}); TorchSharp's softmax differs by at most {worst:G2}; " +
            $"adding 10 changes nothing; tripling the scores raises the top class from {F(byHand[0], "F3")} to {F(scaled[0], "F3")}.",
            agrees, [],
            [new CourseTable("Softmax of four class scores", ["class", "score", "e^score", "softmax (by hand)", "softmax (TorchSharp)", "scores + 10", "scores x 3"], rows)],
            $"mlnetdeep course perceptron{run.QuickFlag} -o report");
    }
}
