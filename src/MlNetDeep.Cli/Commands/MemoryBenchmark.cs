using System.CommandLine;
using System.Runtime.InteropServices;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Datasets;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Common;
using MlNetDeep.Native;
using MlNetDeep.Training;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// <c>mlnetdeep benchmark memory</c>: a soak test. The MNIST CNN and the VAE each train for many steps and then score many
/// rows, on synthetic 28x28 images. Native memory (the process's resident set, and on Linux with glibc the bytes malloc
/// has handed out and not had back), managed memory (the GC heap after a full collection) and TorchSharp's count of live
/// tensors are printed at the start (after a warm-up), the middle and the end of each run, with the change from start to
/// end and a verdict against a tolerance (5 % by default). The resident set also counts memory that malloc keeps after
/// it is freed; when it grows while the bytes in use stay flat, the growth is the allocator's, not a leak.
/// </summary>
internal static class MemoryBenchmark
{
    public static Command Create()
    {
        var common = new CommonOptions();
        var steps = new Option<int>("--steps") { Description = "Training steps (mini-batches) per model.", DefaultValueFactory = _ => 10000 }.AtLeast(1);
        var rows = new Option<int>("--rows") { Description = "Rows scored per model.", DefaultValueFactory = _ => 100000 }.AtLeast(2);
        var batch = new Option<int>("--batch-size") { Description = "Mini-batch size.", DefaultValueFactory = _ => 32 }.AtLeast(1);
        var trainRows = new Option<int>("--train-rows") { Description = "Synthetic training images; each epoch goes over them once.", DefaultValueFactory = _ => 1024 }.AtLeast(1);
        var models = new Option<string>("--models") { Description = "cnn, vae, both, text (the character LSTM on a Gutenberg book, batch 32 and 60,000 characters by default; scoring is generation), or vision (the input-optimisation loop: --steps steps of deep dreaming on a 64x64 image with the random feature network).", DefaultValueFactory = _ => "both" };
        models.AcceptOnlyFromAmong("cnn", "vae", "both", "text", "vision");
        var tolerance = new Option<double>("--tolerance") { Description = "The largest change from start to end, in %, that counts as flat.", DefaultValueFactory = _ => 5 }.Positive();
        var command = new Command("memory", "Soak test: native and managed memory over long training and scoring runs of the CNN and the VAE, flat within 5 %?")
        {
            steps, rows, batch, trainRows, models, tolerance,
        };
        common.AddTo(command);
        command.SetAction(result =>
        {
            var settings = new Settings(result.GetValue(steps), result.GetValue(rows), result.GetValue(batch), result.GetValue(trainRows),
                result.GetValue(tolerance), result.GetValue(common.Seed));
            settings.Validate();
            var ml = common.CreateContext(result);
            string which = result.GetValue(models)!;
            bool flat = true;
            if (which is "cnn" or "both") flat &= Soak(ml, settings, Cnn(settings));
            if (which is "vae" or "both") flat &= Soak(ml, settings, Vae(settings));
            if (which is "text") flat &= SoakText(ml, settings);
            if (which is "vision") flat &= SoakVision(settings);
            Console.WriteLine(flat ? $"All runs flat within {settings.Tolerance} %." : $"Some memory grew by more than {settings.Tolerance} %.");
            return flat ? 0 : 1;
        });
        return command;
    }

    private sealed record Settings(int Steps, int Rows, int BatchSize, int TrainRows, double Tolerance, int Seed)
    {
        public int StepsPerEpoch => (TrainRows + BatchSize - 1) / BatchSize;

        /// <summary>At least three epochs: one to warm up, one for the middle, one to end on.</summary>
        public int Epochs => Math.Max(3, (Steps + StepsPerEpoch - 1) / StepsPerEpoch);

        public void Validate()
        {
            // Each value alone is checked while parsing; this is the check across two of them.
            if (TrainRows < BatchSize) throw new ArgumentOutOfRangeException("--train-rows", TrainRows, "--train-rows must hold at least one batch.");
        }
    }

    /// <summary>A model to soak: its name, its estimator (set up with the epochs and the callback), and whether it needs a key label.</summary>
    private sealed record Subject(string Name, Func<MLContext, ITrainingCallback, IEstimator<DeepTransformer>> Estimator, bool KeyLabel);

    private static Subject Cnn(Settings s) => new("CNN (Keras MNIST CNN)", (ml, callback) => ml.MulticlassClassification.Trainers.NeuralNetwork(
        new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Network = Networks.Networks.KerasMnistCnn,
            Epochs = s.Epochs, BatchSize = s.BatchSize, Optimizer = new Adam(1e-3), Seed = s.Seed, Callbacks = [callback],
        }), KeyLabel: true);

    private static Subject Vae(Settings s) => new("VAE (2-D latent)", (ml, callback) =>
    {
        var options = AutoencoderNetworks.Variational2D("Pixels");
        options.Epochs = s.Epochs;
        options.BatchSize = s.BatchSize;
        options.Seed = s.Seed;
        options.Callbacks = [callback];
        return ml.Transforms.VariationalAutoencoder(options);
    }, KeyLabel: false);

    /// <summary>What is measured at one point of a run (NaN where the platform does not tell).</summary>
    private sealed record Sample(string Point, long Count, double ResidentMb, double MallocMb, double ManagedMb, long LiveTensors);

    private static Sample Measure(string point, long count)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        // The live managed bytes after a full collection, from the collection's own record (GC.GetTotalMemory was seen
        // to report a negative total in the middle of a Fit).
        var info = GC.GetGCMemoryInfo(GCKind.FullBlocking);
        double managed = (info.HeapSizeBytes - info.FragmentedBytes) / 1048576.0;
        return new Sample(point, count, ResidentBytes() / 1048576.0, MallocInUseBytes() / 1048576.0, managed, TorchSharp.torch.Tensor.TotalCount);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MallInfo2
    {
        public nuint Arena, Ordblks, Smblks, Hblks, Hblkhd, Usmblks, Fsmblks, Uordblks, Fordblks, Keepcost;
    }

    [DllImport("libc.so.6", EntryPoint = "mallinfo2")]
    private static extern MallInfo2 NativeMallInfo2();

    /// <summary>The bytes glibc's malloc has handed out (heap chunks in use plus mmapped blocks); NaN off glibc.</summary>
    private static double MallocInUseBytes()
    {
        if (!OperatingSystem.IsLinux()) return double.NaN;
        try
        {
            var info = NativeMallInfo2();
            return (double)(info.Uordblks + info.Hblkhd);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return double.NaN;
        }
    }

    /// <summary>The resident set (VmRSS in /proc/self/status on Linux; the working set elsewhere).</summary>
    private static long ResidentBytes()
    {
        const string path = "/proc/self/status";
        if (File.Exists(path))
        {
            var line = File.ReadLines(path).FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
            if (line is not null && long.TryParse(line["VmRSS:".Length..].Trim().Split(' ')[0], out long kb)) return kb * 1024;
        }
        using var process = System.Diagnostics.Process.GetCurrentProcess();
        return process.WorkingSet64;
    }

    private static bool Soak(MLContext ml, Settings s, Subject subject)
    {
        var device = TorchRuntime.SelectDevice(ml);
        Console.WriteLine();
        Console.WriteLine($"{subject.Name}: {s.TrainRows} synthetic 28x28 images, batch {s.BatchSize}, {s.Epochs} epochs = {s.Epochs * s.StepsPerEpoch} steps, " +
                          $"then {s.Rows} rows scored; device {device}");

        var training = new List<Sample> { Measure("before Fit", 0) };
        int middle = (s.Epochs + 1) / 2;
        var callback = new EpochCallback(end =>
        {
            int epoch = end.History.Epochs.Count;
            string? point = epoch == 1 ? "start (after 1 epoch)" : epoch == middle ? "middle" : epoch == s.Epochs ? "end" : null;
            if (point is not null) training.Add(Measure(point, (long)epoch * s.StepsPerEpoch));
        });
        var data = TrainingImages(ml, s.TrainRows, s.Seed, subject.KeyLabel);
        using var model = subject.Estimator(ml, callback).Fit(data);
        bool flat = Report("training", "steps", training, s.Tolerance);

        var scoring = new List<Sample>();
        var scored = model.Transform(ml.Data.LoadFromEnumerable(Images(s.Rows, s.Seed + 1, reuse: true)));
        using (var cursor = scored.GetRowCursor(model.OutputColumns.Select(c => scored.Schema[c.Name])))
        {
            long row = 0;
            while (cursor.MoveNext())
            {
                row++;
                if (row == Math.Min(model.ScoringBatchSize, s.Rows / 2)) scoring.Add(Measure("start (after 1 batch)", row));
                else if (row == s.Rows / 2) scoring.Add(Measure("middle", row));
            }
            scoring.Add(Measure("end", row));
        }
        flat &= Report("scoring", "rows", scoring, s.Tolerance);
        return flat;
    }

    /// <summary>
    /// The course's character model (2 x LSTM(128), 40-character windows every 3) trained for the given steps on the start
    /// of a Gutenberg book, then generating <c>--rows</c> characters in passes of 100.
    /// </summary>
    private static bool SoakText(MLContext ml, Settings s)
    {
        var text = Datasets.Gutenberg.ReadBook(Datasets.Gutenberg.DefaultBook);
        text = text[..Math.Min(text.Length, 60_000)];
        var options = new Models.Recurrent.TextGeneratorOptions { BatchSize = s.BatchSize, Seed = s.Seed, ValidationFraction = 0.05 };
        long windows = ((long)(text.Length * 0.95) - options.WindowLength - 1) / options.Stride + 1;
        int stepsPerEpoch = (int)((windows + s.BatchSize - 1) / s.BatchSize);
        options.Epochs = Math.Max(3, (s.Steps + stepsPerEpoch - 1) / stepsPerEpoch);
        Console.WriteLine();
        Console.WriteLine($"Character LSTM (2 x 128): {text.Length:N0} characters of {Datasets.Gutenberg.DefaultBook}, {windows:N0} windows, batch {s.BatchSize}, " +
                          $"{options.Epochs} epochs = {options.Epochs * stepsPerEpoch} steps, then {s.Rows} characters generated; device {TorchRuntime.SelectDevice(ml)}");
        var training = new List<Sample> { Measure("before Fit", 0) };
        int middle = (options.Epochs + 1) / 2;
        options.Callbacks.Add(new EpochCallback(end =>
        {
            int epoch = end.History.Epochs.Count;
            string? point = epoch == 1 ? "start (after 1 epoch)" : epoch == middle ? "middle" : epoch == options.Epochs ? "end" : null;
            if (point is not null) training.Add(Measure(point, (long)epoch * stepsPerEpoch));
        }));
        using var model = ml.Transforms.Text.TextGenerator(options).Fit(ml.Data.LoadTextRows([text]));
        bool flat = Report("training", "steps", training, s.Tolerance);

        var generation = new List<Sample>();
        int passes = Math.Max(3, s.Rows / 100);
        for (int pass = 1; pass <= passes; pass++)
        {
            model.Generate("The priest looked at the ", 100, 0.5, seed: pass);
            if (pass == 1) generation.Add(Measure("start (after 1 pass)", 100));
            else if (pass == (passes + 1) / 2) generation.Add(Measure("middle", pass * 100L));
            else if (pass == passes) generation.Add(Measure("end", pass * 100L));
        }
        flat &= Report("generation", "chars", generation, s.Tolerance);
        return flat;
    }


    /// <summary>The shared input-optimisation loop (deep dreaming with jitter and blur) for many steps: memory at its start, middle and end.</summary>
    private static bool SoakVision(Settings s)
    {
        using var network = Vision.FeatureNetwork.Random(3, s.Seed);
        var image = new Vision.VisionImage(Enumerable.Range(0, 3 * 64 * 64).Select(i => (float)(0.5 + 0.4 * Math.Sin(i * 0.01))).ToArray(), 3, 64, 64);
        Console.WriteLine();
        Console.WriteLine($"Input optimisation: {s.Steps} steps of deep dreaming (jitter 2, blur every 4 steps) on a 64x64 RGB image, random feature network, layer conv2d_4");
        var samples = new List<Sample>();
        int middle = Math.Max(2, s.Steps / 2);
        var progress = new StepProgress(step =>
        {
            string? point = step == Math.Max(1, s.Steps / 4) ? "start (a quarter in)" : step == middle ? "middle" : step == s.Steps ? "end" : null;
            if (point is not null) samples.Add(Measure(point, step));
        }, s.Steps);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Vision.DeepDream.Dream(network, image, "conv2d_4", new Vision.InputOptimizationOptions
        {
            Steps = s.Steps, Octaves = 1, Jitter = 2, BlurSigma = 0.5, LearningRate = 0.01, Rule = Vision.InputStepRule.NormalizedGradient, Seed = s.Seed, Progress = progress,
        });
        Console.WriteLine($"{s.Steps} steps in {clock.Elapsed.TotalSeconds:F1} s (memory measurements included)");
        return Report("input optimisation", "steps", samples, s.Tolerance);
    }

    /// <summary>Turns the loop's share done back into a step count.</summary>
    private sealed class StepProgress(Action<int> report, int steps) : IProgress<double>
    {
        public void Report(double value) => report((int)Math.Round(value * steps));
    }

    /// <summary>Prints the samples and the change from the first (warm) sample to the last; true when every measure is flat.</summary>
    private static bool Report(string run, string unit, IReadOnlyList<Sample> samples, double tolerance)
    {
        Console.WriteLine($"  {run,-24}{unit,8}{"native (RSS)",15}{"malloc in use",15}{"managed heap",15}{"live tensors",14}");
        foreach (var x in samples)
            Console.WriteLine($"  {x.Point,-24}{x.Count,8}{x.ResidentMb,12:F1} MB{x.MallocMb,12:F1} MB{x.ManagedMb,12:F1} MB{x.LiveTensors,14}");
        var start = samples.First(x => x.Point.StartsWith("start", StringComparison.Ordinal));
        var end = samples[^1];
        double resident = Change(start.ResidentMb, end.ResidentMb), malloc = Change(start.MallocMb, end.MallocMb), managed = Change(start.ManagedMb, end.ManagedMb);
        Console.WriteLine($"  {"change start -> end",-24}{"",8}{resident,12:+0.0;-0.0;0.0} %{malloc,12:+0.0;-0.0;0.0} %{managed,12:+0.0;-0.0;0.0} %{end.LiveTensors - start.LiveTensors,14:+0;-0;0}");
        Console.WriteLine($"  {run}: native (RSS) {Verdict(resident, tolerance)}; malloc in use {Verdict(malloc, tolerance)}; managed {Verdict(managed, tolerance)}");
        if (resident > tolerance && Math.Abs(malloc) <= tolerance)
            Console.WriteLine("  note: the resident set grew while malloc's bytes in use stayed flat: it is freed memory that glibc keeps, not live " +
                "allocations. Small native objects that wait for the GC (e.g. TorchSharp's Scalars) fragment its heap; " +
                "MALLOC_MMAP_THRESHOLD_=131072 keeps large buffers out of the heap and the resident set flat.");
        return new[] { resident, malloc, managed }.All(c => double.IsNaN(c) || c <= tolerance); // memory that shrank did not grow
    }

    private static double Change(double from, double to) => double.IsNaN(from) || double.IsNaN(to) ? double.NaN : from > 0 ? (to - from) / from * 100 : 0;

    private static string Verdict(double change, double tolerance) =>
        double.IsNaN(change) ? "not measured here" : Math.Abs(change) <= tolerance ? $"flat (within {tolerance} %)" : change > 0 ? $"GREW by {change:F1} % (more than {tolerance} %)" : $"shrank by {-change:F1} %";

    /// <summary>Training images with a key label over ten classes, as MNIST's loader gives them.</summary>
    private static IDataView TrainingImages(MLContext ml, int count, int seed, bool keyLabel)
    {
        var raw = ml.Data.LoadFromEnumerable(Images(count, seed).ToList());
        if (!keyLabel) return raw;
        var keys = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 10).Select(d => new MnistImage { Label = (uint)d, Pixels = new float[Mnist.PixelCount] }));
        return ml.Transforms.Conversion.MapValueToKey("Label", "Label", keyData: ml.Transforms.SelectColumns("Label").Fit(keys).Transform(keys)).Fit(raw).Transform(raw);
    }

    /// <summary>
    /// Synthetic images, made as they are read (so scoring streams them): class c is a bright 8x8 square at one of ten
    /// places plus uniform noise, values in [0, 1].
    /// </summary>
    /// <param name="reuse">Hand out one row object, refilled for each row, as ML.NET's loaders reuse their buffers: then the
    /// scoring run measures the model's memory, not 300 MB of rows the harness itself would allocate.</param>
    private static IEnumerable<MnistImage> Images(int count, int seed, bool reuse = false)
    {
        var rand = new Random(seed);
        var shared = new MnistImage { Pixels = new float[Mnist.PixelCount] };
        for (int i = 0; i < count; i++)
        {
            int label = i % 10;
            var pixels = reuse ? shared.Pixels : new float[Mnist.PixelCount];
            for (int p = 0; p < pixels.Length; p++) pixels[p] = (float)rand.NextDouble() * 0.2f;
            int top = 2 + label / 5 * 12, left = 2 + label % 5 * 5;
            for (int y = top; y < top + 8; y++)
                for (int x = left; x < Math.Min(left + 8, 28); x++) pixels[y * 28 + x] = 0.8f + (float)rand.NextDouble() * 0.2f;
            if (reuse)
            {
                shared.Label = (uint)label;
                yield return shared;
            }
            else yield return new MnistImage { Label = (uint)label, Pixels = pixels };
        }
    }
}
