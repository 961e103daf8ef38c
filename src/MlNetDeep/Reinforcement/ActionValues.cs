namespace MlNetDeep.Reinforcement;

/// <summary>
/// What an agent has learned, as any policy can be asked: each action's value in a state, and the greedy action. A
/// table (<see cref="TabularAgent"/>), a network (<see cref="DqnAgent"/>) and a saved policy (<see cref="FlippersPolicy"/>)
/// all answer it, so judging and replaying a policy is written once.
/// </summary>
public interface IActionValues
{
    /// <summary>Each action's value in <paramref name="state"/>.</summary>
    double[] Values(int state);

    /// <summary>The action with the highest value in <paramref name="state"/> (the lowest such action on ties).</summary>
    int Greedy(int state);
}

/// <summary>
/// An environment whose states a network can read: each state as a fixed-length vector of numbers (Flippers' nine
/// tiles, a one-hot cell of the cliff). A deep Q-network needs it; a table does not.
/// </summary>
public interface IStateFeatures
{
    /// <summary>Numbers per state.</summary>
    int FeatureCount { get; }

    /// <summary>Writes the numbers of <paramref name="state"/> into <paramref name="features"/> (<see cref="FeatureCount"/> long).</summary>
    void Encode(int state, Span<float> features);
}

/// <summary>Greedy play and the argmax shared by every <see cref="IActionValues"/>.</summary>
public static class ActionValues
{
    /// <summary>The index of the largest value (the lowest index on ties).</summary>
    public static int ArgMax(ReadOnlySpan<double> values)
    {
        if (values.IsEmpty) throw new ArgumentException("There are no action values.", nameof(values));
        return Models.Common.Vectors.ArgMax(values);
    }

    /// <summary>
    /// The greedy path of <paramref name="policy"/> from <paramref name="start"/> (no exploration): the states visited,
    /// the start included, at most <paramref name="maxSteps"/> moves; <paramref name="seed"/> draws any chance in the environment.
    /// </summary>
    public static IReadOnlyList<int> Play(this IActionValues policy, IEnvironment environment, int start, int maxSteps = 100, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(environment);
        if (start < 0 || start >= environment.StateCount) throw new ArgumentOutOfRangeException(nameof(start), start, $"States run from 0 to {environment.StateCount - 1}.");
        if (maxSteps < 0) throw new ArgumentOutOfRangeException(nameof(maxSteps), maxSteps, "maxSteps cannot be negative.");
        var random = new Random(seed);
        var path = new List<int> { start };
        int state = start;
        for (int i = 0; i < maxSteps && !environment.IsTerminal(state); i++)
        {
            state = environment.Step(state, policy.Greedy(state), random).State;
            path.Add(state);
        }
        return path;
    }
}
