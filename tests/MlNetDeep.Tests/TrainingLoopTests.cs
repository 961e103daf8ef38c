using MlNetDeep.Persistence;
using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

/// <summary>The loop/step split: named metrics, callbacks, early stopping on a named metric, a step with two optimizers.</summary>
public class TrainingLoopTests
{
    private static TensorData LinearData()
    {
        using var generator = new Generator(3);
        var x = randn([256, 4], generator: generator);
        var y = x.matmul(tensor(new float[] { 1.5f, -2f, 0.5f, 3f }).reshape(4, 1)).squeeze(1) + 0.7f;
        return new TensorData(x, y);
    }

    /// <summary>Two linear models, each with its own optimizer, stepping in turn; reports a_loss and b_loss.</summary>
    private sealed class TwoModelStep : TrainingStep
    {
        public readonly nn.Module<Tensor, Tensor> A = nn.Linear(4, 1), B = nn.Linear(4, 1);
        private readonly optim.Optimizer _a, _b;
        public TwoModelStep() { _a = optim.SGD(A.parameters(), 0.05); _b = optim.SGD(B.parameters(), 0.01); }
        public override IReadOnlyList<nn.Module> Modules => [A, B];
        public override IReadOnlyCollection<string> MetricNames => ["a_loss", "b_loss"];
        public override IReadOnlyCollection<string> EvaluationMetricNames => ["a_loss"];
        public override double LearningRate => 0.05;
        public override void ScaleLearningRates(double factor) { }
        public override IReadOnlyDictionary<string, Tensor> TrainBatch(Batch batch, StepContext context)
        {
            _a.zero_grad();
            var la = nn.functional.mse_loss(A.call(batch.Inputs).squeeze(1), batch.Targets!);
            la.backward();
            _a.step();
            _b.zero_grad();
            var lb = nn.functional.mse_loss(B.call(batch.Inputs).squeeze(1), batch.Targets!);
            lb.backward();
            _b.step();
            return new Dictionary<string, Tensor> { ["a_loss"] = la.detach(), ["b_loss"] = lb.detach() };
        }
        public override IReadOnlyDictionary<string, Tensor> EvaluateBatch(Batch batch) => new Dictionary<string, Tensor>
        {
            ["a_loss"] = nn.functional.mse_loss(A.call(batch.Inputs).squeeze(1), batch.Targets!),
        };
        public override void Dispose() { _a.Dispose(); _b.Dispose(); }
    }

    [Fact]
    public void TheHistoryCsvAndLogShowTheMetricsAStepReports()
    {
        using var data = LinearData();
        using var step = new TwoModelStep();
        var history = TrainingLoop.Run(step, data, null, new LoopSettings { Epochs = 5, BatchSize = 16 }, CPU, seed: 1);
        Assert.Equal(["a_loss", "b_loss"], history.MetricNames);
        Assert.True(history.Values("a_loss")[^1] < history.Values("a_loss")[0] * 0.5);
        Assert.True(double.IsNaN(history.Epochs[0].TrainLoss), "a step without 'loss' has no TrainLoss");
        var csv = history.ToCsv().Split(Environment.NewLine);
        Assert.StartsWith("epoch,a_loss,b_loss,learning_rate", csv[0]);
        Assert.Equal(6, csv.Count(l => l.Length > 0));
        Assert.Contains("b_loss", history.Epochs[0].Describe());
        var ex = Assert.Throws<KeyNotFoundException>(() => history.Epochs[0]["loss"]);
        Assert.Contains("a_loss", ex.Message);
    }

    [Fact]
    public void EachOptimizerMovesOnlyItsOwnModel()
    {
        using var data = LinearData();
        using var step = new TwoModelStep();
        // The faster optimizer (a) gets further in the same steps: the two did not share parameters or rates.
        TrainingLoop.Run(step, data, null, new LoopSettings { Epochs = 2, BatchSize = 64 }, CPU, seed: 1);
        using var noGrad = no_grad();
        var a = step.A.call(data.Inputs).squeeze(1);
        var b = step.B.call(data.Inputs).squeeze(1);
        Assert.True(nn.functional.mse_loss(a, data.Targets!).item<float>() < nn.functional.mse_loss(b, data.Targets!).item<float>());
    }

    [Fact]
    public void ACallbackSeesEveryEpochAndCanStopTheRun()
    {
        using var data = LinearData();
        using var step = new TwoModelStep();
        var seen = new List<int>();
        var settings = new LoopSettings
        {
            Epochs = 20, BatchSize = 32,
            Callbacks = [new EpochCallback(e => { seen.Add(e.Metrics.Epoch); if (e.Metrics["a_loss"] < 0.5) e.Stop("a_loss below 0.5"); })],
        };
        var history = TrainingLoop.Run(step, data, null, settings, CPU, seed: 1);
        Assert.True(history.StoppedEarly);
        Assert.Equal("a_loss below 0.5", history.StopReason);
        Assert.True(history.Epochs.Count < 20);
        Assert.Equal(Enumerable.Range(0, history.Epochs.Count), seen);
        Assert.True(history.Epochs[^1]["a_loss"] < 0.5);
    }

    [Fact]
    public void EarlyStoppingMonitorsANamedMetricAndRestoresThatEpochsWeights()
    {
        using var data = LinearData();
        var (train, validation) = Data.DataViewTensors.Split(data, 0.25, 1);
        using var _ = train;
        using var __ = validation;
        using var step = new TwoModelStep();
        var settings = new LoopSettings { Epochs = 40, BatchSize = 8, EarlyStopping = new EarlyStopping(Patience: 1, MinDelta: 1e-3), Monitor = new MonitoredMetric("val_a_loss") };
        var history = TrainingLoop.Run(step, train, validation, settings, CPU, seed: 1);
        Assert.True(history.StoppedEarly, "val_a_loss reaches its floor well before 40 epochs");
        Assert.Contains("val_a_loss", history.StopReason);
        var kept = history.Epochs[history.BestEpoch]["val_a_loss"];
        Close.Equal(kept, TrainingLoop.Evaluate(step, validation, 64)["a_loss"]); // batches of 8 in the loop, 64 here
    }

    [Fact]
    public void TheLoopRefusesBadSettingsBeforeTraining()
    {
        using var data = LinearData();
        using var step = new TwoModelStep();
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => TrainingLoop.Run(step, data, null, new LoopSettings { BatchSize = 0 }, CPU, 1));
        Assert.Equal("BatchSize", ex.ParamName);
    }

    [Fact]
    public void EveryBuiltInFamilyHasASavedModelFormatFoundWithoutACentralList()
    {
        foreach (var kind in new[] { "MulticlassNeuralNetwork", "Autoencoder", "VariationalAutoencoder", "AutoencoderDecoder", "NeuralNetworkRegression" })
            Assert.Equal(kind, SavedModelFormats.Find<NetworkModelFormat>(kind).Kind);
        Assert.Equal("PolynomialFeatures", SavedModelFormats.Find<TransformModelFormat>("PolynomialFeatures").Kind);
        var ex = Assert.Throws<InvalidDataException>(() => SavedModelFormats.Find<NetworkModelFormat>("NoSuchFamily"));
        Assert.Contains("NoSuchFamily", ex.Message);
        Assert.Contains("Autoencoder", ex.Message);
    }

    [Fact]
    public void ARecordFromANewerVersionIsRefusedByName()
    {
        var format = SavedModelFormats.Find<NetworkModelFormat>("Autoencoder");
        var ex = Assert.Throws<InvalidDataException>(() => SavedModelFormats.CheckVersion(format, format.Version + 1));
        Assert.Contains("newer MlNetDeep", ex.Message);
        Assert.Contains("Autoencoder", ex.Message);
    }
}
