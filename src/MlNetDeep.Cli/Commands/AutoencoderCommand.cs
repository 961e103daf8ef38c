using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Plotting;
using MlNetDeep.Training;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// <c>mlnetdeep autoencoder mnist --kind dense|conv|denoise|vae</c>: trains an autoencoder on MNIST, prints its test
/// figures (reconstruction MSE; PSNR of noisy vs denoised; ELBO) and writes the pictures (reconstructions, noisy/denoised/clean
/// triplets, VAE samples, latent grid and scatter for 2-D codes, an interpolation).
/// </summary>
internal static class AutoencoderCommand
{
    public static Command Create()
    {
        var common = new CommonOptions();
        var kind = new Option<string>("--kind", "-k") { Description = "dense, conv (convolutional), denoise (the convolutional denoiser, 32x7x7 bottleneck) or vae.", DefaultValueFactory = _ => "dense" };
        kind.AcceptOnlyFromAmong("dense", "conv", "denoise", "vae");
        var latent = new Option<int?>("--latent", "-l") { Description = "Latent size (default 32; 2 for vae). Ignored by denoise (its code is 32x7x7)." }.AtLeast(1);
        var epochs = new Option<int?>("--epochs", "-e") { Description = "Epochs (default: dense 10, conv 5, denoise 3, vae 15)." }.AtLeast(1);
        var batch = new Option<int>("--batch-size", "-b") { Description = "Mini-batch size.", DefaultValueFactory = _ => 128 }.AtLeast(1);
        var rate = new Option<double>("--learning-rate", "--lr") { Description = "Adam learning rate.", DefaultValueFactory = _ => 1e-3 }.Positive();
        var noise = new Option<double>("--noise") { Description = "Std of the Gaussian noise (clipped to [0, 1]) for denoise, in training and test.", DefaultValueFactory = _ => 0.5 }.NonNegative();
        var beta = new Option<double>("--beta") { Description = "Weight of the KL term (vae).", DefaultValueFactory = _ => 1.0 }.NonNegative();
        var rows = new Option<int?>("--train-rows") { Description = "Use only the first N training images (quick runs)." }.AtLeast(1);
        var command = new Command("mnist", "Train an autoencoder on MNIST, report test figures and write PNGs (fetches MNIST on first use).")
        {
            kind, latent, epochs, batch, rate, noise, beta, rows,
        };
        common.AddTo(command);
        command.SetAction(result =>
        {
            string k = result.GetValue(kind)!;
            var settings = new Settings(k, result.GetValue(latent) ?? (k == "vae" ? 2 : 32),
                result.GetValue(epochs) ?? k switch { "dense" => 10, "conv" => 5, "denoise" => 3, _ => 15 },
                result.GetValue(batch), result.GetValue(rate), result.GetValue(noise), result.GetValue(beta), result.GetValue(rows));
            // The trainer's own checks, before MNIST is loaded (or downloaded).
            var options = Options(settings);
            _ = options is VariationalAutoencoderOptions vae
                ? (object)new VariationalAutoencoderEstimator(new MLContext(), vae)
                : new AutoencoderEstimator(new MLContext(), (AutoencoderOptions)options);
            return Run(common.CreateContext(result), settings, common.OutputFolder(result), result.GetValue(common.Seed));
        });
        return command;
    }

    internal sealed record Settings(string Kind, int Latent, int Epochs, int BatchSize, double LearningRate, double Noise, double Beta, int? TrainRows);

    internal static int Run(MLContext ml, Settings s, string output, int seed)
    {
        string name = s.Kind == "denoise" ? "mnist-denoise" : $"mnist-{s.Kind}-{s.Latent}";
        Console.WriteLine("Loading MNIST ...");
        var train = ml.Data.LoadMnist(MnistSplit.Train, maxRows: s.TrainRows);
        var testImages = Mnist.Read(MnistSplit.Test).ToList();
        var test = ml.Data.LoadFromEnumerable(testImages);
        var clean = testImages.Select(i => i.Pixels).ToList();

        var options = Options(s);
        var (encoder, decoder, latentShape) = options.Resolve(options.InputShape ?? [Mnist.PixelCount]);
        Console.Write(encoder.Summary(options.InputShape ?? [Mnist.PixelCount]));
        Console.Write(decoder.Summary(latentShape));
        if (options.Corruption is { } corruption) Console.WriteLine($"Training inputs corrupted by {corruption.Describe()}; targets clean.");

        var clock = Stopwatch.StartNew();
        var model = ConsoleProgress.Run(name, progress =>
        {
            options.Progress = progress;
            return options is VariationalAutoencoderOptions vae
                ? (AutoencoderTransformerBase)ml.Transforms.VariationalAutoencoder(vae).Fit(train)
                : ml.Transforms.Autoencoder((AutoencoderOptions)options).Fit(train);
        });
        Console.WriteLine($"Training: {clock.Elapsed.TotalSeconds:F0} s, {model.History!.SamplesPerSecond:F0} samples/s, device {model.Device}");

        var scored = model.Transform(test);
        var reconstructions = scored.GetColumn<Microsoft.ML.Data.VBuffer<float>>(model.ReconstructionColumnName).Select(v => v.DenseValues().ToArray()).ToList();
        var latents = scored.GetColumn<Microsoft.ML.Data.VBuffer<float>>(model.LatentColumnName).Select(v => v.DenseValues().ToArray()).ToList();
        var metrics = ReconstructionMetrics.Compute(clean, reconstructions);
        Console.WriteLine($"Test reconstruction (10,000 images, clean inputs): MSE {metrics.MeanSquaredError:F5}, PSNR {metrics.Psnr:F2} dB");

        var files = new List<string>();
        string Png(string suffix) { var p = Path.Combine(output, $"{name}-{suffix}.png"); files.Add(p); return p; }
        int shown = 12;
        ImageGrid.Save(Png("reconstructions"), [.. clean.Take(shown), .. reconstructions.Take(shown)], Mnist.Side, Mnist.Side, shown,
            title: $"{name}: test inputs (top) and reconstructions (bottom)");

        if (s.Kind == "denoise")
        {
            var noisy = new GaussianCorruption(s.Noise).Corrupt(clean, seed: seed + 1000);
            var noisyData = ml.Data.LoadFromEnumerable(noisy.Select(p => new MnistImage { Pixels = p }).ToList());
            var denoised = model.Transform(noisyData).GetColumn<Microsoft.ML.Data.VBuffer<float>>(model.ReconstructionColumnName).Select(v => v.DenseValues().ToArray()).ToList();
            var before = ReconstructionMetrics.Compute(clean, noisy);
            var after = ReconstructionMetrics.Compute(clean, denoised);
            Console.WriteLine($"Denoising, Gaussian noise std {s.Noise} clipped to [0, 1], 10,000 test images:");
            Console.WriteLine($"  noisy input:  MSE {before.MeanSquaredError:F5}, PSNR {before.Psnr:F2} dB");
            Console.WriteLine($"  denoised:     MSE {after.MeanSquaredError:F5}, PSNR {after.Psnr:F2} dB   (gain {after.Psnr - before.Psnr:F2} dB)");
            ImageGrid.Save(Png("triplets"), [.. noisy.Take(shown), .. denoised.Take(shown), .. clean.Take(shown)], Mnist.Side, Mnist.Side, shown,
                title: $"noisy (std {s.Noise}), denoised, clean");
        }

        if (model is VariationalAutoencoderTransformer vaeModel)
        {
            var elbo = vaeModel.EvaluateElbo(test, seed);
            Console.WriteLine($"Test ELBO: {elbo.Elbo:F2} nats per image (reconstruction {elbo.Reconstruction:F2} + KL {elbo.KL:F2}), one latent sample per image");
            ImageGrid.Save(Png("samples"), vaeModel.Generate(64, seed), Mnist.Side, Mnist.Side, 8, title: $"{name}: images decoded from z ~ N(0, I)");
        }

        if (model.LatentSize == 2)
        {
            var digits = testImages.Select(i => i.Label.ToString()).ToList();
            LatentPlots.Scatter(Png("latent-scatter"), latents, digits, $"{name}: test latent codes by digit");
            var range = model is VariationalAutoencoderTransformer ? ((-2.5, 2.5), (-2.5, 2.5)) : LatentSpace.Range(latents, 0.02, 0.98);
            int steps = 15;
            ImageGrid.Save(Png("latent-grid"), LatentSpace.DecodeGrid(model, steps, range.Item1, range.Item2), Mnist.Side, Mnist.Side, steps, scale: 2,
                title: $"{name}: decoded {steps}x{steps} grid, z1 in [{range.Item1.Item1:F1}, {range.Item1.Item2:F1}], z2 in [{range.Item2.Item1:F1}, {range.Item2.Item2:F1}]");
        }

        int a = testImages.FindIndex(i => i.Label == 1), b = testImages.FindIndex(i => i.Label == 7);
        ImageGrid.Save(Png("interpolation"), LatentSpace.Interpolate(model, clean[a], clean[b], 10), Mnist.Side, Mnist.Side, 10,
            title: $"{name}: latent interpolation from a 1 to a 7");
        Charts.Lines(Png("curves"), $"{name}: training loss", "epoch", "loss",
            [new Charts.Series("train loss", model.History.Epochs.Select(e => (double)e.Epoch + 1).ToList(), model.History.Epochs.Select(e => e.TrainLoss).ToList())]);

        var modelPath = Path.Combine(output, $"{name}.zip");
        ml.Model.SaveDeep(model, train.Schema, modelPath);
        Console.WriteLine($"Saved model {modelPath}");
        foreach (var f in files) Console.WriteLine($"Wrote {f}");
        return 0;
    }

    /// <summary>The trainer's options for the settings.</summary>
    internal static AutoencoderOptionsBase Options(Settings s)
    {
        AutoencoderOptionsBase options = s.Kind switch
        {
            "dense" => AutoencoderNetworks.DenseAutoencoder(s.Latent),
            "conv" => AutoencoderNetworks.ConvolutionalAutoencoder(s.Latent),
            "denoise" => AutoencoderNetworks.DenoisingAutoencoder(s.Noise),
            _ => WithBeta(AutoencoderNetworks.VariationalAutoencoder(s.Latent), s.Beta),
        };
        options.Epochs = s.Epochs;
        options.BatchSize = s.BatchSize;
        options.Optimizer = new Adam(s.LearningRate);
        return options;
    }

    private static VariationalAutoencoderOptions WithBeta(VariationalAutoencoderOptions options, double beta)
    {
        options.Beta = beta;
        return options;
    }
}
