using MlNetDeep.Training;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Recurrent;

/// <summary>What a language model learns to predict in each window.</summary>
public enum PredictionTargets
{
    /// <summary>The token after the window, from the whole window (the course's model: the upper recurrent layer returns its last step).</summary>
    NextToken,
    /// <summary>The next token at every step of the window (every recurrent layer returns its sequence; more signal per window).</summary>
    EveryStep,
}

/// <summary>
/// The training data of a language model: sliding windows over one token stream, made per batch from the stream
/// (no copy of the windows is held). A window is <see cref="Length"/> input ids (as floats, the Embedding layer's
/// input) and its targets: the id after it, or the next id at every step.
/// </summary>
internal sealed class TokenWindows : ITrainingData, IDisposable
{
    private readonly Tensor _tokens;
    private readonly Tensor _offsets;

    /// <param name="tokens">The token ids, in text order.</param>
    /// <param name="length">Input tokens per window.</param>
    /// <param name="stride">Tokens between the starts of consecutive windows.</param>
    /// <param name="targets">The token after each window, or the next token at every step.</param>
    public TokenWindows(ReadOnlySpan<int> tokens, int length, int stride, PredictionTargets targets)
    {
        if (length <= 0) throw new ArgumentOutOfRangeException(nameof(length), length, "A window needs at least one token.");
        if (stride <= 0) throw new ArgumentOutOfRangeException(nameof(stride), stride, "The stride must be at least 1.");
        if (tokens.Length < length + 1)
            throw new ArgumentException($"The text has {tokens.Length:N0} tokens, fewer than one window of {length} tokens and the token after it ({length + 1}).", nameof(tokens));
        Length = length;
        Stride = stride;
        Targets = targets;
        Count = (tokens.Length - length - 1) / stride + 1;
        var ids = new long[tokens.Length];
        for (int i = 0; i < ids.Length; i++) ids[i] = tokens[i];
        _tokens = tensor(ids);
        _offsets = arange(length + 1L, dtype: ScalarType.Int64);
    }

    public int Length { get; }
    public int Stride { get; }
    public PredictionTargets Targets { get; }
    public long Count { get; }

    public IEpochBatches Epoch(int batchSize, bool shuffle, Generator? generator, Device device) =>
        new Batches(this, batchSize, shuffle ? randperm(Count, generator: generator) : arange(Count), device);

    /// <summary>Windows <paramref name="windows"/> (1-D int64 indices) as ids [n, Length + 1].</summary>
    private Tensor Rows(Tensor windows) => _tokens[(windows * Stride).unsqueeze(1) + _offsets];

    public void Dispose()
    {
        _tokens.Dispose();
        _offsets.Dispose();
    }

    private sealed class Batches(TokenWindows data, int batchSize, Tensor order, Device device) : IEpochBatches
    {
        public int Count { get; } = (int)((data.Count + batchSize - 1) / batchSize);

        public Batch Get(int index)
        {
            long start = (long)index * batchSize, end = Math.Min(data.Count, start + batchSize);
            var rows = data.Rows(order.slice(0, start, end, 1));
            var inputs = rows.narrow(1, 0, data.Length).to(ScalarType.Float32);
            var targets = data.Targets == PredictionTargets.NextToken ? rows.select(1, data.Length) : rows.narrow(1, 1, data.Length);
            return new Batch(inputs.to(device), targets.contiguous().to(device));
        }

        public void Dispose() => order.Dispose();
    }
}

/// <summary>
/// Cross-entropy of the next token over the vocabulary, from logits [n, vocabulary] against ids [n], or logits
/// [n, steps, vocabulary] against ids [n, steps] (every step counts equally); accuracy counts the top token.
/// </summary>
internal sealed class NextTokenObjective : TrainingObjective
{
    public override bool HasAccuracy => true;

    public override (Tensor Loss, Tensor? Correct) Step(TorchSharp.torch.nn.Module model, Tensor inputs, Tensor? targets)
    {
        var logits = ((TorchSharp.torch.nn.Module<Tensor, Tensor>)model).call(inputs);
        var flat = logits.reshape(-1, logits.shape[^1]);
        var expected = targets!.reshape(-1);
        var loss = TorchSharp.torch.nn.functional.cross_entropy(flat, expected);
        // Correct tokens per window, so the loop's per-row mean is the share of correct tokens.
        var correct = flat.argmax(1).eq(expected).sum().to(ScalarType.Float64) / (expected.shape[0] / Math.Max(inputs.shape[0], 1));
        return (loss, correct);
    }
}
