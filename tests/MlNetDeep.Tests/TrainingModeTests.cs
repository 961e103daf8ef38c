using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

/// <summary>Modules train in train mode with gradients; epoch callbacks see them in eval mode without gradients.</summary>
public class TrainingModeTests
{
    [Fact]
    public void EpochCallbacksSeeTheModulesInEvalModeWithoutGradientsAndTrainingResumesInTrainMode()
    {
        Native.TorchRuntime.EnsureLoaded();
        using var data = ScriptedMetricsStep.Rows(8);
        using var step = new ScriptedMetricsStep(new() { ["loss"] = [3, 2, 1] });
        var seen = new List<(bool Training, bool Gradients)>();
        var settings = new LoopSettings
        {
            Epochs = 3, BatchSize = 4,
            Callbacks = [new EpochCallback(e => seen.Add((e.Step.Modules.Any(m => m.training), is_grad_enabled())))],
        };
        TrainingLoop.Run(step, data, null, settings, CPU, seed: 1); // no validation data, whose pass would switch modes
        Assert.Equal([(false, false), (false, false), (false, false)], seen);
        Assert.Equal(6, step.ModesWhileTraining.Count);
        Assert.All(step.ModesWhileTraining, mode => Assert.Equal((true, true), mode));
        Assert.True(is_grad_enabled());
    }

    [Fact]
    public void ACallbackThatRunsTheModelLeavesItsBatchNormStatisticsAlone()
    {
        Native.TorchRuntime.EnsureLoaded();
        using var data = ScriptedMetricsStep.Rows(8);
        using var step = new ScriptedMetricsStep(new() { ["loss"] = [1, 1] });
        var norm = step.Model.children().Last();
        float[] RunningMean() => norm.state_dict()["running_mean"].data<float>().ToArray();
        var changes = new List<(float[] Before, float[] After)>();
        var settings = new LoopSettings
        {
            Epochs = 2, BatchSize = 8,
            Callbacks = [new EpochCallback(e =>
            {
                var before = RunningMean();
                using var x = randn(16, 1) * 10 + 100;
                step.Model.call(x).Dispose(); // e.g. drawing samples for a grid
                changes.Add((before, RunningMean()));
            })],
        };
        TrainingLoop.Run(step, data, null, settings, CPU, seed: 1);
        Assert.Equal(2, changes.Count);
        Assert.All(changes, c => Assert.Equal(c.Before, c.After));
    }
}
