using static TorchSharp.torch;

namespace MlNetDeep.Reinforcement;

/// <summary>
/// The experience a deep Q-network learns from: the last <see cref="Capacity"/> transitions (state, action, reward,
/// next state, whether the next state ended the game), kept in managed arrays, the oldest overwritten first, sampled
/// uniformly. Sampling breaks up the correlation of consecutive moves, and old moves are learned from many times.
/// </summary>
internal sealed class ReplayBuffer
{
    /// <summary>Largest capacity accepted (transitions).</summary>
    public const int MaxCapacity = 10_000_000;

    private readonly float[] _states, _next, _rewards;
    private readonly int[] _actions;
    private readonly bool[] _done;
    private int _write;

    public ReplayBuffer(int capacity, int featureCount)
    {
        if (capacity is < 1 or > MaxCapacity) throw new ArgumentOutOfRangeException(nameof(capacity), capacity, $"The replay capacity must be 1 to {MaxCapacity:N0} transitions.");
        if (featureCount < 1) throw new ArgumentOutOfRangeException(nameof(featureCount), featureCount, "A state needs at least one number.");
        if ((long)capacity * featureCount > 200_000_000)
            throw new ArgumentOutOfRangeException(nameof(capacity), $"{capacity:N0} transitions of {featureCount} numbers are too many to keep (at most 200,000,000 numbers per side).");
        Capacity = capacity;
        FeatureCount = featureCount;
        _states = new float[capacity * featureCount];
        _next = new float[capacity * featureCount];
        _rewards = new float[capacity];
        _actions = new int[capacity];
        _done = new bool[capacity];
    }

    public int Capacity { get; }
    public int FeatureCount { get; }

    /// <summary>Transitions held now (at most <see cref="Capacity"/>).</summary>
    public int Count { get; private set; }

    /// <summary>Every transition ever added.</summary>
    public long Added { get; private set; }

    public void Add(ReadOnlySpan<float> state, int action, double reward, ReadOnlySpan<float> next, bool done)
    {
        if (state.Length != FeatureCount || next.Length != FeatureCount)
            throw new ArgumentException($"A state is {FeatureCount} numbers; got {state.Length} and {next.Length}.");
        state.CopyTo(_states.AsSpan(_write * FeatureCount, FeatureCount));
        next.CopyTo(_next.AsSpan(_write * FeatureCount, FeatureCount));
        _actions[_write] = action;
        _rewards[_write] = (float)reward;
        _done[_write] = done;
        _write = (_write + 1) % Capacity;
        Count = Math.Min(Count + 1, Capacity);
        Added++;
    }

    /// <summary>
    /// <paramref name="size"/> transitions drawn uniformly with replacement, as tensors on <paramref name="device"/>:
    /// states [size, features] and a target block [size, 3 + features] = action, reward, done (0/1), next state.
    /// </summary>
    public (Tensor States, Tensor Transitions) Sample(int size, Random random, Device device)
    {
        if (Count == 0) throw new InvalidOperationException("The replay buffer is empty: play some moves before sampling.");
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size), size, "Sample at least one transition.");
        int f = FeatureCount, width = 3 + f;
        var states = new float[size * f];
        var block = new float[size * width];
        for (int i = 0; i < size; i++)
        {
            int j = random.Next(Count);
            _states.AsSpan(j * f, f).CopyTo(states.AsSpan(i * f, f));
            var row = block.AsSpan(i * width, width);
            row[0] = _actions[j];
            row[1] = _rewards[j];
            row[2] = _done[j] ? 1 : 0;
            _next.AsSpan(j * f, f).CopyTo(row[3..]);
        }
        return (tensor(states, [size, f]).to(device), tensor(block, [size, width]).to(device));
    }
}
