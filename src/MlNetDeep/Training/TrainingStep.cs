using static TorchSharp.torch;

namespace MlNetDeep.Training;

/// <summary>What a step may use while it trains on a batch: the device, the run's seeded generator, where the loop is.</summary>
public sealed class StepContext
{
    /// <summary>A context for driving a step outside the loop (tests, custom loops).</summary>
    public StepContext(Device device, Generator generator, int epochs)
    {
        Device = device;
        Generator = generator;
        Epochs = epochs;
    }

    /// <summary>The device the step's modules live on.</summary>
    public Device Device { get; }

    /// <summary>
    /// The training run's seeded generator, on the CPU: draw there and move the numbers to <see cref="Device"/>
    /// (<see cref="TrainingRandom.Normal"/>, <see cref="TrainingRandom.Uniform"/>), which works on every device and gives
    /// every device the same numbers for a seed.
    /// </summary>
    public Generator Generator { get; }

    /// <summary>0-based epoch being trained.</summary>
    public int Epoch { get; internal set; }

    public int Epochs { get; }

    /// <summary>0-based batch within the epoch.</summary>
    public int BatchIndex { get; internal set; }
}

/// <summary>
/// How one family trains (Keras' <c>train_step</c>, Lightning's <c>training_step</c> + <c>configure_optimizers</c>): a
/// step owns its modules and optimizers, trains on a batch and reports named metrics. The loop
/// (<see cref="TrainingLoop"/>) owns everything else: epochs, schedules, validation, early stopping, callbacks,
/// history, progress and cancellation. A metric is a scalar tensor holding the batch's mean; the loop averages it over
/// the epoch weighted by batch rows without a device sync per batch.
/// </summary>
public abstract class TrainingStep : IDisposable
{
    /// <summary>The name of a step's loss, where it has one loss (what a run watches by default).</summary>
    public const string Loss = "loss";

    /// <summary>The name of the share of rows a classifying step gets right.</summary>
    public const string Accuracy = "accuracy";

    /// <summary>
    /// The names of the metrics <see cref="TrainBatch"/> reports, known before training: the loop checks the monitored
    /// metric against them before the first epoch.
    /// </summary>
    public abstract IReadOnlyCollection<string> MetricNames { get; }

    /// <summary>The names of the metrics <see cref="EvaluateBatch"/> reports (validation names them val_*); by default <see cref="MetricNames"/>.</summary>
    public virtual IReadOnlyCollection<string> EvaluationMetricNames => MetricNames;

    /// <summary>The modules this step trains: switched to train/eval mode, and snapshot for early stopping.</summary>
    public abstract IReadOnlyList<TorchSharp.torch.nn.Module> Modules { get; }

    /// <summary>The base learning rate the schedule starts from (the first optimizer's).</summary>
    public abstract double LearningRate { get; }

    /// <summary>Sets the learning rate of every optimizer for the next epoch, as a multiple of each one's base rate.</summary>
    public abstract void ScaleLearningRates(double factor);

    /// <summary>Checks a whole data set once before training (e.g. the range a loss needs); throws naming what is wrong.</summary>
    public virtual void CheckData(ITrainingData data) { }

    /// <summary>One optimisation step on <paramref name="batch"/>; returns the batch's metrics (e.g. loss, accuracy, d_loss, g_loss).</summary>
    public abstract IReadOnlyDictionary<string, Tensor> TrainBatch(Batch batch, StepContext context);

    /// <summary>The batch's metrics without training (called in eval mode, without gradients); validation names them val_*.</summary>
    public abstract IReadOnlyDictionary<string, Tensor> EvaluateBatch(Batch batch);

    /// <summary>Disposes the optimizers (not the modules, which the fitted transformer keeps).</summary>
    public virtual void Dispose() => GC.SuppressFinalize(this);
}
