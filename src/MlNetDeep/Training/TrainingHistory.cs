using System.Globalization;

namespace MlNetDeep.Training;

/// <summary>
/// What one epoch measured: the step's named metrics (e.g. <c>loss</c>, <c>accuracy</c>, <c>d_loss</c>, <c>g_loss</c>) and
/// their validation counterparts (<c>val_loss</c>, ...), each the epoch's mean over its samples.
/// </summary>
public sealed record EpochMetrics(int Epoch, IReadOnlyDictionary<string, double> Values, double LearningRate, TimeSpan Duration, double SamplesPerSecond)
{
    /// <summary>The metric named <paramref name="name"/>, or null when the step does not report it.</summary>
    public double? Get(string name) => Values.TryGetValue(name, out var value) ? value : null;

    /// <summary>The metric named <paramref name="name"/>; throws naming the metrics there are when it is absent.</summary>
    public double this[string name] => Values.TryGetValue(name, out var value)
        ? value
        : throw new KeyNotFoundException($"Epoch {Epoch + 1} has no metric '{name}'; it has {string.Join(", ", Values.Keys)}.");

    /// <summary>Mean training loss (<c>loss</c>); NaN for steps without a single loss (a GAN reports d_loss and g_loss).</summary>
    public double TrainLoss => Get(TrainingStep.Loss) ?? double.NaN;
    public double? TrainAccuracy => Get(TrainingStep.Accuracy);
    public double? ValidationLoss => Get(TrainingLoop.ValidationPrefix + TrainingStep.Loss);
    public double? ValidationAccuracy => Get(TrainingLoop.ValidationPrefix + TrainingStep.Accuracy);

    /// <summary>"loss 0.1234, accuracy 97.10 %, ..." for logs.</summary>
    public string Describe() => string.Join(", ", Values.Select(kv => $"{kv.Key} {Format(kv.Key, kv.Value)}"));

    private static string Format(string name, double value) =>
        name.EndsWith("acc", StringComparison.Ordinal) || name.Contains("accuracy", StringComparison.Ordinal)
            ? value.ToString("P2", CultureInfo.InvariantCulture)
            : value.ToString("G5", CultureInfo.InvariantCulture);
}

/// <summary>The per-epoch record of one training run, readable after Fit.</summary>
public sealed class TrainingHistory
{
    private readonly List<EpochMetrics> _epochs = [];
    private readonly List<string> _names = [];

    public IReadOnlyList<EpochMetrics> Epochs => _epochs;

    /// <summary>Every metric name the run reported, in the order first seen.</summary>
    public IReadOnlyList<string> MetricNames => _names;

    /// <summary>One metric over the epochs (NaN where an epoch lacks it).</summary>
    public IReadOnlyList<double> Values(string name) => _epochs.Select(e => e.Get(name) ?? double.NaN).ToList();

    /// <summary>
    /// 0-based epoch with the best monitored metric (<see cref="LoopSettings.Monitor"/>; by default <c>val_loss</c>
    /// with validation data, else <c>loss</c>); -1 when no epoch reported a comparable value.
    /// </summary>
    public int BestEpoch { get; internal set; } = -1;

    /// <summary>
    /// 0-based epoch whose weights the model holds: <see cref="BestEpoch"/> when early stopping restored the best
    /// weights (<see cref="RestoredBestWeights"/>), otherwise the last epoch trained.
    /// </summary>
    public int WeightsEpoch { get; internal set; } = -1;

    /// <summary>True when the best epoch's weights were restored at the end (<see cref="EarlyStopping.RestoreBestWeights"/>).</summary>
    public bool RestoredBestWeights { get; internal set; }

    /// <summary>
    /// True when a training metric became NaN or infinite and the run stopped there with the best weights restored
    /// (only with early stopping that restores them; otherwise divergence is an error). The diverged epoch is the last
    /// one in <see cref="Epochs"/>.
    /// </summary>
    public bool Diverged { get; internal set; }

    /// <summary>True when early stopping or a callback ended the run before the last epoch, or when it diverged (<see cref="Diverged"/>).</summary>
    public bool StoppedEarly { get; internal set; }

    /// <summary>Why the run stopped early, when it did (naming the epoch whose weights were kept).</summary>
    public string? StopReason { get; internal set; }

    /// <summary>Training samples per second over all epochs (forward, backward and update; validation excluded).</summary>
    public double SamplesPerSecond { get; internal set; }

    internal void Add(EpochMetrics metrics)
    {
        _epochs.Add(metrics);
        foreach (var name in metrics.Values.Keys) if (!_names.Contains(name)) _names.Add(name);
    }

    /// <summary>Writes the history as CSV: epoch, every metric, learning rate, seconds, samples/s.</summary>
    public string ToCsv()
    {
        var c = CultureInfo.InvariantCulture;
        var lines = new List<string> { string.Join(",", ["epoch", .. _names, "learning_rate", "seconds", "samples_per_second"]) };
        lines.AddRange(_epochs.Select(e => string.Join(",",
            [e.Epoch.ToString(c), .. _names.Select(n => e.Get(n)?.ToString("R", c) ?? ""),
             e.LearningRate.ToString("R", c), e.Duration.TotalSeconds.ToString("F3", c), e.SamplesPerSecond.ToString("F1", c)])));
        return string.Join(Environment.NewLine, lines) + Environment.NewLine;
    }
}

/// <summary>Progress of a running training: sent after every few batches and at the end of each epoch.</summary>
public sealed record TrainingProgress(int Epoch, int Epochs, int Batch, int Batches, EpochMetrics? Completed)
{
    /// <summary>Fraction of the whole run done, 0 to 1.</summary>
    public double Fraction => Epochs == 0 ? 1 : (Epoch + (Batches == 0 ? 1.0 : (double)Batch / Batches)) / Epochs;
}

/// <summary>
/// Stops training when the monitored metric (<see cref="LoopSettings.Monitor"/>, <see cref="DeepTrainerOptions.Monitor"/>)
/// has not improved by more than <paramref name="MinDelta"/> for <paramref name="Patience"/> epochs in a row (training
/// ends after the Patience-th such epoch; 0 stops at the first), and restores the best epoch's weights (also when a
/// training metric diverges to NaN or infinity).
/// </summary>
public sealed record EarlyStopping(int Patience = 3, double MinDelta = 0, bool RestoreBestWeights = true)
{
    /// <summary>Checks the settings; throws naming the one that is out of range.</summary>
    public void Validate()
    {
        if (Patience < 0) throw new ArgumentOutOfRangeException(nameof(Patience), Patience, "EarlyStopping.Patience must be >= 0.");
        if (!(MinDelta >= 0) || double.IsInfinity(MinDelta))
            throw new ArgumentOutOfRangeException(nameof(MinDelta), MinDelta, "EarlyStopping.MinDelta must be a finite number >= 0.");
    }
}

/// <summary>
/// The one metric a training run watches, and which way is better: early stopping, <see cref="ReduceOnPlateau"/> and
/// the history's <see cref="TrainingHistory.BestEpoch"/> all follow it. <paramref name="Name"/> is a metric the step
/// reports (<c>loss</c>, <c>accuracy</c>, <c>g_loss</c>...) or its validation counterpart (<c>val_loss</c>,
/// <c>val_accuracy</c>); <paramref name="Maximize"/> for metrics where higher is better. The loop checks the name
/// against the step's metrics before the first epoch.
/// </summary>
public sealed record MonitoredMetric(string Name, bool Maximize = false)
{
    /// <summary>What a run watches when none is named: <c>val_loss</c> with validation data, else <c>loss</c>; lower is better.</summary>
    public static MonitoredMetric Default(bool validation) => new(validation ? TrainingLoop.ValidationPrefix + TrainingStep.Loss : TrainingStep.Loss);

    /// <summary>The starting point of a search for the best value: no value is worse.</summary>
    public double Worst => Maximize ? double.NegativeInfinity : double.PositiveInfinity;

    /// <summary>Whether <paramref name="value"/> improves on <paramref name="best"/> by more than <paramref name="minDelta"/> in this metric's direction (NaN never does).</summary>
    public bool Improves(double value, double best, double minDelta) => Maximize ? value > best + minDelta : value < best - minDelta;

    /// <summary>Checks the name; throws when it is empty.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Name))
            throw new ArgumentException("MonitoredMetric.Name must name a metric such as 'val_loss' or 'accuracy'.", nameof(Name));
    }
}
