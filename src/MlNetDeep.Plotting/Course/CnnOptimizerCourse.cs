using System.Diagnostics;
using Microsoft.ML;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Training;
using ScottPlot;
using static MlNetDeep.Plotting.Course.CourseReport;

namespace MlNetDeep.Plotting.Course;

/// <summary>One optimiser's short run of Keras' MNIST CNN.</summary>
public sealed record CnnOptimizerResult(string Optimizer, OptimizerSpec Spec, double TestAccuracy, double Seconds, TrainingHistory History);

/// <summary>
/// The course's own CNN configuration (Keras' MNIST example: two convolutions, max pooling, dropout, batch 128, Adadelta)
/// trained briefly with each optimiser the <c>train mnist --optimizer</c> option offers.
/// </summary>
public static class CnnOptimizerCourse
{
    /// <summary>The chapter: one experiment.</summary>
    public static CourseChapter Chapter { get; } = new("cnn", "The course's CNN and its optimiser",
        "Keras' MNIST CNN as the workshop configures it (batch 128, Adadelta), against Adam, SGD and RMSprop in a short measured run. " +
        "The full comparison is 12 epochs on 60,000 images: mlnetdeep train mnist --model cnn --optimizer adadelta (about 10 minutes on 2 CPU cores per optimiser).",
        [Compare]);

    /// <summary>Trains the CNN once per optimiser on the first <paramref name="rows"/> training images and scores the first <paramref name="testRows"/> test images.</summary>
    public static IReadOnlyList<CnnOptimizerResult> Run(MLContext ml, int rows, int epochs, int testRows, TextWriter log, int seed = 1,
        IReadOnlyList<(string Name, OptimizerSpec Spec)>? optimizers = null)
    {
        optimizers ??= OptimizerSpec.Names.Select(n => (n, n == "sgd" ? OptimizerSpec.FromName(n, momentum: 0.9) : OptimizerSpec.FromName(n))).ToList();
        var train = ml.Data.Cache(ml.Data.LoadMnist(MnistSplit.Train, maxRows: rows));
        var test = ml.Data.Cache(ml.Data.LoadMnist(MnistSplit.Test, maxRows: testRows));
        var results = new List<CnnOptimizerResult>();
        foreach (var (name, spec) in optimizers)
        {
            var clock = Stopwatch.StartNew();
            var model = ml.MulticlassClassification.Trainers.ConvolutionalNetwork(new NeuralNetworkClassifierOptions
            {
                FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Network = Networks.Networks.KerasMnistCnn, Epochs = epochs, BatchSize = 128,
                Optimizer = spec, Seed = seed, ValidationData = test,
            }).Fit(train);
            double seconds = clock.Elapsed.TotalSeconds;
            double accuracy = ml.MulticlassClassification.Evaluate(model.Transform(test)).MicroAccuracy;
            results.Add(new CnnOptimizerResult(name, spec, accuracy, seconds, model.History!));
            log.WriteLine($"CNN, {name,-8} ({Describe(spec)}): {epochs} epochs on {rows:N0} images in {seconds:F1} s, test accuracy {accuracy:P2}");
        }
        return results;
    }

    /// <summary>The optimiser and its settings in words.</summary>
    public static string Describe(OptimizerSpec spec) => spec switch
    {
        Sgd s => $"SGD lr {s.LearningRate:G3}" + (s.Momentum > 0 ? $", momentum {s.Momentum:G3}" : ""),
        Adam a => $"Adam lr {a.LearningRate:G3}",
        Adadelta d => $"Adadelta lr {d.LearningRate:G3}, rho {d.Rho:G3}",
        RmsProp r => $"RMSprop lr {r.LearningRate:G3}",
        _ => spec.GetType().Name,
    };

    private static CourseExperiment Compare(CourseRun run)
    {
        int rows = run.Quick ? 1_000 : 2_000, epochs = 2, testRows = run.Quick ? 1_000 : 2_000;
        var results = Run(run.Ml, rows, epochs, testRows, run.Log, run.Seed);
        var plot = new Plot();
        plot.Add.Bars(results.Select(r => r.TestAccuracy).ToArray());
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, results.Count).Select(i => (double)i).ToArray(),
            results.Select(r => $"{r.Optimizer}\n{r.TestAccuracy:P1}, {r.Seconds:F0} s").ToArray());
        plot.Axes.SetLimitsY(0, 1);
        plot.Axes.Margins(bottom: 0);
        plot.Title($"Keras' MNIST CNN, batch 128, {epochs} epoch(s) on {rows:N0} images: test accuracy ({testRows:N0} images)");
        plot.YLabel("test accuracy");
        var path = Path.Combine(run.Output, "cnn-optimizers.png");
        Charts.Save(plot, path, 900, 520);
        var adadelta = results.Single(r => r.Optimizer == "adadelta");
        var adam = results.Single(r => r.Optimizer == "adam");
        var learnt = results.Where(r => r.TestAccuracy > 0.2).Select(r => r.Optimizer).ToList();
        var behind = results.Where(r => r.TestAccuracy <= 0.2).Select(r => r.Optimizer).ToList();
        bool agrees = behind.Count == 0;
        long updates = (long)epochs * ((rows + 127) / 128);
        return new CourseExperiment($"Optimisers on the CNN: {epochs} epoch(s), {rows:N0} images",
            "The workshop trains this CNN with Adadelta (no learning rate to tune) for 12 epochs and reaches about 99 % on MNIST's test set; " +
            "any of the usual optimisers trains it, at different speeds in the first epochs.",
            $"After {epochs} epoch(s) on {rows:N0} images: Adadelta {P(adadelta.TestAccuracy)}, Adam {P(adam.TestAccuracy)}, " +
            string.Join(", ", results.Where(r => r.Optimizer is not ("adam" or "adadelta")).Select(r => $"{r.Optimizer} {P(r.TestAccuracy)}")) +
            $" after {updates} updates. " +
            (behind.Count == 0 ? "Every one learns (well above the 10 % of guessing)" : $"{string.Join(", ", behind)} {(behind.Count == 1 ? "is" : "are")} still near guessing (10 %) after so few updates, while {string.Join(", ", learnt)} learn") +
            "; this short run ranks their start, not their end: the 12-epoch run is mlnetdeep train mnist --model cnn --optimizer adadelta.",
            agrees, [path],
            [new CourseTable($"Keras' MNIST CNN, batch 128, {epochs} epoch(s), {rows:N0} training images, {testRows:N0} test images",
                ["optimizer", "settings", "seconds", "test accuracy"],
                results.Select(r => (IReadOnlyList<string>)[r.Optimizer, Describe(r.Spec), F(r.Seconds, "F1"), P(r.TestAccuracy, 2)]).ToList())],
            $"mlnetdeep course cnn{run.QuickFlag} -o report\n" +
            string.Join("\n", results.Select(r => $"mlnetdeep train mnist --model cnn --optimizer {r.Optimizer}{(r.Spec is Sgd { Momentum: > 0 } s ? $" --momentum {s.Momentum}" : "")} --epochs {epochs} --train-rows {rows}")));
    }
}
