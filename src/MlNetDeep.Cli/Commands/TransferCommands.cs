using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Transfer;
using MlNetDeep.Networks;
using MlNetDeep.Plotting;
using MlNetDeep.Training;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// Transfer learning: <c>train transfer FOLDER --backbone model.onnx|model.zip</c> trains a classifier of a folder-per-class
/// image set on a pretrained backbone; <c>benchmark transfer</c> measures what transfer gives on MNIST (a backbone
/// pretrained on digits 0-4, digits 5-9 learned from few images) and what the bottleneck cache saves.
/// </summary>
internal static class TransferCommands
{
    public static Command Train()
    {
        var common = new CommonOptions();
        var folder = new Argument<string>("folder") { Description = "Training images: one subfolder per class." }.ExistingFolder();
        var backbone = new Option<string>("--backbone") { Description = "The pretrained network: an ONNX file (e.g. torchvision's resnet18 exported with torch.onnx.export) or a model saved by MlNetDeep.", Required = true }
            .ExistingFile();
        var test = new Option<string?>("--test") { Description = "Test images in the same layout (default: hold out --test-fraction of the training images)." }.ExistingFolder();
        var fraction = new Option<double>("--test-fraction") { Description = "Share of the images held out for testing when --test is not given.", DefaultValueFactory = _ => 0.2 }
            .Check(f => f is > 0 and < 1 ? null : $"--test-fraction must be in (0, 1), got {f}.");
        var cut = new Option<string?>("--cut") { Description = "The backbone layer the head reads (a name such as conv2d_12, or a position; default: the last image-shaped layer)." };
        var normalize = new Option<string>("--normalize") { Description = "The input the backbone expects: imagenet (torchvision), minus-one-to-one, or none (pixels in [0, 1]).", DefaultValueFactory = _ => "none" }
            .Check(n => n is "imagenet" or "minus-one-to-one" or "none" ? null : $"--normalize must be imagenet, minus-one-to-one or none, not '{n}'.");
        var epochs = new Option<int>("--epochs", "-e") { Description = "Epochs of the head on the frozen backbone.", DefaultValueFactory = _ => 10 }.AtLeast(0);
        var fineTune = new Option<int>("--fine-tune-epochs") { Description = "Epochs of fine-tuning after the frozen phase.", DefaultValueFactory = _ => 0 }.AtLeast(0);
        var fineTuneLayers = new Option<int?>("--fine-tune-layers") { Description = "How many of the backbone's last layers fine-tuning trains (default: all)." }.AtLeast(1);
        var fineTuneRate = new Option<double?>("--fine-tune-lr") { Description = "Learning rate of fine-tuning (default: a tenth of --lr)." }.Positive();
        var batch = new Option<int>("--batch-size", "-b") { Description = "Mini-batch size.", DefaultValueFactory = _ => 32 }.AtLeast(1);
        var rate = new Option<double>("--learning-rate", "--lr") { Description = "Adam learning rate of the head.", DefaultValueFactory = _ => 1e-3 }.Positive();
        var augment = new Option<bool>("--augment") { Description = "Random rotation, zoom, shift and flips of each training image (the frozen phase then runs through the backbone: no cache)." };
        var noCache = new Option<bool>("--no-cache") { Description = "Run the frozen phase through the backbone every epoch instead of caching its features." };
        var command = new Command("transfer", "Train an image classifier on a pretrained backbone (ONNX or MlNetDeep model) from a folder-per-class image set, and evaluate it.")
        {
            folder, backbone, test, fraction, cut, normalize, epochs, fineTune, fineTuneLayers, fineTuneRate, batch, rate, augment, noCache,
        };
        common.AddTo(command);
        command.SetAction(result =>
        {
            var ml = common.CreateContext(result);
            var output = common.OutputFolder(result);
            int seed = result.GetValue(common.Seed);
            var backbonePath = result.GetValue(backbone)!;
            var pretrained = backbonePath.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase)
                ? TransferBackbone.FromOnnx(backbonePath)
                : TransferBackbone.FromModelFile(ml, backbonePath);
            int[] shape = pretrained.InputShape;
            if (shape.Length != 3 || shape[0] is not (1 or 3))
                throw new ArgumentException($"The backbone {pretrained.Source} reads [{string.Join(", ", shape)}], not grey or colour images [channels, height, width].");
            var options = new TransferLearningOptions
            {
                FeatureColumnName = "Pixels", Backbone = pretrained, CutAfter = result.GetValue(cut), Seed = seed,
                Normalization = result.GetValue(normalize) switch
                {
                    "imagenet" => shape[0] == 3 ? ImageNormalization.ImageNet : throw new ArgumentException("--normalize imagenet needs a colour backbone (3 channels)."),
                    "minus-one-to-one" => ImageNormalization.MinusOneToOne(shape[0]),
                    _ => null,
                },
                Epochs = result.GetValue(epochs), FineTuneEpochs = result.GetValue(fineTune), FineTuneLayers = result.GetValue(fineTuneLayers),
                FineTuneLearningRate = result.GetValue(fineTuneRate), BatchSize = result.GetValue(batch), Optimizer = new Adam(result.GetValue(rate)),
                CacheBottleneck = result.GetValue(noCache) ? false : null,
                TrainingInputTransform = result.GetValue(augment) ? new ImageAugmentation(new ImageAugmentationOptions { HorizontalFlipProbability = shape[0] == 3 ? 0.5 : 0 }) : null,
            };
            int cutIndex = pretrained.CutIndex(options.CutAfter);
            Console.WriteLine($"Backbone {pretrained.Source}: {pretrained.Network.Layers.Count} layers, input [{string.Join(", ", shape)}], cut after {pretrained.LayerNames[cutIndex]} " +
                $"([{string.Join(", ", pretrained.Network.InferShapes(shape)[cutIndex])}])");

            // Two images per class at least: a held-out split keeps one to train on and one to test.
            var scan = ImageFolder.Scan(result.GetValue(folder)!, new ImageFolderOptions { MinimumImagesPerClass = 2 });
            Console.WriteLine($"{scan.Root}: {scan.Images.Count} images in {scan.Classes.Count} classes ({string.Join(", ", scan.CountsByClass.Select(c => $"{c.Key} {c.Value}"))})" +
                (scan.Skipped.Count > 0 ? $"; {scan.Skipped.Count} left out, e.g. {scan.Skipped[0].Path}: {scan.Skipped[0].Reason}" : ""));
            IDataView train, testRows;
            if (result.GetValue(test) is { } testFolder)
            {
                var testScan = ImageFolder.Scan(testFolder, new ImageFolderOptions { MinimumClasses = 1 });
                var unknown = testScan.Classes.Except(scan.Classes).ToList();
                if (unknown.Count > 0) throw new InvalidDataException($"The test folder has classes the training folder lacks: {string.Join(", ", unknown)}.");
                (train, testRows) = (scan.ToDataView(ml.Data), testScan.ToDataView(ml.Data));
            }
            else
            {
                var split = ml.Data.TrainTestSplit(scan.ToDataView(ml.Data), result.GetValue(fraction), seed: seed);
                (train, testRows) = (split.TrainSet, split.TestSet);
            }
            var pixels = scan.PixelPipeline(ml, shape[2], shape[1], grayscale: shape[0] == 1).Append(ml.Transforms.Conversion.MapValueToKey("Label"));
            var prepared = pixels.Fit(train);
            options.ValidationData = prepared.Transform(testRows);

            var clock = Stopwatch.StartNew();
            var model = ConsoleProgress.Run("transfer", progress =>
            {
                options.Progress = progress;
                options.BottleneckProgress = new Progress<double>(f => { if (f >= 1) Console.WriteLine($"  bottleneck features of every image computed ({clock.Elapsed.TotalSeconds:F1} s)"); });
                return pixels.Append(ml.MulticlassClassification.Trainers.TransferLearning(options))
                    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel")).Fit(train);
            });
            double seconds = clock.Elapsed.TotalSeconds;
            var deep = ((IEnumerable<ITransformer>)model).OfType<NeuralNetworkClassificationTransformer>().Single();
            var scored = model.Transform(testRows);
            var metrics = ml.MulticlassClassification.Evaluate(ml.Transforms.Conversion.MapValueToKey("Label").Fit(scored).Transform(scored));
            Console.WriteLine($"Test accuracy: {metrics.MicroAccuracy:P2}   macro accuracy {metrics.MacroAccuracy:P2}   log-loss {metrics.LogLoss:F4}");
            Console.WriteLine($"Training: {seconds:F1} s (images read and decoded included)");
            Console.WriteLine(metrics.ConfusionMatrix.GetFormattedConfusionTable());

            var modelPath = Path.Combine(output, "transfer.zip");
            ml.Model.SaveDeep(model, train.Schema, modelPath);
            var curves = Path.Combine(output, "transfer-curves.png");
            Charts.TrainingCurves(curves, deep.History!, "transfer", validationName: "test");
            var wrong = Misclassified(ml, model, prepared.Transform(testRows), shape, Path.Combine(output, "transfer-misclassified.png"));
            Console.WriteLine($"Saved model {modelPath}, curves {curves}{(wrong is null ? "; no test image misclassified" : $", misclassified test images {wrong}")}");
            return 0;
        });
        return command;
    }

    /// <summary>A grid of up to 32 misclassified test images, each captioned "label -> predicted"; null when none is wrong.</summary>
    private static string? Misclassified(MLContext ml, ITransformer model, IDataView prepared, int[] shape, string path)
    {
        var deep = ((IEnumerable<ITransformer>)model).OfType<NeuralNetworkClassificationTransformer>().Single();
        var scored = deep.Transform(prepared);
        var pixels = scored.GetColumn<VBuffer<float>>("Pixels").Select(v => v.DenseValues().ToArray()).ToList();
        var labelNames = ml.Transforms.Conversion.MapKeyToValue("LabelText", "Label").Fit(scored).Transform(scored).GetColumn<ReadOnlyMemory<char>>("LabelText").Select(t => t.ToString()).ToList();
        var predicted = ml.Transforms.Conversion.MapKeyToValue("PredictedText", "PredictedLabel").Fit(scored).Transform(scored).GetColumn<ReadOnlyMemory<char>>("PredictedText").Select(t => t.ToString()).ToList();
        var wrong = Enumerable.Range(0, pixels.Count).Where(i => labelNames[i] != predicted[i]).Take(32).ToList();
        if (wrong.Count == 0) return null;
        int scale = Math.Max(1, 96 / Math.Max(shape[1], shape[2]));
        ImageGrid.Save(path, wrong.Select(i => pixels[i]).ToList(), shape[1], shape[2], 8, scale, wrong.Select(i => $"{labelNames[i]} -> {predicted[i]}").ToList(),
            "misclassified test images (label -> predicted)", channels: shape[0]);
        return path;
    }

    public static Command Benchmark()
    {
        var common = new CommonOptions();
        var pretrainEpochs = new Option<int>("--pretrain-epochs") { Description = "Epochs of the backbone on digits 0-4.", DefaultValueFactory = _ => 3 }.AtLeast(1);
        var epochs = new Option<int>("--epochs", "-e") { Description = "Epochs of each model on digits 5-9 (the fine-tuned one: as many again).", DefaultValueFactory = _ => 20 }.AtLeast(1);
        var counts = new Option<string>("--per-class") { Description = "Labelled images per class of digits 5-9, comma-separated.", DefaultValueFactory = _ => "10,50,200" }
            .Check(v => v.Split(',').All(p => int.TryParse(p, out var n) && n is >= 1 and <= 5000) ? null : $"--per-class must list counts of 1 to 5,000, not '{v}'.");
        var width = new Option<int>("--width") { Description = "Channels of the backbone's first block.", DefaultValueFactory = _ => 16 }.AtLeast(1);
        var head = new Option<string>("--head") { Description = "The new head: pool (global average pool, Dense) or flatten (Flatten, Dense: the cut layer's every value).", DefaultValueFactory = _ => "pool" }
            .Check(h => h is "pool" or "flatten" ? null : $"--head must be pool or flatten, not '{h}'.");
        var command = new Command("transfer", "Transfer learning on MNIST: a small ResNet pretrained on digits 0-4, digits 5-9 learned from few images (from scratch, frozen, fine-tuned, and through ONNX), and the bottleneck cache's speed.")
        {
            pretrainEpochs, epochs, counts, width, head,
        };
        common.AddTo(command);
        command.SetAction(result => RunBenchmark(common.CreateContext(result), common.OutputFolder(result), result.GetValue(pretrainEpochs), result.GetValue(epochs),
            result.GetValue(counts)!.Split(',').Select(int.Parse).ToArray(), result.GetValue(width), result.GetValue(head) == "flatten", result.GetValue(common.Seed)));
        return command;
    }

    /// <summary>
    /// <c>benchmark transfer-backbone --backbone X.onnx</c>: images/s of the bottleneck cache's pass (the frozen
    /// backbone up to the cut, eval mode, no gradients) over random images, timed between its progress reports so that
    /// only the passes after the first batch count.
    /// </summary>
    public static Command BackboneBenchmark()
    {
        var common = new CommonOptions();
        var backbone = new Option<string>("--backbone") { Description = "An ONNX backbone (e.g. torchvision's resnet18 exported with torch.onnx.export).", Required = true }.ExistingFile();
        var images = new Option<int>("--images") { Description = "Random images to pass (the first batch is warm-up).", DefaultValueFactory = _ => 256 }.AtLeast(64);
        var command = new Command("transfer-backbone", "Images/s of a frozen backbone's forward pass, as the bottleneck cache runs it.") { backbone, images };
        common.AddTo(command);
        command.SetAction(result =>
        {
            var ml = common.CreateContext(result);
            var pretrained = TransferBackbone.FromOnnx(result.GetValue(backbone)!);
            int count = result.GetValue(images), size = pretrained.InputShape.Aggregate(1, (a, b) => a * b);
            var random = new Random(1);
            var rows = Enumerable.Range(0, count).Select(i => new RandomImage { Label = (i % 2).ToString(), Pixels = Enumerable.Range(0, size).Select(_ => (float)random.NextDouble()).ToArray() });
            var schema = SchemaDefinition.Create(typeof(RandomImage));
            schema["Pixels"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, size);
            var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(rows, schema)).Transform(ml.Data.LoadFromEnumerable(rows, schema));
            var marks = new List<(double Fraction, double Seconds)>();
            var clock = Stopwatch.StartNew();
            var options = new TransferLearningOptions
            {
                FeatureColumnName = "Pixels", Backbone = pretrained, Epochs = 1, Normalization = pretrained.InputShape[0] == 3 ? ImageNormalization.ImageNet : null,
                BottleneckProgress = new SynchronousProgress(f => marks.Add((f, clock.Elapsed.TotalSeconds))),
            };
            using var model = ml.MulticlassClassification.Trainers.TransferLearning(options).Fit(data);
            double rate = (marks[^1].Fraction - marks[0].Fraction) * count / (marks[^1].Seconds - marks[0].Seconds);
            int cut = pretrained.CutIndex(null);
            Console.WriteLine($"{pretrained.Source}: frozen forward to {pretrained.LayerNames[cut]} [{string.Join(", ", pretrained.Network.InferShapes(pretrained.InputShape)[cut])}], " +
                $"batches of {TransferLearningClassifier.BottleneckBatchSize}, {TorchSharp.torch.get_num_threads()} threads: {rate:F1} images/s " +
                $"({count - TransferLearningClassifier.BottleneckBatchSize} images after a first batch of {TransferLearningClassifier.BottleneckBatchSize})");
            return 0;
        });
        return command;
    }

    private sealed class RandomImage
    {
        public string Label { get; set; } = "";
        public float[] Pixels { get; set; } = [];
    }

    /// <summary>Reports on the calling thread (Progress&lt;T&gt; posts to the thread pool, which would blur the timings).</summary>
    private sealed class SynchronousProgress(Action<double> report) : IProgress<double>
    {
        public void Report(double value) => report(value);
    }

    private sealed class Digit
    {
        public string Label { get; set; } = "";
        [VectorType(784)] public float[] Pixels { get; set; } = [];
    }

    private static int RunBenchmark(MLContext ml, string output, int pretrainEpochs, int epochs, int[] counts, int width, bool flattenHead, int seed)
    {
        Console.WriteLine("Loading MNIST ...");
        var trainImages = Mnist.Read(MnistSplit.Train);
        var testImages = Mnist.Read(MnistSplit.Test);
        IDataView View(IEnumerable<MnistImage> images) => ml.Data.LoadFromEnumerable(images.Select(i => new Digit { Label = i.Label.ToString(), Pixels = i.Pixels }).ToList());
        var low = View(trainImages.Where(i => i.Label <= 4));
        var highTest = testImages.Where(i => i.Label >= 5).ToList();

        // The backbone: the small ResNet trained on every digit 0-4.
        var network = Networks.Networks.SmallResNet(width);
        var clock = Stopwatch.StartNew();
        var pretrained = ConsoleProgress.Run("pretrain 0-4", progress => ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.MulticlassClassification.Trainers.NeuralNetwork(
            new NeuralNetworkClassifierOptions
            {
                FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Network = network, Epochs = pretrainEpochs, BatchSize = 64, Seed = seed, Progress = progress,
            })).Fit(low)).LastTransformer;
        var lowTest = View(testImages.Where(i => i.Label <= 4));
        var lowKeys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(low);
        double lowAccuracy = ml.MulticlassClassification.Evaluate(pretrained.Transform(lowKeys.Transform(lowTest))).MicroAccuracy;
        Console.WriteLine($"Backbone {network.Name}: {pretrainEpochs} epochs on {low.GetRowCount():N0} images of digits 0-4 in {clock.Elapsed.TotalSeconds:F0} s; {lowAccuracy:P2} on their test images");
        var backbone = TransferBackbone.FromModel(pretrained);
        var onnxPath = Path.Combine(output, "transfer-backbone.onnx");
        pretrained.SaveAsOnnx(onnxPath);
        var onnxBackbone = TransferBackbone.FromOnnx(onnxPath);

        var rows = new List<string>();
        var random = new Random(seed);
        foreach (var perClass in counts)
        {
            var picked = trainImages.Where(i => i.Label >= 5).GroupBy(i => i.Label).SelectMany(g => g.OrderBy(_ => random.Next()).Take(perClass)).ToList();
            var keys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(View(picked));
            var train = keys.Transform(View(picked));
            var test = keys.Transform(View(highTest));
            double Accuracy(ITransformer model) => ml.MulticlassClassification.Evaluate(model.Transform(test)).MicroAccuracy;
            TransferLearningOptions Transfer(TransferBackbone from, int fineTune) => new()
            {
                FeatureColumnName = "Pixels", Backbone = from, Epochs = epochs, FineTuneEpochs = fineTune, BatchSize = 16, Seed = seed, Optimizer = new Adam(3e-3),
                Network = flattenHead ? new NetworkSpec([new Flatten(), new Dense(Dense.TaskOutputs)]) { Name = "flatten-head" } : TransferLearningOptions.DefaultHead,
            };
            var scratch = ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
            {
                FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Network = network, Epochs = 2 * epochs, BatchSize = 16, Seed = seed, Optimizer = new Adam(3e-3),
            }).Fit(train);
            using var frozen = ml.MulticlassClassification.Trainers.TransferLearning(Transfer(backbone, 0)).Fit(train);
            using var tuned = ml.MulticlassClassification.Trainers.TransferLearning(Transfer(backbone, epochs)).Fit(train);
            using var frozenOnnx = ml.MulticlassClassification.Trainers.TransferLearning(Transfer(onnxBackbone, 0)).Fit(train);
            using var tunedOnnx = ml.MulticlassClassification.Trainers.TransferLearning(Transfer(onnxBackbone, epochs)).Fit(train);
            var row = $"| {perClass} | {Accuracy(scratch):P2} | {Accuracy(frozen):P2} | {Accuracy(tuned):P2} | {Accuracy(frozenOnnx):P2} | {Accuracy(tunedOnnx):P2} |";
            if (perClass == counts[^1])
            {
                // The fine-tuned classifier, for `benchmark scoring -m` (it reads Pixels, as the MNIST models do).
                var tunedPath = Path.Combine(output, "transfer-fine-tuned.zip");
                ml.Model.SaveDeep(tuned, train.Schema, tunedPath);
                Console.WriteLine($"Saved the fine-tuned classifier ({perClass} images per class) as {tunedPath}");
            }
            Console.WriteLine(row);
            rows.Add(row);
            scratch.Dispose();
        }
        Console.WriteLine();
        Console.WriteLine($"Digits 5-9, accuracy on all {highTest.Count:N0} of their test images ({2 * epochs} epochs from scratch; {epochs} frozen; {epochs} frozen + {epochs} fine-tuned at a tenth of the rate; " +
            $"head: {(flattenHead ? "Flatten, Dense" : "global average pool, Dense")}):");
        Console.WriteLine("| images per class | (a) from scratch | (b) frozen backbone + head | (c) fine-tuned | (b) with the backbone through ONNX | (c) through ONNX |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- |");
        foreach (var row in rows) Console.WriteLine(row);

        // The cache: one frozen phase with and without it, the same data and epochs, alternating.
        var many = trainImages.Where(i => i.Label >= 5).Take(5000).ToList();
        var cacheKeys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(View(many));
        var cacheData = cacheKeys.Transform(View(many));
        var rates = new Dictionary<bool, List<(double Fit, double Epochs)>> { [true] = [], [false] = [] };
        for (int round = 0; round < 2; round++)
            foreach (var cache in new[] { false, true })
            {
                var options = new TransferLearningOptions { FeatureColumnName = "Pixels", Backbone = backbone, Epochs = 3, BatchSize = 64, Seed = seed, CacheBottleneck = cache };
                var timer = Stopwatch.StartNew();
                using var model = ml.MulticlassClassification.Trainers.TransferLearning(options).Fit(cacheData);
                rates[cache].Add((3.0 * many.Count / timer.Elapsed.TotalSeconds, model.History!.SamplesPerSecond));
            }
        var (withFit, withEpochs) = (rates[true].Max(r => r.Fit), rates[true].Max(r => r.Epochs));
        var (withoutFit, withoutEpochs) = (rates[false].Max(r => r.Fit), rates[false].Max(r => r.Epochs));
        Console.WriteLine($"Frozen phase, 3 epochs of {many.Count:N0} images, best of 2 alternating rounds: a frozen epoch runs at {withEpochs:F0} samples/s on cached features, " +
            $"{withoutEpochs:F0} through the backbone ({withEpochs / withoutEpochs:F1}x); the whole Fit (the one feature pass, data staging included) at {withFit:F0} against {withoutFit:F0} samples/s ({withFit / withoutFit:F2}x)");
        long cacheBytes = (long)many.Count * backbone.Network.InferShapes(backbone.InputShape)[backbone.CutIndex(null)].Aggregate(1L, (a, b) => a * b) * 4;
        Console.WriteLine($"The cache holds {cacheBytes / 1e6:F1} MB for {many.Count:N0} images (one float per value of the cut layer's output).");
        return 0;
    }
}
