using Microsoft.ML;

namespace MlNetDeep.Training;

/// <summary>
/// What every deep trainer shares: the feature column, how long and how it trains, validation, early stopping,
/// progress and cancellation. Family options (classification, regression, autoencoders...) add their own.
/// </summary>
public abstract class DeepTrainerOptions
{
    /// <summary>The input column: vector&lt;float&gt; of known size, or a float.</summary>
    public string FeatureColumnName { get; set; } = "Features";

    /// <summary>The shape of one sample, e.g. [1, 28, 28] for a grey 28x28 image; null means a flat vector.</summary>
    public int[]? InputShape { get; set; }

    /// <summary>Passes over the training data.</summary>
    public int Epochs { get; set; } = 10;

    /// <summary>Samples per gradient step (mini-batch size).</summary>
    public int BatchSize { get; set; } = 32;

    /// <summary>The optimiser and its learning rate; Adam(1e-3) by default.</summary>
    public OptimizerSpec Optimizer { get; set; } = new Adam();

    /// <summary>How the learning rate changes per epoch; null keeps it constant.</summary>
    public LearningRateSchedule? LearningRateSchedule { get; set; }

    /// <summary>Stop when the monitored metric (<see cref="Monitor"/>) stops improving; null trains all epochs.</summary>
    public EarlyStopping? EarlyStopping { get; set; }

    /// <summary>
    /// The one metric that early stopping, the learning-rate schedule (<see cref="ReduceOnPlateau"/>) and the history's
    /// best epoch follow, and whether higher is better, e.g. <c>new MonitoredMetric("val_accuracy", Maximize: true)</c>;
    /// null: <c>val_loss</c> with validation data, else <c>loss</c>, lower being better. A name the family's training
    /// does not report is refused before the first epoch.
    /// </summary>
    public MonitoredMetric? Monitor { get; set; }

    /// <summary>Fraction of the training rows held out (after a seeded shuffle) to validate on after each epoch; 0 for none.</summary>
    public double ValidationFraction { get; set; }

    /// <summary>Data to validate on after each epoch, instead of a held-out fraction.</summary>
    public IDataView? ValidationData { get; set; }

    /// <summary>Shuffle the training rows each epoch (from the seed).</summary>
    public bool Shuffle { get; set; } = true;

    /// <summary>Seed for weights, shuffling and dropout; null draws it from the MLContext (whose own seed makes runs repeatable).</summary>
    public int? Seed { get; set; }

    /// <summary>Rows per forward pass when scoring (Transform) and validating.</summary>
    public int ScoringBatchSize { get; set; } = 1024;

    /// <summary>
    /// Most bytes of data (features and labels) staged whole on a GPU: the training rows first, then the validation rows
    /// within what is left; data that does not fit moves batch by batch.
    /// </summary>
    public long MaxStagedBytes { get; set; } = 4L << 30;

    /// <summary>Receives progress after every few batches and each epoch's metrics.</summary>
    public IProgress<TrainingProgress>? Progress { get; set; }

    /// <summary>Cancels training: checked before every training and validation batch (Fit then throws OperationCanceledException).</summary>
    public CancellationToken CancellationToken { get; set; }

    /// <summary>Run at the end of every epoch (save a sample grid, log, stop on a condition).</summary>
    public IList<ITrainingCallback> Callbacks { get; set; } = new List<ITrainingCallback>();

    /// <summary>A per-batch change of the training inputs (data augmentation, input corruption); never applied when scoring.</summary>
    public IBatchTransform? TrainingInputTransform { get; set; }

    /// <summary>
    /// Adversarial training (Madry et al. 2018; with FGSM from a random start, Wong et al. 2020): a share of every
    /// training batch is replaced by its adversarial version against the model as it is at that step. Null trains on
    /// the batches as they are.
    /// </summary>
    public AdversarialTraining? AdversarialTraining { get; set; }

    internal virtual void Validate()
    {
        AdversarialTraining?.Validate();
        if (string.IsNullOrWhiteSpace(FeatureColumnName)) throw new ArgumentException("FeatureColumnName must name a column.", nameof(FeatureColumnName));
        if (Epochs <= 0) throw new ArgumentOutOfRangeException(nameof(Epochs), Epochs, "Epochs must be at least 1.");
        if (BatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be at least 1.");
        if (ScoringBatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(ScoringBatchSize), ScoringBatchSize, "ScoringBatchSize must be at least 1.");
        if (ValidationFraction is < 0 or >= 1 || double.IsNaN(ValidationFraction))
            throw new ArgumentOutOfRangeException(nameof(ValidationFraction), ValidationFraction, "ValidationFraction must be in [0, 1).");
        if (ValidationFraction > 0 && ValidationData is not null)
            throw new ArgumentException("Give either ValidationFraction or ValidationData, not both.");
        if (Optimizer is null) throw new ArgumentNullException(nameof(Optimizer));
        Optimizer.Validate();
        if (InputShape is { } shape && (shape.Length == 0 || shape.Any(d => d <= 0)))
            throw new ArgumentException($"InputShape [{string.Join(", ", shape)}] must have positive sizes.", nameof(InputShape));
        EarlyStopping?.Validate();
        LearningRateSchedule?.Validate();
        Monitor?.Validate();
        if (MaxStagedBytes < 0) throw new ArgumentOutOfRangeException(nameof(MaxStagedBytes), MaxStagedBytes, "MaxStagedBytes must be >= 0.");
        if (Callbacks is null || Callbacks.Any(c => c is null)) throw new ArgumentNullException(nameof(Callbacks), "Callbacks must be a list of callbacks, without nulls.");
    }

    /// <summary>Copies what every trainer shares (how long and how it trains, validation, progress) into <paramref name="target"/>; columns and shapes stay.</summary>
    internal void CopyTrainingTo(DeepTrainerOptions target)
    {
        target.Epochs = Epochs;
        target.BatchSize = BatchSize;
        target.Optimizer = Optimizer;
        target.LearningRateSchedule = LearningRateSchedule;
        target.EarlyStopping = EarlyStopping;
        target.Monitor = Monitor;
        target.ValidationFraction = ValidationFraction;
        target.ValidationData = ValidationData;
        target.Shuffle = Shuffle;
        target.Seed = Seed;
        target.ScoringBatchSize = ScoringBatchSize;
        target.MaxStagedBytes = MaxStagedBytes;
        target.Progress = Progress;
        target.CancellationToken = CancellationToken;
        target.Callbacks = new List<ITrainingCallback>(Callbacks);
        target.TrainingInputTransform = TrainingInputTransform;
        target.AdversarialTraining = AdversarialTraining;
    }

    /// <summary>
    /// A shallow copy: the same network, optimizer, schedule, validation data and callbacks, in a new options object
    /// with its own <see cref="Callbacks"/> list and <see cref="InputShape"/> array, so that changing one leaves the other as it was.
    /// </summary>
    public virtual DeepTrainerOptions Clone()
    {
        var copy = (DeepTrainerOptions)MemberwiseClone();
        copy.Callbacks = Callbacks is null ? new List<ITrainingCallback>() : new List<ITrainingCallback>(Callbacks);
        copy.InputShape = InputShape?.ToArray();
        return copy;
    }
}

/// <summary>
/// Adversarial training: <paramref name="Attack"/> (untargeted FGSM or PGD in the inputs' range) makes the adversarial
/// version of the first <paramref name="Fraction"/> of each training batch (batches are shuffled), and the step trains
/// on the mixed batch. Costs one extra forward and backward pass per attack step.
/// </summary>
public sealed record AdversarialTraining(Vision.Attack Attack, double Fraction = 0.5)
{
    internal void Validate()
    {
        if (Attack is null) throw new ArgumentNullException(nameof(Attack), "Adversarial training needs an attack.");
        Attack.Validate();
        if (Attack.TargetClass is not null) throw new ArgumentException("Adversarial training uses untargeted attacks: leave TargetClass empty.", nameof(Attack));
        if (!(Fraction is > 0 and <= 1)) throw new ArgumentOutOfRangeException(nameof(Fraction), Fraction, "The adversarial share of a batch must be in (0, 1].");
    }
}

/// <summary>
/// Changes a batch of training inputs [batch, ...sample shape] on the training device (augmentation, corruption).
/// The generator is the run's seeded generator on the CPU: draw there and move the numbers to the batch's device
/// (<see cref="TrainingRandom.Uniform"/>, <see cref="TrainingRandom.Normal"/>), so a seed gives the same batches on every device.
/// </summary>
public interface IBatchTransform
{
    TorchSharp.torch.Tensor Apply(TorchSharp.torch.Tensor batch, TorchSharp.torch.Generator generator);
}
