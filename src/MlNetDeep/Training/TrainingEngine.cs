using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Training;

/// <summary>Inputs [n, ...sample shape] and optional targets [n, ...], the first dimension indexing samples.</summary>
public sealed class TensorData : IDisposable
{
    public TensorData(Tensor inputs, Tensor? targets)
    {
        if (targets is not null && targets.shape[0] != inputs.shape[0])
            throw new ArgumentException($"Inputs have {inputs.shape[0]} rows but targets {targets.shape[0]}.");
        Inputs = inputs;
        Targets = targets;
    }

    public Tensor Inputs { get; }
    public Tensor? Targets { get; }
    public long Count => Inputs.shape[0];

    public TensorData To(Device device) => new(Inputs.to(device), Targets?.to(device));

    /// <summary>The rows at <paramref name="index"/> (a 1-D int64 tensor).</summary>
    public (Tensor Inputs, Tensor? Targets) Select(Tensor index) => (Inputs.index_select(0, index), Targets?.index_select(0, index));

    public void Dispose()
    {
        Inputs.Dispose();
        if (!ReferenceEquals(Inputs, Targets)) Targets?.Dispose();
    }
}

/// <summary>
/// The one training loop every deep trainer uses: mini-batches from pre-staged tensors, the optimiser and learning-rate
/// schedule, per-epoch validation, early stopping with the best weights restored, history, progress and cancellation.
/// </summary>
public static class TrainingEngine
{
    public static TrainingHistory Fit(nn.Module model, TrainingObjective objective, TensorData train, TensorData? validation,
        DeepTrainerOptions options, Device device, int seed)
    {
        if (train.Count == 0) throw new InvalidOperationException("The training data has no rows.");
        objective.CheckData(train);
        if (validation is not null) objective.CheckData(validation);
        var history = new TrainingHistory();
        var generator = new Generator((ulong)(uint)seed, device: CPU);
        var deviceGenerator = device.type == DeviceType.CPU ? generator : new Generator((ulong)(uint)seed, device: device);
        bool staged = device.type == DeviceType.CPU || train.Inputs.ElementSize * train.Inputs.numel() <= options.MaxStagedBytes;
        using var onDevice = staged && train.Inputs.device != device ? train.To(device) : null;
        var data = onDevice ?? train;
        using var validationOnDevice = validation?.To(device);

        using var optimizer = options.Optimizer.Create(model.parameters());
        double learningRate = options.Optimizer.LearningRate;
        var schedule = options.LearningRateSchedule is CosineAnnealing cosine
            ? (cosine with { RunEpochs = options.Epochs }).Start(learningRate)
            : options.LearningRateSchedule?.Start(learningRate);

        Dictionary<string, Tensor>? bestWeights = null;
        double bestLoss = double.PositiveInfinity;
        int epochsWithoutImprovement = 0;
        long n = data.Count;
        int batches = (int)((n + options.BatchSize - 1) / options.BatchSize);
        int reportEvery = Math.Max(1, batches / 100);
        var total = Stopwatch.StartNew();
        double trainingSeconds = 0;
        long samplesSeen = 0;

        try
        {
            for (int epoch = 0; epoch < options.Epochs; epoch++)
            {
                SetLearningRate(optimizer, learningRate);
                model.train();
                var clock = Stopwatch.StartNew();
                using var lossSum = zeros(1, float64, device);
                using var correctSum = zeros(1, int64, device);
                using var order = options.Shuffle ? randperm(n, generator: generator) : arange(n);
                using var orderOnDevice = order.to(staged ? device : CPU);

                for (int b = 0; b < batches; b++)
                {
                    options.CancellationToken.ThrowIfCancellationRequested();
                    using var scope = NewDisposeScope();
                    long start = (long)b * options.BatchSize, end = Math.Min(n, start + options.BatchSize);
                    var (x, y) = data.Select(orderOnDevice.slice(0, start, end, 1));
                    if (!staged) { x = x.to(device); y = y?.to(device); }
                    if (options.TrainingInputTransform is { } transform) x = transform.Apply(x, deviceGenerator);

                    optimizer.zero_grad();
                    var (loss, correct) = objective.Step(model, x, y);
                    loss.backward();
                    optimizer.step();

                    lossSum.add_(loss.detach().to(float64) * (end - start));
                    if (correct is not null) correctSum.add_(correct.detach());
                    if (options.Progress is not null && (b % reportEvery == 0 || b == batches - 1))
                        options.Progress.Report(new TrainingProgress(epoch, options.Epochs, b + 1, batches, null));
                }

                double trainLoss = lossSum.item<double>() / n;
                double? trainAccuracy = objective.HasAccuracy ? (double)correctSum.item<long>() / n : null;
                clock.Stop();
                trainingSeconds += clock.Elapsed.TotalSeconds;
                samplesSeen += n;
                if (!double.IsFinite(trainLoss))
                    throw new InvalidOperationException($"Training diverged: the loss became {trainLoss} in epoch {epoch + 1}. Lower the learning rate or normalise the features.");

                (double Loss, double? Accuracy)? validated = validationOnDevice is null ? null : Evaluate(model, objective, validationOnDevice, options.ScoringBatchSize);
                var metrics = new EpochMetrics(epoch, trainLoss, trainAccuracy, validated?.Loss, validated?.Accuracy, learningRate,
                    clock.Elapsed, n / Math.Max(clock.Elapsed.TotalSeconds, 1e-9));
                history.Add(metrics);
                options.Progress?.Report(new TrainingProgress(epoch, options.Epochs, batches, batches, metrics));

                double monitored = validated?.Loss ?? trainLoss;
                if (monitored < bestLoss - (options.EarlyStopping?.MinDelta ?? 0))
                {
                    bestLoss = monitored;
                    history.BestEpoch = epoch;
                    epochsWithoutImprovement = 0;
                    if (options.EarlyStopping is { RestoreBestWeights: true }) bestWeights = Snapshot(model, bestWeights);
                }
                else if (options.EarlyStopping is { } stopping && ++epochsWithoutImprovement > stopping.Patience)
                {
                    history.StoppedEarly = epoch < options.Epochs - 1;
                    break;
                }
                if (schedule is not null) learningRate = schedule.Next(epoch + 1, monitored);
            }

            if (bestWeights is not null) Restore(model, bestWeights);
            else history.BestEpoch = history.Epochs.Count - 1;
        }
        finally
        {
            if (bestWeights is not null) foreach (var t in bestWeights.Values) t.Dispose();
            generator.Dispose();
            if (!ReferenceEquals(generator, deviceGenerator)) deviceGenerator.Dispose();
        }
        model.eval();
        history.SamplesPerSecond = samplesSeen / Math.Max(trainingSeconds, 1e-9);
        return history;
    }

    /// <summary>Mean loss (and accuracy, for classification) of a model on data, in eval mode without gradients.</summary>
    public static (double Loss, double? Accuracy) Evaluate(nn.Module model, TrainingObjective objective, TensorData data, int batchSize)
    {
        model.eval();
        using var noGrad = no_grad();
        double lossSum = 0;
        long correct = 0;
        long n = data.Count;
        for (long start = 0; start < n; start += batchSize)
        {
            using var scope = NewDisposeScope();
            long end = Math.Min(n, start + batchSize);
            var x = data.Inputs.slice(0, start, end, 1);
            var y = data.Targets?.slice(0, start, end, 1);
            var (loss, right) = objective.Step(model, x, y);
            lossSum += loss.to(float64).item<double>() * (end - start);
            if (right is not null) correct += right.item<long>();
        }
        return (lossSum / n, objective.HasAccuracy ? (double)correct / n : null);
    }

    private static void SetLearningRate(optim.Optimizer optimizer, double rate)
    {
        foreach (var group in optimizer.ParamGroups) group.LearningRate = rate;
    }

    private static Dictionary<string, Tensor> Snapshot(nn.Module model, Dictionary<string, Tensor>? previous)
    {
        if (previous is not null) foreach (var t in previous.Values) t.Dispose();
        using var noGrad = no_grad();
        return model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
    }

    private static void Restore(nn.Module model, Dictionary<string, Tensor> weights)
    {
        using var noGrad = no_grad();
        foreach (var (name, tensor) in model.state_dict()) tensor.copy_(weights[name]);
    }
}
