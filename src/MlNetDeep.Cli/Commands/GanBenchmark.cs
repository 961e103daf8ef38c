using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML;
using MlNetDeep.Cli.Benchmarks;
using MlNetDeep.Data;
using MlNetDeep.Models.Generative;
using MlNetDeep.Native;
using MlNetDeep.Training;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// <c>mlnetdeep benchmark gan</c>: the DCGAN trained (a) by MlNetDeep's GAN estimator from an IDataView and (b) by a
/// plain TorchSharp loop of the same networks and step, alternating, in one run; (c) PyTorch where python3 has torch.
/// </summary>
internal static class GanBenchmark
{
    public static Command Create()
    {
        var common = new CommonOptions();
        var rows = new Option<int>("--rows") { Description = "Training images per epoch.", DefaultValueFactory = _ => 10000 }.AtLeast(1);
        var epochs = new Option<int>("--epochs") { Description = "Epochs per measurement; the first is warm-up and not counted.", DefaultValueFactory = _ => 3 }.AtLeast(2);
        var rounds = new Option<int>("--rounds") { Description = "Alternating rounds of (b) then (a).", DefaultValueFactory = _ => 2 }.AtLeast(1);
        var batch = new Option<int>("--batch-size") { Description = "Mini-batch size.", DefaultValueFactory = _ => 64 }.AtLeast(1);
        var python = new Option<string?>("--python") { Description = "Python with torch for (c); default: python3 if it imports torch." };
        var command = new Command("gan", "Samples/s of the DCGAN step: MlNetDeep against a plain TorchSharp loop (and PyTorch where available).")
        {
            rows, epochs, rounds, batch, python,
        };
        common.AddTo(command);
        command.SetAction(result =>
        {
            int b = result.GetValue(batch), n = OptionChecks.AtLeast(result.GetValue(rows), b, "--rows"); // at least one batch
            return Run(common.CreateContext(result), n, result.GetValue(epochs), result.GetValue(rounds), b, result.GetValue(python));
        });
        return command;
    }

    private static int Run(MLContext ml, int rows, int epochs, int rounds, int batch, string? python)
    {
        var device = TorchRuntime.SelectDevice(ml);
        Console.WriteLine($"DCGAN (generator 100 -> 1x28x28, discriminator 1x28x28 -> 1), {rows} images, batch {batch}, Adam 2e-4 beta1 0.5, " +
                          $"{epochs} epochs per measurement (first is warm-up), {rounds} rounds, device {device}, {TorchSharp.torch.get_num_threads()} torch threads");
        var data = ml.Data.LoadMnist(MnistSplit.Train, maxRows: rows);
        var pixels = DataViewTensors.Load(data, "Pixels", Mnist.PixelCount, null, LabelKind.None).Features;
        var plain = new List<double>();
        var ours = new List<double>();
        var endToEnd = new List<double>();
        for (int round = 0; round < rounds; round++)
        {
            var p = PlainTorchSharpGan.Train(pixels, epochs, batch, device, seed: round + 1);
            plain.AddRange(p.Skip(1));
            Console.WriteLine($"round {round + 1} (b) plain TorchSharp: {string.Join(", ", p.Select(v => v.ToString("F0")))} samples/s per epoch");
            var clock = Stopwatch.StartNew();
            using var model = ml.Transforms.GenerativeAdversarialNetwork(new GanOptions { Kind = GanKind.Dcgan, Epochs = epochs, BatchSize = batch, Seed = round + 1 }).Fit(data);
            clock.Stop();
            var t = model.History!.Epochs.Select(m => m.SamplesPerSecond).ToList();
            ours.AddRange(t.Skip(1));
            endToEnd.Add((double)rows * epochs / clock.Elapsed.TotalSeconds);
            Console.WriteLine($"round {round + 1} (a) MlNetDeep GAN:     {string.Join(", ", t.Select(v => v.ToString("F0")))} samples/s per epoch; whole Fit from IDataView {endToEnd[^1]:F0} samples/s");
        }
        double a = BenchmarkCommand.Median(ours), b = BenchmarkCommand.Median(plain);
        Console.WriteLine();
        Console.WriteLine($"(a) MlNetDeep GAN estimator {a,10:F0} samples/s (median of epochs after warm-up)");
        Console.WriteLine($"(b) plain TorchSharp loop   {b,10:F0} samples/s");
        Console.WriteLine($"    ratio (a)/(b)           {a / b,10:F3}");
        Console.WriteLine($"    whole Fit incl. IDataView reading and warm-up: {BenchmarkCommand.Median(endToEnd):F0} samples/s");
        var images = Path.Combine(Mnist.DefaultFolder, "train-images-idx3-ubyte");
        var py = BenchmarkCommand.RunPyTorch(python, "pytorch_dcgan.py", $"\"{images}\" {rows} {epochs} {batch}", device);
        if (py is { } c)
        {
            Console.WriteLine($"(c) PyTorch ({c.Version})  {c.Rate,10:F0} samples/s");
            Console.WriteLine($"    ratio (a)/(c)           {a / c.Rate,10:F3}");
        }
        return 0;
    }
}
