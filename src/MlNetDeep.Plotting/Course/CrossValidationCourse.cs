using Microsoft.ML;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Training;

namespace MlNetDeep.Plotting.Course;

/// <summary>Settings of the cross-validation and learning-curve experiments.</summary>
public sealed class CrossValidationSettings
{
    /// <summary>MNIST training images cross-validated (the first N).</summary>
    public int Rows { get; set; } = 5_000;

    /// <summary>Number of folds.</summary>
    public int Folds { get; set; } = 5;

    /// <summary>Epochs per fold.</summary>
    public int Epochs { get; set; } = 5;

    /// <summary>Training images of the overfitting (learning-curve) runs.</summary>
    public int OverfitRows { get; set; } = 1_000;

    /// <summary>Epochs of the overfitting runs.</summary>
    public int OverfitEpochs { get; set; } = 60;
}

/// <summary>What cross-validation and the learning curves measured.</summary>
public sealed record CrossValidationResult(IReadOnlyList<double> FoldAccuracies, double Mean, double StandardDeviation,
    IReadOnlyList<(string Name, TrainingHistory History)> Curves, string LearningCurvePath);

/// <summary>k-fold CrossValidate of the network trainer on MNIST, and learning curves with and without dropout and early stopping.</summary>
public static class CrossValidationCourse
{
    /// <summary>Runs both experiments; prints per-fold accuracy, mean and standard deviation; writes the learning-curve PNG.</summary>
    public static CrossValidationResult Run(MLContext ml, CrossValidationSettings settings, string output, TextWriter log, IProgress<TrainingProgress>? progress = null)
    {
        var data = ml.Data.Cache(ml.Data.LoadMnist(MnistSplit.Train, maxRows: settings.Rows));
        var trainer = ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", Network = Networks.Networks.Mlp(128), Epochs = settings.Epochs, BatchSize = 64, Progress = progress,
        });
        var folds = ml.MulticlassClassification.CrossValidate(data, trainer, numberOfFolds: settings.Folds);
        var accuracies = folds.Select(f => f.Metrics.MicroAccuracy).ToList();
        for (int i = 0; i < accuracies.Count; i++) log.WriteLine($"fold {i + 1}: accuracy {accuracies[i]:P2}");
        double mean = accuracies.Average();
        double std = Math.Sqrt(accuracies.Sum(a => (a - mean) * (a - mean)) / Math.Max(1, accuracies.Count - 1));
        log.WriteLine($"{settings.Folds}-fold cross-validation, MLP(128), {settings.Epochs} epochs, {settings.Rows:N0} images: mean {mean:P2} ± {std:P2} (sample std)");

        var split = ml.Data.TrainValidationTestSplit(ml.Data.LoadMnist(MnistSplit.Train, maxRows: settings.OverfitRows * 2), 0.25, 0.25, seed: 1);
        var curves = new List<(string, TrainingHistory)>();
        foreach (var (name, network, stopping) in new (string, NetworkSpec, EarlyStopping?)[]
        {
            ("MLP(512), plain", Networks.Networks.Mlp(512), null),
            ("MLP(512) + dropout 0.5", Networks.Networks.Mlp([512], dropout: 0.5), null),
            ("MLP(512) + early stopping", Networks.Networks.Mlp(512), new EarlyStopping(Patience: 5)),
        })
        {
            var model = ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
            {
                FeatureColumnName = "Pixels", Network = network, Epochs = settings.OverfitEpochs, BatchSize = 32,
                ValidationData = split.ValidationSet, EarlyStopping = stopping, Progress = progress,
            }).Fit(split.TrainSet);
            var history = model.History!;
            double test = ml.MulticlassClassification.Evaluate(model.Transform(split.TestSet)).MicroAccuracy;
            var best = history.Epochs.MinBy(e => e.ValidationLoss ?? double.MaxValue)!;
            log.WriteLine($"{name,-26}: {history.Epochs.Count} epochs, final train loss {history.Epochs[^1].TrainLoss:F4}, final validation loss {history.Epochs[^1].ValidationLoss:F4} " +
                $"(lowest {best.ValidationLoss:F4} at epoch {best.Epoch + 1}), kept epoch {history.WeightsEpoch + 1}, test accuracy {test:P2}");
            curves.Add((name, history));
        }
        var plot = new ScottPlot.Plot();
        for (int i = 0; i < curves.Count; i++)
        {
            var (name, history) = curves[i];
            var x = history.Epochs.Select(e => (double)e.Epoch + 1).ToArray();
            var train = plot.Add.Scatter(x, history.Epochs.Select(e => e.TrainLoss).ToArray());
            train.LegendText = $"{name}: train";
            train.Color = PointCharts.ClassColor(i);
            train.LinePattern = ScottPlot.LinePattern.Dashed;
            train.MarkerSize = 0;
            var validation = plot.Add.Scatter(x, history.Epochs.Select(e => e.ValidationLoss ?? double.NaN).ToArray());
            validation.LegendText = $"{name}: validation";
            validation.Color = PointCharts.ClassColor(i);
            validation.LineWidth = 2;
            validation.MarkerSize = 0;
        }
        plot.Title($"Learning curves on {settings.OverfitRows:N0} MNIST images: validation loss rises as training loss falls");
        plot.XLabel("epoch");
        plot.YLabel("cross-entropy loss");
        plot.Axes.SetLimitsY(0, 0.8);
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        var path = Path.Combine(output, "crossvalidation-learning-curves.png");
        Charts.Save(plot, path, 1000, 600);
        log.WriteLine($"Wrote {path}");
        return new CrossValidationResult(accuracies, mean, std, curves, path);
    }
}
