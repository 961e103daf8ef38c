using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Training;

/// <summary>What the loop needs to know about a run, and nothing about a family.</summary>
public sealed record LoopSettings
{
    public int Epochs { get; init; } = 10;
    public int BatchSize { get; init; } = 32;
    public bool Shuffle { get; init; } = true;
    public int ValidationBatchSize { get; init; } = 1024;
    public LearningRateSchedule? LearningRateSchedule { get; init; }
    public EarlyStopping? EarlyStopping { get; init; }

    /// <summary>
    /// The one metric early stopping, the schedule (<see cref="ReduceOnPlateau"/>) and the best epoch follow, with its
    /// direction; null: <c>val_loss</c> with validation data, else <c>loss</c>, lower being better.
    /// </summary>
    public MonitoredMetric? Monitor { get; init; }
    public IProgress<TrainingProgress>? Progress { get; init; }
    public CancellationToken CancellationToken { get; init; }
    public IReadOnlyList<ITrainingCallback> Callbacks { get; init; } = [];

    /// <summary>
    /// Most bytes of in-memory data (inputs and targets) staged whole on a GPU: the training data first, then the
    /// validation data within what is left; data that does not fit moves batch by batch.
    /// </summary>
    public long MaxStagedBytes { get; init; } = 4L << 30;

    /// <summary>The loop's part of a trainer's options.</summary>
    public static LoopSettings From(DeepTrainerOptions options) => new()
    {
        Epochs = options.Epochs, BatchSize = options.BatchSize, Shuffle = options.Shuffle, ValidationBatchSize = options.ScoringBatchSize,
        LearningRateSchedule = options.LearningRateSchedule, EarlyStopping = options.EarlyStopping, Monitor = options.Monitor, Progress = options.Progress,
        CancellationToken = options.CancellationToken, Callbacks = options.Callbacks.ToList(), MaxStagedBytes = options.MaxStagedBytes,
    };

    internal void Validate()
    {
        if (Epochs <= 0) throw new ArgumentOutOfRangeException(nameof(Epochs), Epochs, "Epochs must be at least 1.");
        if (BatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be at least 1.");
        if (ValidationBatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(ValidationBatchSize), ValidationBatchSize, "The validation batch size must be at least 1.");
        if (MaxStagedBytes < 0) throw new ArgumentOutOfRangeException(nameof(MaxStagedBytes), MaxStagedBytes, "MaxStagedBytes must be >= 0.");
        EarlyStopping?.Validate();
        LearningRateSchedule?.Validate();
        Monitor?.Validate();
    }
}

/// <summary>
/// The one training loop every family uses. It asks a <see cref="TrainingStep"/> to train on each batch of an
/// <see cref="ITrainingData"/> and owns the rest: epochs, the learning-rate schedule, validation, one monitored metric
/// (checked against the step's metrics before the first epoch) for early stopping with the best weights restored (also
/// when training diverges) and for the schedule, callbacks (in eval mode, without gradients), the history of named
/// metrics, progress, cancellation (before every training and validation batch), the seeded generators, and staging
/// in-memory data on the device.
/// </summary>
public static class TrainingLoop
{
    /// <summary>Prefix of validation metrics: <c>loss</c> on validation data is <c>val_loss</c>.</summary>
    public const string ValidationPrefix = "val_";

    /// <param name="random">
    /// The generator the modules draw from while they train (dropout masks, a VAE's noise), made current through
    /// <see cref="TrainingRandom"/> for the run; null makes one from <paramref name="seed"/>. The caller keeps ownership.
    /// </param>
    public static TrainingHistory Run(TrainingStep step, ITrainingData train, ITrainingData? validation, LoopSettings settings, Device device, int seed,
        Generator? random = null)
    {
        ArgumentNullException.ThrowIfNull(step);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        if (train.Count == 0) throw new InvalidOperationException("The training data has no rows.");
        var monitor = settings.Monitor ?? MonitoredMetric.Default(validation is not null);
        bool monitorFollowed = CheckMonitor(step, monitor, validation is not null, settings);
        step.CheckData(train);
        if (validation is not null) step.CheckData(validation);
        var history = new TrainingHistory();
        long stagingBudget = device.type == DeviceType.CPU ? long.MaxValue : settings.MaxStagedBytes;
        using var trainOnDevice = Stage(train, device, ref stagingBudget);
        using var validationOnDevice = validation is null ? null : Stage(validation, device, ref stagingBudget);
        var data = (ITrainingData?)trainOnDevice ?? train;
        var validationData = (ITrainingData?)validationOnDevice ?? validation;

        double baseRate = step.LearningRate, learningRate = baseRate;
        var schedule = settings.LearningRateSchedule?.Start(baseRate, new ScheduleRun(settings.Epochs, monitor));
        var stopping = settings.EarlyStopping;

        Dictionary<string, Tensor>? bestWeights = null;
        int bestWeightsEpoch = -1;
        double best = monitor.Worst;
        int epochsWithoutImprovement = 0;
        long n = data.Count;
        double trainingSeconds = 0;
        long samplesSeen = 0;

        var generator = new Generator((ulong)(uint)seed, device: CPU);
        var moduleRandom = random ?? new Generator(ModuleSeed(seed), CPU);
        var ambient = TrainingRandom.Use(moduleRandom);
        var context = new StepContext(device, generator, settings.Epochs);
        try
        {
            for (int epoch = 0; epoch < settings.Epochs; epoch++)
            {
                step.ScaleLearningRates(learningRate / baseRate);
                foreach (var module in step.Modules) module.train();
                context.Epoch = epoch;
                var clock = Stopwatch.StartNew();
                var sums = new Dictionary<string, Tensor>();
                int batches;
                Dictionary<string, double> values;
                try
                {
                    using var epochBatches = data.Epoch(settings.BatchSize, settings.Shuffle, generator, device);
                    batches = epochBatches.Count;
                    int reportEvery = Math.Max(1, batches / 100);
                    for (int b = 0; b < batches; b++)
                    {
                        settings.CancellationToken.ThrowIfCancellationRequested();
                        using var scope = NewDisposeScope();
                        context.BatchIndex = b;
                        var batch = epochBatches.Get(b);
                        foreach (var (name, value) in step.TrainBatch(batch, context))
                        {
                            if (!sums.TryGetValue(name, out var sum)) sums[name] = sum = zeros(1, float64, device).DetachFromDisposeScope();
                            sum.add_(value.detach().to(float64) * batch.Rows);
                        }
                        if (settings.Progress is not null && (b % reportEvery == 0 || b == batches - 1))
                            settings.Progress.Report(new TrainingProgress(epoch, settings.Epochs, b + 1, batches, null));
                    }
                    values = sums.ToDictionary(kv => kv.Key, kv => kv.Value.item<double>() / n);
                }
                finally
                {
                    foreach (var sum in sums.Values) sum.Dispose();
                }
                clock.Stop();
                trainingSeconds += clock.Elapsed.TotalSeconds;
                samplesSeen += n;

                var divergence = values.FirstOrDefault(kv => !double.IsFinite(kv.Value));
                if (divergence.Key is not null)
                {
                    string what = $"Training diverged: the {divergence.Key} became {divergence.Value} in epoch {epoch + 1}.";
                    if (bestWeights is null)
                        throw new InvalidOperationException($"{what} Lower the learning rate or normalise the features " +
                            "(with EarlyStopping, whose RestoreBestWeights is on by default, training stops here and keeps the best epoch's weights).");
                    history.Add(new EpochMetrics(epoch, values, learningRate, clock.Elapsed, n / Math.Max(clock.Elapsed.TotalSeconds, 1e-9)));
                    history.Diverged = true;
                    history.StoppedEarly = true;
                    history.StopReason = $"{what} The weights of epoch {bestWeightsEpoch + 1} ({monitor.Name} {best:G5}) were restored.";
                    break;
                }

                if (validationData is not null)
                    foreach (var (name, value) in Evaluate(step, validationData, settings.ValidationBatchSize, settings.CancellationToken, device))
                        values[ValidationPrefix + name] = value;
                var metrics = new EpochMetrics(epoch, values, learningRate, clock.Elapsed, n / Math.Max(clock.Elapsed.TotalSeconds, 1e-9));
                history.Add(metrics);
                settings.Progress?.Report(new TrainingProgress(epoch, settings.Epochs, batches, batches, metrics));

                if (!values.TryGetValue(monitor.Name, out double monitored))
                {
                    if (monitorFollowed)
                        throw new InvalidOperationException($"{step.GetType().Name} lists '{monitor.Name}' among its metrics but did not report it in epoch {epoch + 1}; " +
                            $"it reported {string.Join(", ", values.Keys)}.");
                    monitored = double.NaN;
                }
                double delta = stopping?.MinDelta ?? 0;
                string? stopReason = null;
                if (monitor.Improves(monitored, best, delta))
                {
                    best = monitored;
                    history.BestEpoch = epoch;
                    epochsWithoutImprovement = 0;
                    if (stopping is { RestoreBestWeights: true })
                    {
                        bestWeights = Snapshot(step, bestWeights);
                        bestWeightsEpoch = epoch;
                    }
                }
                else if (stopping is not null && ++epochsWithoutImprovement >= stopping.Patience && epoch < settings.Epochs - 1)
                {
                    stopReason = $"early stopping: {monitor.Name} did not improve for {epochsWithoutImprovement} epoch{(epochsWithoutImprovement == 1 ? "" : "s")}" +
                        (history.BestEpoch >= 0 ? $" after its best, {best:G5} in epoch {history.BestEpoch + 1}" : "");
                }

                Native.NativeMemory.ReleaseAfterEpoch();
                var end = new EpochEnd(metrics, history, step);
                foreach (var module in step.Modules) module.eval();
                using (no_grad())
                    foreach (var callback in settings.Callbacks) callback.OnEpochEnd(end);
                if (stopReason is null && end.StopTraining && epoch < settings.Epochs - 1) stopReason = end.StopReason;
                if (stopReason is not null)
                {
                    history.StoppedEarly = true;
                    history.StopReason = stopReason;
                    break;
                }
                if (schedule is not null) learningRate = schedule.Next(epoch + 1, monitored);
            }

            if (bestWeights is not null)
            {
                Restore(step, bestWeights);
                history.WeightsEpoch = bestWeightsEpoch;
                history.RestoredBestWeights = true;
            }
            else history.WeightsEpoch = history.Epochs.Count - 1;
        }
        finally
        {
            ambient.Dispose();
            if (bestWeights is not null) foreach (var tensor in bestWeights.Values) tensor.Dispose();
            generator.Dispose();
            if (random is null) moduleRandom.Dispose();
        }
        foreach (var module in step.Modules) module.eval();
        history.SamplesPerSecond = samplesSeen / Math.Max(trainingSeconds, 1e-9);
        return history;
    }

    /// <summary>The seed of the modules' generator when the caller gives none: apart from the shuffling generator's stream.</summary>
    private static ulong ModuleSeed(int seed) => (ulong)(uint)seed ^ 0x9E3779B97F4A7C15UL;

    /// <summary>
    /// The step's metrics on <paramref name="data"/> (means over its samples), in eval mode without gradients.
    /// <paramref name="cancellationToken"/> is checked before every batch. Batches go to <paramref name="device"/> (the
    /// step's modules' device); null keeps in-memory tensors where they are and puts other data on the CPU.
    /// </summary>
    public static Dictionary<string, double> Evaluate(TrainingStep step, ITrainingData data, int batchSize, CancellationToken cancellationToken = default, Device? device = null)
    {
        foreach (var module in step.Modules) module.eval();
        using var noGrad = no_grad();
        var sums = new Dictionary<string, double>();
        using var batches = data.Epoch(batchSize, shuffle: false, generator: null, device: device ?? DeviceOf(data));
        for (int b = 0; b < batches.Count; b++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var batch = batches.Get(b);
            foreach (var (name, value) in step.EvaluateBatch(batch))
                sums[name] = sums.GetValueOrDefault(name) + value.to(float64).item<double>() * batch.Rows;
        }
        return sums.ToDictionary(kv => kv.Key, kv => kv.Value / data.Count);
    }

    private static Device DeviceOf(ITrainingData data) => data is IStageableData staged ? staged.Device : CPU;

    /// <summary>
    /// Checks, before the first epoch, that the step reports the monitored metric when anything follows it (early
    /// stopping, a schedule such as <see cref="ReduceOnPlateau"/>, or a monitor named in the settings); returns whether anything does.
    /// </summary>
    private static bool CheckMonitor(TrainingStep step, MonitoredMetric monitor, bool validation, LoopSettings settings)
    {
        var followers = new List<string>();
        if (settings.EarlyStopping is not null) followers.Add(nameof(EarlyStopping));
        if (settings.LearningRateSchedule is { FollowsMonitor: true } schedule) followers.Add(schedule.GetType().Name);
        if (followers.Count == 0 && settings.Monitor is null) return false;
        var reported = step.MetricNames.Concat(validation ? step.EvaluationMetricNames.Select(name => ValidationPrefix + name) : []).ToList();
        if (reported.Contains(monitor.Name)) return true;
        string who = followers.Count == 0 ? "The training" : string.Join(" and ", followers);
        string what = settings.Monitor is null ? $"'{monitor.Name}' (the default)" : $"'{monitor.Name}'";
        string trained = monitor.Name.StartsWith(ValidationPrefix, StringComparison.Ordinal) ? monitor.Name[ValidationPrefix.Length..] : "";
        string hint = !validation && step.MetricNames.Contains(trained)
            ? $" '{monitor.Name}' is measured on validation data, which this training has none of: give validation data or monitor '{trained}'."
            : " Name one of them as the monitored metric (Monitor).";
        throw new ArgumentException($"{who} monitors {what}, which this training does not report; it reports {string.Join(", ", reported)}.{hint}", nameof(LoopSettings.Monitor));
    }

    /// <summary>
    /// A copy of <paramref name="data"/> on <paramref name="device"/> when it is held in tensors elsewhere and its copy
    /// fits in <paramref name="budget"/> bytes (which it then uses up); null reads the data where it is, batch by batch.
    /// </summary>
    internal static IStageableData? Stage(ITrainingData data, Device device, ref long budget)
    {
        if (data is not IStageableData stageable || IStageableData.SameDevice(stageable.Device, device) || stageable.Bytes > budget) return null;
        budget -= stageable.Bytes;
        return stageable.CopyTo(device);
    }

    private static Dictionary<string, Tensor> Snapshot(TrainingStep step, Dictionary<string, Tensor>? previous)
    {
        if (previous is not null) foreach (var t in previous.Values) t.Dispose();
        using var noGrad = no_grad();
        var weights = new Dictionary<string, Tensor>();
        for (int i = 0; i < step.Modules.Count; i++)
            foreach (var (name, tensor) in step.Modules[i].state_dict()) weights[$"{i}/{name}"] = tensor.detach().clone();
        return weights;
    }

    private static void Restore(TrainingStep step, Dictionary<string, Tensor> weights)
    {
        using var noGrad = no_grad();
        for (int i = 0; i < step.Modules.Count; i++)
            foreach (var (name, tensor) in step.Modules[i].state_dict()) tensor.copy_(weights[$"{i}/{name}"]);
    }
}
