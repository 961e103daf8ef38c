using Microsoft.ML;
using MlNetDeep.Training;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

/// <summary>
/// One monitored metric, a name and a direction: checked against the step's metrics before the first epoch, and
/// followed alike by early stopping, the schedule and the history's best epoch.
/// </summary>
public class TrainingMonitorTests
{
    private static TrainingHistory Run(ScriptedMetricsStep step, LoopSettings settings, int rows = 8)
    {
        Native.TorchRuntime.EnsureLoaded();
        using var data = ScriptedMetricsStep.Rows(rows);
        return TrainingLoop.Run(step, data, null, settings, CPU, seed: 1);
    }

    [Fact]
    public void ReduceOnPlateauFollowsTheDirectionOfTheMonitoredMetric()
    {
        IReadOnlyList<double> Rates(double[] accuracy)
        {
            using var step = new ScriptedMetricsStep(new() { ["loss"] = [1, 1, 1, 1, 1], ["accuracy"] = accuracy });
            var settings = new LoopSettings
            {
                Epochs = 5, BatchSize = 8, LearningRateSchedule = new ReduceOnPlateau(Factor: 0.5, Patience: 0),
                Monitor = new MonitoredMetric("accuracy", Maximize: true),
            };
            return Run(step, settings).Epochs.Select(e => Math.Round(e.LearningRate, 10)).ToList();
        }
        // Accuracy that rises every epoch is improving: the rate stays; accuracy that falls after the first epoch is not:
        // the rate halves after each epoch from the second on.
        Assert.Equal([0.1, 0.1, 0.1, 0.1, 0.1], Rates([0.5, 0.6, 0.7, 0.8, 0.9]));
        Assert.Equal([0.1, 0.1, 0.05, 0.025, 0.0125], Rates([0.9, 0.8, 0.7, 0.6, 0.5]));
    }

    [Fact]
    public void EarlyStoppingTheScheduleAndTheBestEpochFollowOneMonitor()
    {
        // The loss falls every epoch while the accuracy peaks in epoch 2: everything follows the accuracy.
        using var step = new ScriptedMetricsStep(new() { ["loss"] = [4, 3, 2, 1, 0.5], ["accuracy"] = [0.5, 0.9, 0.7, 0.6, 0.95] });
        var settings = new LoopSettings
        {
            Epochs = 5, BatchSize = 8, Monitor = new MonitoredMetric("accuracy", Maximize: true),
            EarlyStopping = new EarlyStopping(Patience: 2), LearningRateSchedule = new ReduceOnPlateau(Factor: 0.5, Patience: 0),
        };
        var history = Run(step, settings);
        Assert.Equal(4, history.Epochs.Count);
        Assert.Equal(1, history.BestEpoch);
        Assert.Equal(1, history.WeightsEpoch);
        Assert.Equal("early stopping: accuracy did not improve for 2 epochs after its best, 0.9 in epoch 2", history.StopReason);
        Assert.Equal([0.1, 0.1, 0.1, 0.05], history.Epochs.Select(e => Math.Round(e.LearningRate, 10)));
    }

    [Fact]
    public void AScheduleOnAMetricTheStepDoesNotReportIsRefusedBeforeTheFirstEpoch()
    {
        // A GAN's metrics: no 'loss' for ReduceOnPlateau to watch by default.
        using var step = new ScriptedMetricsStep(new() { ["d_loss"] = [1], ["g_loss"] = [2] });
        var settings = new LoopSettings { Epochs = 4, BatchSize = 8, LearningRateSchedule = new ReduceOnPlateau(Patience: 0) };
        var ex = Assert.Throws<ArgumentException>(() => Run(step, settings));
        Assert.Equal("ReduceOnPlateau monitors 'loss' (the default), which this training does not report; it reports d_loss, g_loss. " +
            "Name one of them as the monitored metric (Monitor). (Parameter 'Monitor')", ex.Message);
        Assert.Equal(0, step.TrainedBatches);

        // A schedule that does not follow the monitor needs no such metric.
        using var decaying = new ScriptedMetricsStep(new() { ["d_loss"] = [1], ["g_loss"] = [2] });
        Assert.Equal(2, Run(decaying, new LoopSettings { Epochs = 2, BatchSize = 8, LearningRateSchedule = new ExponentialDecay(0.5) }).Epochs.Count);
    }

    [Fact]
    public void EarlyStoppingOnAMetricTheStepDoesNotReportIsRefusedBeforeTheFirstEpoch()
    {
        using var step = new ScriptedMetricsStep(new() { ["a_loss"] = [1] });
        var settings = new LoopSettings
        {
            Epochs = 3, BatchSize = 4, EarlyStopping = new EarlyStopping(), Monitor = new MonitoredMetric("accuracy", Maximize: true),
        };
        var ex = Assert.Throws<ArgumentException>(() => Run(step, settings));
        Assert.StartsWith("EarlyStopping monitors 'accuracy', which this training does not report; it reports a_loss.", ex.Message);
        Assert.Equal(0, step.TrainedBatches);
    }

    [Fact]
    public void ANamedMonitorIsCheckedEvenWhenNothingFollowsIt()
    {
        using var step = new ScriptedMetricsStep(new() { ["loss"] = [1], ["accuracy"] = [0.5] });
        var ex = Assert.Throws<ArgumentException>(() => Run(step, new LoopSettings { Epochs = 2, BatchSize = 8, Monitor = new MonitoredMetric("acuracy", true) }));
        Assert.StartsWith("The training monitors 'acuracy', which this training does not report; it reports loss, accuracy.", ex.Message);
        Assert.Equal(0, step.TrainedBatches);

        // Named right, it chooses the best epoch on its own.
        using var named = new ScriptedMetricsStep(new() { ["loss"] = [3, 2, 1], ["accuracy"] = [0.2, 0.8, 0.4] });
        Assert.Equal(1, Run(named, new LoopSettings { Epochs = 3, BatchSize = 8, Monitor = new MonitoredMetric("accuracy", true) }).BestEpoch);
    }

    [Fact]
    public void AValidationMetricWithoutValidationDataIsRefusedBeforeTheFirstEpoch()
    {
        using var step = new ScriptedMetricsStep(new() { ["loss"] = [1] });
        var settings = new LoopSettings { Epochs = 2, BatchSize = 8, EarlyStopping = new EarlyStopping(), Monitor = new MonitoredMetric("val_loss") };
        var ex = Assert.Throws<ArgumentException>(() => Run(step, settings));
        Assert.Contains("'val_loss' is measured on validation data, which this training has none of: give validation data or monitor 'loss'.", ex.Message);
        Assert.Equal(0, step.TrainedBatches);
    }

    [Fact]
    public void AStepThatDeclaresAMetricItDoesNotReportFailsAtTheEndOfTheFirstEpoch()
    {
        using var step = new ScriptedMetricsStep(new() { ["g_loss"] = [1] }, declared: ["loss", "g_loss"]);
        var ex = Assert.Throws<InvalidOperationException>(() => Run(step, new LoopSettings { Epochs = 3, BatchSize = 4, EarlyStopping = new EarlyStopping() }));
        Assert.Equal("ScriptedMetricsStep lists 'loss' among its metrics but did not report it in epoch 1; it reported g_loss.", ex.Message);
        Assert.Equal(2, step.TrainedBatches);
    }

    [Fact]
    public void AGanWithReduceOnPlateauNamesTheMetricItWatches()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFamilies.Data(ml);
        var options = TinyFamilies.Gan();
        options.Epochs = 3;
        options.LearningRateSchedule = new ReduceOnPlateau(Factor: 0.5, Patience: 0);
        var refused = Assert.Throws<ArgumentException>(() => ml.Transforms.GenerativeAdversarialNetwork(options).Fit(data));
        Assert.Contains("it reports d_loss, g_loss, d_real_acc, d_fake_acc", refused.Message);

        options.Monitor = new MonitoredMetric("d_real_acc", Maximize: true);
        using var generator = ml.Transforms.GenerativeAdversarialNetwork(options).Fit(data);
        var history = generator.History!;
        Assert.Equal(3, history.Epochs.Count);
        // The rate is cut after exactly the epochs whose d_real_acc did not rise.
        var accuracy = history.Values("d_real_acc");
        double rate = options.Optimizer.LearningRate, best = double.NegativeInfinity;
        for (int epoch = 0; epoch < 3; epoch++)
        {
            Close.Equal(rate, history.Epochs[epoch].LearningRate);
            if (accuracy[epoch] > best + 1e-4) best = accuracy[epoch];
            else rate *= 0.5;
        }
    }
}
