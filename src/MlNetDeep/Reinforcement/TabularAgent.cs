namespace MlNetDeep.Reinforcement;

/// <summary>How a tabular agent updates its action values.</summary>
public enum TabularAlgorithm
{
    /// <summary>Off-policy: Q(s, a) moves towards r + gamma max_a' Q(s', a'), the value of acting greedily from s'.</summary>
    QLearning,
    /// <summary>On-policy: Q(s, a) moves towards r + gamma Q(s', a'), where a' is the action the exploring policy really takes next.</summary>
    Sarsa,
}

/// <summary>Settings of a tabular agent: epsilon-greedy exploration decaying per episode, learning rate, discount, seed.</summary>
public sealed record TabularAgentOptions
{
    public TabularAlgorithm Algorithm { get; init; } = TabularAlgorithm.QLearning;

    /// <summary>Learning rate alpha, in (0, 1].</summary>
    public double LearningRate { get; init; } = 0.5;

    /// <summary>Discount gamma, in [0, 1].</summary>
    public double Discount { get; init; } = 0.9;

    /// <summary>The chance of a random action at the first episode, in [0, 1].</summary>
    public double Epsilon { get; init; } = 1.0;

    /// <summary>Epsilon is multiplied by this after every episode, in (0, 1].</summary>
    public double EpsilonDecay { get; init; } = 0.9995;

    /// <summary>Epsilon never decays below this, in [0, 1].</summary>
    public double MinEpsilon { get; init; } = 0.1;

    /// <summary>Longest episode; a game still running after it ends unfinished.</summary>
    public int MaxSteps { get; init; } = 100;

    public int Seed { get; init; } = 1;

    internal void Validate()
    {
        OptionRanges.Unit(LearningRate, nameof(LearningRate), openAtZero: true);
        OptionRanges.Unit(Discount, nameof(Discount));
        OptionRanges.Unit(Epsilon, nameof(Epsilon));
        OptionRanges.Unit(EpsilonDecay, nameof(EpsilonDecay), openAtZero: true);
        OptionRanges.Unit(MinEpsilon, nameof(MinEpsilon));
        if (!Enum.IsDefined(Algorithm)) throw new ArgumentOutOfRangeException(nameof(Algorithm), Algorithm, "Unknown algorithm.");
        if (MaxSteps < 1) throw new ArgumentOutOfRangeException(nameof(MaxSteps), MaxSteps, "An episode needs at least one step.");
    }
}

/// <summary>The range checks the agents' options share.</summary>
internal static class OptionRanges
{
    /// <summary>Throws naming <paramref name="name"/> unless <paramref name="value"/> is in [0, 1] ((0, 1] when <paramref name="openAtZero"/>).</summary>
    public static void Unit(double value, string name, bool openAtZero = false)
    {
        if (double.IsNaN(value) || value < 0 || value > 1 || (openAtZero && value == 0))
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be in {(openAtZero ? "(0, 1]" : "[0, 1]")}.");
    }
}

/// <summary>One training episode: its moves, its total reward, whether it reached a terminal state, and the epsilon it explored with.</summary>
public sealed record EpisodeResult(int Episode, int Steps, double Return, bool Finished, double Epsilon);

/// <summary>
/// Tabular Q-learning and SARSA: a table of action values indexed by state and action, learned by playing episodes with
/// epsilon-greedy exploration. All randomness comes from the seed: the same options give the same table. Greedy choices
/// break ties by the lowest action.
/// </summary>
public sealed class TabularAgent : IActionValues
{
    private readonly double[] _q;

    public TabularAgent(int states, int actions, TabularAgentOptions? options = null)
    {
        if (states < 1 || actions < 1) throw new ArgumentOutOfRangeException(nameof(states), "An agent needs at least one state and one action.");
        if ((long)states * actions > 100_000_000) throw new ArgumentOutOfRangeException(nameof(states), $"{states} x {actions} action values are too many for a table.");
        Options = options ?? new TabularAgentOptions();
        Options.Validate();
        States = states;
        Actions = actions;
        _q = new double[states * actions];
    }

    public TabularAgentOptions Options { get; }
    public int States { get; }
    public int Actions { get; }

    /// <summary>The action values of <paramref name="state"/> (a copy).</summary>
    public double[] Values(int state)
    {
        CheckState(state);
        return _q.AsSpan(state * Actions, Actions).ToArray();
    }

    /// <summary>The action with the highest value in <paramref name="state"/> (the lowest such action on ties).</summary>
    public int Greedy(int state)
    {
        CheckState(state);
        return ActionValues.ArgMax(_q.AsSpan(state * Actions, Actions));
    }

    /// <summary>One update of Q(state, action) towards <paramref name="target"/> with the learning rate; returns the new value.</summary>
    internal double Update(int state, int action, double target)
    {
        ref double q = ref _q[state * Actions + action];
        q += Options.LearningRate * (target - q);
        return q;
    }

    /// <summary>Plays <paramref name="episodes"/> episodes in <paramref name="environment"/>, learning after every step.</summary>
    public IReadOnlyList<EpisodeResult> Train(IEnvironment environment, int episodes, IProgress<EpisodeResult>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(environment);
        if (environment.StateCount != States || environment.ActionCount != Actions)
            throw new ArgumentException($"The environment has {environment.StateCount} states and {environment.ActionCount} actions; the agent's table {States} x {Actions}.", nameof(environment));
        if (episodes < 1) throw new ArgumentOutOfRangeException(nameof(episodes), episodes, "Train for at least one episode.");
        var random = new Random(Options.Seed);
        var results = new List<EpisodeResult>(episodes);
        double epsilon = Options.Epsilon;
        for (int episode = 0; episode < episodes; episode++)
        {
            int state = environment.Reset(random), steps = 0;
            double total = 0;
            bool done = false;
            int action = Choose(state, epsilon, random);
            while (!done && steps < Options.MaxSteps)
            {
                var step = environment.Step(state, action, random);
                steps++;
                total += step.Reward;
                done = step.Done;
                int next = done ? -1 : Choose(step.State, epsilon, random);
                double future = done ? 0 : Options.Algorithm == TabularAlgorithm.Sarsa ? _q[step.State * Actions + next] : _q[step.State * Actions + Greedy(step.State)];
                Update(state, action, step.Reward + Options.Discount * future);
                state = step.State;
                action = next;
            }
            var result = new EpisodeResult(episode, steps, total, done, epsilon);
            results.Add(result);
            progress?.Report(result);
            epsilon = Math.Max(Options.MinEpsilon, epsilon * Options.EpsilonDecay);
        }
        return results;
    }

    /// <summary>
    /// The greedy policy of an agent trained on Flippers as an ML.NET transformer (a copy of the table): boards in
    /// <paramref name="boardColumnName"/>, the move in <c>Action</c> and each move's value in <c>QValues</c>.
    /// </summary>
    public FlippersPolicyTransformer ToFlippersPolicy(string boardColumnName = "Board", string actionColumnName = "Action", string valuesColumnName = "QValues")
    {
        if (States != Flippers.Boards || Actions != Flippers.Tiles)
            throw new InvalidOperationException($"This agent's table is {States} x {Actions}, not Flippers' {Flippers.Boards} x {Flippers.Tiles}.");
        return new FlippersPolicyTransformer(_q.ToArray(), boardColumnName, actionColumnName, valuesColumnName);
    }

    private int Choose(int state, double epsilon, Random random) => random.NextDouble() < epsilon ? random.Next(Actions) : Greedy(state);

    /// <summary>The greedy policy's path from <paramref name="start"/> (see <see cref="ActionValues.Play"/>).</summary>
    public IReadOnlyList<int> Play(IEnvironment environment, int start, int maxSteps = 100, int seed = 0) =>
        ActionValues.Play(this, environment, start, maxSteps, seed);

    private void CheckState(int state)
    {
        if (state < 0 || state >= States) throw new ArgumentOutOfRangeException(nameof(state), state, $"States run from 0 to {States - 1}.");
    }
}

/// <summary>How well a Flippers policy plays: from every board that is not already won, does it win, and in the fewest moves?</summary>
public sealed record FlippersEvaluation(int Boards, int Won, int Minimal, double MeanMoves, double MeanMinimumMoves)
{
    /// <summary>The greedy policy of <paramref name="agent"/> (a table, a network, a saved policy) from each of the 506 non-goal boards, against the breadth-first solver.</summary>
    public static FlippersEvaluation Of(IActionValues agent, int maxMoves = 20)
    {
        ArgumentNullException.ThrowIfNull(agent);
        var game = new Flippers();
        int boards = 0, won = 0, minimal = 0;
        double moves = 0, minimum = 0;
        for (int board = 0; board < Flippers.Boards; board++)
        {
            if (Flippers.IsGoal(board)) continue;
            boards++;
            var path = agent.Play(game, board, maxMoves);
            bool win = Flippers.IsGoal(path[^1]);
            int best = Flippers.MinimumMoves(board);
            minimum += best;
            if (!win) continue;
            won++;
            moves += path.Count - 1;
            if (path.Count - 1 == best) minimal++;
        }
        return new FlippersEvaluation(boards, won, minimal, won == 0 ? double.NaN : moves / won, minimum / boards);
    }
}
