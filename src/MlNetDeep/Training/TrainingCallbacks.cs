namespace MlNetDeep.Training;

/// <summary>What a callback sees at the end of an epoch; setting <see cref="StopTraining"/> ends the run after it.</summary>
public sealed class EpochEnd
{
    internal EpochEnd(EpochMetrics metrics, TrainingHistory history, TrainingStep step)
    {
        Metrics = metrics;
        History = history;
        Step = step;
    }

    /// <summary>The epoch just finished.</summary>
    public EpochMetrics Metrics { get; }

    /// <summary>Every epoch so far.</summary>
    public TrainingHistory History { get; }

    /// <summary>The step being trained (its modules, e.g. to draw samples from a generator).</summary>
    public TrainingStep Step { get; }

    /// <summary>Ends training after this epoch (as early stopping does); the reason goes into the history.</summary>
    public void Stop(string reason)
    {
        StopTraining = true;
        StopReason = reason;
    }

    public bool StopTraining { get; private set; }
    public string? StopReason { get; private set; }
}

/// <summary>Runs at the end of every epoch (Keras' and Lightning's callbacks): save a sample grid, log, stop.</summary>
public interface ITrainingCallback
{
    void OnEpochEnd(EpochEnd epoch);
}

/// <summary>A callback from a delegate.</summary>
public sealed class EpochCallback(Action<EpochEnd> onEpochEnd) : ITrainingCallback
{
    public void OnEpochEnd(EpochEnd epoch) => onEpochEnd(epoch);
}
