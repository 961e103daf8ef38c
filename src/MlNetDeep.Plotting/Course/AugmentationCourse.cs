using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Training;
using static TorchSharp.torch;

namespace MlNetDeep.Plotting.Course;

/// <summary>Settings of the augmentation experiment.</summary>
public sealed class AugmentationSettings
{
    /// <summary>MNIST training images (the first N).</summary>
    public int TrainRows { get; set; } = 1_000;

    /// <summary>MNIST test images scored.</summary>
    public int TestRows { get; set; } = 10_000;

    /// <summary>Epochs of each CNN run (both runs see the same number of batches).</summary>
    public int Epochs { get; set; } = 20;

    /// <summary>Test images scored after each epoch for the accuracy curve (the first N of the test set).</summary>
    public int CurveRows { get; set; } = 1_000;

    /// <summary>The augmentation drawn per image and epoch.</summary>
    public ImageAugmentationOptions Augmentation { get; set; } = new() { MaxRotationDegrees = 12, MinScale = 0.9, MaxScale = 1.1, MaxShiftFraction = 0.1 };
}

/// <summary>What the augmentation experiment measured.</summary>
public sealed record AugmentationResult(double PlainAccuracy, double AugmentedAccuracy, IReadOnlyList<string> Files);

/// <summary>Data preparation: augmentation (CNN on 1,000 MNIST images with and without), key/one-hot encoding and normalisation examples.</summary>
public static class AugmentationCourse
{
    /// <summary>Trains Keras' MNIST CNN with and without augmentation, prints both test accuracies, writes a preview and the curves.</summary>
    public static AugmentationResult Run(MLContext ml, AugmentationSettings settings, string output, TextWriter log, IProgress<TrainingProgress>? progress = null)
    {
        var train = ml.Data.Cache(ml.Data.LoadMnist(MnistSplit.Train, maxRows: settings.TrainRows));
        var test = ml.Data.Cache(ml.Data.LoadMnist(MnistSplit.Test, maxRows: settings.TestRows));
        var curveData = ml.Data.LoadMnist(MnistSplit.Test, maxRows: Math.Min(settings.CurveRows, settings.TestRows));
        var augmentation = new ImageAugmentation(settings.Augmentation);
        var files = new List<string> { Preview(train, augmentation, Path.Combine(output, "augmentation-preview.png")) };

        var accuracies = new double[2];
        var histories = new TrainingHistory[2];
        for (int run = 0; run < 2; run++)
        {
            var options = new NeuralNetworkClassifierOptions
            {
                FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Network = Networks.Networks.KerasMnistCnn, Epochs = settings.Epochs, BatchSize = 32,
                TrainingInputTransform = run == 1 ? augmentation : null, ValidationData = curveData, Progress = progress, Seed = 1,
            };
            var model = ml.MulticlassClassification.Trainers.ConvolutionalNetwork(options).Fit(train);
            accuracies[run] = ml.MulticlassClassification.Evaluate(model.Transform(test)).MicroAccuracy;
            histories[run] = model.History!;
            log.WriteLine($"CNN on {settings.TrainRows:N0} images, {settings.Epochs} epochs, {(run == 1 ? "with" : "without")} augmentation: test accuracy {accuracies[run]:P2} ({settings.TestRows:N0} test images)");
        }
        var plot = new ScottPlot.Plot();
        for (int run = 0; run < 2; run++)
        {
            var x = histories[run].Epochs.Select(e => (double)e.Epoch + 1).ToArray();
            var line = plot.Add.Scatter(x, histories[run].Epochs.Select(e => e.ValidationAccuracy ?? double.NaN).ToArray());
            line.LegendText = (run == 1 ? "with augmentation" : "without augmentation") + $" (final {accuracies[run]:P2})";
            line.LineWidth = 2;
            line.MarkerSize = 0;
        }
        plot.Title($"CNN on {settings.TrainRows:N0} MNIST images: accuracy per epoch on the first {settings.CurveRows:N0} test images");
        plot.XLabel("epoch");
        plot.YLabel("accuracy");
        plot.ShowLegend(ScottPlot.Alignment.LowerRight);
        var curves = Path.Combine(output, "augmentation-test-accuracy.png");
        Charts.Save(plot, curves, 900, 500);
        files.Add(curves);
        foreach (var f in files) log.WriteLine($"Wrote {f}");
        return new AugmentationResult(accuracies[0], accuracies[1], files);
    }

    /// <summary>Eight training digits (first column) and five augmented variants of each.</summary>
    public static string Preview(IDataView data, ImageAugmentation augmentation, string path, int seed = 1)
    {
        Native.TorchRuntime.EnsureLoaded();
        var digits = KMeansCourse.TestColumn(data, "Pixels").Take(8).ToList();
        using var scope = NewDisposeScope();
        var batch = tensor(digits.SelectMany(d => d).ToArray(), [digits.Count, 1, 28, 28]);
        using var generator = new Generator((ulong)seed);
        var variants = Enumerable.Range(0, 5).Select(_ => augmentation.Apply(batch, generator).reshape(digits.Count, 784).data<float>().ToArray()).ToList();
        var tiles = new List<float[]>();
        var captions = new List<string>();
        for (int i = 0; i < digits.Count; i++)
        {
            tiles.Add(digits[i]);
            captions.Add("original");
            for (int v = 0; v < variants.Count; v++)
            {
                tiles.Add(variants[v].AsSpan(i * 784, 784).ToArray());
                captions.Add($"variant {v + 1}");
            }
        }
        ImageGrid.Save(path, tiles, 28, 28, 12, scale: 3, captions: captions, title: "Augmentation: each original and five random variants (rotation, zoom, shift)");
        return path;
    }

    /// <summary>
    /// Prints ML.NET's own data-preparation transforms at work: a text category as a key and as a one-hot vector, and image
    /// vectors normalised min-max and mean-variance.
    /// </summary>
    public static void DataPreparation(MLContext ml, TextWriter log)
    {
        var colours = ml.Data.LoadFromEnumerable(new[] { "red", "green", "blue", "green" }.Select(c => new Colour { Name = c }));
        var encoded = ml.Transforms.Conversion.MapValueToKey("Key", "Name")
            .Append(ml.Transforms.Categorical.OneHotEncoding("OneHot", "Name")).Fit(colours).Transform(colours);
        var keys = encoded.GetColumn<uint>("Key").ToArray();
        var oneHot = encoded.GetColumn<VBuffer<float>>("OneHot").Select(v => v.DenseValues().ToArray()).ToArray();
        log.WriteLine("Key and one-hot encoding (ML.NET MapValueToKey, OneHotEncoding):");
        var names = colours.GetColumn<string>("Name").ToArray();
        for (int i = 0; i < names.Length; i++) log.WriteLine($"  {names[i],-6} -> key {keys[i]}, one-hot [{string.Join(", ", oneHot[i])}]");

        var digits = ml.Data.LoadMnist(MnistSplit.Test, maxRows: 1000);
        var normalised = ml.Transforms.NormalizeMinMax("MinMax", "Pixels")
            .Append(ml.Transforms.NormalizeMeanVariance("MeanVariance", "Pixels")).Fit(digits).Transform(digits);
        foreach (var column in new[] { "Pixels", "MinMax", "MeanVariance" })
        {
            var values = normalised.GetColumn<VBuffer<float>>(column).SelectMany(v => v.DenseValues().Skip(14 * 28).Take(28)).ToArray();
            double mean = values.Average(), std = Math.Sqrt(values.Average(v => (v - mean) * (v - mean)));
            log.WriteLine($"  {column,-12}: middle image row over 1,000 test digits: min {values.Min():F3}, max {values.Max():F3}, mean {mean:F3}, std {std:F3}");
        }
    }

    private sealed class Colour { public string Name { get; set; } = ""; }
}
