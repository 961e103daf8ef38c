using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Common;
using MlNetDeep.Plotting;
using MlNetDeep.Vision;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// <c>mlnetdeep vision ...</c>: looking inside and fooling a saved image classifier (the MNIST CNN by default data):
/// adversarial accuracy against epsilon, feature maps, first-layer filters and saliency maps, as tables and PNGs.
/// </summary>
internal static class VisionCommands
{
    public static Command Create()
    {
        var vision = new Command("vision", "Feature maps, filters, saliency and adversarial examples on a saved image classifier.");
        vision.Subcommands.Add(AdversarialCommand());
        vision.Subcommands.Add(FeatureMapsCommand());
        vision.Subcommands.Add(FiltersCommand());
        vision.Subcommands.Add(SaliencyCommand());
        vision.Subcommands.Add(DreamCommand());
        vision.Subcommands.Add(StyleCommand());
        return vision;
    }

    /// <summary>Where the features of dreaming and style transfer come from: a saved model, an ONNX file, or random weights.</summary>
    private sealed class FeatureSource
    {
        public Option<string?> Model { get; } = new Option<string?>("--model", "-m") { Description = "A classifier saved with SaveDeep: its convolutional layers are the features." }.ExistingFile(OptionChecks.ModelHelpName);
        public Option<string?> Onnx { get; } = new Option<string?>("--onnx") { Description = "An ONNX vision model (e.g. VGG16 from the ONNX model zoo), imported into a network spec." }.ExistingFile();
        public Option<bool> Random { get; } = new("--random") { Description = "A multi-scale convolutional network with random weights (the default)." };

        public void AddTo(Command command)
        {
            command.Options.Add(Model);
            command.Options.Add(Onnx);
            command.Options.Add(Random);
        }

        public FeatureNetwork Open(ParseResult result, MLContext ml, int seed)
        {
            string? model = result.GetValue(Model), onnx = result.GetValue(Onnx);
            if ((model is null ? 0 : 1) + (onnx is null ? 0 : 1) + (result.GetValue(Random) ? 1 : 0) > 1)
                throw new ArgumentException("Choose one feature source: --model, --onnx or --random.");
            if (model is not null)
            {
                var (owner, classifier) = LoadClassifier(ml, model);
                using (owner) return FeatureNetwork.From(classifier);
            }
            if (onnx is not null) return FeatureNetwork.FromOnnx(onnx);
            return FeatureNetwork.Random(3, seed);
        }
    }

    private static long ResidentBytes()
    {
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        return process.WorkingSet64;
    }

    /// <summary>An input optimisation with a progress bar, and what it cost: "seconds; resident memory before -> after".</summary>
    private static (VisionImage Image, string Cost) Measured(string title, Func<IProgress<double>, VisionImage> run)
    {
        long before = ResidentBytes();
        var clock = Stopwatch.StartNew();
        var image = ConsoleProgress.RunFraction(title, run);
        return (image, $"{clock.Elapsed.TotalSeconds:F1} s; resident memory {before / 1e6:F0} -> {ResidentBytes() / 1e6:F0} MB");
    }

    private static Command DreamCommand()
    {
        var common = new CommonOptions();
        var source = new FeatureSource();
        var image = new Option<string>("--image") { Description = "The image to dream on (PNG, JPEG, ...).", Required = true }.ExistingFile();
        var layer = new Option<string>("--layer") { Description = "The layer whose activations are amplified (a name such as conv2d_4, or a position).", Required = true };
        var size = new Option<int>("--size") { Description = "Longer side of the image, in pixels.", DefaultValueFactory = _ => 256 }.AtLeast(4);
        var octaves = new Option<int>("--octaves") { Description = "Scales, 1.4 apart, ending at full size.", DefaultValueFactory = _ => 4 }.AtLeast(1);
        var steps = new Option<int>("--steps") { Description = "Steps per octave.", DefaultValueFactory = _ => 20 }.AtLeast(1);
        var jitter = new Option<int>("--jitter") { Description = "Random shift per step, in pixels.", DefaultValueFactory = _ => 2 }.AtLeast(0);
        var rate = new Option<double>("--lr") { Description = "Step size on the pixels (normalised gradient ascent).", DefaultValueFactory = _ => 0.005 }.Positive();
        var command = new Command("dream", "Deep dreaming: amplify what a layer sees in an image, over octaves with jitter.") { image, layer, size, octaves, steps, jitter, rate };
        source.AddTo(command);
        common.AddTo(command);
        command.SetAction(result =>
        {
            var ml = common.CreateContext(result);
            var output = common.OutputFolder(result);
            using var network = source.Open(result, ml, result.GetValue(common.Seed));
            var picture = VisionImage.Read(ml, result.GetValue(image)!, result.GetValue(size), grayscale: network.InputChannels == 1);
            var options = new InputOptimizationOptions
            {
                Octaves = result.GetValue(octaves), Steps = result.GetValue(steps), Jitter = result.GetValue(jitter), LearningRate = result.GetValue(rate), Seed = result.GetValue(common.Seed),
                Rule = InputStepRule.NormalizedGradient,
            };
            var (dreamed, cost) = Measured("dreaming", progress => DeepDream.Dream(network, picture, result.GetValue(layer)!, options with { Progress = progress }));
            var name = $"dream-{network.Network.Name}-{network.LayerNames[network.LayerIndex(result.GetValue(layer)!)]}";
            var path = Path.Combine(output, name + ".png");
            dreamed.SavePng(path);
            picture.SavePng(Path.Combine(output, "dream-input.png"));
            Console.WriteLine($"Dreamed {picture.Width}x{picture.Height} on {network.LayerNames[network.LayerIndex(result.GetValue(layer)!)]} of {network.Network.Name} ({network.Source}): " +
                $"{options.Octaves} octaves x {options.Steps} steps in {cost}; wrote {path}");
            return 0;
        });
        return command;
    }

    private static Command StyleCommand()
    {
        var common = new CommonOptions();
        var source = new FeatureSource();
        var content = new Option<string>("--content") { Description = "The content image.", Required = true }.ExistingFile();
        var style = new Option<string>("--style") { Description = "The style image.", Required = true }.ExistingFile();
        var size = new Option<int>("--size") { Description = "Longer side of both images, in pixels.", DefaultValueFactory = _ => 256 }.AtLeast(4);
        var steps = new Option<int>("--steps") { Description = "Adam steps on the pixels.", DefaultValueFactory = _ => 300 }.AtLeast(1);
        var rate = new Option<double>("--lr") { Description = "Step size on the pixels.", DefaultValueFactory = _ => 0.02 }.Positive();
        var contentLayer = new Option<string?>("--content-layer") { Description = "Content layer (default: the third convolution)." };
        var styleLayers = new Option<string?>("--style-layers") { Description = "Style layers, comma-separated (default: every convolution)." };
        var styleWeight = new Option<double>("--style-weight") { Description = "Weight of the style loss.", DefaultValueFactory = _ => 1e4 }.NonNegative();
        var contentWeight = new Option<double>("--content-weight") { Description = "Weight of the content loss.", DefaultValueFactory = _ => 1 }.NonNegative();
        var tv = new Option<double>("--tv-weight") { Description = "Weight of the total-variation loss.", DefaultValueFactory = _ => 1 }.NonNegative();
        var command = new Command("style", "Style transfer (Gatys et al.): the content image repainted with the style image's Gram matrices.")
        {
            content, style, size, steps, rate, contentLayer, styleLayers, styleWeight, contentWeight, tv,
        };
        source.AddTo(command);
        common.AddTo(command);
        command.SetAction(result =>
        {
            var ml = common.CreateContext(result);
            var output = common.OutputFolder(result);
            using var network = source.Open(result, ml, result.GetValue(common.Seed));
            int side = result.GetValue(size);
            var contentImage = VisionImage.Read(ml, result.GetValue(content)!, side, grayscale: network.InputChannels == 1);
            var styleImage = VisionImage.Read(ml, result.GetValue(style)!, side, grayscale: network.InputChannels == 1);
            var options = new StyleTransferOptions
            {
                ContentLayer = result.GetValue(contentLayer),
                StyleLayers = result.GetValue(styleLayers)?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
                StyleWeight = result.GetValue(styleWeight), ContentWeight = result.GetValue(contentWeight), TotalVariationWeight = result.GetValue(tv),
            };
            var (styled, cost) = Measured("style transfer", progress => StyleTransfer.Transfer(network, contentImage, styleImage, options with
            {
                Optimization = new InputOptimizationOptions { Steps = result.GetValue(steps), LearningRate = result.GetValue(rate), Seed = result.GetValue(common.Seed), Progress = progress },
            }));
            var path = Path.Combine(output, $"style-{network.Network.Name}.png");
            styled.SavePng(path);
            contentImage.SavePng(Path.Combine(output, "style-content.png"));
            styleImage.SavePng(Path.Combine(output, "style-style.png"));
            Console.WriteLine($"Style transfer {contentImage.Width}x{contentImage.Height} with {network.Network.Name} ({network.Source}): {result.GetValue(steps)} steps in {cost}; wrote {path}");
            return 0;
        });
        return command;
    }

    private static Option<string> ModelOption() =>
        new Option<string>("--model", "-m") { Description = "A classifier saved with SaveDeep (e.g. by 'train mnist').", Required = true }.ExistingFile(OptionChecks.ModelHelpName);

    /// <summary>The classifier stage of a saved pipeline (its other stages are not needed: the tools read its feature column).</summary>
    private static (IDisposable Owner, NeuralNetworkClassificationTransformer Model) LoadClassifier(MLContext ml, string path)
    {
        var loaded = ml.Model.LoadDeep(path, out _);
        var model = (loaded as IEnumerable<ITransformer> ?? [loaded]).OfType<NeuralNetworkClassificationTransformer>().FirstOrDefault();
        if (model is null)
        {
            (loaded as IDisposable)?.Dispose();
            throw new InvalidDataException($"{path} holds no multiclass neural-network classifier.");
        }
        return ((IDisposable)loaded, model);
    }

    /// <summary>The first <paramref name="count"/> MNIST test images and their digits.</summary>
    private static (List<float[]> Images, List<int> Digits) TestImages(int count)
    {
        var rows = Mnist.Read(MnistSplit.Test, maxRows: count);
        return (rows.Select(r => r.Pixels).ToList(), rows.Select(r => (int)r.Label).ToList());
    }

    private static void CheckMnistShape(NeuralNetworkClassificationTransformer model)
    {
        if (model.FeatureSize != Mnist.PixelCount)
            throw new ArgumentException($"The model reads {model.FeatureSize} values per image; these commands feed it MNIST's 784-pixel test images.");
    }

    private static double[] Numbers(string text, string option)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var values = new double[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]) || !double.IsFinite(values[i]) || values[i] < 0)
                throw new ArgumentException($"{option} takes numbers of at least 0 separated by commas (e.g. 0,0.1,0.2), not \"{text}\".", option);
        if (values.Length == 0) throw new ArgumentException($"{option} needs at least one number.", option);
        return values;
    }

    private static Command AdversarialCommand()
    {
        var common = new CommonOptions();
        var model = ModelOption();
        var epsilons = new Option<string>("--epsilons") { Description = "FGSM epsilons (pixels in [0, 1]).", DefaultValueFactory = _ => "0,0.05,0.1,0.15,0.2,0.25,0.3" }
            .Check(text => { try { Numbers(text, "--epsilons"); return null; } catch (ArgumentException ex) { return ex.Message.Replace(" (Parameter '--epsilons')", ""); } });
        var rows = new Option<int>("--rows") { Description = "MNIST test images attacked with FGSM.", DefaultValueFactory = _ => 10_000 }.AtLeast(1);
        var pgdEpsilon = new Option<double>("--pgd-epsilon") { Description = "PGD epsilon.", DefaultValueFactory = _ => 0.3 }.NonNegative();
        var pgdSteps = new Option<int>("--pgd-steps") { Description = "PGD steps (0: no PGD).", DefaultValueFactory = _ => 40 }.AtLeast(0);
        var pgdStep = new Option<double>("--pgd-step-size") { Description = "PGD step size.", DefaultValueFactory = _ => 0.01 }.Positive();
        var pgdRows = new Option<int>("--pgd-rows") { Description = "MNIST test images attacked with PGD.", DefaultValueFactory = _ => 10_000 }.AtLeast(1);
        var compare = new Option<string?>("--compare") { Description = "A second saved classifier (e.g. adversarially trained) whose FGSM curve is drawn beside the first." }.ExistingFile(OptionChecks.ModelHelpName);
        var command = new Command("adversarial", "Accuracy of a saved MNIST classifier under FGSM at each epsilon and under PGD; example images.")
        {
            model, epsilons, rows, pgdEpsilon, pgdSteps, pgdStep, pgdRows, compare,
        };
        common.AddTo(command);
        command.SetAction(result =>
        {
            var eps = Numbers(result.GetValue(epsilons)!, "--epsilons");
            int n = result.GetValue(rows), steps = result.GetValue(pgdSteps), pgdN = result.GetValue(pgdRows);
            var pgd = steps == 0 ? null : Attack.Pgd(result.GetValue(pgdEpsilon), steps, result.GetValue(pgdStep));
            var output = common.OutputFolder(result);
            var ml = common.CreateContext(result);
            var (owner, classifier) = LoadClassifier(ml, result.GetValue(model)!);
            using (owner)
            {
                CheckMnistShape(classifier);
                string name = Path.GetFileNameWithoutExtension(result.GetValue(model)!);
                var test = ml.Data.LoadMnist(MnistSplit.Test, maxRows: Math.Max(n, pgdN));
                var fgsm = eps.Select(e => Attack.Fgsm(e)).ToList();
                var clock = Stopwatch.StartNew();
                var points = ConsoleProgress.RunFraction($"FGSM on {n:N0} images", progress =>
                    classifier.Robustness(ml.Data.TakeRows(test, n), fgsm, "Label", seed: result.GetValue(common.Seed), progress));
                double fgsmSeconds = clock.Elapsed.TotalSeconds;
                Console.WriteLine($"{name}: FGSM on {n:N0} MNIST test images ({fgsmSeconds:F1} s)");
                Console.WriteLine($"{"epsilon",8} {"accuracy",9} {"largest change",15}");
                foreach (var p in points) Console.WriteLine($"{p.Attack.Epsilon,8:G3} {p.Accuracy,9:P2} {p.LargestChange,15:F3}");
                var lines = points.Select(p => FormattableString.Invariant($"fgsm,{p.Attack.Epsilon},0,{p.Rows},{p.Accuracy:F6},{p.LargestChange:F6}")).ToList();
                if (pgd is not null)
                {
                    clock.Restart();
                    var robust = ConsoleProgress.RunFraction($"PGD on {pgdN:N0} images", progress =>
                        classifier.Robustness(ml.Data.TakeRows(test, pgdN), [pgd], "Label", seed: result.GetValue(common.Seed), progress))[0];
                    Console.WriteLine($"PGD, epsilon {pgd.Epsilon}, {pgd.Steps} steps of {pgd.EffectiveStepSize:G3} from a random start, {pgdN:N0} images: accuracy {robust.Accuracy:P2} " +
                        $"(largest change {robust.LargestChange:F3}; {clock.Elapsed.TotalSeconds:F1} s)");
                    lines.Add(FormattableString.Invariant($"pgd,{pgd.Epsilon},{pgd.Steps},{robust.Rows},{robust.Accuracy:F6},{robust.LargestChange:F6}"));
                }
                File.WriteAllText(Path.Combine(output, $"{name}-adversarial.csv"), "attack,epsilon,steps,rows,accuracy,largest_change\n" + string.Join("\n", lines) + "\n");
                var series = new List<Charts.Series> { new(name, points.Select(p => p.Attack.Epsilon).ToList(), points.Select(p => p.Accuracy).ToList()) };
                if (result.GetValue(compare) is { } other)
                {
                    var (otherOwner, otherModel) = LoadClassifier(ml, other);
                    using (otherOwner)
                    {
                        CheckMnistShape(otherModel);
                        string otherName = Path.GetFileNameWithoutExtension(other);
                        var otherPoints = ConsoleProgress.RunFraction($"FGSM on {otherName}", progress =>
                            otherModel.Robustness(ml.Data.TakeRows(test, n), fgsm, "Label", seed: result.GetValue(common.Seed), progress));
                        Console.WriteLine($"{otherName}: FGSM on {n:N0} MNIST test images: " + string.Join(", ", otherPoints.Select(p => $"{p.Attack.Epsilon:G3}: {p.Accuracy:P2}")));
                        series.Add(new Charts.Series(otherName, otherPoints.Select(p => p.Attack.Epsilon).ToList(), otherPoints.Select(p => p.Accuracy).ToList()));
                    }
                }
                Charts.Lines(Path.Combine(output, $"{name}-fgsm.png"), $"Accuracy under FGSM ({n:N0} MNIST test images)", "epsilon", "accuracy", series);
                WriteExamples(classifier, Path.Combine(output, $"{name}-adversarial-examples.png"), eps, result.GetValue(common.Seed));
                Console.WriteLine($"Wrote {name}-adversarial.csv, {name}-fgsm.png, {name}-adversarial-examples.png in {output}");
            }
            return 0;
        });
        return command;
    }

    /// <summary>Eight test digits (one row per epsilon), each captioned with the model's answer.</summary>
    private static void WriteExamples(NeuralNetworkClassificationTransformer model, string path, double[] epsilons, int seed)
    {
        var (images, digits) = TestImages(8);
        var tiles = new List<float[]>();
        var captions = new List<string>();
        foreach (var e in epsilons)
        {
            var attacked = model.AdversarialExamples(images, digits, Attack.Fgsm(e), seed);
            var predicted = model.PredictedClasses(attacked);
            for (int i = 0; i < attacked.Length; i++)
            {
                tiles.Add(attacked[i]);
                captions.Add(FormattableString.Invariant($"e{e:0.##}: {predicted[i]}"));
            }
        }
        ImageGrid.Save(path, tiles, 28, 28, columns: 8, scale: 3, captions, "FGSM: each row one epsilon; caption: epsilon and the model's answer (true digits in the first row)");
    }

    private static Command FeatureMapsCommand()
    {
        var common = new CommonOptions();
        var model = ModelOption();
        var layer = new Option<string?>("--layer") { Description = "A layer name (e.g. conv2d_0) or position; default: every convolution and pooling layer." };
        var index = new Option<int>("--image") { Description = "Which MNIST test image (0-based).", DefaultValueFactory = _ => 0 }.Between(0, 9_999);
        var command = new Command("featuremaps", "Draw the feature maps of one MNIST test image at each convolutional layer of a saved classifier.") { model, layer, index };
        common.AddTo(command);
        command.SetAction(result =>
        {
            var ml = common.CreateContext(result);
            var output = common.OutputFolder(result);
            var (owner, classifier) = LoadClassifier(ml, result.GetValue(model)!);
            using (owner)
            {
                CheckMnistShape(classifier);
                int which = result.GetValue(index);
                var (images, digits) = TestImages(which + 1);
                var names = result.GetValue(layer) is { } chosen
                    ? [classifier.LayerNames()[NetworkInspection.LayerIndex(classifier.Network, chosen)]]
                    : classifier.LayerNames().Where(n => classifier.LayerShape(n).Length == 3).ToList();
                if (names.Count == 0) throw new ArgumentException($"The network has no layer with feature maps (channels x height x width); its layers: {string.Join(", ", classifier.LayerNames())}.");
                foreach (var name in names)
                {
                    var shape = classifier.LayerShape(name);
                    var maps = classifier.Activations([images[which]], name)[0];
                    if (shape.Length != 3) throw new ArgumentException($"Layer {name} outputs [{string.Join(", ", shape)}], not feature maps (channels x height x width).");
                    int channels = shape[0], plane = shape[1] * shape[2];
                    var tiles = Enumerable.Range(0, channels).Select(c => maps.AsSpan(c * plane, plane).ToArray()).ToList();
                    var path = Path.Combine(output, $"featuremaps-{name}.png");
                    ImageGrid.Save(path, tiles, shape[1], shape[2], columns: 16, scale: Math.Max(1, 84 / shape[1]),
                        captions: Enumerable.Range(0, channels).Select(c => c.ToString(CultureInfo.InvariantCulture)).ToList(),
                        title: $"{name}: {channels} feature maps of test image {which} (a {digits[which]}), each scaled to its own range", min: null, max: null);
                    Console.WriteLine($"{name} [{string.Join(", ", shape)}]: wrote {path}");
                }
            }
            return 0;
        });
        return command;
    }

    private static Command FiltersCommand()
    {
        var common = new CommonOptions();
        var model = new Option<string?>("--model", "-m") { Description = "A classifier saved with SaveDeep (e.g. by 'train mnist')." }.ExistingFile(OptionChecks.ModelHelpName);
        var onnx = new Option<string?>("--onnx") { Description = "An ONNX vision model instead (e.g. VGG16 from the ONNX model zoo)." }.ExistingFile();
        var size = new Option<int?>("--size") { Description = "Side of the images drawn (default: the model's input size)." }.AtLeast(1);
        var channels = new Option<int?>("--channels") { Description = "Draw the first N channels of each layer (default: all of a saved model's, 16 of an ONNX model's)." }.AtLeast(1);
        var steps = new Option<int>("--steps") { Description = "Gradient-ascent steps per octave.", DefaultValueFactory = _ => 64 }.AtLeast(1);
        var octaves = new Option<int>("--octaves") { Description = "Octaves of the gradient ascent.", DefaultValueFactory = _ => 2 }.AtLeast(1);
        var tv = new Option<double>("--tv-weight") { Description = "Total-variation weight (smoothness).", DefaultValueFactory = _ => 0.05 }.NonNegative();
        var lr = new Option<double>("--lr") { Description = "Step size on the pixels (a small one keeps the image near grey: the direction that excites the channel).", DefaultValueFactory = _ => 0.05 }.Positive();
        var command = new Command("filters", "Draw the first convolutional layer's kernels, and for every convolutional layer the inputs that most excite its channels.")
        {
            model, onnx, size, channels, steps, octaves, tv, lr,
        };
        common.AddTo(command);
        command.SetAction(result =>
        {
            var ml = common.CreateContext(result);
            var output = common.OutputFolder(result);
            string? modelPath = result.GetValue(model), onnxPath = result.GetValue(onnx);
            if ((modelPath is null) == (onnxPath is null)) throw new ArgumentException("Give either --model or --onnx.");
            FeatureNetwork features;
            if (modelPath is not null)
            {
                var (owner, classifier) = LoadClassifier(ml, modelPath);
                using (owner) features = FeatureNetwork.From(classifier);
            }
            else features = FeatureNetwork.FromOnnx(onnxPath!);
            using (features)
            {
                var inputShape = features.ImageShape!;
                var kernels = Filters.FirstLayerKernels(features);
                var path = Path.Combine(output, "filters-first-layer.png");
                ImageGrid.Save(path, kernels.Images, kernels.Height, kernels.Width, columns: 8, scale: 24, channels: kernels.Channels,
                    title: $"{kernels.Layer}: {kernels.Images.Count} kernels{(kernels.Channels == 1 ? " (input channel 0)" : " (RGB)")}, each scaled to its own range", min: null, max: null);
                Console.WriteLine($"{kernels.Layer}: {kernels.Images.Count} kernels of {kernels.Height}x{kernels.Width}: wrote {path}");
                int height = result.GetValue(size) ?? inputShape[1], width = result.GetValue(size) ?? inputShape[2];
                int? limit = result.GetValue(channels) ?? (onnxPath is null ? null : 16);
                foreach (var layer in features.LayerNames.Where((_, i) => features.Network.Layers[i] is Networks.Conv2D or Networks.Residual))
                {
                    var clock = Stopwatch.StartNew();
                    var images = ConsoleProgress.RunFraction($"maximising {layer}", progress =>
                        Filters.Maximize(features, layer, limit is { } n ? Enumerable.Range(0, n).ToList() : null, height, width, new InputOptimizationOptions
                        {
                            Steps = result.GetValue(steps), LearningRate = result.GetValue(lr), Octaves = result.GetValue(octaves), Jitter = 1,
                            TotalVariationWeight = result.GetValue(tv), Seed = result.GetValue(common.Seed), Progress = progress,
                        }));
                    var grid = Path.Combine(output, $"filters-{layer}.png");
                    ImageGrid.Save(grid, images.Select(i => i.Pixels).ToList(), images[0].Height, images[0].Width, columns: 16, scale: Math.Max(1, 84 / images[0].Height),
                        captions: Enumerable.Range(0, images.Count).Select(c => c.ToString(CultureInfo.InvariantCulture)).ToList(),
                        title: $"{layer}: the input that most excites each of its {images.Count} channels (gradient ascent from grey, {result.GetValue(octaves)} octave(s) x {result.GetValue(steps)} steps of {result.GetValue(lr)}, total variation {result.GetValue(tv)})",
                        channels: images[0].Channels, min: null, max: null);
                    Console.WriteLine($"{layer}: {images.Count} channels maximised in {clock.Elapsed.TotalSeconds:F1} s: wrote {grid}");
                }
            }
            return 0;
        });
        return command;
    }

    private static Command SaliencyCommand()
    {
        var common = new CommonOptions();
        var model = ModelOption();
        var count = new Option<int>("--count") { Description = "MNIST test images to explain.", DefaultValueFactory = _ => 8 }.AtLeast(1);
        var command = new Command("saliency", "Saliency maps (gradient, and gradient x input) of the predicted class for MNIST test images.") { model, count };
        common.AddTo(command);
        command.SetAction(result =>
        {
            var ml = common.CreateContext(result);
            var output = common.OutputFolder(result);
            var (owner, classifier) = LoadClassifier(ml, result.GetValue(model)!);
            using (owner)
            {
                CheckMnistShape(classifier);
                var (images, _) = TestImages(result.GetValue(count));
                var predicted = classifier.PredictedClasses(images);
                var gradient = classifier.Saliency(images, predicted, SaliencyKind.Gradient);
                var times = classifier.Saliency(images, predicted, SaliencyKind.GradientTimesInput);
                static float[] Scaled(float[] map)
                {
                    float top = Math.Max(map.Max(v => Math.Abs(v)), 1e-12f);
                    return map.Select(v => Math.Abs(v) / top).ToArray();
                }
                // Grey image with the |gradient| in red over it: three planes of an RGB picture.
                static float[] Overlay(float[] image, float[] heat) =>
                    [.. image.Zip(heat, (p, h) => Math.Max(0.6f * p, h)), .. image.Zip(heat, (p, h) => 0.6f * p * (1 - h)), .. image.Zip(heat, (p, h) => 0.6f * p * (1 - h))];
                var grey = images.Select(i => (float[])[.. i, .. i, .. i]);
                var tiles = grey.Concat(gradient.Select(g => Scaled(g)).Select(g => (float[])[.. g, .. g, .. g]))
                    .Concat(images.Zip(gradient, (i, g) => Overlay(i, Scaled(g))))
                    .Concat(images.Zip(times, (i, g) => Overlay(i, Scaled(g)))).ToList();
                var captions = predicted.Select(p => $"says {p}").Concat(predicted.Select(_ => "|gradient|"))
                    .Concat(predicted.Select(_ => "gradient on it")).Concat(predicted.Select(_ => "grad x input")).ToList();
                var path = Path.Combine(output, "saliency.png");
                ImageGrid.Save(path, tiles, 28, 28, columns: images.Count, scale: 3, captions,
                    "Saliency of the predicted class: image, |gradient|, |gradient| in red, |gradient x input| in red", channels: 3);
                Console.WriteLine($"Wrote {path}");
            }
            return 0;
        });
        return command;
    }
}
