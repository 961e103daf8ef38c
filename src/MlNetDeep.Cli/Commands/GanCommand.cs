using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML;
using MlNetDeep.Data;
using MlNetDeep.Models.Generative;
using MlNetDeep.Plotting;
using MlNetDeep.Training;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// <c>mlnetdeep gan mnist --kind dense|dcgan|cgan</c>: trains a GAN on MNIST with a sample grid per epoch, judges every
/// epoch's samples with the cached MNIST judge (class histogram, Fréchet distance of judge features against the test
/// set; for cgan the share drawn as the requested digit), and writes the curves and the model.
/// </summary>
internal static class GanCommand
{
    public static Command Create()
    {
        var common = new CommonOptions();
        var kind = new Option<string>("--kind", "-k") { Description = "dense (MLPs), dcgan, or cgan (a conditional DCGAN).", DefaultValueFactory = _ => "dcgan" };
        kind.AcceptOnlyFromAmong("dense", "dcgan", "cgan");
        var epochs = new Option<int>("--epochs", "-e") { Description = "Epochs.", DefaultValueFactory = _ => 5 }.AtLeast(1);
        var batch = new Option<int>("--batch-size", "-b") { Description = "Mini-batch size.", DefaultValueFactory = _ => 64 }.AtLeast(1);
        var rate = new Option<double>("--learning-rate", "--lr") { Description = "Adam learning rate of the generator (beta1 0.5).", DefaultValueFactory = _ => 2e-4 }.Positive();
        var dRate = new Option<double?>("--d-learning-rate", "--d-lr") { Description = "Adam learning rate of the discriminator (default: the generator's)." }.Positive();
        var latent = new Option<int>("--latent") { Description = "Size of the noise vector z.", DefaultValueFactory = _ => 100 }.AtLeast(1);
        var loss = new Option<string>("--loss") { Description = "nonsaturating or hinge.", DefaultValueFactory = _ => "nonsaturating" };
        loss.AcceptOnlyFromAmong("nonsaturating", "hinge");
        var smoothing = new Option<double>("--real-label") { Description = "One-sided label smoothing: the target for real images (1 = off).", DefaultValueFactory = _ => 1.0 };
        var noise = new Option<double>("--instance-noise") { Description = "Instance noise std, decaying to 0 (0 = off).", DefaultValueFactory = _ => 0.0 };
        var matching = new Option<bool>("--feature-matching") { Description = "Train the generator by feature matching." };
        var spread = new Option<bool>("--minibatch-std") { Description = "Minibatch standard deviation in the discriminator (against mode collapse)." };
        var average = new Option<double>("--g-average") { Description = "Decay of an exponential moving average of the generator's weights, e.g. 0.999 (0 = off).", DefaultValueFactory = _ => 0.0 };
        var selfConditioning = new Option<int>("--self-conditioning") { Description = "Condition on this many k-means clusters of the images, drawn by their shares (against mode collapse; 0 = off).", DefaultValueFactory = _ => 0 };
        var rows = new Option<int?>("--train-rows") { Description = "Use only the first N training images (quick runs)." }.AtLeast(1);
        var samples = new Option<int>("--judge-samples") { Description = "Generated images judged per epoch.", DefaultValueFactory = _ => 10_000 }.AtLeast(2);
        var command = new Command("mnist", "Train a GAN on MNIST; sample grids per epoch, losses, and the judge's class histogram and Fréchet distance.")
        {
            kind, epochs, batch, rate, dRate, latent, loss, smoothing, noise, matching, spread, average, selfConditioning, rows, samples,
        };
        common.AddTo(command);
        command.SetAction(result =>
        {
            string k = result.GetValue(kind)!;
            var options = new GanOptions
            {
                Kind = k == "dense" ? GanKind.Dense : GanKind.Dcgan,
                LabelColumnName = k == "cgan" ? "Label" : null,
                Epochs = result.GetValue(epochs), BatchSize = result.GetValue(batch),
                Optimizer = new Adam(result.GetValue(rate), Beta1: 0.5),
                DiscriminatorOptimizer = new Adam(result.GetValue(dRate) ?? result.GetValue(rate), Beta1: 0.5),
                LatentSize = result.GetValue(latent),
                Loss = result.GetValue(loss) == "hinge" ? GanLoss.Hinge : GanLoss.NonSaturating,
                RealLabel = result.GetValue(smoothing), InstanceNoise = result.GetValue(noise), FeatureMatching = result.GetValue(matching), MinibatchStdDev = result.GetValue(spread),
                GeneratorAverage = result.GetValue(average), SelfConditioning = result.GetValue(selfConditioning),
            };
            int judged = result.GetValue(samples);
            int? trainRows = result.GetValue(rows);
            // Options are checked before any data is read.
            _ = new GanEstimator(new MLContext(), options);
            return Run(common.CreateContext(result), options, $"gan-{k}", common.OutputFolder(result), trainRows, judged);
        });
        return command;
    }

    internal static int Run(MLContext ml, GanOptions options, string name, string output, int? trainRows, int judged)
    {
        Console.WriteLine("Loading MNIST ...");
        var train = ml.Data.LoadMnist(MnistSplit.Train, maxRows: trainRows);
        var testImages = Mnist.Read(MnistSplit.Test);
        var test = testImages.Select(i => i.Pixels).ToList();
        var (generatorSpec, discriminatorSpec) = options.Resolve(options.InputShape!);
        int conditional = options.LabelColumnName is null && options.SelfConditioning == 0 ? 0 : options.LabelEmbeddingSize;
        bool labelled = options.LabelColumnName is not null;
        Console.Write(generatorSpec.Summary([options.LatentSize + conditional]));
        Console.Write(discriminatorSpec.Summary(conditional > 0 ? [2, 28, 28] : [1, 28, 28]));

        Console.WriteLine("Loading the MNIST judge (trained once and cached) ...");
        using var judge = ConsoleProgress.Run("judge", progress => MnistJudge.LoadOrTrain(ml, progress));
        var (testDigits, testFeatures) = judge.Judge(test);
        Console.WriteLine($"Judge: test accuracy {testDigits.Zip(testImages).Count(p => p.First == p.Second.Label) / (double)test.Count:P2} (10,000 MNIST test images)");
        var trainFeatures = judge.Judge(Mnist.Read(MnistSplit.Train, maxRows: test.Count).Select(i => i.Pixels).ToList()).Features;
        Console.WriteLine($"Judge: Fréchet distance test vs train (real vs real baseline) {GenerationQuality.FrechetDistance(testFeatures, trainFeatures):F2}");

        var requested = Enumerable.Range(0, judged).Select(i => i % 10).ToArray();
        var rows = new List<string> { "epoch,frechet_distance,classes_present,classes_covering_90,entropy_bits,min_share,max_share,requested_label_share" };
        var distances = new List<double>();
        ClassHistogram? last = null;
        options.Callbacks.Add(new EpochCallback(end =>
        {
            // The loop hands callbacks its modules in eval mode, without gradients.
            var gan = (GanModule)end.Step.Modules[0];
            using var averaged = gan.WithAveragedGenerator();
            var grid = Draw(gan, options, 64, seed: 12345, Enumerable.Range(0, 64).Select(i => i % 10).ToArray());
            ImageGrid.Save(Path.Combine(output, $"{name}-epoch{end.Metrics.Epoch + 1:D2}.png"), grid, 28, 28, 8,
                title: $"{name}: epoch {end.Metrics.Epoch + 1}{(labelled ? " (asked for the digits 0-9 in reading order)" : "")}");
            var images = Draw(gan, options, judged, seed: 777, requested);
            var (digits, features) = judge.Judge(images);
            var histogram = GenerationQuality.Histogram(digits, 10);
            double fd = GenerationQuality.FrechetDistance(features, testFeatures);
            double? match = labelled ? digits.Zip(requested).Count(p => p.First == p.Second) / (double)judged : null;
            distances.Add(fd);
            last = histogram;
            rows.Add(FormattableString.Invariant($"{end.Metrics.Epoch + 1},{fd:F3},{histogram.ClassesPresent},{histogram.ClassesCovering90},{histogram.Entropy:F4},{histogram.Shares.Min():F4},{histogram.Shares.Max():F4},{match?.ToString("F4", System.Globalization.CultureInfo.InvariantCulture) ?? ""}"));
            Console.WriteLine($"  judge, epoch {end.Metrics.Epoch + 1}: Fréchet distance {fd:F2}; {histogram.Describe()}" + (match is { } m ? $"; drawn as requested {m:P2}" : ""));
        }));

        var clock = Stopwatch.StartNew();
        using var model = ConsoleProgress.Run(name, progress =>
        {
            options.Progress = progress;
            return ml.Transforms.GenerativeAdversarialNetwork(options).Fit(train);
        });
        Console.WriteLine($"Training: {options.Epochs} epochs, {clock.Elapsed.TotalSeconds:F0} s with judging, {model.History!.SamplesPerSecond:F0} samples/s, device {model.Device}");

        if (model.ClassShares is { } shares)
            Console.WriteLine($"Self-conditioning: {shares.Count} k-means clusters, shares of the training images " +
                string.Join(" ", shares.Select((v, c) => FormattableString.Invariant($"{c}:{v:P1}"))));
        File.WriteAllText(Path.Combine(output, $"{name}-judge.csv"), string.Join(Environment.NewLine, rows) + Environment.NewLine);
        File.WriteAllText(Path.Combine(output, $"{name}-history.csv"), model.History.ToCsv());
        Charts.TrainingCurves(Path.Combine(output, $"{name}-curves.png"), model.History, name);
        Charts.Lines(Path.Combine(output, $"{name}-frechet.png"), $"{name}: judge Fréchet distance to the test set", "epoch", "distance",
            [new Charts.Series("generated vs test", Enumerable.Range(1, distances.Count).Select(e => (double)e).ToList(), distances)]);
        if (last is not null)
            Charts.Bars(Path.Combine(output, $"{name}-histogram.png"), $"{name}: digits the judge sees in {judged:N0} samples (last epoch)", "share",
                Enumerable.Range(0, 10).Select(d => d.ToString()).ToList(), last.Shares, lowerGuide: 0.05, upperGuide: 0.15);
        var modelPath = Path.Combine(output, $"{name}.zip");
        var noise = model.NoiseData(ml, 1, 1, labelled ? [0] : null);
        ml.Model.SaveDeep(model, noise.Schema, modelPath);
        Console.WriteLine($"Saved model {modelPath}; wrote {name}-epochNN.png, {name}-curves.png, {name}-frechet.png, {name}-histogram.png, {name}-judge.csv, {name}-history.csv in {output}");
        return 0;
    }

    /// <summary>Images in [0, 1] from the module being trained (eval mode, no gradients), seeded.</summary>
    private static List<float[]> Draw(GanModule gan, GanOptions options, int count, int seed, int[] labels)
    {
        var images = new List<float[]>(count);
        using var generator = new TorchSharp.torch.Generator((ulong)seed);
        var device = gan.parameters().First().device;
        for (int start = 0; start < count; start += 1000)
        {
            using var scope = TorchSharp.torch.NewDisposeScope();
            using var noGrad = TorchSharp.torch.no_grad();
            int rows = Math.Min(1000, count - start);
            var z = TorchSharp.torch.randn([rows, options.LatentSize], generator: generator).to(device);
            var y = gan.SelfConditioned ? gan.DrawClasses(rows, generator).to(device)
                : gan.Classes > 0 ? TorchSharp.torch.tensor(labels.Skip(start).Take(rows).Select(l => (long)l).ToArray()).to(device) : null;
            var x = gan.GeneratePixels(z, y).to(TorchSharp.torch.CPU).contiguous().data<float>().ToArray();
            for (int r = 0; r < rows; r++) images.Add(x.AsSpan(r * 784, 784).ToArray());
        }
        return images;
    }
}
