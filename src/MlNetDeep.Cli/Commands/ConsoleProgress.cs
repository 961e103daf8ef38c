using MlNetDeep.Training;
using Spectre.Console;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// Shows training progress: a live Spectre.Console bar on a terminal, one line per epoch when output is redirected
/// (CI logs, pipes).
/// </summary>
internal static class ConsoleProgress
{
    public static T Run<T>(string title, Func<IProgress<TrainingProgress>, T> work)
    {
        if (Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
        {
            var lines = new LineProgress(title);
            return work(lines);
        }
        return WithBar(title, autoClear: false, task => work(new BarProgress(task)));
    }

    /// <summary>Long work that reports the share done (0 to 1): a bar on a terminal, nothing extra when output is redirected.</summary>
    public static T RunFraction<T>(string title, Func<IProgress<double>, T> work)
    {
        if (Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive) return work(new Progress<double>(_ => { }));
        return WithBar(title, autoClear: true, task => work(new FractionProgress(task)));
    }

    /// <summary>One live bar (0 to 1) around <paramref name="work"/>, filled when it returns.</summary>
    private static T WithBar<T>(string title, bool autoClear, Func<ProgressTask, T> work)
    {
        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(autoClear)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(title), maxValue: 1.0);
                result = work(task);
                task.Value = 1.0;
            });
        return result;
    }

    private sealed class FractionProgress(ProgressTask task) : IProgress<double>
    {
        public void Report(double value) => task.Value = Math.Clamp(value, 0, 1);
    }

    public static string Describe(EpochMetrics e) =>
        $"epoch {e.Epoch + 1}: {e.Describe()}, lr {e.LearningRate:G3}, {e.Duration.TotalSeconds:F1}s, {e.SamplesPerSecond:F0} samples/s";

    private sealed class LineProgress(string title) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value)
        {
            if (value.Completed is { } e) Console.WriteLine($"{title} {Describe(e)}");
        }
    }

    private sealed class BarProgress(ProgressTask task) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value)
        {
            task.Value = value.Fraction;
            task.Description = Markup.Escape($"epoch {value.Epoch + 1}/{value.Epochs}, batch {value.Batch}/{value.Batches}");
            if (value.Completed is { } done) AnsiConsole.MarkupLine(Markup.Escape(Describe(done)));
        }
    }
}
