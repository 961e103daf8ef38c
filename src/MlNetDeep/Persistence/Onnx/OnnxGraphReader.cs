using System.Runtime.InteropServices;
using Google.Protobuf;
using MlNetDeep.Networks;
using Onnx;
using TorchSharp;
using static TorchSharp.torch;
using DataType = Onnx.TensorProto.Types.DataType;

namespace MlNetDeep.Persistence.Onnx;

/// <summary>
/// Turns one ONNX graph into a graph <see cref="NetworkSpec"/>: each node becomes a layer that reads the layers making
/// its inputs, or a value known at import (an initializer, a Constant, the exporters' arithmetic on shapes). Nodes are
/// read in the file's order (ONNX requires a topological one), in one loop: nothing recurses on the file's structure.
/// </summary>
internal sealed class OnnxGraphReader(GraphProto graph, string name)
{
    /// <summary>A batch size in a shape computed at import (the graph's first input dimension).</summary>
    private const long BatchSize = long.MinValue / 2;

    /// <summary>A size computed from the batch size, which no reshape may use.</summary>
    private const long FromBatch = long.MinValue / 4;

    /// <summary>A weight of a layer: an ONNX float tensor, copied straight into the parameter, transposed when asked.</summary>
    private sealed record WeightSource(TensorProto Proto, bool Transpose = false);

    /// <summary>What an ONNX value is: the output of a layer (or the network input, -1) with its sample shape, or a value known at import.</summary>
    private sealed record Value(int Layer, int[] Shape, Known? Constant = null)
    {
        public bool IsKnown => Constant is not null;
    }

    /// <summary>A value known at import: int64 numbers (sizes, axes, pads) or a float tensor stored in the file.</summary>
    private sealed record Known(long[] Dims, long[]? Ints, TensorProto? Floats);

    private readonly Dictionary<string, Value> _values = new(StringComparer.Ordinal);
    private readonly List<Layer> _layers = [];
    private readonly List<int[]> _inputs = [];
    private readonly List<Dictionary<string, WeightSource>> _weights = [];
    private readonly List<string> _nodeNames = [];
    private readonly List<int> _depth = [];
    private readonly List<string> _outputs = [];
    private readonly Dictionary<string, int> _readers = new(StringComparer.Ordinal);
    private long _initializerValues;

    public ImportedNetwork Read()
    {
        foreach (var initializer in graph.Initializer)
        {
            CheckTensor(initializer);
            _initializerValues = checked(_initializerValues + Count(initializer));
            _values[initializer.Name] = new Value(-2, [], new Known(initializer.Dims.ToArray(), null, initializer));
        }
        var input = graph.Input.FirstOrDefault(i => !_values.ContainsKey(i.Name))
            ?? throw new InvalidDataException($"'{name}' has no graph input besides its weights.");
        if (graph.Input.Count(i => !_values.ContainsKey(i.Name)) > 1)
            throw new NotSupportedException($"'{name}' has {graph.Input.Count(i => !_values.ContainsKey(i.Name))} inputs besides its weights; the importer reads networks with one.");
        var inputShape = InputShape(input);
        _values[input.Name] = new Value(-1, inputShape);
        foreach (var node in graph.Node)
            foreach (var source in node.Input)
                if (!string.IsNullOrEmpty(source)) _readers[source] = _readers.GetValueOrDefault(source) + 1;
        foreach (var node in graph.Node) Convert(node);
        if (graph.Output.Count != 1) throw new NotSupportedException($"'{name}' has {graph.Output.Count} outputs; the importer reads networks with one.");
        var output = Get(graph.Output[0].Name, "the graph output");
        if (output.IsKnown || output.Layer < 0) throw new NotSupportedException($"'{name}': the graph output does not depend on the input through any layer.");
        return Build(inputShape, output.Layer);
    }

    // ---------------------------------------------------------------- building the network

    private ImportedNetwork Build(int[] inputShape, int outputLayer)
    {
        // Keep only the layers the output depends on (one backward sweep: the list is in run order).
        var needed = new bool[outputLayer + 1];
        needed[outputLayer] = true;
        for (int i = outputLayer; i >= 0; i--)
            if (needed[i])
                foreach (var s in _inputs[i])
                    if (s >= 0) needed[s] = true;
        // This project's own exports read a flat row and reshape it to an image first: the image is the input.
        int skip = -1;
        if (inputShape.Length == 1 && _layers[0] is Networks.Reshape reshape && _inputs[0] is [-1] && needed[0] &&
            Enumerable.Range(1, outputLayer).All(i => !needed[i] || !_inputs[i].Contains(-1)))
        {
            inputShape = reshape.Shape;
            skip = 0;
        }
        var position = new int[outputLayer + 1];
        var layers = new List<Layer>();
        var inputs = new List<int[]>();
        var weights = new List<Dictionary<string, WeightSource>>();
        var names = new List<string>();
        for (int i = 0; i <= outputLayer; i++)
        {
            if (i == skip) { position[i] = -1; continue; }
            if (!needed[i]) continue;
            position[i] = layers.Count;
            layers.Add(_layers[i]);
            inputs.Add(_inputs[i].Select(s => s < 0 ? -1 : position[s]).ToArray());
            weights.Add(_weights[i]);
            names.Add(_nodeNames[i]);
        }
        if (layers.Count == 0) throw new InvalidDataException($"'{name}' has no layers between its input and its output.");
        var spec = new NetworkSpec(layers) { Name = string.IsNullOrWhiteSpace(graph.Name) ? name : graph.Name, Inputs = inputs };
        if (spec.IsChain) spec = spec with { Inputs = null };
        try
        {
            spec.InferShapes(inputShape);
        }
        catch (InvalidOperationException ex)
        {
            throw new InvalidDataException($"'{name}': {ex.Message}", ex);
        }
        // The network may hold no more values than the file's weights (plus a counter per batch normalisation):
        // a graph that reads one large initializer from many nodes is refused before its copies are allocated.
        // Each layer's weights are copied from the file's bytes as soon as its module exists, and each initializer's
        // bytes are let go after its last reader: the file's copy and the network's never both exist whole.
        var readers = new Dictionary<TensorProto, int>(ReferenceEqualityComparer.Instance);
        foreach (var source in weights.SelectMany(w => w.Values)) readers[source.Proto] = readers.GetValueOrDefault(source.Proto) + 1;
        long released = 0;
        nn.Module<Tensor, Tensor> module;
        using (StateBudget.Limit(checked(_initializerValues + layers.Count), $"the weights of '{name}'"))
        using (no_grad())
            module = spec.Build(inputShape, (i, layer) =>
            {
                Load(weights[i], layer, $"layer {i} ({layers[i].Describe()}, node '{names[i]}')");
                foreach (var source in weights[i].Values)
                    if (--readers[source.Proto] == 0)
                    {
                        released += source.Proto.RawData.Length;
                        source.Proto.RawData = ByteString.Empty;
                    }
                if (released > 16 << 20)
                {
                    GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
                    released = 0;
                }
            });
        module.eval();
        return new ImportedNetwork(spec, inputShape, module);
    }

    /// <summary>Copies a layer's weights from the file's bytes into its module's state, by the last part of each state name.</summary>
    private void Load(Dictionary<string, WeightSource> weights, nn.Module module, string where)
    {
        foreach (var (key, target) in module.state_dict())
        {
            var shortName = key[(key.LastIndexOf('.') + 1)..];
            if (shortName == "num_batches_tracked") continue;
            if (!weights.TryGetValue(shortName, out var source))
                throw new InvalidDataException($"'{name}': {where} needs '{shortName}', which the ONNX node does not give.");
            var dims = source.Proto.Dims.ToArray();
            if (source.Transpose) dims = [.. dims.Reverse()];
            if (Count(source.Proto) != target.numel())
                throw new InvalidDataException($"'{name}': {where} has '{shortName}' ('{source.Proto.Name}') of shape [{string.Join(", ", source.Proto.Dims)}], expected [{string.Join(", ", target.shape)}].");
            if (!source.Transpose)
            {
                Fill(target, source.Proto);
                continue;
            }
            using var stored = empty(source.Proto.Dims.ToArray(), float32);
            Fill(stored, source.Proto);
            target.copy_(stored.t().reshape(target.shape));
        }
    }

    /// <summary>Copies a float tensor's values into a contiguous CPU tensor of as many values, checking each is finite.</summary>
    private void Fill(Tensor target, TensorProto proto)
    {
        if (proto.DataType != (int)DataType.Float) throw new NotSupportedException($"'{name}': weight '{proto.Name}' is of ONNX type {(DataType)proto.DataType}; the importer reads float weights.");
        long count = Count(proto);
        Span<byte> destination = target.bytes;
        if (!proto.RawData.IsEmpty)
        {
            if (proto.RawData.Length != count * 4) throw new InvalidDataException($"'{name}': tensor '{proto.Name}' holds {proto.RawData.Length:N0} bytes for {count:N0} floats.");
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("Reading ONNX raw data needs a little-endian machine.");
            proto.RawData.Span.CopyTo(destination);
        }
        else
        {
            if (proto.FloatData.Count != count) throw new InvalidDataException($"'{name}': tensor '{proto.Name}' holds {proto.FloatData.Count:N0} floats for its shape of {count:N0}.");
            var values = MemoryMarshal.Cast<byte, float>(destination);
            for (int i = 0; i < values.Length; i++) values[i] = proto.FloatData[i];
        }
        foreach (var v in MemoryMarshal.Cast<byte, float>(destination))
            if (!float.IsFinite(v)) throw new InvalidDataException($"'{name}': tensor '{proto.Name}' holds a value that is not a finite number.");
    }

    // ---------------------------------------------------------------- values

    private int[] InputShape(ValueInfoProto input)
    {
        var dims = input.Type?.TensorType?.Shape?.Dim;
        if (dims is null || dims.Count is < 2 or > 5)
            throw new InvalidDataException($"'{name}': the input '{input.Name}' must be [batch, features], [batch, steps, features] or [batch, channels, height, width] with known sizes.");
        var shape = dims.Skip(1).Select(d => d.DimValue).ToArray();
        if (shape.Any(d => d is < 1 or > 65_536))
            throw new InvalidDataException($"'{name}': the input '{input.Name}' has a size that is unknown or out of range ([{string.Join(", ", dims.Select(d => d.DimValue > 0 ? d.DimValue.ToString() : d.DimParam))}]).");
        if (input.Type!.TensorType.ElemType != (int)DataType.Float)
            throw new NotSupportedException($"'{name}': the input '{input.Name}' is of ONNX type {(DataType)input.Type.TensorType.ElemType}; the importer reads networks of float inputs.");
        var sample = shape.Select(d => (int)d).ToArray();
        try
        {
            Networks.Shapes.Product(sample);
        }
        catch (InvalidOperationException ex)
        {
            throw new InvalidDataException($"'{name}': the input '{input.Name}': {ex.Message}", ex);
        }
        return sample;
    }

    private Value Get(string value, string what) =>
        _values.TryGetValue(value, out var v) ? v : throw new InvalidDataException($"'{name}': {what} reads '{value}', which no earlier node makes.");

    private Value In(NodeProto node, int index)
    {
        if (index >= node.Input.Count || string.IsNullOrEmpty(node.Input[index])) throw Unsupported(node, $"lacks its input {index}.");
        return Get(node.Input[index], $"node '{NodeName(node)}'");
    }

    private bool Has(NodeProto node, int index) => index < node.Input.Count && !string.IsNullOrEmpty(node.Input[index]);

    /// <summary>An input that must be a layer's output (or the network's input).</summary>
    private Value Data(NodeProto node, int index = 0)
    {
        var v = In(node, index);
        return v.IsKnown ? throw Unsupported(node, $"reads the constant '{node.Input[index]}' where the importer needs the network's data.") : v;
    }

    /// <summary>An input that must be known at import.</summary>
    private Known KnownInput(NodeProto node, int index)
    {
        var v = In(node, index);
        return v.Constant ?? throw Unsupported(node, $"has a computed input '{node.Input[index]}' where the importer needs a value known at import.");
    }

    private long[] Ints(NodeProto node, int index)
    {
        var known = KnownInput(node, index);
        return IntsOf(known, node, node.Input[index]);
    }

    private long[] IntsOf(Known known, NodeProto node, string what)
    {
        if (known.Ints is not null) return known.Ints;
        var proto = known.Floats!;
        if (proto.DataType is not ((int)DataType.Int64 or (int)DataType.Int32)) throw Unsupported(node, $"needs whole numbers in '{what}', which holds ONNX type {(DataType)proto.DataType}.");
        if (Count(proto) > 1 << 20) throw Unsupported(node, $"reads '{what}' of {Count(proto):N0} whole numbers; at most {1 << 20:N0} are read.");
        int count = (int)Count(proto);
        if (!proto.RawData.IsEmpty)
        {
            int width = proto.DataType == (int)DataType.Int64 ? 8 : 4;
            if (proto.RawData.Length != (long)count * width) throw new InvalidDataException($"'{name}': tensor '{proto.Name}' holds {proto.RawData.Length} bytes for {count} values.");
            return width == 8 ? MemoryMarshal.Cast<byte, long>(proto.RawData.Span).ToArray() : MemoryMarshal.Cast<byte, int>(proto.RawData.Span).ToArray().Select(v => (long)v).ToArray();
        }
        var values = proto.DataType == (int)DataType.Int64 ? proto.Int64Data.ToArray() : proto.Int32Data.Select(v => (long)v).ToArray();
        if (values.Length != count) throw new InvalidDataException($"'{name}': tensor '{proto.Name}' holds {values.Length} values for its shape of {count}.");
        return values;
    }

    /// <summary>A small float value known at import (a Clip bound, a Pad fill), as a number.</summary>
    private float Scalar(NodeProto node, int index)
    {
        var known = KnownInput(node, index);
        if (known.Ints is { Length: 1 } ints) return ints[0];
        var proto = known.Floats!;
        if (Count(proto) != 1 || proto.DataType != (int)DataType.Float) throw Unsupported(node, $"needs one float in '{node.Input[index]}'.");
        return proto.RawData.IsEmpty ? proto.FloatData[0] : BitConverter.ToSingle(proto.RawData.Span);
    }

    private void CheckTensor(TensorProto proto)
    {
        if (proto.Dims.Count > 8 || proto.Dims.Any(d => d < 0)) throw new InvalidDataException($"'{name}': tensor '{proto.Name}' has an invalid shape [{string.Join(", ", proto.Dims)}].");
        long count = 1;
        foreach (var d in proto.Dims)
        {
            count = d == 0 ? 0 : count > OnnxImporter.MaxTensorValues / d ? OnnxImporter.MaxTensorValues + 1 : count * d;
            if (count > OnnxImporter.MaxTensorValues) throw new InvalidDataException($"'{name}': tensor '{proto.Name}' [{string.Join(", ", proto.Dims)}] has more than {OnnxImporter.MaxTensorValues:N0} values.");
        }
        if (proto.DataLocation == TensorProto.Types.DataLocation.External)
            throw new InvalidDataException($"'{name}': tensor '{proto.Name}' is stored in an external file, which the importer does not read.");
    }

    private static long Count(TensorProto proto) => proto.Dims.Aggregate(1L, (a, b) => a * b);

    private static NotSupportedException Unsupported(NodeProto node, string why) => new($"ONNX operator {node.OpType} (node '{NodeName(node)}') {why}");

    private static string NodeName(NodeProto node) => string.IsNullOrEmpty(node.Name) ? string.Join(",", node.Output) : node.Name;

    private static AttributeProto? Attribute(NodeProto node, string key) => node.Attribute.FirstOrDefault(a => a.Name == key);

    private static long Int(NodeProto node, string key, long fallback) => Attribute(node, key)?.I ?? fallback;

    private static long[] Ints(NodeProto node, string key, long[] fallback) => Attribute(node, key) is { } a ? a.Ints.ToArray() : fallback;

    private static string Text(NodeProto node, string key, string fallback) => Attribute(node, key) is { } a ? a.S.ToStringUtf8() : fallback;

    private static string Shape(IEnumerable<int> shape) => $"[{string.Join(", ", shape)}]";

    /// <summary>Adds a layer reading <paramref name="sources"/>; its output is the node's first output.</summary>
    private Value Add(NodeProto node, Layer layer, IReadOnlyList<Value> sources, Dictionary<string, WeightSource>? weights = null, string? output = null)
    {
        int[] shape;
        try
        {
            shape = layer.OutputShape(sources.Select(s => s.Shape).ToArray());
            Networks.Shapes.Product(shape);
        }
        catch (InvalidOperationException ex)
        {
            throw new InvalidDataException($"'{name}': node '{NodeName(node)}' ({node.OpType}) does not fit its input {string.Join(" and ", sources.Select(s => Shape(s.Shape)))}: {ex.Message}", ex);
        }
        int depth = 1 + sources.Select(s => s.Layer < 0 ? 0 : _depth[s.Layer]).DefaultIfEmpty(0).Max();
        if (depth > OnnxImporter.MaxDepth) throw new InvalidDataException($"'{name}': node '{NodeName(node)}' lies {depth:N0} layers deep; the importer reads graphs of at most {OnnxImporter.MaxDepth:N0}.");
        _layers.Add(layer);
        _inputs.Add(sources.Select(s => s.Layer).ToArray());
        _weights.Add(weights ?? []);
        _nodeNames.Add(NodeName(node));
        _depth.Add(depth);
        _outputs.Add(output ?? node.Output[0]);
        var value = new Value(_layers.Count - 1, shape);
        _values[output ?? node.Output[0]] = value;
        return value;
    }

    private Value Add(NodeProto node, Layer layer, Value source, Dictionary<string, WeightSource>? weights = null, string? output = null) =>
        Add(node, layer, [source], weights, output);

    private void Alias(NodeProto node, Value value) => _values[node.Output[0]] = value;

    private void SetKnown(NodeProto node, long[] dims, long[] ints) => _values[node.Output[0]] = new Value(-2, [], new Known(dims, ints, null));

    private WeightSource Weight(NodeProto node, int index, long[]? shape)
    {
        var known = KnownInput(node, index);
        var proto = known.Floats ?? throw Unsupported(node, $"reads whole numbers in '{node.Input[index]}' where it needs float weights.");
        if (proto.DataType != (int)DataType.Float) throw Unsupported(node, $"reads weights '{proto.Name}' of ONNX type {(DataType)proto.DataType}; the importer reads float weights.");
        if (shape is not null && !proto.Dims.SequenceEqual(shape))
            throw new InvalidDataException($"'{name}': node '{NodeName(node)}' ({node.OpType}) has weights '{proto.Name}' of shape [{string.Join(", ", proto.Dims)}], expected [{string.Join(", ", shape)}].");
        return new WeightSource(proto);
    }

    // ---------------------------------------------------------------- operators

    private void Convert(NodeProto node)
    {
        if (node.Output.Count == 0 || string.IsNullOrEmpty(node.Output[0])) throw Unsupported(node, "has no output.");
        if (!string.IsNullOrEmpty(node.Domain) && node.Domain != "ai.onnx") throw Unsupported(node, $"is from the operator set '{node.Domain}', which the importer does not read.");
        switch (node.OpType)
        {
            case "Constant": Constant(node); return;
            case "Identity":
            case "Dropout":
                if (node.Output.Count > 1 && node.Output.Skip(1).Any(o => !string.IsNullOrEmpty(o)) && _readers.GetValueOrDefault(node.Output[1]) > 0)
                    throw Unsupported(node, "with its mask output read is not supported.");
                Alias(node, In(node, 0));
                return;
            case "Relu": Add(node, new Activation(ActivationKind.ReLU), Data(node)); return;
            case "Sigmoid": Add(node, new Activation(ActivationKind.Sigmoid), Data(node)); return;
            case "Tanh": Add(node, new Activation(ActivationKind.Tanh), Data(node)); return;
            case "Softplus": Add(node, new Activation(ActivationKind.Softplus), Data(node)); return;
            case "HardSwish": Add(node, new Activation(ActivationKind.HardSwish), Data(node)); return;
            case "LeakyRelu": Add(node, new Activation(ActivationKind.LeakyReLU, Attribute(node, "alpha")?.F ?? 0.01f), Data(node)); return;
            case "Elu": Add(node, new Activation(ActivationKind.ELU, Attribute(node, "alpha")?.F ?? 1f), Data(node)); return;
            case "HardSigmoid":
            {
                float alpha = Attribute(node, "alpha")?.F ?? 0.2f, beta = Attribute(node, "beta")?.F ?? 0.5f;
                if (Math.Abs(alpha - 1f / 6) > 1e-6 || Math.Abs(beta - 0.5f) > 1e-6)
                    throw Unsupported(node, $"with alpha {alpha} and beta {beta} is not supported (PyTorch's 1/6 and 1/2 are).");
                Add(node, new Activation(ActivationKind.HardSigmoid), Data(node));
                return;
            }
            case "Clip": Clip(node); return;
            case "Softmax":
            {
                var x = Data(node);
                long axis = Int(node, "axis", -1);
                if (axis != -1 && axis != x.Shape.Length) throw Unsupported(node, $"on axis {axis} of a {Shape(x.Shape)} sample is not supported (only over the last axis).");
                Add(node, new Activation(ActivationKind.Softmax), x);
                return;
            }
            case "Flatten":
            {
                long axis = Int(node, "axis", 1);
                if (axis != 1) throw Unsupported(node, $"with axis {axis} is not supported (only 1, keeping the batch).");
                Add(node, new Flatten(), Data(node));
                return;
            }
            case "Reshape": Reshape(node); return;
            case "Transpose": Transpose(node); return;
            case "Conv": Conv(node); return;
            case "ConvTranspose": ConvTranspose(node); return;
            case "MaxPool":
            case "AveragePool": Pool(node); return;
            case "GlobalAveragePool": Add(node, new GlobalAvgPool2D(), Image(node)); return;
            case "GlobalMaxPool":
            {
                var x = Image(node);
                Add(node, new MaxPool2D(x.Shape[1] == x.Shape[2] ? x.Shape[1] : throw Unsupported(node, $"on a non-square image {Shape(x.Shape)} is not supported.")), x);
                return;
            }
            case "ReduceMean": ReduceMean(node); return;
            case "BatchNormalization":
            {
                var x = Data(node);
                if (node.Output.Count > 1 && node.Output.Skip(1).Any(o => !string.IsNullOrEmpty(o))) throw Unsupported(node, "in training mode is not supported.");
                if (x.Shape.Length is not (1 or 3)) throw Unsupported(node, $"on a {Shape(x.Shape)} sample is not supported (features or images).");
                long channels = x.Shape[0];
                Add(node, new BatchNorm(Epsilon: Attribute(node, "epsilon")?.F ?? 1e-5f), x, new()
                {
                    ["weight"] = Weight(node, 1, [channels]), ["bias"] = Weight(node, 2, [channels]),
                    ["running_mean"] = Weight(node, 3, [channels]), ["running_var"] = Weight(node, 4, [channels]),
                });
                return;
            }
            case "LayerNormalization":
            {
                var x = Data(node);
                long axis = Int(node, "axis", -1);
                int rank = x.Shape.Length, axes = axis < 0 ? (int)-axis : rank + 1 - (int)axis;
                if (axes < 1 || axes > rank) throw Unsupported(node, $"from axis {axis} of a {Shape(x.Shape)} sample is not supported (trailing sample axes only).");
                var normalized = x.Shape.Skip(rank - axes).Select(d => (long)d).ToArray();
                var weights = new Dictionary<string, WeightSource> { ["weight"] = Weight(node, 1, normalized) };
                if (!Has(node, 2)) throw Unsupported(node, "without a bias is not supported.");
                weights["bias"] = Weight(node, 2, normalized);
                Add(node, new LayerNorm(axes, Attribute(node, "epsilon")?.F ?? 1e-5f), x, weights);
                return;
            }
            case "Gemm": Gemm(node); return;
            case "MatMul": MatMul(node); return;
            case "Add":
            case "Sub":
            case "Mul":
            case "Div": Arithmetic(node); return;
            case "Concat": Concat(node); return;
            case "Split": Split(node); return;
            case "Slice": Slice(node); return;
            case "Pad": Pad(node); return;
            case "Resize":
            case "Upsample": Resize(node); return;
            case "Shape":
            {
                var x = In(node, 0);
                if (Attribute(node, "start") is not null || Attribute(node, "end") is not null) throw Unsupported(node, "with start or end is not supported.");
                long[] dims = x.IsKnown ? x.Constant!.Dims : [BatchSize, .. x.Shape.Select(d => (long)d)];
                SetKnown(node, [dims.Length], dims);
                return;
            }
            case "Gather": Gather(node); return;
            case "Unsqueeze":
            case "Squeeze": Squeeze(node); return;
            case "Cast":
            {
                var v = In(node, 0);
                if (v.IsKnown && v.Constant!.Ints is not null && Int(node, "to", 0) is (int)DataType.Int64 or (int)DataType.Int32) { Alias(node, v); return; }
                if (!v.IsKnown && Int(node, "to", 0) == (int)DataType.Float) { Alias(node, v); return; }
                throw Unsupported(node, $"to ONNX type {(DataType)Int(node, "to", 0)} is not supported here.");
            }
            case "ConstantOfShape":
            {
                var dims = Ints(node, 0);
                if (dims.Length > 8 || dims.Any(d => d is < 0 or > 1 << 20) || dims.Aggregate(1L, (a, b) => a * b) > 1 << 20)
                    throw Unsupported(node, $"of shape [{string.Join(", ", dims)}] is not supported (whole-number sizes known at import, at most {1 << 20:N0} values).");
                var value = Attribute(node, "value")?.T;
                if (value is not null && value.DataType != (int)DataType.Int64) throw Unsupported(node, "of a non-integer value is not supported.");
                long fill = value is null ? 0 : IntsOf(new Known(value.Dims.ToArray(), null, value), node, "value").FirstOrDefault();
                SetKnown(node, dims, Enumerable.Repeat(fill, (int)dims.Aggregate(1L, (a, b) => a * b)).ToArray());
                return;
            }
            default:
                throw Unsupported(node, $"is not supported by the ONNX importer (supported: {string.Join(", ", OnnxImporter.SupportedOperators)}).");
        }
    }

    private void Constant(NodeProto node)
    {
        var attribute = node.Attribute.FirstOrDefault() ?? throw Unsupported(node, "holds no value.");
        switch (attribute.Name)
        {
            case "value":
                CheckTensor(attribute.T);
                _values[node.Output[0]] = new Value(-2, [], new Known(attribute.T.Dims.ToArray(), null, attribute.T));
                return;
            case "value_int": SetKnown(node, [], [attribute.I]); return;
            case "value_ints": SetKnown(node, [attribute.Ints.Count], attribute.Ints.ToArray()); return;
            default: throw Unsupported(node, $"with a '{attribute.Name}' value is not supported.");
        }
    }

    private Value Image(NodeProto node)
    {
        var x = Data(node);
        if (x.Shape.Length != 3) throw Unsupported(node, $"needs an image input [channels, height, width], not {Shape(x.Shape)}.");
        return x;
    }

    private void Clip(NodeProto node)
    {
        var x = Data(node);
        float min = Attribute(node, "min")?.F ?? float.NegativeInfinity, max = Attribute(node, "max")?.F ?? float.PositiveInfinity;
        if (Has(node, 1)) min = Scalar(node, 1);
        if (Has(node, 2)) max = Scalar(node, 2);
        if (min == 0 && max == 6) Add(node, new Activation(ActivationKind.ReLU6), x);
        else if (min == 0 && float.IsPositiveInfinity(max)) Add(node, new Activation(ActivationKind.ReLU), x);
        else Add(node, new Networks.Clip(min, max), x);
    }

    /// <summary>Kernel, strides, pads [top, left, bottom, right] and dilation of a window operator on an image.</summary>
    private (int Kernel, int Stride, long[] Pads, int Dilation, bool Same) Window(NodeProto node, Value x, bool pool)
    {
        if (x.Shape.Length != 3) throw Unsupported(node, $"needs an image input [channels, height, width], not {Shape(x.Shape)}.");
        var kernel = Ints(node, "kernel_shape", []);
        if (kernel.Length == 0 && !pool && Has(node, 1)) kernel = KnownInput(node, 1).Dims.Skip(2).ToArray();
        var strides = Ints(node, "strides", [1, 1]);
        var pads = Ints(node, "pads", [0, 0, 0, 0]);
        var dilations = Ints(node, "dilations", [1, 1]);
        if (kernel.Length != 2 || kernel[0] != kernel[1] || kernel[0] is < 1 or > 4096) throw Unsupported(node, $"with kernel [{string.Join(", ", kernel)}] is not supported (square kernels of 1 to 4,096).");
        if (strides.Length != 2 || strides[0] != strides[1] || strides[0] is < 1 or > 4096) throw Unsupported(node, $"with strides [{string.Join(", ", strides)}] is not supported (equal strides of 1 to 4,096).");
        if (dilations.Length != 2 || dilations[0] != dilations[1] || dilations[0] is < 1 or > 4096 || (pool && dilations[0] != 1))
            throw Unsupported(node, $"with dilations [{string.Join(", ", dilations)}] is not supported{(pool ? "" : " (equal dilations)")}.");
        if (pads.Length != 4 || pads.Any(p => p is < 0 or > 4096)) throw Unsupported(node, $"with pads [{string.Join(", ", pads)}] is not supported.");
        string autoPad = Text(node, "auto_pad", "NOTSET");
        if (autoPad is not ("NOTSET" or "VALID" or "SAME_UPPER" or ""))
            throw Unsupported(node, $"with auto_pad {autoPad} is not supported (give explicit pads, or SAME_UPPER).");
        if (autoPad == "VALID") pads = [0, 0, 0, 0];
        return ((int)kernel[0], (int)strides[0], pads, (int)dilations[0], autoPad == "SAME_UPPER");
    }

    /// <summary>ONNX pads [top, left, bottom, right] as one pad on every side, or null when they differ.</summary>
    private static int? Symmetric(long[] pads) => pads.All(p => p == pads[0]) ? (int)pads[0] : null;

    /// <summary>A Pad2D layer in front of a window operator whose pads differ by side.</summary>
    private Value Padded(NodeProto node, Value x, long[] pads, PadFill fill) =>
        Add(node, new Pad2D((int)pads[0], (int)pads[2], (int)pads[1], (int)pads[3], fill), x, output: node.Output[0] + "#pad");

    private void Conv(NodeProto node)
    {
        var x = Data(node);
        var (kernel, stride, pads, dilation, same) = Window(node, x, pool: false);
        long groups = Int(node, "group", 1);
        if (groups < 1 || x.Shape[0] % groups != 0) throw Unsupported(node, $"with group {groups} does not divide its {x.Shape[0]} input channels.");
        var w = Weight(node, 1, null);
        var dims = w.Proto.Dims;
        if (dims.Count != 4 || dims[1] * groups != x.Shape[0] || dims[2] != kernel || dims[3] != kernel || dims[0] % groups != 0)
            throw new InvalidDataException($"'{name}': node '{NodeName(node)}' (Conv) has weights [{string.Join(", ", dims)}] for {x.Shape[0]} input channels in {groups} groups and a {kernel}x{kernel} kernel.");
        int filters = (int)dims[0];
        bool bias = Has(node, 2);
        var weights = new Dictionary<string, WeightSource> { ["weight"] = w };
        if (bias) weights["bias"] = Weight(node, 2, [filters]);
        Conv2D layer;
        if (same) layer = new Conv2D(filters, kernel, stride, PaddingMode.Same, UseBias: bias, Groups: (int)groups, Dilation: dilation);
        else if (Symmetric(pads) is { } pad) layer = new Conv2D(filters, kernel, stride, UseBias: bias, Groups: (int)groups, Dilation: dilation, Pad: pad == 0 ? null : pad);
        else
        {
            x = Padded(node, x, pads, PadFill.Zero);
            layer = new Conv2D(filters, kernel, stride, UseBias: bias, Groups: (int)groups, Dilation: dilation);
        }
        Add(node, layer, x, weights);
    }

    /// <summary>A transposed convolution as <see cref="ConvTranspose2D"/> writes it: "valid" (no pads), or "same" (its crop and output padding).</summary>
    private void ConvTranspose(NodeProto node)
    {
        var x = Data(node);
        var (kernel, stride, pads, dilation, same) = Window(node, x, pool: false);
        if (dilation != 1 || same || Int(node, "group", 1) != 1 || Attribute(node, "output_shape") is not null)
            throw Unsupported(node, "with dilation, groups, auto_pad or an output shape is not supported.");
        var outputPadding = Ints(node, "output_padding", [0, 0]);
        var w = Weight(node, 1, null);
        var dims = w.Proto.Dims;
        if (dims.Count != 4 || dims[0] != x.Shape[0] || dims[2] != kernel || dims[3] != kernel)
            throw new InvalidDataException($"'{name}': node '{NodeName(node)}' (ConvTranspose) has weights [{string.Join(", ", dims)}] for {x.Shape[0]} input channels and a {kernel}x{kernel} kernel.");
        int filters = (int)dims[1], crop = Math.Max(kernel - stride, 0), extra = Math.Max(stride - kernel, 0);
        PaddingMode padding;
        if (pads.All(p => p == 0) && outputPadding.All(p => p == 0)) padding = PaddingMode.Valid;
        else if (pads.SequenceEqual(new long[] { crop / 2, crop / 2, crop - crop / 2, crop - crop / 2 }) && outputPadding.All(p => p == extra)) padding = PaddingMode.Same;
        else throw Unsupported(node, $"with pads [{string.Join(", ", pads)}] and output padding [{string.Join(", ", outputPadding)}] is not supported (valid, or Keras' same).");
        bool bias = Has(node, 2);
        var weights = new Dictionary<string, WeightSource> { ["weight"] = w };
        if (bias) weights["bias"] = Weight(node, 2, [filters]);
        Add(node, new ConvTranspose2D(filters, kernel, stride, padding, UseBias: bias), x, weights);
    }

    private void Pool(NodeProto node)
    {
        var x = Data(node);
        var (kernel, stride, pads, _, same) = Window(node, x, pool: true);
        bool max = node.OpType == "MaxPool", ceil = Int(node, "ceil_mode", 0) != 0, countPad = Int(node, "count_include_pad", 0) != 0;
        if (max && node.Output.Count > 1 && _readers.GetValueOrDefault(node.Output[1]) > 0) throw Unsupported(node, "with its indices output read is not supported.");
        if (Int(node, "storage_order", 0) != 0) throw Unsupported(node, "with storage_order 1 is not supported.");
        int pad = 0;
        if (same)
        {
            if (!max && !countPad) throw Unsupported(node, "with auto_pad SAME_UPPER and count_include_pad 0 is not supported.");
            Add(node, max ? new MaxPool2D(kernel, stride, PaddingMode.Same) : new AvgPool2D(kernel, stride, PaddingMode.Same), x);
            return;
        }
        if (Symmetric(pads) is { } symmetric && symmetric <= kernel / 2) pad = symmetric;
        else if (pads.Any(p => p > 0))
        {
            if (!max && !countPad) throw Unsupported(node, $"with pads [{string.Join(", ", pads)}] and count_include_pad 0 is not supported (uneven pads).");
            x = Padded(node, x, pads, max ? PadFill.Minimum : PadFill.Zero);
        }
        Add(node, max ? new MaxPool2D(kernel, stride, Pad: pad, CeilMode: ceil) : new AvgPool2D(kernel, stride, Pad: pad, CeilMode: ceil, CountIncludePad: countPad || pad == 0), x);
    }

    private void ReduceMean(NodeProto node)
    {
        var x = Image(node);
        var axes = Ints(node, "axes", []).Select(a => a < 0 ? a + 4 : a).OrderBy(a => a).ToArray();
        if (!axes.SequenceEqual(new long[] { 2, 3 })) throw Unsupported(node, $"over axes [{string.Join(", ", Ints(node, "axes", []))}] is not supported (height and width).");
        var pooled = Add(node, new GlobalAvgPool2D(), x, output: Int(node, "keepdims", 1) != 0 ? null : node.Output[0] + "#pooled");
        if (Int(node, "keepdims", 1) == 0) Add(node, new Flatten(), pooled);
    }

    private void Gemm(NodeProto node)
    {
        var x = Data(node);
        if (x.Shape.Length != 1) throw Unsupported(node, $"on a {Shape(x.Shape)} sample needs a Flatten first.");
        if (Int(node, "transA", 0) != 0) throw Unsupported(node, "with transA 1 is not supported.");
        if ((Attribute(node, "alpha")?.F ?? 1f) != 1f || (Attribute(node, "beta")?.F ?? 1f) != 1f) throw Unsupported(node, "with alpha or beta other than 1 is not supported.");
        var w = Weight(node, 1, null);
        var dims = w.Proto.Dims;
        if (dims.Count != 2) throw Unsupported(node, "needs a weight matrix.");
        bool transposed = Int(node, "transB", 0) != 0;
        long inputs = transposed ? dims[1] : dims[0], units = transposed ? dims[0] : dims[1];
        if (inputs != x.Shape[0]) throw new InvalidDataException($"'{name}': node '{NodeName(node)}' (Gemm) has weights for {inputs} inputs, but its input has {x.Shape[0]}.");
        var weights = new Dictionary<string, WeightSource> { ["weight"] = w with { Transpose = !transposed } };
        bool bias = Has(node, 2);
        if (bias)
        {
            var b = Weight(node, 2, null);
            if (Count(b.Proto) != units) throw Unsupported(node, $"with a bias of shape [{string.Join(", ", b.Proto.Dims)}] is not supported (one value per output).");
            weights["bias"] = b;
        }
        Add(node, new Dense((int)units, UseBias: bias), x, weights);
    }

    private void MatMul(NodeProto node)
    {
        var x = Data(node);
        if (x.Shape.Length is not (1 or 2)) throw Unsupported(node, $"on a {Shape(x.Shape)} sample is not supported (a vector or a sequence times a weight matrix).");
        var w = Weight(node, 1, null);
        if (w.Proto.Dims.Count != 2 || w.Proto.Dims[0] != x.Shape[^1]) throw Unsupported(node, $"with weights [{string.Join(", ", w.Proto.Dims)}] does not fit its input of {x.Shape[^1]}.");
        Add(node, new Dense((int)w.Proto.Dims[1], UseBias: false), x, new() { ["weight"] = w with { Transpose = true } });
    }

    private void Arithmetic(NodeProto node)
    {
        if (node.Input.Count != 2) throw Unsupported(node, "needs two inputs.");
        Value a = In(node, 0), b = In(node, 1);
        if (a.IsKnown && b.IsKnown)
        {
            // Sizes computed from sizes (the exporters' shape arithmetic).
            var x = IntsOf(a.Constant!, node, node.Input[0]);
            var y = IntsOf(b.Constant!, node, node.Input[1]);
            if (x.Length != y.Length && x.Length != 1 && y.Length != 1) throw Unsupported(node, "on sizes of different lengths is not supported.");
            int n = Math.Max(x.Length, y.Length);
            var result = new long[n];
            for (int i = 0; i < n; i++)
            {
                long p = x[x.Length == 1 ? 0 : i], q = y[y.Length == 1 ? 0 : i];
                result[i] = p <= FromBatch || q <= FromBatch ? FromBatch : node.OpType switch
                {
                    "Add" => p + q, "Sub" => p - q, "Mul" => p * q,
                    _ => q == 0 ? throw Unsupported(node, "divides a size by zero.") : (long)Math.Floor((double)p / q),
                };
            }
            SetKnown(node, (a.Constant!.Dims.Length >= b.Constant!.Dims.Length ? a.Constant : b.Constant).Dims, result);
            return;
        }
        if (!a.IsKnown && !b.IsKnown)
        {
            Add(node, node.OpType switch { "Add" => new Networks.Add(), "Sub" => new Subtract(), "Mul" => new Multiply(), _ => (Layer)new Divide() }, [a, b]);
            return;
        }
        var (data, constant, constantIndex) = a.IsKnown ? (b, a.Constant!, 0) : (a, b.Constant!, 1);
        var proto = constant.Floats;
        // x W + b after a MatMul read by nothing else: the bias of that Dense layer.
        if (node.OpType == "Add" && proto is not null && data.Layer >= 0 && _layers[data.Layer] is Dense { UseBias: false } dense &&
            _readers.GetValueOrDefault(MatMulOutput(data.Layer)) == 1 && Count(proto) == dense.Units)
        {
            _layers[data.Layer] = dense with { UseBias = true };
            _weights[data.Layer]["bias"] = Weight(node, constantIndex, null);
            Alias(node, data);
            return;
        }
        if (proto is null || proto.DataType != (int)DataType.Float) throw Unsupported(node, $"with the whole-number constant '{node.Input[constantIndex]}' on the network's data is not supported.");
        // A constant operand (a scale, a shift): its own layer, broadcast against the data as ONNX broadcasts.
        var dims = proto.Dims.ToArray();
        int rank = data.Shape.Length;
        if (dims.Length == rank + 1 && dims[0] == 1) dims = dims[1..];
        if (dims.Length > rank) throw Unsupported(node, $"with a constant of shape [{string.Join(", ", proto.Dims)}] against a {Shape(data.Shape)} sample is not supported.");
        var sample = Enumerable.Repeat(1, rank - dims.Length).Concat(dims.Select(d => (int)d)).ToArray();
        var constantLayer = Add(node, new ConstantTensor(sample), [], new() { ["value"] = new WeightSource(proto) }, output: node.Output[0] + "#constant");
        Layer op = node.OpType switch { "Add" => new Networks.Add(), "Sub" => new Subtract(), "Mul" => new Multiply(), _ => new Divide() };
        Add(node, op, constantIndex == 0 ? [constantLayer, data] : [data, constantLayer]);
    }

    /// <summary>The ONNX value name a layer wrote (its node's first output).</summary>
    private string MatMulOutput(int layer) => _outputs[layer];

    private void Concat(NodeProto node)
    {
        long axis = Int(node, "axis", 0);
        var inputs = Enumerable.Range(0, node.Input.Count).Select(i => In(node, i)).ToArray();
        if (inputs.Length == 0) throw Unsupported(node, "has no input.");
        if (inputs.All(v => v.IsKnown))
        {
            var parts = inputs.Select((v, i) => IntsOf(v.Constant!, node, node.Input[i])).ToArray();
            if (inputs.Any(v => v.Constant!.Dims.Length > 1)) throw Unsupported(node, "of sizes with more than one axis is not supported.");
            var joined = parts.SelectMany(p => p).ToArray();
            SetKnown(node, [joined.Length], joined);
            return;
        }
        if (inputs.Any(v => v.IsKnown)) throw Unsupported(node, "joining the network's data with constants is not supported.");
        int rank = inputs[0].Shape.Length;
        long resolved = axis < 0 ? axis + rank + 1 : axis;
        if (resolved < 1 || resolved > rank) throw Unsupported(node, $"on axis {axis} is not supported (a sample axis, not the batch).");
        if (inputs.Length == 1) { Alias(node, inputs[0]); return; }
        Add(node, new Networks.Concat((int)resolved - 1), inputs);
    }

    private void Split(NodeProto node)
    {
        var x = Data(node);
        long axis = Int(node, "axis", 0);
        int rank = x.Shape.Length;
        long resolved = axis < 0 ? axis + rank + 1 : axis;
        if (resolved < 1 || resolved > rank) throw Unsupported(node, $"on axis {axis} is not supported (a sample axis, not the batch).");
        int size = x.Shape[resolved - 1];
        long[] parts = Has(node, 1) ? Ints(node, 1) : Ints(node, "split", []);
        if (parts.Length == 0)
        {
            if (size % node.Output.Count != 0) throw Unsupported(node, $"into {node.Output.Count} equal parts of {size} is not supported.");
            parts = Enumerable.Repeat((long)(size / node.Output.Count), node.Output.Count).ToArray();
        }
        if (parts.Length != node.Output.Count || parts.Any(p => p < 1) || parts.Sum() != size)
            throw Unsupported(node, $"into [{string.Join(", ", parts)}] does not divide the {size} elements of axis {axis} among {node.Output.Count} outputs.");
        long start = 0;
        for (int i = 0; i < parts.Length; i++)
        {
            if (!string.IsNullOrEmpty(node.Output[i]))
                Add(node, new Networks.Slice((int)resolved - 1, (int)start, (int)(start + parts[i])), x, output: node.Output[i]);
            start += parts[i];
        }
    }

    private void Slice(NodeProto node)
    {
        var v = In(node, 0);
        long[] starts, ends, axes, steps;
        if (Has(node, 1))
        {
            starts = Ints(node, 1);
            ends = Ints(node, 2);
            axes = Has(node, 3) ? Ints(node, 3) : Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray();
            steps = Has(node, 4) ? Ints(node, 4) : Enumerable.Repeat(1L, starts.Length).ToArray();
        }
        else
        {
            starts = Ints(node, "starts", []);
            ends = Ints(node, "ends", []);
            axes = Ints(node, "axes", Enumerable.Range(0, starts.Length).Select(i => (long)i).ToArray());
            steps = Enumerable.Repeat(1L, starts.Length).ToArray();
        }
        if (starts.Length != ends.Length || axes.Length != starts.Length || steps.Length != starts.Length || starts.Length == 0)
            throw Unsupported(node, "has starts, ends, axes and steps of different lengths.");
        if (v.IsKnown)
        {
            var values = IntsOf(v.Constant!, node, node.Input[0]);
            if (v.Constant!.Dims.Length != 1 || axes is not ([0] or [-1]) || steps[0] != 1) throw Unsupported(node, "of sizes is supported on one axis with step 1.");
            long n = values.Length;
            long from = Math.Clamp(starts[0] < 0 ? starts[0] + n : starts[0], 0, n), to = Math.Clamp(ends[0] < 0 ? ends[0] + n : ends[0], 0, n);
            var sliced = values.Skip((int)from).Take((int)Math.Max(to - from, 0)).ToArray();
            SetKnown(node, [sliced.Length], sliced);
            return;
        }
        int rank = v.Shape.Length;
        var current = v;
        for (int i = 0; i < axes.Length; i++)
        {
            long axis = axes[i] < 0 ? axes[i] + rank + 1 : axes[i];
            if (axis < 1 || axis > rank) throw Unsupported(node, $"on axis {axes[i]} is not supported (a sample axis, not the batch).");
            if (steps[i] < 1) throw Unsupported(node, $"with step {steps[i]} is not supported (positive steps).");
            int size = current.Shape[axis - 1];
            long Bound(long p) => Math.Clamp(p < 0 ? p + size : p, 0, size);
            long start = Bound(starts[i]), end = Bound(ends[i]);
            if (start == 0 && end == size && steps[i] == 1) continue;
            current = Add(node, new Networks.Slice((int)axis - 1, (int)start, (int)end, (int)steps[i]), current, output: i == axes.Length - 1 ? null : $"{node.Output[0]}#{i}");
        }
        Alias(node, current);
    }

    private void Reshape(NodeProto node)
    {
        var x = In(node, 0);
        var dims = Ints(node, 1);
        if (x.IsKnown)
        {
            var ints = IntsOf(x.Constant!, node, node.Input[0]);
            if (dims.Any(d => d < -1)) throw Unsupported(node, "of sizes to a shape holding the batch is not supported.");
            long known = dims.Where(d => d > 0).Aggregate(1L, (a, b) => a * b);
            var target = dims.Select(d => d == -1 ? ints.Length / Math.Max(known, 1) : d).ToArray();
            if (target.Aggregate(1L, (a, b) => a * b) != ints.Length) throw Unsupported(node, $"of {ints.Length} sizes to [{string.Join(", ", dims)}] does not fit.");
            SetKnown(node, target, ints);
            return;
        }
        if (dims.Length < 1 || !(dims[0] == BatchSize || dims[0] is -1 or 0 or 1))
            throw Unsupported(node, $"to [{string.Join(", ", dims.Select(Describe))}] is not supported (the batch must stay the first axis).");
        if (dims.Skip(1).Any(d => d <= FromBatch || d < -1)) throw Unsupported(node, $"to [{string.Join(", ", dims.Select(Describe))}] depends on the batch size beyond its first axis.");
        var sample = dims.Skip(1).Select((d, i) => d == 0 ? (i < x.Shape.Length ? x.Shape[i] : throw Unsupported(node, "copies an axis its input lacks.")) : d).ToArray();
        int total = x.Shape.Aggregate(1, (a, b) => a * b);
        int inferred = sample.Count(d => d == -1);
        if (inferred > 1) throw Unsupported(node, "infers more than one size.");
        long product = sample.Where(d => d != -1).Aggregate(1L, (a, b) => a * b);
        if (inferred == 1)
        {
            if (product == 0 || total % product != 0) throw Unsupported(node, $"to [{string.Join(", ", dims.Select(Describe))}] does not fit a sample of {total} values.");
            sample = sample.Select(d => d == -1 ? total / product : d).ToArray();
        }
        if (sample.Length == 0 || sample.Any(d => d < 1) || sample.Aggregate(1L, (a, b) => a * b) != total)
            throw Unsupported(node, $"to [{string.Join(", ", dims.Select(Describe))}] does not fit a sample of {total} values ({Shape(x.Shape)}).");
        if (sample.Length == 1) { Add(node, new Flatten(), x); return; }
        if (sample.SequenceEqual(x.Shape.Select(d => (long)d))) { Alias(node, x); return; }
        Add(node, new Networks.Reshape(sample.Select(d => (int)d).ToArray()), x);
    }

    private static string Describe(long size) => size == BatchSize ? "batch" : size <= FromBatch ? "(from the batch)" : size.ToString();

    private void Transpose(NodeProto node)
    {
        var x = Data(node);
        var perm = Ints(node, "perm", Enumerable.Range(0, x.Shape.Length + 1).Reverse().Select(i => (long)i).ToArray());
        if (perm.Length != x.Shape.Length + 1 || perm[0] != 0) throw Unsupported(node, $"with perm [{string.Join(", ", perm)}] is not supported (the batch must stay first).");
        Add(node, new Networks.Transpose(perm.Skip(1).Select(p => (int)p - 1).ToArray()), x);
    }

    private void Pad(NodeProto node)
    {
        var x = Image(node);
        string mode = Text(node, "mode", "constant");
        if (mode != "constant") throw Unsupported(node, $"in mode {mode} is not supported (only constant).");
        var p = Has(node, 1) ? Ints(node, 1) : Ints(node, "pads", []); // [n0, c0, h0, w0, n1, c1, h1, w1]
        if (Has(node, 3)) throw Unsupported(node, "with axes is not supported.");
        if (p.Length != 8) throw Unsupported(node, "needs 8 pads for an [N, C, H, W] input.");
        if (p[0] != 0 || p[1] != 0 || p[4] != 0 || p[5] != 0 || p.Any(v => v is < 0 or > 4096)) throw Unsupported(node, "pads only height and width here, by 0 to 4,096 pixels.");
        float fill = Has(node, 2) ? Scalar(node, 2) : Attribute(node, "value")?.F ?? 0f;
        if (fill != 0 && !float.IsNegativeInfinity(fill)) throw Unsupported(node, $"with a fill of {fill} is not supported (0 or minus infinity).");
        Add(node, new Pad2D((int)p[2], (int)p[6], (int)p[3], (int)p[7], fill == 0 ? PadFill.Zero : PadFill.Minimum), x);
    }

    private void Resize(NodeProto node)
    {
        var x = Image(node);
        if (Text(node, "mode", "nearest") != "nearest") throw Unsupported(node, $"in mode {Text(node, "mode", "")} is not supported (nearest).");
        int scalesInput = node.OpType == "Upsample" ? 1 : 2;
        float[] scales;
        if (Has(node, scalesInput))
        {
            var proto = KnownInput(node, scalesInput).Floats;
            if (proto is null || proto.DataType != (int)DataType.Float || Count(proto) != 4) throw Unsupported(node, "needs 4 float scales.");
            scales = proto.RawData.IsEmpty ? proto.FloatData.ToArray() : MemoryMarshal.Cast<byte, float>(proto.RawData.Span).ToArray();
        }
        else if (Has(node, 3))
        {
            var sizes = Ints(node, 3);
            if (sizes.Length != 4) throw Unsupported(node, "needs 4 sizes.");
            scales = [1, 1, (float)sizes[2] / x.Shape[1], (float)sizes[3] / x.Shape[2]];
        }
        else throw Unsupported(node, "gives neither scales nor sizes.");
        if (scales[0] != 1 || scales[1] != 1 || scales[2] != scales[3] || scales[2] != MathF.Round(scales[2]) || scales[2] is < 1 or > 64)
            throw Unsupported(node, $"by [{string.Join(", ", scales)}] is not supported (the same whole factor on height and width).");
        if (node.OpType == "Resize" && (Text(node, "coordinate_transformation_mode", "half_pixel") is not ("asymmetric" or "half_pixel" or "pytorch_half_pixel") ||
            Text(node, "nearest_mode", "round_prefer_floor") is not ("floor" or "round_prefer_floor" or "round_prefer_ceil")))
            throw Unsupported(node, "with these coordinate or rounding modes is not supported.");
        Add(node, new Upsample2D((int)scales[2]), x);
    }

    private void Gather(NodeProto node)
    {
        var data = In(node, 0);
        if (!data.IsKnown) throw Unsupported(node, "on the network's data is not supported (only on sizes known at import).");
        var values = IntsOf(data.Constant!, node, node.Input[0]);
        var indices = KnownInput(node, 1);
        var picks = IntsOf(indices, node, node.Input[1]);
        if (data.Constant!.Dims.Length != 1 || Int(node, "axis", 0) != 0) throw Unsupported(node, "is supported on a vector of sizes, on axis 0.");
        var result = picks.Select(i => i < -values.Length || i >= values.Length ? throw Unsupported(node, $"picks {i} of {values.Length} sizes.") : values[i < 0 ? i + values.Length : i]).ToArray();
        SetKnown(node, indices.Dims, result);
    }

    private void Squeeze(NodeProto node)
    {
        var v = In(node, 0);
        if (!v.IsKnown) throw Unsupported(node, "on the network's data is not supported (only on sizes known at import).");
        var axes = Has(node, 1) ? Ints(node, 1) : Ints(node, "axes", []);
        var dims = v.Constant!.Dims;
        long[] result;
        if (node.OpType == "Unsqueeze")
        {
            var list = dims.ToList();
            int rank = dims.Length + axes.Length;
            foreach (var a in axes.Select(a => a < 0 ? a + rank : a).OrderBy(a => a))
            {
                if (a < 0 || a > list.Count) throw Unsupported(node, $"on axis {a} is out of range.");
                list.Insert((int)a, 1);
            }
            result = list.ToArray();
        }
        else
        {
            var drop = axes.Length == 0 ? Enumerable.Range(0, dims.Length).Where(i => dims[i] == 1).Select(i => (long)i).ToHashSet()
                : axes.Select(a => a < 0 ? a + dims.Length : a).ToHashSet();
            result = dims.Where((d, i) => !drop.Contains(i)).ToArray();
        }
        _values[node.Output[0]] = new Value(-2, [], v.Constant with { Dims = result });
    }
}

