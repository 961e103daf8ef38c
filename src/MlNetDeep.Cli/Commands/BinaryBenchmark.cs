using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Training;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// <c>mlnetdeep benchmark binary</c>: the binary neural-network trainer against ML.NET's LbfgsLogisticRegression and
/// FastTree on the breast cancer set, 5-fold cross-validation each (the same folds), accuracy and AUC as mean ± spread.
/// The network is tried after ML.NET's default NormalizeMeanVariance (fixZero: true) and after a standardisation
/// that centres the features (fixZero: false), to show what the scaling does to it.
/// </summary>
internal static class BinaryBenchmark
{
    public static Command Create()
    {
        var common = new CommonOptions();
        var folds = new Option<int>("--folds") { Description = "Cross-validation folds.", DefaultValueFactory = _ => 5 }.AtLeast(2);
        var epochs = new Option<int>("--epochs") { Description = "Epochs of the network.", DefaultValueFactory = _ => 60 }.AtLeast(1);
        var hidden = new Option<int>("--hidden") { Description = "Hidden units of the MLP.", DefaultValueFactory = _ => 32 }.AtLeast(1);
        var dropout = new Option<double>("--dropout") { Description = "Dropout after the hidden layer.", DefaultValueFactory = _ => 0 }.Fraction();
        var decay = new Option<double>("--weight-decay") { Description = "Adam's weight decay.", DefaultValueFactory = _ => 1e-2 }.NonNegative();
        var command = new Command("binary", "Binary classification on breast cancer: the neural network against LbfgsLogisticRegression and FastTree, k-fold CV.")
        {
            folds, epochs, hidden, dropout, decay,
        };
        common.AddTo(command);
        command.SetAction(result =>
        {
            var network = new NetworkSettings(result.GetValue(epochs), result.GetValue(hidden), result.GetValue(dropout), result.GetValue(decay));
            return Run(common.CreateContext(result), result.GetValue(folds), network, result.GetValue(common.Seed));
        });
        return command;
    }

    private sealed record NetworkSettings(int Epochs, int Hidden, double Dropout, double WeightDecay)
    {
        public override string ToString() => $"MLP({Hidden}{(Dropout > 0 ? $", dropout {Dropout}" : "")}), {Epochs} epochs";
    }

    private static int Run(MLContext ml, int folds, NetworkSettings network, int seed)
    {
        var data = ml.Data.LoadBreastCancer();
        Console.WriteLine($"Breast cancer (Wisconsin diagnostic): {BreastCancer.Rows} rows, {BreastCancer.FeatureCount} features; {folds}-fold CV (seed {seed}), the same folds for every trainer");
        var centred = ml.Transforms.NormalizeMeanVariance("Features", fixZero: false);
        var scaled = ml.Transforms.NormalizeMeanVariance("Features");
        var candidates = new (string Name, IEstimator<ITransformer> Pipeline)[]
        {
            ("LbfgsLogisticRegression (NormalizeMeanVariance)", scaled.Append(ml.BinaryClassification.Trainers.LbfgsLogisticRegression())),
            ("FastTree", ml.BinaryClassification.Trainers.FastTree()),
            ($"NeuralNetwork {network}, NormalizeMeanVariance (fixZero: true, the default)", scaled.Append(Network(ml, network))),
            ($"NeuralNetwork {network}, NormalizeMeanVariance (fixZero: false): the documented path", centred.Append(Network(ml, network))),
        };
        foreach (var (name, normaliser) in new[] { ("fixZero: true", scaled), ("fixZero: false", centred) })
        {
            var columns = normaliser.Fit(data).Transform(data).GetColumn<float[]>("Features").ToList();
            var means = Enumerable.Range(0, BreastCancer.FeatureCount).Select(j => columns.Average(r => r[j])).ToList();
            var spreads = Enumerable.Range(0, BreastCancer.FeatureCount).Select(j => Math.Sqrt(columns.Average(r => (r[j] - means[j]) * (r[j] - means[j])))).ToList();
            Console.WriteLine($"NormalizeMeanVariance ({name}): feature means {means.Min():F2} .. {means.Max():F2}, standard deviations {spreads.Min():F2} .. {spreads.Max():F2}");
        }
        var rows = new List<(string Name, double[] Accuracy, double[] Auc, double Seconds)>();
        foreach (var (name, pipeline) in candidates)
        {
            var clock = Stopwatch.StartNew();
            var results = ml.BinaryClassification.CrossValidate(data, pipeline, folds, "Label", seed: seed);
            clock.Stop();
            var accuracy = results.Select(r => r.Metrics.Accuracy).ToArray();
            var auc = results.Select(r => r.Metrics.AreaUnderRocCurve).ToArray();
            rows.Add((name, accuracy, auc, clock.Elapsed.TotalSeconds));
            Console.WriteLine($"{name}: accuracy per fold {string.Join(", ", accuracy.Select(a => a.ToString("P2")))}; AUC {string.Join(", ", auc.Select(a => a.ToString("F4")))} ({clock.Elapsed.TotalSeconds:F1} s)");
        }
        Console.WriteLine();
        Console.WriteLine($"{"trainer",-95} {"accuracy",-18} {"AUC",-18}");
        foreach (var (name, accuracy, auc, _) in rows)
            Console.WriteLine($"{name,-95} {Mean(accuracy):P2} ± {Spread(accuracy):P2}   {Mean(auc):F4} ± {Spread(auc):F4}");
        var reference = rows[0];
        var documented = rows[^1];
        Console.WriteLine($"documented network vs logistic regression: accuracy {Mean(documented.Accuracy) - Mean(reference.Accuracy):+0.00%;-0.00%}, AUC {Mean(documented.Auc) - Mean(reference.Auc):+0.0000;-0.0000}");
        return 0;
    }

    private static NeuralNetworkBinaryClassifier Network(MLContext ml, NetworkSettings settings) =>
        ml.BinaryClassification.Trainers.NeuralNetwork(new NeuralNetworkBinaryClassifierOptions
        {
            Network = Networks.Networks.Mlp([settings.Hidden], dropout: settings.Dropout), Epochs = settings.Epochs, BatchSize = 32,
            Optimizer = new Adam(1e-3, WeightDecay: settings.WeightDecay),
        });

    private static double Mean(double[] values) => values.Average();

    /// <summary>The sample standard deviation across folds.</summary>
    private static double Spread(double[] values)
    {
        double mean = values.Average();
        return Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / Math.Max(values.Length - 1, 1));
    }
}
