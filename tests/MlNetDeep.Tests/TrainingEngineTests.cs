using Microsoft.ML;
using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

public class TrainingEngineTests
{
    public static TheoryData<string> OptimizerNames => new() { "sgd", "momentum", "nesterov", "adam", "rmsprop", "adadelta" };

    private static OptimizerSpec Optimizer(string name) => name switch
    {
        "sgd" => new Sgd(0.05),
        "momentum" => new Sgd(0.02, Momentum: 0.9),
        "nesterov" => new Sgd(0.02, Momentum: 0.9, Nesterov: true),
        "adam" => new Adam(0.01),
        "rmsprop" => new RmsProp(0.005),
        "adadelta" => new Adadelta(1.0),
        _ => throw new ArgumentException(name),
    };

    private sealed class Options : DeepTrainerOptions;

    private static (TensorData Data, nn.Module<Tensor, Tensor> Model) LinearProblem(int seed = 3)
    {
        manual_seed(seed);
        var x = randn(256, 4);
        var w = tensor(new float[] { 1.5f, -2f, 0.5f, 3f }).reshape(4, 1);
        var y = x.matmul(w).squeeze(1) + 0.7f;
        return (new TensorData(x, y), nn.Linear(4, 1));
    }

    [Theory]
    [MemberData(nameof(OptimizerNames))]
    public void EachOptimizerReducesTheLoss(string name)
    {
        var (data, model) = LinearProblem();
        using var _ = data;
        using var __ = model;
        var options = new Options { Epochs = 15, BatchSize = 16, Optimizer = Optimizer(name) };
        var history = TrainingEngine.Fit(model, new MeanSquaredErrorObjective(), data, null, options, CPU, seed: 1);
        Assert.Equal(15, history.Epochs.Count);
        Assert.True(history.Epochs[^1].TrainLoss < history.Epochs[0].TrainLoss * 0.5,
            $"{name}: loss {history.Epochs[0].TrainLoss:F4} -> {history.Epochs[^1].TrainLoss:F4}");
    }

    [Fact]
    public void SchedulesGiveTheExpectedRates()
    {
        var run = new ScheduleRun(Epochs: 20, new MonitoredMetric("loss"));
        var step = new StepDecay(2, 0.5).Start(1.0, run);
        Assert.Equal(new[] { 1.0, 0.5, 0.5, 0.25 }, new[] { 1, 2, 3, 4 }.Select(e => step.Next(e, 0)));
        var exp = new ExponentialDecay(0.9).Start(1.0, run);
        Assert.Equal(0.81, exp.Next(2, 0), 6);
        var cosine = new CosineAnnealing(10, 0.0).Start(1.0, run);
        Assert.Equal(0.5, cosine.Next(5, 0), 6);
        Assert.Equal(0.0, cosine.Next(10, 0), 6);
        var wholeRun = new CosineAnnealing().Start(1.0, run); // Epochs 0: the run's 20
        Assert.Equal(0.5, wholeRun.Next(10, 0), 6);
        Assert.Equal(0.0, wholeRun.Next(20, 0), 6);
        var plateau = new ReduceOnPlateau(0.5, Patience: 1).Start(1.0, run);
        Assert.Equal(1.0, plateau.Next(1, 1.0));
        Assert.Equal(1.0, plateau.Next(2, 1.0));
        Assert.Equal(0.5, plateau.Next(3, 1.0));
    }

    [Fact]
    public void HistoryRecordsTheScheduledLearningRate()
    {
        var (data, model) = LinearProblem();
        using var _ = data;
        using var __ = model;
        var options = new Options { Epochs = 4, BatchSize = 64, Optimizer = new Sgd(0.1), LearningRateSchedule = new StepDecay(1, 0.5) };
        var history = TrainingEngine.Fit(model, new MeanSquaredErrorObjective(), data, null, options, CPU, seed: 1);
        Assert.Equal(new[] { 0.1, 0.05, 0.025, 0.0125 }, history.Epochs.Select(e => Math.Round(e.LearningRate, 6)));
        Assert.Contains("learning_rate", history.ToCsv());
    }

    [Fact]
    public void EarlyStoppingStopsAndRestoresTheBestWeights()
    {
        // The targets are exactly linear: the loss soon stops improving by MinDelta, so training stops early.
        var (data, model) = LinearProblem();
        using var _ = data;
        using var __ = model;
        var (train, validation) = Data.DataViewTensors.Split(data, 0.25, 1);
        var options = new Options { Epochs = 30, BatchSize = 8, Optimizer = new Sgd(0.01), EarlyStopping = new EarlyStopping(Patience: 2, MinDelta: 1e-3) };
        var history = TrainingEngine.Fit(model, new MeanSquaredErrorObjective(), train, validation, options, CPU, seed: 1);
        Assert.True(history.StoppedEarly, "the loss plateaus near zero, so training stops before 30 epochs");
        var best = history.Epochs[history.BestEpoch].ValidationLoss!.Value;
        var (final, _) = TrainingEngine.Evaluate(model, new MeanSquaredErrorObjective(), validation, 64);
        Close.Equal(best, final);
        Assert.True(history.Epochs.Count < 30);
    }

    [Fact]
    public void CancellationStopsTraining()
    {
        var (data, model) = LinearProblem();
        using var _ = data;
        using var __ = model;
        using var cts = new CancellationTokenSource();
        var options = new Options
        {
            Epochs = 100, BatchSize = 4, CancellationToken = cts.Token,
            Progress = new SyncProgress(p => { if (p.Epoch == 1) cts.Cancel(); }),
        };
        Assert.ThrowsAny<OperationCanceledException>(() => TrainingEngine.Fit(model, new MeanSquaredErrorObjective(), data, null, options, CPU, 1));
    }

    [Fact]
    public void ProgressCoversBatchesAndEpochs()
    {
        var (data, model) = LinearProblem();
        using var _ = data;
        using var __ = model;
        var reports = new List<TrainingProgress>();
        var options = new Options { Epochs = 2, BatchSize = 32, Progress = new SyncProgress(reports.Add) };
        TrainingEngine.Fit(model, new MeanSquaredErrorObjective(), data, null, options, CPU, 1);
        Assert.Equal(2, reports.Count(r => r.Completed is not null));
        Assert.Contains(reports, r => r.Completed is null && r.Batch == 8 && r.Batches == 8);
        Assert.Equal(1.0, reports[^1].Fraction, 6);
    }

    [Fact]
    public void DivergenceIsReported()
    {
        var (data, model) = LinearProblem();
        using var _ = data;
        using var __ = model;
        var options = new Options { Epochs = 20, BatchSize = 256, Optimizer = new Sgd(100) };
        var ex = Assert.Throws<InvalidOperationException>(() => TrainingEngine.Fit(model, new MeanSquaredErrorObjective(), data, null, options, CPU, 1));
        Assert.Contains("diverged", ex.Message);
    }

    internal sealed class SyncProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
