namespace MlNetDeep.Training;

/// <summary>What one epoch measured. Accuracy is null for tasks without classes.</summary>
public sealed record EpochMetrics(
    int Epoch,
    double TrainLoss,
    double? TrainAccuracy,
    double? ValidationLoss,
    double? ValidationAccuracy,
    double LearningRate,
    TimeSpan Duration,
    double SamplesPerSecond);

/// <summary>The per-epoch record of one training run, readable after Fit.</summary>
public sealed class TrainingHistory
{
    private readonly List<EpochMetrics> _epochs = [];

    public IReadOnlyList<EpochMetrics> Epochs => _epochs;

    /// <summary>The epoch whose weights the model kept (the best validation loss when early stopping restored them).</summary>
    public int BestEpoch { get; internal set; } = -1;

    /// <summary>True when early stopping ended the run before the last epoch.</summary>
    public bool StoppedEarly { get; internal set; }

    /// <summary>Training samples per second over all epochs (forward, backward and update; validation excluded).</summary>
    public double SamplesPerSecond { get; internal set; }

    internal void Add(EpochMetrics metrics) => _epochs.Add(metrics);

    /// <summary>Writes the history as CSV (epoch, losses, accuracies, learning rate, seconds, samples/s).</summary>
    public string ToCsv()
    {
        var lines = new List<string> { "epoch,train_loss,train_accuracy,validation_loss,validation_accuracy,learning_rate,seconds,samples_per_second" };
        var c = System.Globalization.CultureInfo.InvariantCulture;
        lines.AddRange(_epochs.Select(e => string.Join(",",
            e.Epoch.ToString(c), e.TrainLoss.ToString("R", c), e.TrainAccuracy?.ToString("R", c) ?? "", e.ValidationLoss?.ToString("R", c) ?? "",
            e.ValidationAccuracy?.ToString("R", c) ?? "", e.LearningRate.ToString("R", c), e.Duration.TotalSeconds.ToString("F3", c), e.SamplesPerSecond.ToString("F1", c))));
        return string.Join(Environment.NewLine, lines) + Environment.NewLine;
    }
}

/// <summary>Progress of a running training: sent after every few batches and at the end of each epoch.</summary>
public sealed record TrainingProgress(int Epoch, int Epochs, int Batch, int Batches, EpochMetrics? Completed)
{
    /// <summary>Fraction of the whole run done, 0 to 1.</summary>
    public double Fraction => Epochs == 0 ? 1 : (Epoch + (Batches == 0 ? 1.0 : (double)Batch / Batches)) / Epochs;
}

/// <summary>Stops training when the monitored loss has not improved by <paramref name="MinDelta"/> for <paramref name="Patience"/> epochs; restores the best weights.</summary>
public sealed record EarlyStopping(int Patience = 3, double MinDelta = 0, bool RestoreBestWeights = true);
