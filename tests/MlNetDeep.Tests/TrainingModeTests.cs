using MlNetDeep.Networks;
using MlNetDeep.Reinforcement;
using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

/// <summary>Modules train in train mode with gradients; epoch callbacks and an agent's moves see them in eval mode without gradients.</summary>
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

    /// <summary>An identity layer that records, for every forward pass, its rows, whether it was in train mode and whether gradients were on.</summary>
    private sealed class ModeProbe() : nn.Module<Tensor, Tensor>("ModeProbe")
    {
        public static readonly List<(long Rows, bool Training, bool Gradients)> Calls = [];

        public override Tensor forward(Tensor input)
        {
            lock (Calls) Calls.Add((input.shape[0], training, is_grad_enabled()));
            return input.alias();
        }
    }

    private const string Probe = "training-mode-tests-probe";

    static TrainingModeTests() => CustomLayers.Register(Probe, (shape, settings) => new ModeProbe());

    /// <summary>Two states, two actions; every move ends the game, action 0 winning 1.</summary>
    private sealed class OneMove : IEnvironment, IStateFeatures
    {
        public int StateCount => 2;
        public int ActionCount => 2;
        public int FeatureCount => 2;
        public bool IsTerminal(int state) => state == 1;
        public int Reset(Random random) => 0;
        public StepResult Step(int state, int action, Random random) => new(1, action == 0 ? 1 : 0, true);

        public void Encode(int state, Span<float> features)
        {
            features.Clear();
            features[state] = 1;
        }
    }

    [Fact]
    public void ADqnChoosesItsActionsInEvalModeWithoutGradients()
    {
        // Greedy moves (epsilon 0) ask the network about one state: in train mode BatchNorm would normalise (and learn
        // from) a batch of one state, and Dropout would make the greedy move random.
        var network = new NetworkSpec([new Dense(8), new Custom(Probe), new Activation(ActivationKind.ReLU), new Dense(Dense.TaskOutputs)]) { Name = "probed-q" };
        using var agent = new DqnAgent(new OneMove(), new DqnOptions
        {
            Network = network, Epsilon = 0, MinEpsilon = 0, WarmupSteps = 16, BatchSize = 8, Epochs = 2, UpdatesPerEpoch = 20, Seed = 3,
        });
        lock (ModeProbe.Calls) ModeProbe.Calls.Clear();
        var run = agent.Train();
        Assert.Equal(40, run.Updates);
        List<(long Rows, bool Training, bool Gradients)> calls;
        lock (ModeProbe.Calls) calls = [.. ModeProbe.Calls];
        var moves = calls.Where(c => c.Rows == 1).ToList();
        Assert.Equal(16 + 40, moves.Count); // the warm-up's moves, then one greedy move per update
        Assert.All(moves, m => Assert.Equal((false, false), (m.Training, m.Gradients)));
        Assert.Contains(calls, c => c.Rows == 8 && c.Training && c.Gradients); // the updates themselves train
        Assert.False(agent.Module.training);
    }
}
