using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Models.Anomaly;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Plotting;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// Autoencoder anomaly detection: <c>anomaly mnist</c> (one digit as the normal class: AUC beside ML.NET's
/// RandomizedPca, the saved detector, a PNG of the most anomalous test images with their reconstruction-error maps),
/// <c>anomaly breast-cancer</c>, and <c>benchmark anomaly</c> (every digit, the dense, convolutional and variational
/// detectors and RandomizedPca, then breast cancer, in one run).
/// </summary>
internal static class AnomalyCommands
{
    internal enum Family { Dense, Conv, Vae }

    internal sealed record Settings(int TrainRows, int TestRows, int DenseEpochs, int ConvEpochs, int VaeEpochs, int PcaRank, int Seed);

    public static Command Create()
    {
        var group = new Command("anomaly", "Anomaly detection with autoencoders (ml.AnomalyDetection.Trainers.Autoencoder) beside ML.NET's RandomizedPca.");
        group.Subcommands.Add(Mnist());
        group.Subcommands.Add(BreastCancerCommand());
        return group;
    }

    private static Command Mnist()
    {
        var common = new CommonOptions();
        var digit = new Option<int>("--normal-digit") { Description = "The digit that is normal (trained on); the other digits are anomalies.", DefaultValueFactory = _ => 0 }.AtLeast(0);
        var family = new Option<Family>("--kind") { Description = "The autoencoder underneath: dense, conv or vae.", DefaultValueFactory = _ => Family.Dense };
        var (trainRows, testRows, epochs) = SizeOptions();
        var quantile = new Option<double>("--threshold-quantile") { Description = "Training-score quantile that sets the threshold.", DefaultValueFactory = _ => 0.99 };
        var command = new Command("mnist", "One MNIST digit as the normal class: AUC and detection rate beside RandomizedPca; saves the detector and a PNG of error maps.")
        {
            digit, family, trainRows, testRows, epochs, quantile,
        };
        common.AddTo(command);
        command.SetAction(result =>
        {
            int d = result.GetValue(digit);
            if (d > 9) throw new ArgumentException($"--normal-digit must be 0 to 9, not {d}.");
            double q = result.GetValue(quantile);
            if (!(q > 0 && q < 1)) throw new ArgumentException($"--threshold-quantile must be in (0, 1), not {q}.");
            var ml = common.CreateContext(result);
            var kind = result.GetValue(family);
            int e = result.GetValue(epochs) ?? DefaultEpochs(kind);
            var settings = new Settings(result.GetValue(trainRows), result.GetValue(testRows), e, e, e, 20, result.GetValue(common.Seed));
            return RunMnistDigit(ml, d, kind, settings, q, common.OutputFolder(result));
        });
        return command;
    }

    private static (Option<int> Train, Option<int> Test, Option<int?> Epochs) SizeOptions() =>
    (
        new Option<int>("--train-rows") { Description = "Training images of the normal digit (at most the ~6,000 MNIST has).", DefaultValueFactory = _ => 2_000 }.AtLeast(10),
        new Option<int>("--test-rows") { Description = "MNIST test images scored (all digits).", DefaultValueFactory = _ => 10_000 }.AtLeast(10),
        new Option<int?>("--epochs") { Description = "Epochs of the autoencoder (default: dense 20, conv 5, vae 20)." }.AtLeast(1)
    );

    private static int DefaultEpochs(Family kind) => kind == Family.Conv ? 5 : 20;

    internal static AutoencoderAnomalyOptions Options(Family kind, int epochs, int seed, double quantile = 0.99) => new()
    {
        ThresholdQuantile = quantile,
        Autoencoder = kind switch
        {
            Family.Dense => new AutoencoderOptions { FeatureColumnName = "Pixels", LatentSize = 32, Epochs = epochs, BatchSize = 64, Seed = seed },
            Family.Conv => new AutoencoderOptions
            {
                FeatureColumnName = "Pixels", InputShape = [1, 28, 28], LatentSize = 32, Epochs = epochs, BatchSize = 64, Seed = seed,
                Encoder = AutoencoderNetworks.ConvolutionalEncoder, Decoder = AutoencoderNetworks.ConvolutionalDecoder,
            },
            _ => new VariationalAutoencoderOptions { FeatureColumnName = "Pixels", LatentSize = 16, Epochs = epochs, BatchSize = 64, Seed = seed },
        },
    };

    private sealed class Row
    {
        public float Label { get; set; } // 1 = anomalous, as ML.NET's anomaly evaluator reads it
        [VectorType(Data.Mnist.PixelCount)] public float[] Pixels { get; set; } = [];
    }

    private static (IDataView Train, IDataView Test, List<Row> TestRows) MnistData(MLContext ml, int digit, Settings settings)
    {
        var train = Data.Mnist.Read(MnistSplit.Train).Where(r => r.Label == digit).Take(settings.TrainRows).Select(r => new Row { Pixels = r.Pixels }).ToList();
        var test = Data.Mnist.Read(MnistSplit.Test).Take(settings.TestRows).Select(r => new Row { Label = r.Label == digit ? 0 : 1, Pixels = r.Pixels }).ToList();
        return (ml.Data.LoadFromEnumerable(train), ml.Data.LoadFromEnumerable(test), test);
    }

    internal sealed record Result(double Auc, double DetectionRate, double Seconds);

    internal static Result Evaluate(MLContext ml, ITransformer model, IDataView test, int falsePositives, Stopwatch clock)
    {
        var metrics = ml.AnomalyDetection.Evaluate(model.Transform(test), falsePositiveCount: falsePositives);
        return new Result(metrics.AreaUnderRocCurve, metrics.DetectionRateAtFalsePositiveCount, clock.Elapsed.TotalSeconds);
    }

    internal static Result Pca(MLContext ml, IDataView train, IDataView test, string features, int rank, int falsePositives)
    {
        var clock = Stopwatch.StartNew();
        var model = ml.AnomalyDetection.Trainers.RandomizedPca(features, rank: rank, ensureZeroMean: true, seed: 1).Fit(train);
        return Evaluate(ml, model, test, falsePositives, clock);
    }

    private static int RunMnistDigit(MLContext ml, int digit, Family kind, Settings settings, double quantile, string output)
    {
        var (train, test, rows) = MnistData(ml, digit, settings);
        Console.WriteLine($"MNIST, digit {digit} normal: {train.GetRowCount() ?? 0:N0} training images of it; {rows.Count:N0} test images, {rows.Count(r => r.Label > 0):N0} of them other digits (anomalies)");
        var clock = Stopwatch.StartNew();
        using var model = ml.AnomalyDetection.Trainers.Autoencoder(Options(kind, settings.DenseEpochs, settings.Seed, quantile)).Fit(train);
        var result = Evaluate(ml, model, test, 10, clock);
        var pca = Pca(ml, train, test, "Pixels", settings.PcaRank, 10);
        Console.WriteLine($"threshold {model.Threshold:G4} (the {quantile:P0} quantile of the training scores; they range over {model.TrainingScores!.Min:G4} .. {model.TrainingScores.Max:G4})");
        Console.WriteLine($"| detector | AUC | detection rate at 10 false positives | seconds |");
        Console.WriteLine($"| --- | --- | --- | --- |");
        Console.WriteLine($"| autoencoder ({kind.ToString().ToLowerInvariant()}) | {result.Auc:F4} | {result.DetectionRate:F3} | {result.Seconds:F1} |");
        Console.WriteLine($"| RandomizedPca (rank {settings.PcaRank}) | {pca.Auc:F4} | {pca.DetectionRate:F3} | {pca.Seconds:F1} |");

        Directory.CreateDirectory(output);
        string modelPath = Path.Combine(output, $"anomaly-mnist-{digit}-{kind.ToString().ToLowerInvariant()}.zip");
        ml.Model.SaveDeep(model, test.Schema, modelPath);
        // The most anomalous test images: the image, its reconstruction-error map (white = large error).
        var scored = model.Transform(test);
        var scores = scored.GetColumn<float>("Score").ToArray();
        var errors = scored.GetColumn<float[]>("FeatureErrors").ToArray();
        var top = Enumerable.Range(0, scores.Length).OrderByDescending(i => scores[i]).Take(8).ToList();
        float maxError = top.Max(i => errors[i].Max());
        var images = top.SelectMany(i => new[] { rows[i].Pixels, errors[i].Select(v => v / maxError).ToArray() }).ToList();
        var captions = top.SelectMany(i => new[] { $"score {scores[i]:G3}", "error map" }).ToList();
        string png = Path.Combine(output, $"anomaly-mnist-{digit}-{kind.ToString().ToLowerInvariant()}-errors.png");
        ImageGrid.Save(png, images, 28, 28, 4, scale: 4, captions: captions, title: $"Digit {digit} normal: the 8 most anomalous test images and their error maps");
        Console.WriteLine($"Saved {modelPath} and {png}");
        return 0;
    }

    private static Command BreastCancerCommand()
    {
        var common = new CommonOptions();
        var epochs = new Option<int>("--epochs") { Description = "Epochs of the autoencoder.", DefaultValueFactory = _ => 200 }.AtLeast(1);
        var command = new Command("breast-cancer", "Breast cancer: benign as normal, malignant as the anomaly, standardised features: AUC and detection rate at 5 false positives beside RandomizedPca.")
        {
            epochs,
        };
        common.AddTo(command);
        command.SetAction(result =>
        {
            var table = BreastCancerTable(common.CreateContext(result), result.GetValue(epochs), result.GetValue(common.Seed));
            foreach (var line in table) Console.WriteLine(line);
            return 0;
        });
        return command;
    }

    private sealed class CancerRow
    {
        public bool Label { get; set; }
        public float[] Features { get; set; } = [];
    }

    private sealed class CancerAnomaly
    {
        public float Label { get; set; }
        [VectorType(BreastCancer.FeatureCount)] public float[] Features { get; set; } = [];
    }

    /// <summary>Half the benign rows train (standardised on them); the other half and every malignant row are the test.</summary>
    internal static List<string> BreastCancerTable(MLContext ml, int epochs, int seed)
    {
        var all = ml.Data.CreateEnumerable<CancerRow>(ml.Data.LoadBreastCancer(), reuseRowObject: false).ToList();
        var random = new Random(seed);
        var benign = all.Where(r => !r.Label).OrderBy(_ => random.Next()).ToList();
        var malignant = all.Where(r => r.Label).ToList();
        var trainRows = benign.Take(benign.Count / 2).Select(r => new CancerAnomaly { Features = r.Features }).ToList();
        var testRows = benign.Skip(benign.Count / 2).Select(r => new CancerAnomaly { Features = r.Features })
            .Concat(malignant.Select(r => new CancerAnomaly { Label = 1, Features = r.Features })).ToList();
        var train = ml.Data.LoadFromEnumerable(trainRows);
        var test = ml.Data.LoadFromEnumerable(testRows);
        var scaler = ml.Transforms.NormalizeMeanVariance("Features", fixZero: false).Fit(train);
        var (scaledTrain, scaledTest) = (scaler.Transform(train), scaler.Transform(test));
        var clock = Stopwatch.StartNew();
        using var model = ml.AnomalyDetection.Trainers.Autoencoder(new AutoencoderAnomalyOptions
        {
            Autoencoder = new AutoencoderOptions
            {
                FeatureColumnName = "Features", LatentSize = 4, Epochs = epochs, BatchSize = 16, Seed = seed,
                Encoder = new Networks.NetworkSpec([new Networks.Dense(16, Networks.ActivationKind.ReLU), new Networks.Dense(Networks.Dense.TaskOutputs)]) { Name = "encoder-16" },
                Decoder = new Networks.NetworkSpec([new Networks.Dense(16, Networks.ActivationKind.ReLU), new Networks.Dense(Networks.Dense.TaskOutputs)]) { Name = "decoder-16" },
            },
        }).Fit(scaledTrain);
        var ae = Evaluate(ml, model, scaledTest, 5, clock);
        var pca = Pca(ml, scaledTrain, scaledTest, "Features", 5, 5);
        return
        [
            $"Breast cancer: {trainRows.Count} benign rows train; test: {testRows.Count(r => r.Label == 0)} benign, {malignant.Count} malignant (the anomaly); features standardised on the training rows",
            "| detector | AUC | detection rate at 5 false positives |",
            "| --- | --- | --- |",
            $"| autoencoder (30-16-4-16-30, {epochs} epochs) | {ae.Auc:F4} | {ae.DetectionRate:F3} |",
            $"| RandomizedPca (rank 5) | {pca.Auc:F4} | {pca.DetectionRate:F3} |",
        ];
    }

    private static string Cell(double auc) => double.IsFinite(auc) ? auc.ToString("F4") : "-";

    /// <summary><c>benchmark anomaly</c>: every digit as the normal class, three autoencoders and RandomizedPca, then breast cancer.</summary>
    public static Command Benchmark()
    {
        var common = new CommonOptions();
        var (trainRows, testRows, epochs) = SizeOptions();
        var digits = new Option<string>("--digits") { Description = "Digits to try as the normal class, e.g. 0,1,7 (default all).", DefaultValueFactory = _ => "0,1,2,3,4,5,6,7,8,9" };
        var kinds = new Option<string>("--kinds") { Description = "Autoencoders to try, e.g. dense,vae (default dense,conv,vae).", DefaultValueFactory = _ => "dense,conv,vae" };
        var command = new Command("anomaly", "AUC per MNIST digit as the normal class for the dense, convolutional and variational autoencoder detectors and RandomizedPca; then breast cancer.")
        {
            trainRows, testRows, epochs, digits, kinds,
        };
        common.AddTo(command);
        command.SetAction(result =>
        {
            var list = result.GetValue(digits)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                .Select(d => int.TryParse(d, out var v) && v is >= 0 and <= 9 ? v : throw new ArgumentException($"--digits: '{d}' is not a digit 0 to 9.")).ToList();
            var families = result.GetValue(kinds)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                .Select(k => Enum.TryParse<Family>(k, ignoreCase: true, out var f) ? f : throw new ArgumentException($"--kinds: '{k}' is not dense, conv or vae.")).ToHashSet();
            var ml = common.CreateContext(result);
            int? e = result.GetValue(epochs);
            var settings = new Settings(result.GetValue(trainRows), result.GetValue(testRows), e ?? 20, e ?? 5, e ?? 20, 20, result.GetValue(common.Seed));
            Console.WriteLine($"MNIST: per digit, {settings.TrainRows:N0} training images of it; the first {settings.TestRows:N0} test images (other digits anomalous). Epochs: dense {settings.DenseEpochs}, conv {settings.ConvEpochs}, vae {settings.VaeEpochs}.");
            Console.WriteLine("| normal digit | dense AE | conv AE | VAE | RandomizedPca (rank 20) | best |");
            Console.WriteLine("| --- | --- | --- | --- | --- | --- |");
            var sums = new double[4];
            var total = Stopwatch.StartNew();
            foreach (var digit in list)
            {
                var (train, test, _) = MnistData(ml, digit, settings);
                var aucs = new double[4];
                foreach (var (family, index, epochCount) in new[] { (Family.Dense, 0, settings.DenseEpochs), (Family.Conv, 1, settings.ConvEpochs), (Family.Vae, 2, settings.VaeEpochs) })
                {
                    if (!families.Contains(family))
                    {
                        aucs[index] = double.NaN;
                        continue;
                    }
                    using var model = ml.AnomalyDetection.Trainers.Autoencoder(Options(family, epochCount, settings.Seed)).Fit(train);
                    aucs[index] = Evaluate(ml, model, test, 10, Stopwatch.StartNew()).Auc;
                }
                aucs[3] = Pca(ml, train, test, "Pixels", settings.PcaRank, 10).Auc;
                for (int i = 0; i < 4; i++) sums[i] += aucs[i];
                string[] names = ["dense AE", "conv AE", "VAE", "RandomizedPca"];
                Console.WriteLine($"| {digit} | {Cell(aucs[0])} | {Cell(aucs[1])} | {Cell(aucs[2])} | {aucs[3]:F4} | {names[Array.IndexOf(aucs, aucs.Where(double.IsFinite).Max())]} |");
            }
            Console.WriteLine($"| mean | {Cell(sums[0] / list.Count)} | {Cell(sums[1] / list.Count)} | {Cell(sums[2] / list.Count)} | {sums[3] / list.Count:F4} | |");
            Console.WriteLine($"MNIST part: {total.Elapsed.TotalSeconds:F0} s");
            foreach (var line in BreastCancerTable(ml, 200, settings.Seed)) Console.WriteLine(line);
            return 0;
        });
        return command;
    }
}
