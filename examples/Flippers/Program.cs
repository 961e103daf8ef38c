// The course's Flippers: Q-learning learns to win every board, in the fewest moves on almost all of them, judged
// against the breadth-first solver; then the greedy policy becomes an ML.NET transformer (boards in, Action and
// QValues out) that a PredictionEngine queries and SaveDeep/LoadDeep keep. Then a deep Q-network learns the same
// game on the shared training loop, and its policy (a network) is judged, queried and saved the same way.
// Run: dotnet run --project examples/Flippers -c Release [-- <games> <board> <dqn epochs>]
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep;
using MlNetDeep.Reinforcement;

int games = args.Length > 0 ? int.Parse(args[0]) : 3000;
string shown = args.Length > 1 ? args[1] : "101000110";

var agent = new TabularAgent(Flippers.Boards, Flippers.Tiles, new TabularAgentOptions
{
    Algorithm = TabularAlgorithm.QLearning, LearningRate = 1.0, Discount = 0.9, Epsilon = 1.0, EpsilonDecay = 0.9995, MinEpsilon = 0.1, Seed = 1,
});
var episodes = agent.Train(new Flippers(), games);
var judged = FlippersEvaluation.Of(agent);
Console.WriteLine($"{games} games ({episodes.Sum(e => e.Steps)} moves): won {judged.Won} of {judged.Boards} boards, " +
                  $"{judged.Minimal} in the solver's fewest moves; mean {judged.MeanMoves:F3} moves against the solver's {judged.MeanMinimumMoves:F3}");

int start = Flippers.Parse(shown);
var path = agent.Play(new Flippers(), start);
Console.WriteLine($"From {shown} (solver: {Flippers.MinimumMoves(start)} moves): {string.Join(" -> ", path.Select(Flippers.Format))}");
Console.WriteLine($"Move values: {string.Join(", ", agent.Values(start).Select((v, tile) => $"flip {tile} {v:F3}"))}");

var ml = new MLContext(seed: 1);
var policy = agent.ToFlippersPolicy();
var engine = ml.Model.CreatePredictionEngine<BoardRow, Move>(policy);
var move = engine.Predict(new BoardRow { Board = shown.Select(c => c == '1' ? 1f : 0f).ToArray() });
Console.WriteLine($"PredictionEngine on {shown}: flip tile {move.Action}");

Directory.CreateDirectory("out");
var schema = ml.Data.LoadFromEnumerable(new List<BoardRow>()).Schema;
ml.Model.SaveDeep(policy, schema, "out/flippers-policy.zip");
using var loaded = (TransformerChain<ITransformer>)ml.Model.LoadDeep("out/flippers-policy.zip", out _);
var reloaded = (FlippersPolicyTransformer)loaded.Single();
Console.WriteLine($"Saved out/flippers-policy.zip; the loaded policy plays the same move: {reloaded.Action(start) == move.Action}");

// The deep Q-network: a NetworkSpec, a replay buffer and a target network, trained by the shared loop.
int epochs = args.Length > 2 ? int.Parse(args[2]) : 10;
using var dqn = new DqnAgent(new Flippers(), new DqnOptions { Epochs = epochs, UpdatesPerEpoch = 1000, ExplorationSteps = 10_000, MinEpsilon = 0.1, Seed = 1 });
var run = dqn.Train();
var deepJudged = FlippersEvaluation.Of(dqn);
Console.WriteLine($"DQN: {run.EnvironmentSteps} moves, {run.Episodes.Count} games, {run.Updates} updates in {run.Elapsed.TotalSeconds:F1} s ({run.StepsPerSecond:F0} moves/s): " +
                  $"won {deepJudged.Won} of {deepJudged.Boards}, {deepJudged.Minimal} in the fewest moves");
using var network = dqn.ToFlippersPolicy();
var deepEngine = ml.Model.CreatePredictionEngine<BoardRow, Move>(network);
Console.WriteLine($"DQN PredictionEngine on {shown}: flip tile {deepEngine.Predict(new BoardRow { Board = shown.Select(c => c == '1' ? 1f : 0f).ToArray() }).Action}");
ml.Model.SaveDeep(network, schema, "out/flippers-dqn.zip");
Console.WriteLine("Saved out/flippers-dqn.zip (the network's spec and weights)");

internal sealed class BoardRow
{
    [VectorType(9)]
    public float[] Board { get; set; } = new float[9];
}

internal sealed class Move
{
    public int Action { get; set; }
    public float[] QValues { get; set; } = [];
}
