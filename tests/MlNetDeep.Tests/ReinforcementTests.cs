using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Reinforcement;
using Xunit.Abstractions;

namespace MlNetDeep.Tests;

/// <summary>Environments (Flippers and its solver, cliff walking) and the tabular agents (Q-learning, SARSA).</summary>
public class ReinforcementTests(ITestOutputHelper output)
{
    [Fact]
    public void TheSolverGivesEveryBoardItsFewestMoves()
    {
        Assert.Equal(6, Flippers.GoalBoards.Count);
        Assert.All(Flippers.GoalBoards, g => Assert.Equal(0, Flippers.MinimumMoves(g)));
        // A flip changes one tile, so the fewest moves are the fewest differing tiles from a goal.
        for (int board = 0; board < Flippers.Boards; board++)
            Assert.Equal(Flippers.GoalBoards.Min(g => System.Numerics.BitOperations.PopCount((uint)(board ^ g))), Flippers.MinimumMoves(board));
        Assert.Equal(3, Flippers.MinimumMoves(Flippers.Parse("000000000")));
        Assert.Equal(1, Flippers.MinimumMoves(Flippers.Parse("110000000")));
        Assert.Equal(3, Flippers.MinimumMoves(Flippers.Parse("101000110")));
        Assert.Equal(6, Enumerable.Range(0, Flippers.Boards).Max(Flippers.MinimumMoves));
    }

    [Fact]
    public void BoardsAndMovesAreCheckedWithClearErrors()
    {
        Assert.Equal("101000110", Flippers.Format(Flippers.Parse("101000110")));
        Assert.Contains("nine characters", Assert.Throws<FormatException>(() => Flippers.Parse("10100011")).Message);
        Assert.Throws<FormatException>(() => Flippers.Parse("10100011x"));
        var game = new Flippers();
        var random = new Random(1);
        Assert.Throws<ArgumentOutOfRangeException>(() => game.Step(Flippers.Parse("000000000"), 9, random));
        var over = Assert.Throws<InvalidOperationException>(() => game.Step(Flippers.GoalBoards[0], 0, random));
        Assert.Contains("already won", over.Message);
        var win = game.Step(Flippers.Parse("110000000"), 2, random);
        Assert.Equal((Flippers.Parse("111000000"), 1.0, true), (win.State, win.Reward, win.Done));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Flippers(slipProbability: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TabularAgent(512, 9, new TabularAgentOptions { Epsilon = 1.5 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TabularAgent(512, 9, new TabularAgentOptions { Discount = -0.1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TabularAgent(512, 9).Train(game, 0));
    }

    [Fact]
    public void AQUpdateMovesTheValueTowardsItsTargetByTheLearningRate()
    {
        var agent = new TabularAgent(2, 2, new TabularAgentOptions { LearningRate = 0.5 });
        Assert.Equal(0.5, agent.Update(0, 1, 1.0), 12);
        Assert.Equal(0.75, agent.Update(0, 1, 1.0), 12);
        Assert.Equal(-0.25, agent.Update(1, 0, -0.5), 12);
        Assert.Equal(1, agent.Greedy(0));
        Assert.Equal(1, agent.Greedy(1)); // 0 for action 1 beats -0.25 for action 0
    }

    [Fact]
    public void QLearningSolvesFlippersInTheFewestMovesAndIsReproducible()
    {
        // A deterministic game: a learning rate of 1 takes each target whole.
        var options = new TabularAgentOptions { Seed = 3, LearningRate = 1.0, EpsilonDecay = 0.9995, MinEpsilon = 0.1 };
        var agent = new TabularAgent(Flippers.Boards, Flippers.Tiles, options);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        agent.Train(new Flippers(), 3000);
        var result = FlippersEvaluation.Of(agent);
        output.WriteLine($"Q-learning, 3000 games, {clock.ElapsedMilliseconds} ms: {result}");
        Assert.Equal(506, result.Boards);
        Assert.Equal(506, result.Won);
        Assert.True(result.Minimal >= 0.99 * result.Boards, $"{result.Minimal} of {result.Boards} in the fewest moves");

        var again = new TabularAgent(Flippers.Boards, Flippers.Tiles, options);
        again.Train(new Flippers(), 3000);
        Assert.Equal(agent.Values(Flippers.Parse("101000110")), again.Values(Flippers.Parse("101000110")));
        var other = new TabularAgent(Flippers.Boards, Flippers.Tiles, options with { Seed = 4 });
        other.Train(new Flippers(), 3000);
        Assert.NotEqual(agent.Values(Flippers.Parse("101000110")), other.Values(Flippers.Parse("101000110")));
    }

    [Fact]
    public void OnTheCliffSarsaWalksTheSafePathAndQLearningTheEdge()
    {
        var cliff = new CliffWalking();
        TabularAgent Trained(TabularAlgorithm algorithm)
        {
            var agent = new TabularAgent(cliff.StateCount, cliff.ActionCount, new TabularAgentOptions
            {
                Algorithm = algorithm, LearningRate = 0.5, Discount = 1.0, Epsilon = 0.1, EpsilonDecay = 1.0, MinEpsilon = 0.1, MaxSteps = 500, Seed = 1,
            });
            var episodes = agent.Train(cliff, 500);
            output.WriteLine($"{algorithm}: mean return of the last 100 episodes {episodes.TakeLast(100).Average(e => e.Return):F1}");
            return agent;
        }
        var qPath = Trained(TabularAlgorithm.QLearning).Play(cliff, CliffWalking.Start);
        var sarsaPath = Trained(TabularAlgorithm.Sarsa).Play(cliff, CliffWalking.Start);
        output.WriteLine($"Q-learning path {qPath.Count - 1} moves, SARSA {sarsaPath.Count - 1}");
        Assert.Equal(CliffWalking.Goal, qPath[^1]);
        Assert.Equal(CliffWalking.Goal, sarsaPath[^1]);
        Assert.Equal(13, qPath.Count - 1); // up, 11 right along the edge, down
        Assert.True(sarsaPath.Count - 1 > 13, $"SARSA took {sarsaPath.Count - 1} moves");
        // SARSA keeps further from the cliff: its lowest row used between start and goal is higher up.
        int Row(int s) => s / CliffWalking.Columns;
        Assert.True(sarsaPath.Skip(1).SkipLast(1).Min(Row) < qPath.Skip(1).SkipLast(1).Min(Row));
    }

    private sealed class BoardRow
    {
        [VectorType(9)]
        public float[] Board { get; set; } = [];
    }

    private sealed class Move
    {
        public int Action { get; set; }
        public float[] QValues { get; set; } = [];
    }

    private static float[] Tiles(string board) => board.Select(c => c == '1' ? 1f : 0f).ToArray();

    [Fact]
    public void ATrainedPolicyIsAnMlNetTransformerThatSavesAndLoads()
    {
        var agent = new TabularAgent(Flippers.Boards, Flippers.Tiles, new TabularAgentOptions { Seed = 3, LearningRate = 1.0 });
        agent.Train(new Flippers(), 3000);
        var policy = agent.ToFlippersPolicy();
        var ml = new MLContext(seed: 1);
        string[] boards = ["110000000", "101000110", "000000000"];
        var data = ml.Data.LoadFromEnumerable(boards.Select(b => new BoardRow { Board = Tiles(b) }));
        var moves = ml.Data.CreateEnumerable<Move>(policy.Transform(data), reuseRowObject: false).ToList();
        Assert.Equal(boards.Select(b => agent.Greedy(Flippers.Parse(b))), moves.Select(m => m.Action));
        Assert.Equal(2, moves[0].Action); // 110 -> 111 wins at once
        Assert.Equal(agent.Values(Flippers.Parse("101000110")).Select(v => (float)v), moves[1].QValues);

        var engine = ml.Model.CreatePredictionEngine<BoardRow, Move>(policy);
        Assert.Equal(2, engine.Predict(new BoardRow { Board = Tiles("110000000") }).Action);
        var bad = Assert.Throws<InvalidDataException>(() => engine.Predict(new BoardRow { Board = [0, 0, 2, 0, 0, 0, 0, 0, 0] }));
        Assert.Contains("tile 2", bad.Message);

        var path = TestData.TempFile();
        try
        {
            ml.Model.SaveDeep(policy, data.Schema, path);
            using var loaded = (TransformerChain<ITransformer>)ml.Model.LoadDeep(path, out _);
            var reloaded = Assert.IsType<FlippersPolicyTransformer>(loaded.Single());
            for (int board = 0; board < Flippers.Boards; board++) Assert.Equal(policy.Values(board), reloaded.Values(board));
        }
        finally
        {
            File.Delete(path);
        }
        var wrongWidth = ml.Data.LoadFromEnumerable([new { Board = 1f }]);
        Assert.ThrowsAny<ArgumentException>(() => policy.Transform(wrongWidth));
    }
}
