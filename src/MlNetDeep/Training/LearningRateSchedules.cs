namespace MlNetDeep.Training;

/// <summary>How the learning rate changes from epoch to epoch.</summary>
public abstract record LearningRateSchedule
{
    /// <summary>A scheduler for one training run, starting from <paramref name="baseRate"/>.</summary>
    public abstract ILearningRateScheduler Start(double baseRate);
}

/// <summary>One training run's learning rate: asked once after each epoch for the next epoch's rate.</summary>
public interface ILearningRateScheduler
{
    /// <summary>The rate for epoch <paramref name="nextEpoch"/> (0-based), given the monitored loss of the epoch just finished.</summary>
    double Next(int nextEpoch, double monitoredLoss);
}

/// <summary>Multiplies the rate by <paramref name="Gamma"/> every <paramref name="StepSize"/> epochs.</summary>
public sealed record StepDecay(int StepSize = 10, double Gamma = 0.1) : LearningRateSchedule
{
    public override ILearningRateScheduler Start(double baseRate)
    {
        if (StepSize <= 0) throw new ArgumentOutOfRangeException(nameof(StepSize), StepSize, "StepDecay.StepSize must be positive.");
        return new Fn(epoch => baseRate * Math.Pow(Gamma, epoch / StepSize));
    }
}

/// <summary>Multiplies the rate by <paramref name="Gamma"/> every epoch.</summary>
public sealed record ExponentialDecay(double Gamma = 0.95) : LearningRateSchedule
{
    public override ILearningRateScheduler Start(double baseRate) => new Fn(epoch => baseRate * Math.Pow(Gamma, epoch));
}

/// <summary>Cosine annealing from the base rate down to <paramref name="MinRate"/> over <paramref name="Epochs"/> epochs (0: the whole run).</summary>
public sealed record CosineAnnealing(int Epochs = 0, double MinRate = 0) : LearningRateSchedule
{
    internal int RunEpochs { get; init; }
    public override ILearningRateScheduler Start(double baseRate)
    {
        int period = Epochs > 0 ? Epochs : Math.Max(RunEpochs, 1);
        return new Fn(epoch => MinRate + (baseRate - MinRate) * (1 + Math.Cos(Math.PI * Math.Min(epoch, period) / period)) / 2);
    }
}

/// <summary>Multiplies the rate by <paramref name="Factor"/> when the monitored loss has not improved for <paramref name="Patience"/> epochs.</summary>
public sealed record ReduceOnPlateau(double Factor = 0.1, int Patience = 2, double MinDelta = 1e-4, double MinRate = 0) : LearningRateSchedule
{
    public override ILearningRateScheduler Start(double baseRate)
    {
        if (Factor is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(Factor), Factor, "ReduceOnPlateau.Factor must be in (0, 1).");
        return new Plateau(this, baseRate);
    }

    private sealed class Plateau(ReduceOnPlateau spec, double rate) : ILearningRateScheduler
    {
        private double _best = double.PositiveInfinity;
        private int _bad;
        public double Next(int nextEpoch, double monitoredLoss)
        {
            if (monitoredLoss < _best - spec.MinDelta) { _best = monitoredLoss; _bad = 0; }
            else if (++_bad > spec.Patience) { rate = Math.Max(rate * spec.Factor, spec.MinRate); _bad = 0; }
            return rate;
        }
    }
}

internal sealed class Fn(Func<int, double> rate) : ILearningRateScheduler
{
    public double Next(int nextEpoch, double monitoredLoss) => rate(nextEpoch);
}
