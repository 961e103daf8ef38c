using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Reinforcement;
using MlNetDeep.Training;
using Xunit.Abstractions;

namespace MlNetDeep.Tests;

/// <summary>The deep Q-network: its replay buffer, its targets, Flippers through the shared loop, and its policy as a transformer.</summary>
public class DqnTests(ITestOutputHelper output)
{
    /// <summary>
    /// Two states in a row: from state 0 every action leads to state 1 with no reward; from state 1 action 0 wins 1 and
    /// action 1 wins 0, both ending the game. With discount 0.9: Q(1) = [1, 0], Q(0) = [0.9, 0.9].
    /// </summary>
    private sealed class Chain : IEnvironment, IStateFeatures
    {
        public int StateCount => 3;
        public int ActionCount => 2;
        public int FeatureCount => 2;
        public bool IsTerminal(int state) => state == 2;
        public int Reset(Random random) => 0;

        public StepResult Step(int state, int action, Random random) => state == 0
            ? new StepResult(1, 0, false)
            : new StepResult(2, action == 0 ? 1 : 0, true);

        public void Encode(int state, Span<float> features)
        {
            features.Clear();
            if (state < 2) features[state] = 1;
        }
    }

    private sealed class NoFeatures : IEnvironment
    {
        public int StateCount => 2;
        public int ActionCount => 2;
        public bool IsTerminal(int state) => state == 1;
        public int Reset(Random random) => 0;
        public StepResult Step(int state, int action, Random random) => new(1, 1, true);
    }

    [Fact]
    public void TheReplayBufferOverwritesTheOldestAndSamplesWholeTransitions()
    {
        var buffer = new ReplayBuffer(capacity: 3, featureCount: 2);
        for (int i = 0; i < 5; i++) buffer.Add([i, -i], action: i % 2, reward: i * 10, next: [i + 1, 0], done: i == 4);
        Assert.Equal(3, buffer.Count);
        Assert.Equal(5, buffer.Added);
        var (states, transitions) = buffer.Sample(200, new Random(1), TorchSharp.torch.CPU);
        using (states)
        using (transitions)
        {
            Assert.Equal([200L, 2], states.shape);
            Assert.Equal([200L, 5], transitions.shape);
            var s = states.data<float>().ToArray();
            var t = transitions.data<float>().ToArray();
            var seen = new HashSet<int>();
            for (int row = 0; row < 200; row++)
            {
                int i = (int)s[row * 2];
                seen.Add(i);
                Assert.Equal(-i, s[row * 2 + 1]);
                Assert.Equal(i % 2, t[row * 5]);
                Assert.Equal(i * 10, t[row * 5 + 1]);
                Assert.Equal(i == 4 ? 1 : 0, t[row * 5 + 2]);
                Assert.Equal(i + 1, t[row * 5 + 3]);
            }
            Assert.Equal([2, 3, 4], seen.Order()); // 0 and 1 were overwritten
        }
        Assert.Throws<InvalidOperationException>(() => new ReplayBuffer(4, 2).Sample(1, new Random(1), TorchSharp.torch.CPU));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ReplayBuffer(0, 2));
    }

    [Fact]
    public void TheTargetsBootstrapThroughTheDiscountAndStopAtTheEndOfAGame()
    {
        using var agent = new DqnAgent(new Chain(), new DqnOptions
        {
            Network = Networks.Networks.Mlp([16]), Discount = 0.9, WarmupSteps = 200, Epochs = 3, UpdatesPerEpoch = 500, BatchSize = 32,
            ExplorationSteps = 500, Epsilon = 1, MinEpsilon = 1, TargetUpdateInterval = 100, Optimizer = new Adam(0.01), Seed = 2,
        });
        var run = agent.Train();
        var q0 = agent.Values(0);
        var q1 = agent.Values(1);
        output.WriteLine($"Q(0) = [{q0[0]:F4}, {q0[1]:F4}], Q(1) = [{q1[0]:F4}, {q1[1]:F4}], loss {run.History.Epochs[^1].Values["loss"]:G3}");
        Assert.Equal(1.0, q1[0], 0.05);
        Assert.Equal(0.0, q1[1], 0.05);
        Assert.Equal(0.9, q0[0], 0.05);
        Assert.Equal(0.9, q0[1], 0.05);
        Assert.Equal(0, agent.Greedy(1));
        Assert.Equal(3, run.History.Epochs.Count);
        Assert.Equal(1500, run.Updates);
        Assert.Equal(1500, run.EnvironmentSteps - 200); // one move per update after the warm-up
        Assert.All(run.Episodes, e => Assert.Equal(2, e.Steps));
    }

    [Fact]
    public void ADeepQNetworkLearnsFlippersThroughTheSharedLoopAndIsReproducible()
    {
        DqnOptions Options(int epochs, IReadOnlyList<ITrainingCallback>? callbacks = null) => new()
        {
            Epochs = epochs, UpdatesPerEpoch = 1000, ExplorationSteps = 10_000, MinEpsilon = 0.1, Seed = 1, Callbacks = callbacks ?? [],
        };
        var judged = new List<FlippersEvaluation>();
        DqnAgent? current = null;
        using var agent = current = new DqnAgent(new Flippers(), Options(5, [new EpochCallback(_ => judged.Add(FlippersEvaluation.Of(current!)))]));
        var run = agent.Train();
        foreach (var (e, i) in judged.Select((e, i) => (e, i)))
            output.WriteLine($"epoch {i + 1}: loss {run.History.Epochs[i].Values["loss"]:G3}, mean Q {run.History.Epochs[i].Values["q"]:F3}, won {e.Won}/{e.Boards}, fewest moves {e.Minimal}");
        output.WriteLine($"{run.EnvironmentSteps} moves, {run.Episodes.Count} games, {run.StepsPerSecond:F0} moves/s");
        var final = FlippersEvaluation.Of(agent);
        Assert.Equal(506, final.Won);
        Assert.True(final.Minimal >= 0.9 * final.Boards, $"only {final.Minimal} of {final.Boards} boards in the fewest moves");
        Assert.True(judged[0].Minimal < final.Minimal, "the policy should improve with training");
        Assert.True(run.History.Epochs[^1].Values["loss"] < run.History.Epochs[0].Values["loss"]);

        using var again = new DqnAgent(new Flippers(), Options(1));
        using var same = new DqnAgent(new Flippers(), Options(1));
        again.Train();
        same.Train();
        for (int board = 0; board < Flippers.Boards; board += 37) Assert.Equal(again.Values(board), same.Values(board));
    }

    private sealed class BoardRow
    {
        [VectorType(9)]
        public float[] Board { get; set; } = new float[9];
    }

    private sealed class Move
    {
        public int Action { get; set; }
        public float[] QValues { get; set; } = [];
    }

    [Fact]
    public void ANetworkPolicyIsAnMlNetTransformerThatSavesItsNetwork()
    {
        using var agent = new DqnAgent(new Flippers(), new DqnOptions { Epochs = 1, UpdatesPerEpoch = 300, WarmupSteps = 200, Network = Networks.Networks.Mlp([32]) });
        agent.Train();
        using var policy = agent.ToFlippersPolicy();
        for (int board = 0; board < Flippers.Boards; board += 41)
        {
            Assert.Equal(agent.Values(board).Select(v => (float)v), policy.Values(board).Select(v => (float)v));
            Assert.Equal(agent.Greedy(board), policy.Action(board));
        }
        var ml = new MLContext(seed: 1);
        var boards = new[] { "110000000", "101000110", "000010000" };
        var data = ml.Data.LoadFromEnumerable(boards.Select(b => new BoardRow { Board = b.Select(c => c == '1' ? 1f : 0f).ToArray() }));
        var moves = ml.Data.CreateEnumerable<Move>(policy.Transform(data), reuseRowObject: false).ToList();
        Assert.Equal(boards.Select(b => policy.Action(Flippers.Parse(b))), moves.Select(m => m.Action));
        Assert.Equal(policy.Values(Flippers.Parse(boards[1])).Select(v => (float)v), moves[1].QValues);

        var path = TestData.TempFile();
        try
        {
            ml.Model.SaveDeep(policy, data.Schema, path);
            using var loaded = (TransformerChain<ITransformer>)ml.Model.LoadDeep(path, out _);
            var reloaded = Assert.IsType<FlippersNetworkPolicyTransformer>(loaded.Single());
            Assert.Equal(policy.Network, reloaded.Network);
            for (int board = 0; board < Flippers.Boards; board++) Assert.Equal(policy.Values(board), reloaded.Values(board));
            var engine = ml.Model.CreatePredictionEngine<BoardRow, Move>(reloaded);
            Assert.Equal(moves[0].Action, engine.Predict(new BoardRow { Board = [1, 1, 0, 0, 0, 0, 0, 0, 0] }).Action);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void BadSettingsAndEnvironmentsAreRefusedWithTheirCause()
    {
        var features = Assert.Throws<ArgumentException>(() => new DqnAgent(new NoFeatures()));
        Assert.Contains("IStateFeatures", features.Message);
        var softmax = Assert.Throws<ArgumentException>(() => new DqnAgent(new Flippers(), new DqnOptions
        {
            Network = new Networks.NetworkSpec([new Networks.Dense(16, Networks.ActivationKind.ReLU), new Networks.Dense(Networks.Dense.TaskOutputs, Networks.ActivationKind.Softmax)]),
        }));
        Assert.Contains("softmax", softmax.Message);
        Assert.Contains("Discount", Assert.Throws<ArgumentOutOfRangeException>(() => new DqnAgent(new Flippers(), new DqnOptions { Discount = 1.5 })).Message);
        Assert.Contains("MinEpsilon", Assert.Throws<ArgumentOutOfRangeException>(() => new DqnAgent(new Flippers(), new DqnOptions { Epsilon = 0.1, MinEpsilon = 0.5 })).Message);
        Assert.Contains("BatchSize", Assert.Throws<ArgumentOutOfRangeException>(() => new DqnAgent(new Flippers(), new DqnOptions { BatchSize = 0 })).Message);
        Assert.Contains("HuberDelta", Assert.Throws<ArgumentOutOfRangeException>(() => new DqnAgent(new Flippers(), new DqnOptions { HuberDelta = 0 })).Message);
        using var agent = new DqnAgent(new Flippers(), new DqnOptions { Epochs = 1, UpdatesPerEpoch = 10, WarmupSteps = 10 });
        Assert.Throws<ArgumentOutOfRangeException>(() => agent.Values(512));
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        using var stopped = new DqnAgent(new Flippers(), new DqnOptions { Epochs = 1, UpdatesPerEpoch = 10, WarmupSteps = 10, CancellationToken = cancelled.Token });
        Assert.ThrowsAny<OperationCanceledException>(() => stopped.Train());
        Assert.Throws<InvalidOperationException>(() => new DqnAgent(new CliffWalking()).ToFlippersPolicy());
    }
}
