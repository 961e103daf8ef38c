using System.CommandLine;
using Microsoft.ML;
using MlNetDeep.Cli.Benchmarks;
using MlNetDeep.Datasets;
using MlNetDeep.Models.Recurrent;
using MlNetDeep.Native;
using MlNetDeep.Training;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// <c>mlnetdeep benchmark text</c>: the course's character model (2 x LSTM(128), 40-character windows every 3) trained
/// on the same windows by (a) the TextGenerator estimator, (b) a plain TorchSharp loop and (c) PyTorch where python3
/// imports torch: windows per second and held-out cross-entropy after every epoch, with the ratios, in one run.
/// </summary>
internal static class TextBenchmark
{
    public static Command Create()
    {
        var common = new CommonOptions();
        var corpus = new Option<string>("--corpus") { Description = "The Gutenberg book.", DefaultValueFactory = _ => Gutenberg.DefaultBook };
        var chars = new Option<int?>("--chars") { Description = "Use only the first N characters (default: the whole book)." }.AtLeast(1);
        var epochs = new Option<int>("--epochs") { Description = "Epochs per run; the first is warm-up for the rates.", DefaultValueFactory = _ => 3 }.AtLeast(2);
        var batch = new Option<int>("--batch-size") { Description = "Windows per mini-batch.", DefaultValueFactory = _ => 128 }.AtLeast(1);
        var python = new Option<string?>("--python") { Description = "Python with torch for (c); default: the first of python3, /usr/bin/python3 that imports torch." };
        var command = new Command("text", "Windows/s and held-out loss of the character LSTM: TextGenerator vs plain TorchSharp vs PyTorch on the same windows.")
        {
            corpus, chars, epochs, batch, python,
        };
        common.AddTo(command);
        command.SetAction(result => Run(common.CreateContext(result), result.GetValue(corpus)!, result.GetValue(chars),
            result.GetValue(epochs), result.GetValue(batch), result.GetValue(python),
            common.OutputFolder(result)));
        return command;
    }

    private static int Run(MLContext ml, string book, int? chars, int epochs, int batch, string? python, string output)
    {
        var text = Gutenberg.ReadBook(book);
        if (chars is { } n && n < text.Length) text = text[..n];
        var options = new TextGeneratorOptions { Epochs = epochs, BatchSize = batch, Seed = 1 };
        // The estimator's split and vocabulary, made here the same way so that every contender sees the same windows.
        int cut = (int)(text.Length * (1 - options.ValidationFraction));
        var vocabulary = Vocabulary.Build(text[..cut], TextLevel.Character, lowercase: false, maxSize: 256);
        int[] train = vocabulary.Encode(text[..cut]), validation = vocabulary.Encode(text[cut..]);
        int window = options.WindowLength, stride = options.Stride, units = options.Units, embedding = 32;
        double rate = 2e-3;
        var device = TorchRuntime.SelectDevice(ml);
        long windows = (train.Length - window - 1) / stride + 1;
        Console.WriteLine($"{book}: {text.Length:N0} characters, vocabulary {vocabulary.Size}, {windows:N0} training windows of {window} (stride {stride}), " +
            $"{validation.Length - window:N0} held-out predictions; Embedding({embedding}) - LSTM({units}) - LSTM({units}) - Dense; batch {batch}, Adam {rate}, " +
            $"clip 5; {epochs} epochs; device {device}, {TorchSharp.torch.get_num_threads()} torch threads");

        var (plainRates, plainLosses) = PlainTorchSharpLanguageModel.Train(train, validation, vocabulary.Size, window, stride, epochs, batch, rate, embedding, units, device, seed: 1);
        Report("(b) plain TorchSharp", plainRates, plainLosses);

        var data = ml.Data.LoadTextRows([text]);
        using var model = ml.Transforms.Text.TextGenerator(options).Fit(data);
        if (model.Vocabulary.Size != vocabulary.Size) throw new InvalidOperationException("The estimator built another vocabulary than the benchmark's.");
        var history = model.History!;
        var ourRates = history.Epochs.Select(e => e.SamplesPerSecond).ToList();
        var ourLosses = history.Values("val_loss").ToList();
        Report("(a) TextGenerator", ourRates, ourLosses);

        var folder = Path.Combine(Path.GetFullPath(output), "text-benchmark");
        Directory.CreateDirectory(folder);
        string trainFile = Path.Combine(folder, "train.ids"), validationFile = Path.Combine(folder, "validation.ids");
        WriteIds(trainFile, train);
        WriteIds(validationFile, validation);
        var py = BenchmarkCommand.RunPyTorchEpochs(python, "pytorch_char_lstm.py",
            $"\"{trainFile}\" \"{validationFile}\" {vocabulary.Size} {window} {stride} {epochs} {batch} {rate.ToString(System.Globalization.CultureInfo.InvariantCulture)} {embedding} {units}", device);
        List<double>? pyRates = null, pyLosses = null;
        if (py is { } run)
        {
            pyRates = run.Epochs.Select(f => double.Parse(f[0], System.Globalization.CultureInfo.InvariantCulture)).ToList();
            pyLosses = run.Epochs.Select(f => double.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Report($"(c) PyTorch ({run.Version})", pyRates, pyLosses);
        }

        double a = BenchmarkCommand.Median(ourRates.Skip(1).ToList()), b = BenchmarkCommand.Median(plainRates.Skip(1).ToList());
        Console.WriteLine();
        Console.WriteLine($"(a) TextGenerator          {a,10:F0} windows/s (median of epochs after the first)   held-out loss after epoch {epochs}: {ourLosses[^1]:F4} nats");
        Console.WriteLine($"(b) plain TorchSharp loop  {b,10:F0} windows/s                                    held-out loss after epoch {epochs}: {plainLosses[^1]:F4} nats");
        Console.WriteLine($"    ratio (a)/(b)          {a / b,10:F3}");
        if (pyRates is not null && pyLosses is not null)
        {
            double c = BenchmarkCommand.Median(pyRates.Skip(1).ToList());
            Console.WriteLine($"(c) PyTorch                {c,10:F0} windows/s                                    held-out loss after epoch {epochs}: {pyLosses[^1]:F4} nats");
            Console.WriteLine($"    ratio (a)/(c)          {a / c,10:F3}");
            Console.WriteLine($"    loss (a) - (c)         {ourLosses[^1] - pyLosses[^1],10:F4} nats (target: within 0.05)");
        }
        return 0;
    }

    private static void Report(string who, List<double> rates, List<double> losses) =>
        Console.WriteLine($"{who}: " + string.Join("; ", rates.Select((r, i) => $"epoch {i + 1} {r:F0} windows/s, held-out {losses[i]:F4} nats")));

    private static void WriteIds(string path, int[] ids)
    {
        var bytes = new byte[ids.Length * 4];
        for (int i = 0; i < ids.Length; i++) System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(i * 4), ids[i]);
        File.WriteAllBytes(path, bytes);
    }

}
