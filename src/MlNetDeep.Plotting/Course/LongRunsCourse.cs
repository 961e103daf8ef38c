using Microsoft.ML;
using MlNetDeep.Data;
using MlNetDeep.Datasets;
using MlNetDeep.Models.Generative;
using MlNetDeep.Models.Recurrent;
using MlNetDeep.Training;
using ScottPlot;
using static MlNetDeep.Plotting.Course.CourseReport;

namespace MlNetDeep.Plotting.Course;

/// <summary>
/// A long run of the course: its command, what one epoch holds (<paramref name="ItemsPerEpoch"/> windows or images) and
/// how many epochs it trains.
/// </summary>
public sealed record LongRun(string Name, string Unit, double ItemsPerEpoch, int Epochs, string Command);

/// <summary>
/// A long run's projection from a short measured epoch: <paramref name="ItemsPerSecond"/> is the measured epoch's items
/// over its whole duration (training and held-out scoring), so the projection is that epoch's cost scaled to the full
/// epoch and multiplied by the epochs.
/// </summary>
public sealed record LongRunTiming(LongRun Run, double MeasuredItems, double MeasuredSeconds, double ItemsPerSecond)
{
    /// <summary>Projected runs longer than this (two hours) are said to need a GPU or a long CPU job.</summary>
    public const double GpuThresholdSeconds = 2 * 3600;

    /// <summary>Projected seconds of one full epoch on this machine.</summary>
    public double SecondsPerEpoch => Run.ItemsPerEpoch / ItemsPerSecond;

    /// <summary>Projected seconds of the whole run on this machine.</summary>
    public double ProjectedSeconds => SecondsPerEpoch * Run.Epochs;

    /// <summary>Whether the projection exceeds <see cref="GpuThresholdSeconds"/>.</summary>
    public bool NeedsGpu => ProjectedSeconds > GpuThresholdSeconds;

    /// <summary>The run's command on the first CUDA device.</summary>
    public string GpuCommand => Run.Command + " --gpu 0";

    /// <summary>A timing from a fitted model's first epoch (its items are its samples per second times its duration).</summary>
    public static LongRunTiming FromEpoch(LongRun run, EpochMetrics epoch) =>
        new(run, epoch.SamplesPerSecond * epoch.Duration.TotalSeconds, epoch.Duration.TotalSeconds, epoch.SamplesPerSecond);
}

/// <summary>Sizes of the short measured runs.</summary>
public sealed record LongRunsSettings
{
    /// <summary>Characters of the book the character model's measured epoch reads.</summary>
    public int CharacterSlice { get; init; } = 100_000;

    /// <summary>Characters of the book the word model's measured epoch reads.</summary>
    public int WordSlice { get; init; } = int.MaxValue;

    /// <summary>MNIST images of the dense GAN's measured epoch.</summary>
    public int DenseGanRows { get; init; } = 10_000;

    /// <summary>MNIST images of the DCGAN's measured epoch.</summary>
    public int DcganRows { get; init; } = 3_000;

    /// <summary>The quick sizes: well under a minute for all four on two cores.</summary>
    public static LongRunsSettings Quick { get; } = new() { CharacterSlice = 20_000, WordSlice = 60_000, DenseGanRows = 3_000, DcganRows = 1_000 };
}

/// <summary>
/// Item 8 of the course issue, the longer runs: the character model for 50 epochs, the word model for 12, the course's
/// dense GAN and the DCGAN for 30. Each model trains one epoch on a slice of its data here; the report projects each
/// full run's duration on this machine from that epoch and names the runs that need a GPU.
/// </summary>
public static class LongRunsCourse
{
    /// <summary>The book of the text models.</summary>
    public const string Book = "chesterton-brown";

    /// <summary>The chapter: one experiment.</summary>
    public static CourseChapter Chapter { get; } = new("longruns", "Longer runs: measured epochs and projections",
        "The character model for 50 epochs, the word model for 12 and the GANs for 30, each with samples after every epoch, are long on a CPU. " +
        "Each model trains one epoch on a slice of its data here; the table projects each full run on this machine and says which need a GPU.",
        [Project]);

    /// <summary>The character model's 50-epoch run (samples at three temperatures after every epoch).</summary>
    public static string CharacterCommand => "mlnetdeep text train --epochs 50 --cosine --patience 0 -o out";

    /// <summary>The word model's 12-epoch run (samples after every epoch).</summary>
    public static string WordCommand => "mlnetdeep text train --level word --epochs 12 --window 20 --stride 2 --max-vocab 5000 --patience 0 -o out";

    /// <summary>The character model of <see cref="CharacterCommand"/>, for <paramref name="epochs"/> epochs.</summary>
    public static TextGeneratorOptions CharacterOptions(int epochs, int seed) => new()
    {
        Level = TextLevel.Character, WindowLength = 40, Stride = 3, Layers = 2, Units = 128, Epochs = epochs, Seed = seed,
    };

    /// <summary>The word model of <see cref="WordCommand"/>, for <paramref name="epochs"/> epochs.</summary>
    public static TextGeneratorOptions WordOptions(int epochs, int seed) => new()
    {
        Level = TextLevel.Word, WindowLength = 20, Stride = 2, Layers = 2, Units = 128, MaxVocabulary = 5_000, Epochs = epochs, Seed = seed,
    };

    /// <summary>
    /// Trains a language model one epoch on the first <paramref name="slice"/> characters of <paramref name="text"/> and
    /// projects <paramref name="epochs"/> epochs over the whole text (windows scale with the text's length).
    /// </summary>
    public static LongRunTiming MeasureText(MLContext ml, string name, string command, TextGeneratorOptions options, string text, int slice, int epochs)
    {
        string part = slice < text.Length ? text[..slice] : text;
        using var model = ml.Transforms.Text.TextGenerator(options).Fit(ml.Data.LoadTextRows([part]));
        var epoch = model.History!.Epochs[0];
        double windows = epoch.SamplesPerSecond * epoch.Duration.TotalSeconds;
        var run = new LongRun(name, "windows", windows * text.Length / part.Length, epochs, command);
        return LongRunTiming.FromEpoch(run, epoch);
    }

    /// <summary>Trains a GAN one epoch on <paramref name="rows"/> MNIST images and projects <paramref name="epochs"/> epochs on all 60,000.</summary>
    public static LongRunTiming MeasureGan(MLContext ml, string name, GanKind kind, int rows, int epochs, int seed)
    {
        var train = ml.Data.Cache(ml.Data.LoadMnist(MnistSplit.Train, maxRows: rows));
        using var gan = ml.Transforms.GenerativeAdversarialNetwork(new GanOptions
        {
            FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Kind = kind, Epochs = 1, Seed = seed,
        }).Fit(train);
        string command = $"mlnetdeep gan mnist --kind {kind.ToString().ToLowerInvariant()} --epochs {epochs} -o out";
        return LongRunTiming.FromEpoch(new LongRun(name, "images", 60_000, epochs, command), gan.History!.Epochs[0]);
    }

    /// <summary>Measures the four models at <paramref name="settings"/>' sizes (the text models on <paramref name="text"/>).</summary>
    public static IReadOnlyList<LongRunTiming> Run(MLContext ml, string text, LongRunsSettings settings, TextWriter log, int seed = 1)
    {
        var timings = new List<LongRunTiming>
        {
            MeasureText(ml, "character model, 50 epochs", CharacterCommand, CharacterOptions(1, seed), text, settings.CharacterSlice, 50),
            MeasureText(ml, "word model, 12 epochs", WordCommand, WordOptions(1, seed), text, settings.WordSlice, 12),
            MeasureGan(ml, "dense GAN (the course's), 30 epochs", GanKind.Dense, settings.DenseGanRows, 30, seed),
            MeasureGan(ml, "DCGAN, 30 epochs", GanKind.Dcgan, settings.DcganRows, 30, seed),
        };
        foreach (var t in timings)
            log.WriteLine($"{t.Run.Name}: measured {t.MeasuredItems:N0} {t.Run.Unit} in {t.MeasuredSeconds:F1} s ({t.ItemsPerSecond:F0}/s); " +
                $"full epoch {t.Run.ItemsPerEpoch:N0} {t.Run.Unit} ~ {Duration(t.SecondsPerEpoch)}; whole run ~ {Duration(t.ProjectedSeconds)}{(t.NeedsGpu ? " (needs a GPU)" : "")}");
        return timings;
    }

    /// <summary>Seconds in words: "48 s", "12.5 min", "1.6 h".</summary>
    public static string Duration(double seconds) =>
        seconds < 120 ? $"{F(seconds, "F0")} s" : seconds < 2 * 3600 ? $"{F(seconds / 60, "F1")} min" : $"{F(seconds / 3600, "F1")} h";

    private static CourseExperiment Project(CourseRun run)
    {
        var settings = run.Quick ? LongRunsSettings.Quick : new LongRunsSettings();
        var timings = Run(run.Ml, Gutenberg.ReadBook(Book), settings, run.Log, run.Seed);
        var path = Path.Combine(run.Output, "longruns-projection.png");
        var plot = new Plot();
        plot.Add.Bars(timings.Select(t => t.ProjectedSeconds / 3600).ToArray());
        plot.Add.HorizontalLine(LongRunTiming.GpuThresholdSeconds / 3600, pattern: LinePattern.Dashed);
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, timings.Count).Select(i => (double)i).ToArray(),
            timings.Select(t => $"{t.Run.Name.Replace(", ", "\n")}\n{Duration(t.ProjectedSeconds)}").ToArray());
        plot.Axes.Margins(bottom: 0);
        plot.Title("Projected duration of each full run on this machine (dashed: 2 hours)");
        plot.YLabel("hours");
        Charts.Save(plot, path, 1000, 560);
        var gpu = timings.Where(t => t.NeedsGpu).ToList();
        return new CourseExperiment("How long the long runs take on this machine",
            "Longer training keeps improving the samples (the character model's text, the GAN's digits); on a CPU such runs take hours, " +
            "which is why the course trains them on a GPU.",
            string.Join("; ", timings.Select(t => $"{t.Run.Name}: about {Duration(t.SecondsPerEpoch)} an epoch, {Duration(t.ProjectedSeconds)} in all")) + ". " +
            (gpu.Count == 0
                ? "None exceeds two hours here: each fits a long CPU job."
                : $"{string.Join(" and ", gpu.Select(t => t.Run.Name))} {(gpu.Count == 1 ? "exceeds" : "exceed")} two hours here and {(gpu.Count == 1 ? "needs" : "need")} a GPU: " +
                  string.Join("; ", gpu.Select(t => t.GpuCommand)) + ".") +
            " Measured on one epoch of a slice of each data set, so at quick size the fixed costs of an epoch weigh more than in the full run.",
            null, [path],
            [new CourseTable("One measured epoch per model, projected to the full run",
                ["run", "measured epoch", "items per second", "full epoch", "projected epoch", "projected run", "GPU?"],
                timings.Select(t => (IReadOnlyList<string>)[t.Run.Name, $"{t.MeasuredItems:N0} {t.Run.Unit} in {F(t.MeasuredSeconds, "F1")} s",
                    F(t.ItemsPerSecond, "F0"), $"{t.Run.ItemsPerEpoch:N0} {t.Run.Unit}", Duration(t.SecondsPerEpoch), Duration(t.ProjectedSeconds),
                    t.NeedsGpu ? "needs one" : "not needed"]).ToList())],
            $"mlnetdeep course longruns{run.QuickFlag} -o report\n" + string.Join("\n", timings.Select(t => t.NeedsGpu ? t.GpuCommand : t.Run.Command)));
    }
}
