using MlNetDeep.Persistence.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Networks;

/// <summary>Which recurrent cell a <see cref="RecurrentLayer"/> runs.</summary>
internal enum RecurrentCell { Lstm, Gru, Simple }

/// <summary>
/// The shared part of the recurrent layers: a sequence [steps, features] in (Keras' layout, time first), and either
/// every step's hidden state [steps, units] (<see cref="ReturnSequences"/>) or the last step's [units] out.
/// </summary>
public abstract record RecurrentLayer(int Units, bool ReturnSequences) : Layer
{
    private protected abstract RecurrentCell Cell { get; }

    /// <summary>Weight matrices per cell: 4 gates for an LSTM, 3 for a GRU, 1 for a plain RNN.</summary>
    private int Gates => Cell switch { RecurrentCell.Lstm => 4, RecurrentCell.Gru => 3, _ => 1 };

    public override int[] OutputShape(int[] input)
    {
        if (input.Length != 2) throw ShapeError(input, "a sequence [steps, features] (e.g. after an Embedding)");
        if (Units <= 0) throw new InvalidOperationException($"{Describe()}: units must be positive, got {Units}.");
        return ReturnSequences ? [input[0], Units] : [Units];
    }

    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        return new RecurrentModule(Cell, input[1], Units, ReturnSequences);
    }

    /// <summary>Input and recurrent weights of every gate, and their two bias vectors (as torch keeps them).</summary>
    internal override long StateSize(int[] input) =>
        Shapes.Values(Gates, Units, (long)input[1] + Units) + Shapes.Values(2, Gates, Units);

    public override string Describe() => $"{GetType().Name}({Units}{(ReturnSequences ? ", sequences" : "")})";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w) => OnnxExporter.Recurrent(g, this, x[0], w);
}

/// <summary>A long short-term memory layer (Hochreiter and Schmidhuber): input, forget and output gates and a cell state.</summary>
public sealed record LSTM(int Units, bool ReturnSequences = false) : RecurrentLayer(Units, ReturnSequences)
{
    private protected override RecurrentCell Cell => RecurrentCell.Lstm;
}

/// <summary>A gated recurrent unit layer (Cho et al.): reset and update gates, no separate cell state.</summary>
public sealed record GRU(int Units, bool ReturnSequences = false) : RecurrentLayer(Units, ReturnSequences)
{
    private protected override RecurrentCell Cell => RecurrentCell.Gru;
}

/// <summary>A plain (Elman) recurrent layer with a tanh: h = tanh(W x + U h' + b).</summary>
public sealed record SimpleRNN(int Units, bool ReturnSequences = false) : RecurrentLayer(Units, ReturnSequences)
{
    private protected override RecurrentCell Cell => RecurrentCell.Simple;
}

/// <summary>Runs a torch recurrent layer batch-first and keeps every step's output or the last one.</summary>
internal sealed class RecurrentModule : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module cell;
    private readonly RecurrentCell _kind;
    private readonly bool _sequences;

    public RecurrentModule(RecurrentCell kind, int features, int units, bool sequences) : base(kind.ToString())
    {
        _kind = kind;
        _sequences = sequences;
        cell = kind switch
        {
            RecurrentCell.Lstm => nn.LSTM(features, units, batchFirst: true),
            RecurrentCell.Gru => nn.GRU(features, units, batchFirst: true),
            _ => nn.RNN(features, units, batchFirst: true),
        };
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        var output = _kind switch
        {
            RecurrentCell.Lstm => ((TorchSharp.Modules.LSTM)cell).call(input).Item1,
            RecurrentCell.Gru => ((TorchSharp.Modules.GRU)cell).call(input).Item1,
            _ => ((TorchSharp.Modules.RNN)cell).call(input).Item1,
        };
        return _sequences ? output : output.select(1, -1);
    }
}

/// <summary>A 1-D convolution along the steps of a sequence [steps, features] -> [steps', filters] (Keras' Conv1D).</summary>
public sealed record Conv1D(int Filters, int KernelSize, int Stride = 1, PaddingMode Padding = PaddingMode.Valid,
    ActivationKind Activation = ActivationKind.None) : Layer
{
    public override int[] OutputShape(int[] input)
    {
        if (input.Length != 2) throw ShapeError(input, "a sequence [steps, features]");
        if (Filters <= 0 || KernelSize <= 0 || Stride <= 0) throw new InvalidOperationException($"{Describe()}: filters, kernel size and stride must be positive.");
        int steps = Padding == PaddingMode.Same ? (input[0] + Stride - 1) / Stride : (input[0] - KernelSize) / Stride + 1;
        if (steps <= 0) throw ShapeError(input, $"at least {KernelSize} steps");
        return [steps, Filters];
    }

    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        var output = OutputShape(input);
        int pad = Padding == PaddingMode.Same ? Math.Max((output[0] - 1) * Stride + KernelSize - input[0], 0) : 0;
        return new Conv1DModule(input[1], Filters, KernelSize, Stride, pad, Activation);
    }

    internal override long StateSize(int[] input) => Shapes.Values(Filters, input[1], KernelSize) + Filters;

    public override string Describe() => $"Conv1D({Filters}, {KernelSize}, stride {Stride}, {Padding.ToString().ToLowerInvariant()}{Activations.Suffix(Activation)})";
}

/// <summary>Transposes [n, steps, features] to torch's [n, channels, length], convolves (padding split before and after as Keras does), transposes back.</summary>
internal sealed class Conv1DModule : nn.Module<Tensor, Tensor>
{
    private readonly TorchSharp.Modules.Conv1d conv;
    private readonly nn.Module<Tensor, Tensor> activation;
    private readonly long _before, _after;

    public Conv1DModule(int features, int filters, int kernel, int stride, int padding, ActivationKind activationKind) : base("Conv1D")
    {
        conv = nn.Conv1d(features, filters, kernel, stride: stride);
        activation = Activations.Create(activationKind);
        _before = padding / 2;
        _after = padding - padding / 2;
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        var x = input.transpose(1, 2);
        if (_before + _after > 0) x = nn.functional.pad(x, [_before, _after]);
        return activation.call(conv.call(x)).transpose(1, 2);
    }
}

/// <summary>The largest value of each feature over the steps: [steps, features] -> [features].</summary>
public sealed record GlobalMaxPool1D : Layer
{
    public override int[] OutputShape(int[] input) => input.Length == 2 ? [input[1]] : throw ShapeError(input, "a sequence [steps, features]");
    public override nn.Module<Tensor, Tensor> Build(int[] input) { OutputShape(input); return new GlobalPool1DModule(max: true); }
}

/// <summary>The mean of each feature over the steps: [steps, features] -> [features].</summary>
public sealed record GlobalAvgPool1D : Layer
{
    public override int[] OutputShape(int[] input) => input.Length == 2 ? [input[1]] : throw ShapeError(input, "a sequence [steps, features]");
    public override nn.Module<Tensor, Tensor> Build(int[] input) { OutputShape(input); return new GlobalPool1DModule(max: false); }
}

internal sealed class GlobalPool1DModule(bool max) : nn.Module<Tensor, Tensor>(max ? "GlobalMaxPool1D" : "GlobalAvgPool1D")
{
    public override Tensor forward(Tensor input) => max ? input.amax([1]) : input.mean([1]);
}

/// <summary>How a <see cref="SequenceEncoder"/> reads its tokens.</summary>
public enum SequenceEncoderKind { Lstm, Gru, SimpleRnn, Convolution }

/// <summary>
/// Token ids of variable length, right-padded with 0, to one vector [Units], with the padding masked: an embedding
/// (id 0 is padding and stays a zero vector), then either stacked recurrent layers whose output is taken at each
/// sequence's own last token, or a 1-D convolution (ReLU) whose windows that reach into the padding are left out of
/// a global max pool. Either way, appending padding never changes a sequence's output. An empty sequence gives zeros.
/// </summary>
public sealed record SequenceEncoder(int Vocabulary, int EmbeddingSize, int Units, SequenceEncoderKind Kind = SequenceEncoderKind.Lstm,
    int Layers = 1, int KernelSize = 5) : Layer
{
    public override int[] OutputShape(int[] input)
    {
        if (input.Length != 1) throw ShapeError(input, "a sequence of token ids [steps]");
        if (Vocabulary < 2 || EmbeddingSize <= 0 || Units <= 0 || Layers <= 0 || KernelSize <= 0)
            throw new InvalidOperationException($"{Describe()}: the vocabulary needs at least 2 ids (padding and one token), and sizes must be positive.");
        if (!Enum.IsDefined(Kind)) throw new InvalidOperationException($"{Describe()}: unknown encoder kind {(int)Kind}.");
        if (Kind == SequenceEncoderKind.Convolution && input[0] < KernelSize) throw ShapeError(input, $"at least {KernelSize} steps (the kernel size)");
        return [Units];
    }

    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        return new SequenceEncoderModule(this);
    }

    internal override long StateSize(int[] input)
    {
        long total = Shapes.Values(Vocabulary, EmbeddingSize);
        if (Kind == SequenceEncoderKind.Convolution) return total + Shapes.Values(Units, EmbeddingSize, KernelSize) + Units;
        int gates = Kind switch { SequenceEncoderKind.Lstm => 4, SequenceEncoderKind.Gru => 3, _ => 1 };
        long biases = Shapes.Values(2, gates, Units);
        long first = Shapes.Values(gates, Units, (long)EmbeddingSize + Units) + biases, each = Shapes.Values(gates, Units, 2L * Units) + biases;
        return checked(total + first + (Layers - 1L) * each);
    }

    public override string Describe() =>
        $"SequenceEncoder({Kind}{(Kind == SequenceEncoderKind.Convolution ? $", kernel {KernelSize}" : Layers > 1 ? $" x{Layers}" : "")}, {Units}, vocabulary {Vocabulary}, embedding {EmbeddingSize})";
}

internal sealed class SequenceEncoderModule : nn.Module<Tensor, Tensor>
{
    private readonly TorchSharp.Modules.Embedding embedding;
    private readonly nn.Module encoder;
    private readonly SequenceEncoderKind _kind;
    private readonly int _vocabulary, _kernel;

    public SequenceEncoderModule(SequenceEncoder spec) : base("SequenceEncoder")
    {
        _kind = spec.Kind;
        _vocabulary = spec.Vocabulary;
        _kernel = spec.KernelSize;
        embedding = nn.Embedding(spec.Vocabulary, spec.EmbeddingSize, padding_idx: 0);
        encoder = spec.Kind switch
        {
            SequenceEncoderKind.Lstm => nn.LSTM(spec.EmbeddingSize, spec.Units, numLayers: spec.Layers, batchFirst: true),
            SequenceEncoderKind.Gru => nn.GRU(spec.EmbeddingSize, spec.Units, numLayers: spec.Layers, batchFirst: true),
            SequenceEncoderKind.SimpleRnn => nn.RNN(spec.EmbeddingSize, spec.Units, numLayers: spec.Layers, batchFirst: true),
            _ => nn.Conv1d(spec.EmbeddingSize, spec.Units, spec.KernelSize),
        };
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        var ids = input.round().to(ScalarType.Int64);
        if (ids.numel() > 0 && (ids.min().item<long>() < 0 || ids.max().item<long>() >= _vocabulary))
            throw new ArgumentOutOfRangeException(nameof(input), $"Token ids must be whole numbers from 0 (padding) to {_vocabulary - 1}; the batch holds {ids.min().item<long>()} to {ids.max().item<long>()}.");
        var lengths = ids.ne(0).sum(1); // [n]; the padding is on the right
        var x = embedding.call(ids);    // [n, steps, embedding]
        if (_kind == SequenceEncoderKind.Convolution)
        {
            var features = nn.functional.relu(((TorchSharp.Modules.Conv1d)encoder).call(x.transpose(1, 2))); // [n, units, positions]
            long positions = features.shape[2];
            // A window starting at p covers tokens p .. p + kernel - 1: it counts only when all of them are real tokens.
            var valid = arange(positions, device: ids.device).unsqueeze(0).add(_kernel).le(lengths.unsqueeze(1)); // [n, positions]
            var pooled = features.masked_fill(valid.logical_not().unsqueeze(1), float.NegativeInfinity).amax([2]);
            return pooled.masked_fill(valid.any(1).logical_not().unsqueeze(1), 0f);
        }
        var output = _kind switch
        {
            SequenceEncoderKind.Lstm => ((TorchSharp.Modules.LSTM)encoder).call(x).Item1,
            SequenceEncoderKind.Gru => ((TorchSharp.Modules.GRU)encoder).call(x).Item1,
            _ => ((TorchSharp.Modules.RNN)encoder).call(x).Item1,
        }; // [n, steps, units]
        // The state after each sequence's own last token; the steps after it (padding) never reach it.
        var last = (lengths - 1).clamp_min(0).view(-1, 1, 1).expand(-1, 1, output.shape[2]);
        var state = output.gather(1, last).squeeze(1);
        return state.masked_fill(lengths.eq(0).unsqueeze(1), 0f);
    }
}
