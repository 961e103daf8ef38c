using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Plotting;
using MlNetDeep.Training;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// Folder-per-class image sets: <c>images export-mnist</c> writes MNIST as PNG folders, <c>train folder</c> trains a CNN
/// from a folder through ML.NET's image transforms, <c>benchmark images</c> compares that path with the IDX path.
/// </summary>
internal static class ImageFolderCommands
{
    public static string DefaultMnistPngFolder => Path.Combine(Path.GetDirectoryName(Mnist.DefaultFolder)!, "mnist-png");

    public static Command Export()
    {
        var output = new Option<string>("--output", "-o") { Description = "Folder to write train/<digit>/*.png and test/<digit>/*.png into.", DefaultValueFactory = _ => DefaultMnistPngFolder };
        var command = new Command("export-mnist", "Write MNIST (the IDX files, fetched on first use) as folder-per-class grey PNGs, Model Builder's layout.") { output };
        command.SetAction(result =>
        {
            ExportMnist(result.GetValue(output)!);
            return 0;
        });
        var images = new Command("images", "Image folders: one subfolder per class.");
        images.Subcommands.Add(command);
        return images;
    }

    /// <summary>Writes both splits (images already there are kept); returns the root.</summary>
    public static string ExportMnist(string root)
    {
        foreach (var split in new[] { MnistSplit.Train, MnistSplit.Test })
        {
            var images = Mnist.Read(split);
            var folder = Path.Combine(root, split == MnistSplit.Train ? "train" : "test");
            var clock = Stopwatch.StartNew();
            int written = ImageFiles.WriteMnistFolders(images, folder);
            Console.WriteLine($"{folder}: {images.Count} images ({written} written now, {clock.Elapsed.TotalSeconds:F1} s)");
        }
        return root;
    }

    public static Command Train()
    {
        var common = new CommonOptions();
        var trainFolder = new Argument<string>("folder") { Description = "Training images: one subfolder per class." }.ExistingFolder();
        var testFolder = new Option<string?>("--test") { Description = "Test images in the same layout (default: hold out --test-fraction of the training images)." }.ExistingFolder();
        var fraction = new Option<double>("--test-fraction") { Description = "Share of the images held out for testing when --test is not given.", DefaultValueFactory = _ => 0.2 }
            .Check(f => f is > 0 and < 1 ? null : $"--test-fraction must be in (0, 1), got {f}.");
        var width = new Option<int?>("--width") { Description = "Resize to this width (default: the images' own size, which must then be the same for all)." }.AtLeast(1);
        var height = new Option<int?>("--height") { Description = "Resize to this height." }.AtLeast(1);
        var grey = new Option<bool>("--grayscale") { Description = "One grey channel instead of RGB." };
        var epochs = new Option<int>("--epochs", "-e") { Description = "Epochs.", DefaultValueFactory = _ => 10 }.AtLeast(1);
        var batch = new Option<int>("--batch-size", "-b") { Description = "Mini-batch size.", DefaultValueFactory = _ => 64 }.AtLeast(1);
        var rate = new Option<double>("--learning-rate", "--lr") { Description = "Adam learning rate.", DefaultValueFactory = _ => 1e-3 }.Positive();
        var augment = new Option<bool>("--augment") { Description = "Random rotation, zoom and shift of each training image (and left-right flips for colour images)." };
        var command = new Command("folder", "Train a CNN on a folder-per-class image set (ML.NET's LoadImages -> ResizeImages -> ExtractPixels) and evaluate it.")
        {
            trainFolder, testFolder, fraction, width, height, grey, epochs, batch, rate, augment,
        };
        common.AddTo(command);
        command.SetAction(result =>
        {
            double f = result.GetValue(fraction);
            var settings = new FolderTraining(result.GetValue(width), result.GetValue(height), result.GetValue(grey), result.GetValue(epochs), result.GetValue(batch),
                result.GetValue(rate), result.GetValue(augment));
            var ml = common.CreateContext(result);
            var output = common.OutputFolder(result);
            var outcome = TrainFromFolder(ml, result.GetValue(trainFolder)!, result.GetValue(testFolder), f, settings, result.GetValue(common.Seed));
            Report(ml, outcome, output, "image-folder-cnn");
            return 0;
        });
        return command;
    }

    internal sealed record FolderTraining(int? Width, int? Height, bool Grayscale, int Epochs, int BatchSize, double LearningRate, bool Augment);

    internal sealed record Outcome(ITransformer Model, IDataView Train, IDataView Test, NeuralNetworkClassificationTransformer Network, double FitSeconds);

    /// <summary>Scans the folders, builds ML.NET's image pipeline and the CNN, fits it; the test rows go in as validation data.</summary>
    internal static Outcome TrainFromFolder(MLContext ml, string trainFolder, string? testFolder, double testFraction, FolderTraining settings, int seed,
        IProgress<TrainingProgress>? progress = null)
    {
        var scan = ImageFolder.Scan(trainFolder);
        Console.WriteLine($"{scan.Root}: {scan.Images.Count} images in {scan.Classes.Count} classes ({string.Join(", ", scan.CountsByClass.Select(c => $"{c.Key} {c.Value}"))})" +
            (scan.Skipped.Count > 0 ? $"; {scan.Skipped.Count} left out, e.g. {scan.Skipped[0].Path}: {scan.Skipped[0].Reason}" : ""));
        IDataView train, test;
        if (testFolder is not null)
        {
            var testScan = ImageFolder.Scan(testFolder, new ImageFolderOptions { MinimumClasses = 1 });
            var unknown = testScan.Classes.Except(scan.Classes).ToList();
            if (unknown.Count > 0)
                throw new InvalidDataException($"The test folder has classes the training folder lacks: {string.Join(", ", unknown)}.");
            Console.WriteLine($"{testScan.Root}: {testScan.Images.Count} test images");
            train = scan.ToDataView(ml.Data);
            test = testScan.ToDataView(ml.Data);
        }
        else
        {
            var split = ml.Data.TrainTestSplit(scan.ToDataView(ml.Data), testFraction, seed: seed);
            (train, test) = (split.TrainSet, split.TestSet);
        }

        var shape = scan.InputShape(settings.Width, settings.Height, settings.Grayscale);
        bool small = shape[1] <= 32 && shape[2] <= 32;
        var network = small ? Networks.Networks.KerasMnistCnn : new NetworkSpec(
        [
            new Conv2D(32, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU), new MaxPool2D(2),
            new Conv2D(64, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU), new MaxPool2D(2),
            new Conv2D(128, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU), new MaxPool2D(2),
            new Flatten(), new Dropout(0.3), new Dense(Dense.TaskOutputs),
        ]) { Name = "cnn-3-blocks" };
        Console.WriteLine($"Input [{string.Join(", ", shape)}], network {network.Name}");

        var pixels = scan.PixelPipeline(ml, settings.Width, settings.Height, settings.Grayscale).Append(ml.Transforms.Conversion.MapValueToKey("Label"));
        var prepared = pixels.Fit(train);
        var options = new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", InputShape = shape, Network = network, Epochs = settings.Epochs, BatchSize = settings.BatchSize,
            Optimizer = new Adam(settings.LearningRate), Seed = seed, Progress = progress,
            ValidationData = prepared.Transform(test),
            TrainingInputTransform = settings.Augment
                ? new ImageAugmentation(new ImageAugmentationOptions { HorizontalFlipProbability = settings.Grayscale ? 0 : 0.5 })
                : null,
        };
        var clock = Stopwatch.StartNew();
        var model = pixels.Append(ml.MulticlassClassification.Trainers.ConvolutionalNetwork(options))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel")).Fit(train);
        clock.Stop();
        var deep = ((IEnumerable<ITransformer>)model).OfType<NeuralNetworkClassificationTransformer>().Single();
        return new Outcome(model, train, test, deep, clock.Elapsed.TotalSeconds);
    }

    private static void Report(MLContext ml, Outcome outcome, string output, string name)
    {
        var metrics = ml.MulticlassClassification.Evaluate(outcome.Model.Transform(outcome.Test));
        Console.WriteLine($"Test accuracy: {metrics.MicroAccuracy:P2}   macro accuracy {metrics.MacroAccuracy:P2}   log-loss {metrics.LogLoss:F4}");
        Console.WriteLine($"Training: {outcome.FitSeconds:F0} s (images read and decoded included), {outcome.Network.History!.SamplesPerSecond:F0} samples/s in the epochs");
        var modelPath = Path.Combine(output, $"{name}.zip");
        ml.Model.SaveDeep(outcome.Model, outcome.Train.Schema, modelPath);
        var curves = Path.Combine(output, $"{name}-curves.png");
        Charts.TrainingCurves(curves, outcome.Network.History, name, validationName: "test");
        Console.WriteLine($"Saved model {modelPath}, curves {curves}");
    }

    public static Command Benchmark()
    {
        var common = new CommonOptions();
        var folder = new Option<string>("--folder") { Description = "MNIST as PNG folders (written there first if missing).", DefaultValueFactory = _ => DefaultMnistPngFolder };
        var epochs = new Option<int>("--epochs", "-e") { Description = "Epochs of Keras' MNIST CNN on each path.", DefaultValueFactory = _ => 4 }.AtLeast(1);
        var rounds = new Option<int>("--rounds") { Description = "Alternating rounds of the data-reading measurement.", DefaultValueFactory = _ => 2 }.AtLeast(1);
        var command = new Command("images", "MNIST from PNG folders (ML.NET's image transforms) against the IDX path: reading throughput and the CNN's test accuracy, one run.")
        {
            folder, epochs, rounds,
        };
        common.AddTo(command);
        command.SetAction(result =>
        {
            return RunBenchmark(common.CreateContext(result), result.GetValue(folder)!, result.GetValue(epochs), result.GetValue(rounds), result.GetValue(common.Seed));
        });
        return command;
    }

    private static int RunBenchmark(MLContext ml, string root, int epochs, int rounds, int seed)
    {
        var trainFolder = Path.Combine(root, "train");
        var testFolder = Path.Combine(root, "test");
        if (!Directory.Exists(trainFolder) || !Directory.Exists(testFolder))
        {
            Console.WriteLine($"Writing MNIST as PNG folders under {root} ...");
            ExportMnist(root);
        }

        // Reading: every training image's 784 floats, through each path, alternating.
        var idxRates = new List<double>();
        var folderRates = new List<double>();
        var scanRates = new List<double>();
        for (int round = 0; round < rounds; round++)
        {
            var clock = Stopwatch.StartNew();
            var idx = ml.Data.LoadMnist(MnistSplit.Train);
            long idxRows = Drain(idx, "Pixels");
            idxRates.Add(idxRows / clock.Elapsed.TotalSeconds);

            clock.Restart();
            var scan = ImageFolder.Scan(trainFolder);
            double scanSeconds = clock.Elapsed.TotalSeconds;
            var rows = scan.ToDataView(ml.Data);
            var pixels = scan.PixelPipeline(ml, grayscale: true).Fit(rows).Transform(rows);
            long folderRows = Drain(pixels, "Pixels");
            folderRates.Add(folderRows / clock.Elapsed.TotalSeconds);
            scanRates.Add(folderRows / scanSeconds);
            Console.WriteLine($"round {round + 1}: IDX {idxRows} rows at {idxRates[^1]:F0} rows/s; PNG folder {folderRows} rows at {folderRates[^1]:F0} rows/s " +
                $"(scan with verification {scanSeconds:F1} s, then LoadImages -> ResizeImages -> ConvertToGrayscale -> ExtractPixels)");
        }

        // Training: the same CNN, options and seed from each path, each evaluated on its own copy of the 10,000 test images.
        var idxOptions = new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Network = Networks.Networks.KerasMnistCnn,
            Epochs = epochs, BatchSize = 128, Optimizer = new Adam(1e-3), Seed = seed,
        };
        var clockIdx = Stopwatch.StartNew();
        var idxModel = ConsoleProgress.Run("CNN from IDX", progress =>
        {
            idxOptions.Progress = progress;
            return ml.MulticlassClassification.Trainers.ConvolutionalNetwork(idxOptions).Fit(ml.Data.LoadMnist(MnistSplit.Train));
        });
        double idxFit = clockIdx.Elapsed.TotalSeconds;
        var idxAccuracy = ml.MulticlassClassification.Evaluate(idxModel.Transform(ml.Data.LoadMnist(MnistSplit.Test))).MicroAccuracy;

        var settings = new FolderTraining(null, null, true, epochs, 128, 1e-3, false);
        var outcome = ConsoleProgress.Run("CNN from PNG folders", progress => TrainFromFolder(ml, trainFolder, testFolder, 0.2, settings, seed, progress));
        var folderAccuracy = ml.MulticlassClassification.Evaluate(outcome.Model.Transform(outcome.Test)).MicroAccuracy;

        Console.WriteLine();
        Console.WriteLine($"{"path",-44} {"read rows/s",12} {"Fit s",8} {"test accuracy",14}");
        Console.WriteLine($"{"IDX files (LoadMnist)",-44} {BenchmarkCommand.Median(idxRates),12:F0} {idxFit,8:F0} {idxAccuracy,14:P2}");
        Console.WriteLine($"{"PNG folders (ImageFolder + ML.NET images)",-44} {BenchmarkCommand.Median(folderRates),12:F0} {outcome.FitSeconds,8:F0} {folderAccuracy,14:P2}");
        Console.WriteLine($"reading throughput PNG / IDX: {BenchmarkCommand.Median(folderRates) / BenchmarkCommand.Median(idxRates):F3}; whole Fit time PNG / IDX: {outcome.FitSeconds / idxFit:F3}; " +
            $"scan alone {BenchmarkCommand.Median(scanRates):F0} images/s; {epochs} epochs, seed {seed}");
        return 0;
    }

    /// <summary>Reads every row's vector of <paramref name="column"/>; returns the row count.</summary>
    private static long Drain(IDataView data, string column)
    {
        using var cursor = data.GetRowCursor([data.Schema[column]]);
        var getter = cursor.GetGetter<Microsoft.ML.Data.VBuffer<float>>(data.Schema[column]);
        Microsoft.ML.Data.VBuffer<float> value = default;
        long rows = 0;
        double checksum = 0;
        while (cursor.MoveNext())
        {
            getter(ref value);
            checksum += value.GetValues()[0];
            rows++;
        }
        return double.IsNaN(checksum) ? -1 : rows;
    }

}
