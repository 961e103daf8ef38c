using System.Diagnostics;
using Microsoft.ML;
using MlNetDeep.Classical;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Training;

namespace MlNetDeep.Plotting.Course;

/// <summary>Settings of the PCA experiments.</summary>
public sealed class PcaSettings
{
    /// <summary>MNIST training images used (to fit PCA and to train the networks).</summary>
    public int TrainRows { get; set; } = 10_000;

    /// <summary>MNIST test images used (reconstruction error, accuracy).</summary>
    public int TestRows { get; set; } = 10_000;

    /// <summary>Components kept in the reconstruction figure.</summary>
    public int[] ReconstructionComponents { get; set; } = [12, 50, 100];

    /// <summary>Components of the PCA(k) -> network pipeline.</summary>
    public int PipelineComponents { get; set; } = 50;

    /// <summary>Hidden units of the small network.</summary>
    public int HiddenUnits { get; set; } = 64;

    /// <summary>Training epochs of each network.</summary>
    public int Epochs { get; set; } = 10;
}

/// <summary>One network of the PCA comparison.</summary>
public sealed record PcaNetworkResult(string Name, double TestAccuracy, double TrainSeconds, long Parameters);

/// <summary>What the PCA experiments measured.</summary>
public sealed record PcaResult(IReadOnlyList<(int Components, double Error)> ReconstructionErrors, IReadOnlyList<double> CumulativeVariance,
    PcaNetworkResult Raw, PcaNetworkResult Projected, IReadOnlyList<string> Files);

/// <summary>PCA on MNIST: eigen-digits, reconstructions, explained variance, and PCA(k) -> network vs raw pixels.</summary>
public static class PcaCourse
{
    /// <summary>Runs the PCA experiments and writes their PNGs.</summary>
    public static PcaResult Run(MLContext ml, PcaSettings settings, string output, TextWriter log, IProgress<TrainingProgress>? progress = null)
    {
        var train = ml.Data.Cache(ml.Data.LoadMnist(MnistSplit.Train, maxRows: settings.TrainRows));
        var test = ml.Data.Cache(ml.Data.LoadMnist(MnistSplit.Test, maxRows: settings.TestRows));
        var clock = Stopwatch.StartNew();
        var pca = PrincipalComponents.Fit(train, "Pixels", Mnist.PixelCount);
        log.WriteLine($"Exact PCA of {settings.TrainRows:N0} MNIST images (784x784 covariance eigen-decomposition): {clock.Elapsed.TotalSeconds:F1} s");
        var files = new List<string>();

        var eigen = Path.Combine(output, "pca-eigendigits.png");
        var cumulative = pca.CumulativeExplainedVariance();
        ImageGrid.Save(eigen, pca.Components.Take(20).ToList(), Mnist.Side, Mnist.Side, 10, scale: 4,
            captions: Enumerable.Range(0, 20).Select(i => $"PC{i + 1} {100 * pca.Variances[i] / pca.TotalVariance:F1}%").ToList(),
            title: "The first 20 principal components of MNIST (eigen-digits), share of variance", min: null, max: null);
        files.Add(eigen);

        var testRows = KMeansCourse.TestColumn(test, "Pixels");
        var shown = testRows.Take(8).ToList();
        var tiles = new List<float[]>();
        var captions = new List<string>();
        foreach (var row in shown)
        {
            tiles.Add(row);
            captions.Add("original");
            foreach (int k in settings.ReconstructionComponents)
            {
                tiles.Add(pca.Reconstruct(row, k));
                captions.Add($"{k} comp.");
            }
        }
        var reconstructions = Path.Combine(output, "pca-reconstructions.png");
        ImageGrid.Save(reconstructions, tiles, Mnist.Side, Mnist.Side, 2 * (1 + settings.ReconstructionComponents.Length), scale: 3, captions: captions,
            title: "Test digits and their reconstructions from " + string.Join(", ", settings.ReconstructionComponents) + " components");
        files.Add(reconstructions);

        var errors = new List<(int, double)>();
        foreach (int k in new[] { 1, 5, 12, 25, 50, 100, 200, 400, 784 })
        {
            double e = pca.ReconstructionError(testRows, k);
            errors.Add((k, e));
            log.WriteLine($"components {k,3}: explained variance {100 * cumulative[k - 1],6:F2}%   test reconstruction MSE per pixel {e:F5}");
        }
        var variance = Path.Combine(output, "pca-explained-variance.png");
        Charts.Lines(variance, "MNIST: cumulative explained variance", "components", "fraction of variance",
            [new Charts.Series("cumulative explained variance", Enumerable.Range(1, cumulative.Length).Select(i => (double)i).ToList(), cumulative)]);
        files.Add(variance);

        var raw = TrainNetwork(ml, train, test, settings, null, log, progress);
        var projected = TrainNetwork(ml, train, test, settings, settings.PipelineComponents, log, progress);
        foreach (var f in files) log.WriteLine($"Wrote {f}");
        return new PcaResult(errors, cumulative, raw, projected, files);
    }

    private static PcaNetworkResult TrainNetwork(MLContext ml, IDataView train, IDataView test, PcaSettings settings, int? components, TextWriter log, IProgress<TrainingProgress>? progress)
    {
        var network = Networks.Networks.Mlp(settings.HiddenUnits);
        var options = new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = components is null ? "Pixels" : "Features", Network = network, Epochs = settings.Epochs, BatchSize = 64, Progress = progress,
        };
        var trainer = ml.MulticlassClassification.Trainers.NeuralNetwork(options);
        IEstimator<ITransformer> pipeline = components is { } k
            ? ml.Transforms.ProjectToPrincipalComponents("Features", "Pixels", rank: k)
                .Append(ml.Transforms.NormalizeMeanVariance("Features"))
                .Append(trainer)
            : trainer;
        var clock = Stopwatch.StartNew();
        var model = pipeline.Fit(train);
        double seconds = clock.Elapsed.TotalSeconds;
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
        long parameters = network.WithTaskOutputs(10).ParameterCount([components ?? Mnist.PixelCount]);
        string name = components is null ? $"raw 784 pixels -> MLP({settings.HiddenUnits})" : $"PCA({components}) -> MLP({settings.HiddenUnits})";
        log.WriteLine($"{name,-28}: test accuracy {metrics.MicroAccuracy:P2}, fit {seconds:F1} s (PCA included), {parameters:N0} network parameters");
        return new PcaNetworkResult(name, metrics.MicroAccuracy, seconds, parameters);
    }
}
