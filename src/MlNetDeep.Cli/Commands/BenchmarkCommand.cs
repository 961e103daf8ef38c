using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using MlNetDeep.Cli.Benchmarks;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Native;
using MlNetDeep.Training;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// <c>mlnetdeep benchmark</c>: Keras' MNIST CNN trained (a) by the MlNetDeep trainer from an IDataView and (b) by a plain
/// TorchSharp loop over pre-staged tensors, alternating, in one run; (c) the same model in PyTorch where python3 has torch.
/// </summary>
internal static class BenchmarkCommand
{
    public static Command Create()
    {
        var common = new CommonOptions();
        var rows = new Option<int>("--rows") { Description = "Training images per epoch.", DefaultValueFactory = _ => 10000 }.AtLeast(1);
        var epochs = new Option<int>("--epochs") { Description = "Epochs per measurement; the first epoch of each is warm-up and not counted.", DefaultValueFactory = _ => 3 }.AtLeast(2);
        var rounds = new Option<int>("--rounds") { Description = "Alternating rounds of (b) then (a).", DefaultValueFactory = _ => 2 }.AtLeast(1);
        var batch = new Option<int>("--batch-size") { Description = "Mini-batch size.", DefaultValueFactory = _ => 128 }.AtLeast(1);
        var python = new Option<string?>("--python") { Description = "Python with torch for (c); default: the first of python3, /usr/bin/python3 that imports torch." };
        var command = new Command("benchmark", "Samples/s of the MlNetDeep trainer against a plain TorchSharp loop (and PyTorch where available) on the MNIST CNN.")
        {
            rows, epochs, rounds, batch, python,
        };
        common.AddTo(command);
        command.Subcommands.Add(GanBenchmark.Create());
        command.Subcommands.Add(BinaryBenchmark.Create());
        command.Subcommands.Add(ImageFolderCommands.Benchmark());
        command.Subcommands.Add(ServingBenchmark.Create());
        command.Subcommands.Add(ServingHostileBenchmark.Create());
        command.Subcommands.Add(ScoringBenchmark.Create());
        command.Subcommands.Add(MemoryBenchmark.Create());
        command.Subcommands.Add(TextBenchmark.Create());
        command.Subcommands.Add(OnnxImportBenchmark.Create());
        command.Subcommands.Add(TransferCommands.Benchmark());
        command.Subcommands.Add(TransferCommands.BackboneBenchmark());
        command.Subcommands.Add(AnomalyCommands.Benchmark());
        command.SetAction(result =>
        {
            return Run(common.CreateContext(result), result.GetValue(rows), result.GetValue(epochs), result.GetValue(rounds), result.GetValue(batch), result.GetValue(python));
        });
        return command;
    }

    private static int Run(MLContext ml, int rows, int epochs, int rounds, int batch, string? python)
    {
        var device = TorchRuntime.SelectDevice(ml);
        Console.WriteLine($"MNIST CNN (Keras), {rows} images, batch {batch}, Adam 1e-3, {epochs} epochs per measurement (first is warm-up), {rounds} rounds, device {device}, {TorchSharp.torch.get_num_threads()} torch threads");
        var data = ml.Data.LoadMnist(MnistSplit.Train, maxRows: rows);
        var loaded = DataViewTensors.Load(data, "Pixels", Mnist.PixelCount, "Label", LabelKind.ClassIndex, 10);

        var plain = new List<double>();
        var trainer = new List<double>();
        var endToEnd = new List<double>();
        for (int round = 0; round < rounds; round++)
        {
            var p = PlainTorchSharpLoop.Train(loaded.Features, loaded.ClassIndices!, epochs, batch, device, seed: round + 1);
            plain.AddRange(p.Skip(1));
            Console.WriteLine($"round {round + 1} (b) plain TorchSharp: {string.Join(", ", p.Select(v => v.ToString("F0")))} samples/s per epoch");

            var options = new NeuralNetworkClassifierOptions
            {
                FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Network = Networks.Networks.KerasMnistCnn,
                Epochs = epochs, BatchSize = batch, Optimizer = new Adam(1e-3), Seed = round + 1,
            };
            var clock = Stopwatch.StartNew();
            using var model = ml.MulticlassClassification.Trainers.NeuralNetwork(options).Fit(data);
            clock.Stop();
            var t = model.History!.Epochs.Select(m => m.SamplesPerSecond).ToList();
            trainer.AddRange(t.Skip(1));
            endToEnd.Add((double)rows * epochs / clock.Elapsed.TotalSeconds);
            Console.WriteLine($"round {round + 1} (a) MlNetDeep trainer: {string.Join(", ", t.Select(v => v.ToString("F0")))} samples/s per epoch; whole Fit from IDataView {endToEnd[^1]:F0} samples/s");
        }

        double a = Median(trainer), bPlain = Median(plain);
        Console.WriteLine();
        Console.WriteLine($"(a) MlNetDeep trainer      {a,10:F0} samples/s (median of epochs after warm-up)");
        Console.WriteLine($"(b) plain TorchSharp loop  {bPlain,10:F0} samples/s");
        Console.WriteLine($"    ratio (a)/(b)          {a / bPlain,10:F3}");
        Console.WriteLine($"    whole Fit incl. IDataView reading and warm-up: {Median(endToEnd):F0} samples/s");

        var folder = Mnist.DefaultFolder;
        var py = RunPyTorch(python, "pytorch_mnist_cnn.py",
            $"\"{Path.Combine(folder, "train-images-idx3-ubyte")}\" \"{Path.Combine(folder, "train-labels-idx1-ubyte")}\" {rows} {epochs} {batch}", device);
        if (py is { } c)
        {
            Console.WriteLine($"(c) PyTorch ({c.Version})  {c.Rate,10:F0} samples/s");
            Console.WriteLine($"    ratio (a)/(c)          {a / c.Rate,10:F3}");
        }
        return 0;
    }

    /// <summary>Runs a benchmark script of Benchmarks/ with python3 (when it imports torch); its lines "epoch i rate" give the rate after warm-up.</summary>
    internal static (double Rate, string Version)? RunPyTorch(string? python, string scriptName, string arguments, TorchSharp.torch.Device device)
    {
        if (RunPyTorchEpochs(python, scriptName, arguments, device) is not { } run) return null;
        var rates = run.Epochs.Select(fields => double.Parse(fields[0], CultureInfo.InvariantCulture)).ToList();
        Console.WriteLine($"(c) PyTorch per epoch: {string.Join(", ", rates.Select(v => v.ToString("F0")))} samples/s");
        return (Median(rates.Skip(1).ToList()), run.Version);
    }

    /// <summary>
    /// Runs a benchmark script of Benchmarks/ with python3 (when it imports torch) on the device's torch name; returns
    /// the fields after "epoch i" of each line that starts with "epoch ", or null (with the reason printed) when it cannot run.
    /// </summary>
    internal static (List<string[]> Epochs, string Version)? RunPyTorchEpochs(string? python, string scriptName, string arguments, TorchSharp.torch.Device device)
    {
        var candidates = python is not null ? [python] : new[] { "python3", "/usr/bin/python3" };
        var exe = candidates.FirstOrDefault(c => Exec(c, "-c \"import torch; print(torch.__version__)\"", out _) == 0);
        if (exe is null)
        {
            Console.WriteLine("(c) PyTorch: skipped, no python3 here imports torch (on Debian: apt-get install python3-torch).");
            return null;
        }
        Exec(exe, "-c \"import torch; print(torch.__version__)\"", out var version);
        var script = Path.Combine(AppContext.BaseDirectory, "Benchmarks", scriptName);
        string torchDevice = device.type == TorchSharp.DeviceType.CUDA ? $"cuda:{device.index}" : "cpu";
        int exit = Exec(exe, $"\"{script}\" {arguments} {torchDevice}", out var output);
        if (exit != 0) { Console.WriteLine($"(c) PyTorch failed (exit {exit}): {output.Trim()}"); return null; }
        var epochs = output.Split('\n').Where(l => l.StartsWith("epoch ")).Select(l => l.Trim().Split(' ')[2..]).ToList();
        return (epochs, "torch " + version.Trim());
    }

    private static int Exec(string file, string arguments, out string output)
    {
        try
        {
            var psi = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            using var process = Process.Start(psi)!;
            var stderr = process.StandardError.ReadToEndAsync();
            output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0) output += stderr.Result;
            return process.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            output = ex.Message;
            return -1;
        }
    }

    internal static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.OrderBy(v => v).ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
