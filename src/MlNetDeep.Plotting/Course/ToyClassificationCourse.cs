using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Training;

namespace MlNetDeep.Plotting.Course;

/// <summary>One network on one toy data set: its test accuracy.</summary>
public sealed record ToyModelResult(string DataSet, string Model, double TestAccuracy);

/// <summary>Decision boundaries of a perceptron and MLPs on 2-D toy data, and the "collapse" of a deep network without activations.</summary>
public static class ToyClassificationCourse
{
    /// <summary>The networks compared: a perceptron, MLPs of one and two hidden layers, and a deep stack without activations.</summary>
    public static IReadOnlyList<(string Name, NetworkSpec Network)> Models { get; } =
    [
        ("perceptron (linear)", Networks.Networks.Linear),
        ("MLP 1 hidden x 4", Networks.Networks.Mlp(4, ActivationKind.Tanh)),
        ("MLP 1 hidden x 32", Networks.Networks.Mlp(32, ActivationKind.Tanh)),
        ("MLP 2 hidden x 16", Networks.Networks.Mlp([16, 16], ActivationKind.Tanh)),
        ("4 x 32, no activation", Networks.Networks.Mlp([32, 32, 32, 32], ActivationKind.None)),
    ];

    /// <summary>Trains every model on half-moons and circles, prints test accuracies and writes one decision-boundary PNG per data set.</summary>
    public static IReadOnlyList<ToyModelResult> Run(MLContext ml, string output, TextWriter log, int seed = 1, int epochs = 150)
    {
        var results = new List<ToyModelResult>();
        foreach (var (name, file, points, test) in new[]
        {
            ("half-moons", "toy-boundaries-moons.png", ToyData.HalfMoons(400, 0.2, seed), ToyData.HalfMoons(400, 0.2, seed + 1000)),
            ("circles", "toy-boundaries-circles.png", ToyData.Circles(400, 0.1, seed, 0.5), ToyData.Circles(400, 0.1, seed + 1000, 0.5)),
        })
        {
            var train = ml.Data.LoadFromEnumerable(points);
            var testData = ml.Data.LoadFromEnumerable(test);
            var grid = new DecisionGrid(ml, points);
            var plots = new List<ScottPlot.Plot>();
            foreach (var (modelName, network) in Models)
            {
                var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
                    .Append(ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
                    {
                        Network = network, Epochs = epochs, BatchSize = 32, Optimizer = new Adam(1e-2), Seed = seed,
                    }));
                var model = pipeline.Fit(train);
                double accuracy = ml.MulticlassClassification.Evaluate(model.Transform(testData)).MicroAccuracy;
                results.Add(new ToyModelResult(name, modelName, accuracy));
                log.WriteLine($"{name,-10} {modelName,-22}: test accuracy {accuracy:P1}");
                plots.Add(grid.Plot(model, points, $"{modelName}: test acc. {accuracy:P1}"));
            }
            var path = Path.Combine(output, file);
            PlotGrid.Save(path, plots, 3, 420, 380, $"{name}: decision regions (background: P(class 1)); a deep net without activations stays linear");
            log.WriteLine($"Wrote {path}");
        }
        return results;
    }
}
