namespace MlNetDeep.Training;

/// <summary>How the learning rate changes from epoch to epoch.</summary>
public abstract record LearningRateSchedule
{
    /// <summary>A scheduler for one training run (<paramref name="run"/>: its length and monitored metric), starting from <paramref name="baseRate"/>.</summary>
    public abstract ILearningRateScheduler Start(double baseRate, ScheduleRun run);

    /// <summary>
    /// Whether the schedule follows the run's monitored metric (<see cref="ScheduleRun.Monitor"/>): the loop then
    /// requires the step to report it, before the first epoch.
    /// </summary>
    public virtual bool FollowsMonitor => false;

    /// <summary>Checks the schedule's parameters (when the options are validated, before any data is read); throws naming the one out of range.</summary>
    public virtual void Validate() { }

    /// <summary>Throws unless <paramref name="value"/> is finite and within [<paramref name="min"/>, <paramref name="max"/>] (ends excluded when asked).</summary>
    private protected void Require(double value, string name, double min, double max, bool excludeMin = false, bool excludeMax = false, string? range = null)
    {
        bool inside = double.IsFinite(value) && (excludeMin ? value > min : value >= min) && (excludeMax ? value < max : value <= max);
        if (!inside)
            throw new ArgumentOutOfRangeException(name, value, $"{GetType().Name}.{name} must be {range ?? $"a finite number >= {min}"}, got {value}.");
    }
}

/// <summary>What a schedule knows of the run it serves: its epochs and the metric the run monitors (its name and direction).</summary>
public sealed record ScheduleRun(int Epochs, MonitoredMetric Monitor);

/// <summary>One training run's learning rate: asked once after each epoch for the next epoch's rate.</summary>
public interface ILearningRateScheduler
{
    /// <summary>The rate for epoch <paramref name="nextEpoch"/> (0-based), given the monitored metric's value in the epoch just finished.</summary>
    double Next(int nextEpoch, double monitored);
}

/// <summary>Multiplies the rate by <paramref name="Gamma"/> every <paramref name="StepSize"/> epochs.</summary>
public sealed record StepDecay(int StepSize = 10, double Gamma = 0.1) : LearningRateSchedule
{
    public override ILearningRateScheduler Start(double baseRate, ScheduleRun run)
    {
        Validate();
        return new Fn(epoch => baseRate * Math.Pow(Gamma, epoch / StepSize));
    }

    public override void Validate()
    {
        if (StepSize <= 0) throw new ArgumentOutOfRangeException(nameof(StepSize), StepSize, "StepDecay.StepSize must be positive.");
        Require(Gamma, nameof(Gamma), 0, double.MaxValue, excludeMin: true, range: "a finite number > 0");
    }
}

/// <summary>Multiplies the rate by <paramref name="Gamma"/> every epoch.</summary>
public sealed record ExponentialDecay(double Gamma = 0.95) : LearningRateSchedule
{
    public override ILearningRateScheduler Start(double baseRate, ScheduleRun run)
    {
        Validate();
        return new Fn(epoch => baseRate * Math.Pow(Gamma, epoch));
    }

    public override void Validate() => Require(Gamma, nameof(Gamma), 0, double.MaxValue, excludeMin: true, range: "a finite number > 0");
}

/// <summary>Cosine annealing from the base rate down to <paramref name="MinRate"/> over <paramref name="Epochs"/> epochs (0: the whole run).</summary>
public sealed record CosineAnnealing(int Epochs = 0, double MinRate = 0) : LearningRateSchedule
{
    public override ILearningRateScheduler Start(double baseRate, ScheduleRun run)
    {
        Validate();
        int period = Epochs > 0 ? Epochs : Math.Max(run.Epochs, 1);
        return new Fn(epoch => MinRate + (baseRate - MinRate) * (1 + Math.Cos(Math.PI * Math.Min(epoch, period) / period)) / 2);
    }

    public override void Validate()
    {
        if (Epochs < 0) throw new ArgumentOutOfRangeException(nameof(Epochs), Epochs, "CosineAnnealing.Epochs must be >= 0 (0: the whole run).");
        Require(MinRate, nameof(MinRate), 0, double.MaxValue);
    }
}

/// <summary>
/// Multiplies the rate by <paramref name="Factor"/> when the run's monitored metric has not improved (in its direction:
/// lower, or higher for <see cref="MonitoredMetric.Maximize"/>) by more than <paramref name="MinDelta"/> for more than
/// <paramref name="Patience"/> epochs.
/// </summary>
public sealed record ReduceOnPlateau(double Factor = 0.1, int Patience = 2, double MinDelta = 1e-4, double MinRate = 0) : LearningRateSchedule
{
    public override ILearningRateScheduler Start(double baseRate, ScheduleRun run)
    {
        Validate();
        ArgumentNullException.ThrowIfNull(run);
        return new Plateau(this, run.Monitor, baseRate);
    }

    public override bool FollowsMonitor => true;

    public override void Validate()
    {
        Require(Factor, nameof(Factor), 0, 1, excludeMin: true, excludeMax: true, range: "in (0, 1)");
        if (Patience < 0) throw new ArgumentOutOfRangeException(nameof(Patience), Patience, "ReduceOnPlateau.Patience must be >= 0.");
        Require(MinDelta, nameof(MinDelta), 0, double.MaxValue);
        Require(MinRate, nameof(MinRate), 0, double.MaxValue);
    }

    private sealed class Plateau(ReduceOnPlateau spec, MonitoredMetric monitor, double rate) : ILearningRateScheduler
    {
        private double _best = monitor.Worst;
        private int _bad;
        public double Next(int nextEpoch, double monitored)
        {
            if (monitor.Improves(monitored, _best, spec.MinDelta)) { _best = monitored; _bad = 0; }
            else if (++_bad > spec.Patience) { rate = Math.Max(rate * spec.Factor, spec.MinRate); _bad = 0; }
            return rate;
        }
    }
}

internal sealed class Fn(Func<int, double> rate) : ILearningRateScheduler
{
    public double Next(int nextEpoch, double monitored) => rate(nextEpoch);
}
