using System.CommandLine;
using System.Diagnostics;
using System.Numerics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Plotting;
using MlNetDeep.Reinforcement;
using MlNetDeep.Training;
using static TorchSharp.torch;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// <c>mlnetdeep rl flippers</c> (Q-learning or SARSA on Flippers, judged against the solver at checkpoints),
/// <c>mlnetdeep rl cliff</c> (SARSA against Q-learning on cliff walking) and <c>mlnetdeep rl play</c> (a saved policy's game).
/// </summary>
internal static class ReinforcementCommands
{
    public static Command Create()
    {
        var rl = new Command("rl", "Reinforcement learning: Q-learning and SARSA on Flippers and on cliff walking.");
        rl.Subcommands.Add(FlippersCommand());
        rl.Subcommands.Add(CliffCommand());
        rl.Subcommands.Add(PlayCommand());
        return rl;
    }

    private static Command FlippersCommand()
    {
        var common = new CommonOptions();
        var agent = new Option<string>("--agent") { Description = "q (Q-learning), sarsa or dqn (deep Q-network).", DefaultValueFactory = _ => "q" };
        agent.AcceptOnlyFromAmong("q", "sarsa", "dqn");
        var games = new Option<int>("--games") { Description = "Games to train (q, sarsa).", DefaultValueFactory = _ => 6000 }.AtLeast(1);
        var epochs = new Option<int>("--epochs") { Description = "dqn: epochs of the training loop (judged after each).", DefaultValueFactory = _ => 20 }.AtLeast(1);
        var updates = new Option<int>("--updates") { Description = "dqn: updates per epoch (one move played per update).", DefaultValueFactory = _ => 1000 }.AtLeast(1);
        var exploration = new Option<int>("--exploration-steps") { Description = "dqn: moves over which epsilon falls linearly to --min-epsilon.", DefaultValueFactory = _ => 10000 }.AtLeast(1);
        var learningRate = new Option<double>("--lr") { Description = "dqn: Adam's learning rate.", DefaultValueFactory = _ => 1e-3 }.Positive();
        var hidden = new Option<string>("--hidden") { Description = "dqn: hidden layer widths, comma-separated.", DefaultValueFactory = _ => "128,128" }.LayerWidths();
        var targetEvery = new Option<int>("--target-every") { Description = "dqn: updates between copies of the target network.", DefaultValueFactory = _ => 500 }.AtLeast(1);
        var alpha = new Option<double>("--alpha") { Description = "Learning rate in (0, 1] (1 suits a deterministic game).", DefaultValueFactory = _ => 1.0 }
            .Check(a => a is > 0 and <= 1 ? null : $"--alpha must be in (0, 1], got {a}.");
        var gamma = new Option<double>("--gamma") { Description = "Discount in [0, 1].", DefaultValueFactory = _ => 0.9 }.Between(0, 1);
        var epsilon = new Option<double>("--epsilon") { Description = "Exploration at the first game, in [0, 1].", DefaultValueFactory = _ => 1.0 }.Between(0, 1);
        var decay = new Option<double>("--decay") { Description = "Epsilon is multiplied by this after each game.", DefaultValueFactory = _ => 0.9995 }.Between(0, 1);
        var minEpsilon = new Option<double>("--min-epsilon") { Description = "Lowest epsilon.", DefaultValueFactory = _ => 0.1 }.Between(0, 1);
        var slip = new Option<double>("--slip") { Description = "Chance that a flip fails (a slippery Flippers), in [0, 1).", DefaultValueFactory = _ => 0.0 }.Fraction();
        var board = new Option<string>("--board") { Description = "The board whose game and move values are shown (nine 0/1 characters, row by row).", DefaultValueFactory = _ => "101000110" }.ParsedBy<FormatException>(b => Flippers.Parse(b));
        var command = new Command("flippers", "Train Q-learning or SARSA on Flippers; judge the greedy policy on all 506 boards against the solver at checkpoints.")
        {
            agent, games, alpha, gamma, epsilon, decay, minEpsilon, slip, board, epochs, updates, exploration, learningRate, hidden, targetEvery,
        };
        common.AddTo(command);
        command.SetAction(result =>
        {
            if (result.GetValue(agent) == "dqn")
            {
                var widths = OptionChecks.Widths(result.GetValue(hidden)!, "--hidden");
                var dqnOptions = new DqnOptions
                {
                    Network = MlNetDeep.Networks.Networks.Mlp(widths), Optimizer = new MlNetDeep.Training.Adam(result.GetValue(learningRate)),
                    Discount = result.GetValue(gamma), Epsilon = result.GetValue(epsilon), MinEpsilon = result.GetValue(minEpsilon),
                    ExplorationSteps = result.GetValue(exploration), Epochs = result.GetValue(epochs), UpdatesPerEpoch = result.GetValue(updates),
                    TargetUpdateInterval = result.GetValue(targetEvery), Seed = result.GetValue(common.Seed),
                };
                int start = Flippers.Parse(result.GetValue(board)!);
                var device = MlNetDeep.Native.TorchRuntime.SelectDevice(common.CreateContext(result));
                return RunDqn(dqnOptions, new Flippers(result.GetValue(slip)), start, device, common.OutputFolder(result));
            }
            var options = new TabularAgentOptions
            {
                Algorithm = result.GetValue(agent) == "sarsa" ? TabularAlgorithm.Sarsa : TabularAlgorithm.QLearning,
                LearningRate = result.GetValue(alpha), Discount = result.GetValue(gamma), Epsilon = result.GetValue(epsilon),
                EpsilonDecay = result.GetValue(decay), MinEpsilon = result.GetValue(minEpsilon), Seed = result.GetValue(common.Seed), MaxSteps = 100,
            };
            int shown = Flippers.Parse(result.GetValue(board)!);
            var game = new Flippers(result.GetValue(slip));
            var learner = new TabularAgent(Flippers.Boards, Flippers.Tiles, options); // checks the options
            return RunFlippers(learner, game, result.GetValue(games), shown, common.OutputFolder(result));
        });
        return command;
    }

    private static int RunFlippers(TabularAgent agent, Flippers game, int games, int shown, string output)
    {
        string name = $"flippers-{(agent.Options.Algorithm == TabularAlgorithm.Sarsa ? "sarsa" : "q")}";
        var checkpoints = new[] { 100, 200, 500, 1000, 2000, 3000, 6000, 10000, 20000, 50000 }.Where(c => c < games).Append(games).ToHashSet();
        var rows = new List<string>();
        Console.WriteLine($"{name}: {games} games, alpha {agent.Options.LearningRate}, gamma {agent.Options.Discount}, epsilon {agent.Options.Epsilon} x {agent.Options.EpsilonDecay} per game (at least {agent.Options.MinEpsilon}), seed {agent.Options.Seed}" +
            (game.SlipProbability > 0 ? $", flips fail with probability {game.SlipProbability}" : ""));
        Console.WriteLine($"{"games",7} {"won",9} {"fewest moves",14} {"mean moves",11} {"solver",7}   game from {Flippers.Format(shown)} (solver: {Flippers.MinimumMoves(shown)} moves)");
        var clock = Stopwatch.StartNew();
        var judging = new Stopwatch();
        var progress = new Progress(episode =>
        {
            if (!checkpoints.Contains(episode.Episode + 1)) return;
            judging.Start();
            var e = FlippersEvaluation.Of(agent);
            var path = agent.Play(new Flippers(), shown, 20);
            string replay = string.Join(" -> ", path.Select(Flippers.Format)) + (Flippers.IsGoal(path[^1]) ? "" : " (no win)");
            Console.WriteLine($"{episode.Episode + 1,7} {e.Won,5}/{e.Boards} {e.Minimal / (double)e.Boards,13:P1} {e.MeanMoves,11:F3} {e.MeanMinimumMoves,7:F3}   {path.Count - 1} moves: {replay}");
            rows.Add(FormattableString.Invariant($"{episode.Episode + 1},{e.Won},{e.Minimal},{e.Boards},{e.MeanMoves:F4},{e.MeanMinimumMoves:F4},{path.Count - 1}"));
            judging.Stop();
        });
        var episodes = agent.Train(game, games, progress);
        double seconds = (clock.Elapsed - judging.Elapsed).TotalSeconds;
        long moves = episodes.Sum(e => (long)e.Steps);
        Console.WriteLine($"Training: {games} games, {moves:N0} moves in {seconds:F3} s ({moves / Math.Max(seconds, 1e-9):N0} moves/s; judging at the checkpoints not counted)");

        File.WriteAllText(Path.Combine(output, $"{name}-checkpoints.csv"), "games,won,fewest_moves,boards,mean_moves,solver_mean_moves,shown_board_moves\n" + string.Join("\n", rows) + "\n");
        int window = Math.Max(1, games / 100);
        var x = Enumerable.Range(1, episodes.Count).Select(i => (double)i).ToList();
        Charts.Lines(Path.Combine(output, $"{name}-curves.png"), $"{name}: moves per game (mean of {window})", "games played", "moves",
            [new Charts.Series("moves per game", x, Moving(episodes.Select(e => (double)e.Steps).ToList(), window))]);
        Charts.Lines(Path.Combine(output, $"{name}-won.png"), $"{name}: share of games won (mean of {window})", "games played", "won",
            [new Charts.Series("won", x, Moving(episodes.Select(e => e.Finished ? 1.0 : 0.0).ToList(), window))]);
        WritePolicy(agent.ToFlippersPolicy(), name, shown, output);
        return 0;
    }

    /// <summary>The shown board's move values as bars, its game as a strip of boards, and the policy saved with SaveDeep.</summary>
    private static void WritePolicy(FlippersPolicy policy, string name, int shown, string output)
    {
        Charts.Bars(Path.Combine(output, $"{name}-values.png"), $"{name}: value of each move on {Flippers.Format(shown)}", "Q(board, move)",
            Enumerable.Range(0, Flippers.Tiles).Select(t => $"flip {t}").ToList(), policy.Values(shown));
        var path = policy.Play(new Flippers(), shown, 20);
        var moves = path.Skip(1).Select((board, i) => BitOperations.TrailingZeroCount(board ^ path[i])).ToList();
        BoardStrip.Save(Path.Combine(output, $"{name}-game.png"), path.Select(b => Enumerable.Range(0, Flippers.Tiles).Select(t => (b >> t & 1) == 1).ToArray()).ToList(),
            3, path.Select((b, i) => i == 0 ? "start" : Flippers.IsGoal(b) ? $"flip {moves[i - 1]}: won" : $"flip {moves[i - 1]}").ToList(),
            moves.Append(-1).ToList(), $"{name}: greedy game from {Flippers.Format(shown)}, {path.Count - 1} moves (solver: {Flippers.MinimumMoves(shown)}); framed: the next flip");
        var ml = new MLContext(seed: 1);
        var schema = ml.Data.LoadFromEnumerable(new List<BoardRow>()).Schema;
        var modelPath = Path.Combine(output, $"{name}.zip");
        ml.Model.SaveDeep(policy, schema, modelPath);
        Console.WriteLine($"Saved the policy {modelPath}; wrote {name}-checkpoints.csv, {name}-curves.png, {name}-won.png, {name}-values.png, {name}-game.png in {output}");
    }

    private static int RunDqn(DqnOptions options, Flippers game, int shown, Device device, string output)
    {
        const string name = "flippers-dqn";
        var rows = new List<string>();
        Console.WriteLine($"{name}: {options.Epochs} epochs of {options.UpdatesPerEpoch} updates (one move each, after {options.WarmupSteps} warm-up moves), network {options.Network.Name}, " +
            $"Adam {options.Optimizer.LearningRate}, gamma {options.Discount}, epsilon {options.Epsilon} -> {options.MinEpsilon} over {options.ExplorationSteps} moves, " +
            $"replay {options.ReplayCapacity}, batch {options.BatchSize}, target copied every {options.TargetUpdateInterval} updates, double DQN, Huber loss, seed {options.Seed}, {device.type}" +
            (game.SlipProbability > 0 ? $", flips fail with probability {game.SlipProbability}" : ""));
        Console.WriteLine($"{"epoch",5} {"moves",8} {"games",6} {"loss",9} {"mean Q",7} {"won",9} {"fewest moves",13} {"mean moves",11} {"moves/s",8}");
        DqnAgent? learner = null;
        var judging = new Stopwatch();
        var callback = new EpochCallback(end =>
        {
            judging.Start();
            var e = FlippersEvaluation.Of(learner!);
            var m = end.Metrics;
            Console.WriteLine($"{m.Epoch + 1,5} {learner!.EnvironmentSteps,8} {learner.Games,6} {m.Values["loss"],9:F5} {m.Values["q"],7:F3} {e.Won,5}/{e.Boards} {e.Minimal / (double)e.Boards,12:P1} {e.MeanMoves,11:F3} {m.SamplesPerSecond / options.BatchSize * options.StepsPerUpdate,8:F0}");
            rows.Add(FormattableString.Invariant($"{m.Epoch + 1},{learner.EnvironmentSteps},{learner.Games},{m.Values["loss"]:G6},{m.Values["q"]:G6},{e.Won},{e.Minimal},{e.Boards},{e.MeanMoves:F4}"));
            judging.Stop();
        });
        using var agent = learner = new DqnAgent(game, options with { Callbacks = [callback] }, device);
        var run = agent.Train();
        double seconds = (run.Elapsed - judging.Elapsed).TotalSeconds;
        Console.WriteLine($"Training: {run.EnvironmentSteps:N0} moves, {run.Episodes.Count:N0} games, {run.Updates:N0} updates in {seconds:F1} s " +
            $"({run.EnvironmentSteps / Math.Max(seconds, 1e-9):N0} moves/s with an update per move; judging after each epoch not counted)");
        var final = FlippersEvaluation.Of(agent);
        Console.WriteLine($"Greedy policy: won {final.Won}/{final.Boards}, in the fewest moves {final.Minimal}/{final.Boards} ({final.Minimal / (double)final.Boards:P1}), mean {final.MeanMoves:F3} moves (solver {final.MeanMinimumMoves:F3})");
        File.WriteAllText(Path.Combine(output, $"{name}-checkpoints.csv"), "epoch,moves,games,loss,mean_q,won,fewest_moves,boards,mean_moves\n" + string.Join("\n", rows) + "\n");
        var played = run.Episodes;
        int window = Math.Max(1, played.Count / 100);
        var x = Enumerable.Range(1, played.Count).Select(i => (double)i).ToList();
        Charts.Lines(Path.Combine(output, $"{name}-curves.png"), $"{name}: moves per game (mean of {window})", "games played", "moves",
            [new Charts.Series("moves per game", x, Moving(played.Select(e => (double)e.Steps).ToList(), window))]);
        Charts.Lines(Path.Combine(output, $"{name}-won.png"), $"{name}: share of games won (mean of {window})", "games played", "won",
            [new Charts.Series("won", x, Moving(played.Select(e => e.Finished ? 1.0 : 0.0).ToList(), window))]);
        Charts.TrainingCurves(Path.Combine(output, $"{name}-loss.png"), run.History, $"{name}: Huber loss per epoch");
        using var policy = agent.ToFlippersPolicy();
        WritePolicy(policy, name, shown, output);
        return 0;
    }


    private static List<double> Moving(List<double> values, int window)
    {
        var result = new List<double>(values.Count);
        double sum = 0;
        for (int i = 0; i < values.Count; i++)
        {
            sum += values[i];
            if (i >= window) sum -= values[i - window];
            result.Add(sum / Math.Min(i + 1, window));
        }
        return result;
    }

    private sealed class Progress(Action<EpisodeResult> report) : IProgress<EpisodeResult>
    {
        public void Report(EpisodeResult value) => report(value);
    }

    private sealed class BoardRow
    {
        [VectorType(9)]
        public float[] Board { get; set; } = new float[9];
    }

    private static Command CliffCommand()
    {
        var common = new CommonOptions();
        var episodes = new Option<int>("--episodes") { Description = "Episodes per agent.", DefaultValueFactory = _ => 500 }.AtLeast(1);
        var epsilon = new Option<double>("--epsilon") { Description = "Constant exploration.", DefaultValueFactory = _ => 0.1 }.Between(0, 1);
        var alpha = new Option<double>("--alpha") { Description = "Learning rate in (0, 1].", DefaultValueFactory = _ => 0.5 }
            .Check(a => a is > 0 and <= 1 ? null : $"--alpha must be in (0, 1], got {a}.");
        var command = new Command("cliff", "Sutton and Barto's cliff walking: SARSA's safe path against Q-learning's edge path, returns per episode.") { episodes, epsilon, alpha };
        common.AddTo(command);
        command.SetAction(result =>
        {
            var cliff = new CliffWalking();
            int n = result.GetValue(episodes);
            var series = new List<Charts.Series>();
            foreach (var algorithm in new[] { TabularAlgorithm.Sarsa, TabularAlgorithm.QLearning })
            {
                var agent = new TabularAgent(cliff.StateCount, cliff.ActionCount, new TabularAgentOptions
                {
                    Algorithm = algorithm, LearningRate = result.GetValue(alpha), Discount = 1.0, Epsilon = result.GetValue(epsilon), EpsilonDecay = 1.0,
                    MinEpsilon = result.GetValue(epsilon), MaxSteps = 1000, Seed = result.GetValue(common.Seed),
                });
                var run = agent.Train(cliff, n);
                var path = agent.Play(cliff, CliffWalking.Start);
                Console.WriteLine($"{algorithm}: mean return per episode while learning (last 100) {run.TakeLast(100).Average(e => e.Return):F1}; greedy path {path.Count - 1} moves:");
                for (int row = 0; row < CliffWalking.Rows; row++)
                    Console.WriteLine("  " + string.Concat(Enumerable.Range(0, CliffWalking.Columns).Select(c =>
                    {
                        int s = row * CliffWalking.Columns + c;
                        return s == CliffWalking.Start ? 'S' : s == CliffWalking.Goal ? 'G' : path.Contains(s) ? '*' : CliffWalking.IsCliff(s) ? 'C' : '.';
                    })));
                series.Add(new Charts.Series(algorithm.ToString(), Enumerable.Range(1, n).Select(i => (double)i).ToList(), Moving(run.Select(e => Math.Max(e.Return, -100)).ToList(), 10)));
            }
            var output = common.OutputFolder(result);
            Charts.Lines(Path.Combine(output, "cliff-returns.png"), "Cliff walking: return per episode (mean of 10, clipped at -100)", "episode", "return", series);
            Console.WriteLine($"Wrote {Path.Combine(output, "cliff-returns.png")}");
            return 0;
        });
        return command;
    }

    private static Command PlayCommand()
    {
        var model = new Option<string>("--model", "-m") { Description = "A policy saved by 'rl flippers'.", Required = true }.ExistingFile(OptionChecks.ModelHelpName);
        var board = new Option<string>("--board") { Description = "The start board: nine 0/1 characters, row by row.", Required = true }.ParsedBy<FormatException>(b => Flippers.Parse(b));
        var command = new Command("play", "Play a saved Flippers policy from a board, move by move.") { model, board };
        command.SetAction(result =>
        {
            int start = Flippers.Parse(result.GetValue(board)!);
            var ml = new MLContext(seed: 1);
            using var loaded = (IDisposable)ml.Model.LoadDeep(result.GetValue(model)!, out _);
            var policy = ((IEnumerable<ITransformer>)loaded).OfType<FlippersPolicy>().SingleOrDefault()
                ?? throw new InvalidDataException($"{result.GetValue(model)} holds no Flippers policy.");
            int state = start, moves = 0;
            Console.WriteLine($"start {Flippers.Format(state)} (the solver wins in {Flippers.MinimumMoves(state)})");
            var random = new Random(0);
            while (!Flippers.IsGoal(state) && moves < 20)
            {
                int action = policy.Action(state);
                state = new Flippers().Step(state, action, random).State;
                Console.WriteLine($"move {++moves}: flip tile {action} -> {Flippers.Format(state)}");
            }
            Console.WriteLine(Flippers.IsGoal(state) ? $"won in {moves} moves" : "no win in 20 moves");
            return 0;
        });
        return command;
    }
}
