using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Plotting;
using MlNetDeep.Reinforcement;

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
        var agent = new Option<string>("--agent") { Description = "q (Q-learning) or sarsa.", DefaultValueFactory = _ => "q" };
        agent.AcceptOnlyFromAmong("q", "sarsa");
        var games = new Option<int>("--games") { Description = "Games to train.", DefaultValueFactory = _ => 6000 };
        var alpha = new Option<double>("--alpha") { Description = "Learning rate in (0, 1] (1 suits a deterministic game).", DefaultValueFactory = _ => 1.0 };
        var gamma = new Option<double>("--gamma") { Description = "Discount in [0, 1].", DefaultValueFactory = _ => 0.9 };
        var epsilon = new Option<double>("--epsilon") { Description = "Exploration at the first game, in [0, 1].", DefaultValueFactory = _ => 1.0 };
        var decay = new Option<double>("--decay") { Description = "Epsilon is multiplied by this after each game.", DefaultValueFactory = _ => 0.9995 };
        var minEpsilon = new Option<double>("--min-epsilon") { Description = "Lowest epsilon.", DefaultValueFactory = _ => 0.1 };
        var slip = new Option<double>("--slip") { Description = "Chance that a flip fails (a slippery Flippers), in [0, 1).", DefaultValueFactory = _ => 0.0 };
        var board = new Option<string>("--board") { Description = "The board whose game and move values are shown (nine 0/1 characters, row by row).", DefaultValueFactory = _ => "101000110" };
        var command = new Command("flippers", "Train Q-learning or SARSA on Flippers; judge the greedy policy on all 506 boards against the solver at checkpoints.")
        {
            agent, games, alpha, gamma, epsilon, decay, minEpsilon, slip, board,
        };
        common.AddTo(command);
        command.SetAction(result =>
        {
            var options = new TabularAgentOptions
            {
                Algorithm = result.GetValue(agent) == "sarsa" ? TabularAlgorithm.Sarsa : TabularAlgorithm.QLearning,
                LearningRate = result.GetValue(alpha), Discount = result.GetValue(gamma), Epsilon = result.GetValue(epsilon),
                EpsilonDecay = result.GetValue(decay), MinEpsilon = result.GetValue(minEpsilon), Seed = result.GetValue(common.Seed), MaxSteps = 100,
            };
            int shown = Flippers.Parse(result.GetValue(board)!);
            var game = new Flippers(result.GetValue(slip));
            var learner = new TabularAgent(Flippers.Boards, Flippers.Tiles, options); // checks the options
            return RunFlippers(learner, game, OptionChecks.AtLeast(result.GetValue(games), 1, "--games"), shown, common.OutputFolder(result));
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
        Charts.Bars(Path.Combine(output, $"{name}-values.png"), $"{name}: value of each move on {Flippers.Format(shown)}", "Q(board, move)",
            Enumerable.Range(0, Flippers.Tiles).Select(t => $"flip {t}").ToList(), agent.Values(shown));
        var policy = agent.ToFlippersPolicy();
        var ml = new MLContext(seed: 1);
        var schema = ml.Data.LoadFromEnumerable(new List<BoardRow>()).Schema;
        var modelPath = Path.Combine(output, $"{name}.zip");
        ml.Model.SaveDeep(policy, schema, modelPath);
        Console.WriteLine($"Saved the policy {modelPath}; wrote {name}-checkpoints.csv, {name}-curves.png, {name}-won.png, {name}-values.png in {output}");
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
        var episodes = new Option<int>("--episodes") { Description = "Episodes per agent.", DefaultValueFactory = _ => 500 };
        var epsilon = new Option<double>("--epsilon") { Description = "Constant exploration.", DefaultValueFactory = _ => 0.1 };
        var alpha = new Option<double>("--alpha") { Description = "Learning rate.", DefaultValueFactory = _ => 0.5 };
        var command = new Command("cliff", "Sutton and Barto's cliff walking: SARSA's safe path against Q-learning's edge path, returns per episode.") { episodes, epsilon, alpha };
        common.AddTo(command);
        command.SetAction(result =>
        {
            var cliff = new CliffWalking();
            int n = OptionChecks.AtLeast(result.GetValue(episodes), 1, "--episodes");
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
        var model = new Option<string>("--model", "-m") { Description = "A policy saved by 'rl flippers'.", Required = true };
        var board = new Option<string>("--board") { Description = "The start board: nine 0/1 characters, row by row.", Required = true };
        var command = new Command("play", "Play a saved Flippers policy from a board, move by move.") { model, board };
        command.SetAction(result =>
        {
            int start = Flippers.Parse(result.GetValue(board)!);
            var ml = new MLContext(seed: 1);
            using var loaded = (IDisposable)ml.Model.LoadDeep(result.GetValue(model)!, out _);
            var policy = ((IEnumerable<ITransformer>)loaded).OfType<FlippersPolicyTransformer>().SingleOrDefault()
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
