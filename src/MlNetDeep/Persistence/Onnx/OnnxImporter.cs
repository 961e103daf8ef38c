using Google.Protobuf;
using MlNetDeep.Networks;
using Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Persistence.Onnx;

/// <summary>A network read from an ONNX file: its layer spec, the shape of one input sample, and the module with the file's weights (owned by the caller).</summary>
public sealed class ImportedNetwork : IDisposable
{
    internal ImportedNetwork(NetworkSpec network, int[] inputShape, nn.Module<Tensor, Tensor> module)
    {
        Network = network;
        InputShape = inputShape;
        Module = module;
    }

    public NetworkSpec Network { get; }

    /// <summary>One sample's shape, e.g. [3, 224, 224] (the batch dimension left out).</summary>
    public int[] InputShape { get; }

    /// <summary>The network built from <see cref="Network"/>, with the file's weights, in eval mode, on the CPU.</summary>
    public nn.Module<Tensor, Tensor> Module { get; }

    public void Dispose() => Module.Dispose();
}

/// <summary>
/// Reads an ONNX model made of the common vision operators into a <see cref="NetworkSpec"/> with its weights: Conv,
/// Gemm, MatMul (+ Add of a bias), Relu, LeakyRelu, Elu, Sigmoid, Tanh, Softmax, MaxPool, AveragePool,
/// GlobalAveragePool, BatchNormalization, Flatten, Reshape (to flatten, or from a flat input to an image), Dropout,
/// Identity, Pad (constant), and Add of two branches (residual blocks, with or without a shortcut projection). The file
/// is parsed by Google.Protobuf (OnnxSharp's generated ONNX classes); every size is checked before anything is
/// allocated, and an operator or attribute the importer cannot reproduce exactly is an error naming it and its node.
/// </summary>
public static class OnnxImporter
{
    /// <summary>Largest ONNX file read (VGG16's is 528 MB).</summary>
    public const long MaxFileBytes = 2_000_000_000;

    /// <summary>Largest tensor accepted (values).</summary>
    public const long MaxTensorValues = 500_000_000;

    public static ImportedNetwork Import(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"The ONNX file '{path}' does not exist.", path);
        if (info.Length > MaxFileBytes) throw new InvalidDataException($"'{path}' is {info.Length:N0} bytes; ONNX files of at most {MaxFileBytes:N0} bytes are read.");
        return Import(File.ReadAllBytes(path), Path.GetFileNameWithoutExtension(path));
    }

    public static ImportedNetwork Import(byte[] bytes, string name = "onnx")
    {
        ArgumentNullException.ThrowIfNull(bytes);
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new InvalidDataException($"'{name}' is not a readable ONNX model (damaged or not ONNX): {ex.Message}", ex);
        }
        if (model.Graph is null || model.Graph.Node.Count == 0) throw new InvalidDataException($"'{name}' holds no ONNX graph.");
        return new Reader(model.Graph, name).Read();
    }

    /// <summary>A layer of the imported chain with its weights (by the names its module's state uses: weight, bias, running_mean, running_var).</summary>
    private sealed record Piece(Layer Layer, Dictionary<string, Tensor> Weights, List<Piece>? Body = null, List<Piece>? Shortcut = null);

    /// <summary>A value of the graph: made by <see cref="Piece"/> from <see cref="Parent"/> (the graph input has neither).</summary>
    private sealed class Value(Value? parent, Piece? piece, int[] shape)
    {
        public Value? Parent { get; } = parent;
        public Piece? Piece { get; } = piece;
        public int[] Shape { get; } = shape;
    }

    private sealed class Reader(GraphProto graph, string name)
    {
        private readonly Dictionary<string, TensorProto> _constants = new(StringComparer.Ordinal);
        private readonly Dictionary<string, Value> _values = new(StringComparer.Ordinal);
        private readonly List<Tensor> _made = [];
        private int[] _inputShape = [];

        public ImportedNetwork Read()
        {
            try
            {
                foreach (var initializer in graph.Initializer) _constants[initializer.Name] = initializer;
                var input = graph.Input.FirstOrDefault(i => !_constants.ContainsKey(i.Name))
                    ?? throw new InvalidDataException($"'{name}' has no graph input besides its weights.");
                _inputShape = InputShape(input);
                _values[input.Name] = new Value(null, null, _inputShape);
                foreach (var node in graph.Node) Convert(node);
                if (graph.Output.Count != 1) throw new InvalidDataException($"'{name}' has {graph.Output.Count} outputs; the importer reads networks with one.");
                var output = Get(graph.Output[0].Name, "the graph output");
                var pieces = Chain(output, null);
                var inputShape = _inputShape;
                // A flat input reshaped to an image first (this project's own exports): the image is the input.
                if (pieces.Count > 0 && pieces[0].Layer is Reshape { Shape.Length: 3 } reshape && inputShape.Length == 1)
                {
                    inputShape = reshape.Shape;
                    pieces.RemoveAt(0);
                }
                if (pieces.Count == 0) throw new InvalidDataException($"'{name}' has no layers between its input and its output.");
                var spec = new NetworkSpec(pieces.Select(p => p.Layer)) { Name = string.IsNullOrWhiteSpace(graph.Name) ? name : graph.Name };
                spec.InferShapes(inputShape);
                var module = spec.Build(inputShape);
                try
                {
                    var layers = module.children().ToList();
                    for (int i = 0; i < pieces.Count; i++) Load(pieces[i], layers[i], $"layer {i} ({pieces[i].Layer.Describe()})");
                }
                catch
                {
                    module.Dispose();
                    throw;
                }
                module.eval();
                return new ImportedNetwork(spec, inputShape, module);
            }
            finally
            {
                foreach (var tensor in _made) tensor.Dispose();
            }
        }

        private int[] InputShape(ValueInfoProto input)
        {
            var dims = input.Type?.TensorType?.Shape?.Dim;
            if (dims is null || dims.Count is < 2 or > 4)
                throw new InvalidDataException($"'{name}': the input '{input.Name}' must be [batch, features] or [batch, channels, height, width] with known sizes.");
            var shape = dims.Skip(1).Select(d => d.DimValue).ToArray();
            if (shape.Any(d => d is < 1 or > 65_536))
                throw new InvalidDataException($"'{name}': the input '{input.Name}' has a size that is unknown or out of range ([{string.Join(", ", dims.Select(d => d.DimValue > 0 ? d.DimValue.ToString() : d.DimParam))}]).");
            return shape.Select(d => (int)d).ToArray();
        }

        private Value Get(string value, string what) =>
            _values.TryGetValue(value, out var v) ? v : throw new InvalidDataException($"'{name}': {what} reads '{value}', which no earlier node makes (the importer reads one chain from the input).");

        private static NotSupportedException Unsupported(NodeProto node, string why) =>
            new($"ONNX operator {node.OpType} (node '{NodeName(node)}') {why}");

        private static string NodeName(NodeProto node) => string.IsNullOrEmpty(node.Name) ? string.Join(",", node.Output) : node.Name;

        private void Add(NodeProto node, Value parent, Layer layer, Dictionary<string, Tensor>? weights = null)
        {
            int[] shape;
            try
            {
                shape = layer.OutputShape(parent.Shape);
            }
            catch (InvalidOperationException ex)
            {
                throw new InvalidDataException($"'{name}': node '{NodeName(node)}' ({node.OpType}) does not fit its input [{string.Join(", ", parent.Shape)}]: {ex.Message}", ex);
            }
            _values[node.Output[0]] = new Value(parent, new Piece(layer, weights ?? []), shape);
        }

        private void Convert(NodeProto node)
        {
            if (node.Output.Count == 0) throw Unsupported(node, "has no output.");
            switch (node.OpType)
            {
                case "Constant":
                    _constants[node.Output[0]] = Attribute(node, "value")?.T ?? throw Unsupported(node, "holds no tensor value.");
                    return;
                case "Identity":
                case "Dropout":
                    _values[node.Output[0]] = Get(node.Input[0], $"node '{NodeName(node)}'");
                    return;
                case "Relu": Add(node, Input(node), new Activation(ActivationKind.ReLU)); return;
                case "Sigmoid": Add(node, Input(node), new Activation(ActivationKind.Sigmoid)); return;
                case "Tanh": Add(node, Input(node), new Activation(ActivationKind.Tanh)); return;
                case "LeakyRelu": Add(node, Input(node), new Activation(ActivationKind.LeakyReLU, Attribute(node, "alpha")?.F ?? 0.01f)); return;
                case "Elu": Add(node, Input(node), new Activation(ActivationKind.ELU, Attribute(node, "alpha")?.F ?? 1f)); return;
                case "Softmax":
                {
                    var x = Input(node);
                    long axis = Attribute(node, "axis")?.I ?? -1;
                    if (x.Shape.Length != 1 || axis is not (-1 or 1)) throw Unsupported(node, $"on axis {axis} of a [{string.Join(", ", x.Shape)}] sample is not supported (only over a flat vector).");
                    Add(node, x, new Activation(ActivationKind.Softmax));
                    return;
                }
                case "Flatten":
                {
                    long axis = Attribute(node, "axis")?.I ?? 1;
                    if (axis != 1) throw Unsupported(node, $"with axis {axis} is not supported (only 1, keeping the batch).");
                    Add(node, Input(node), new Flatten());
                    return;
                }
                case "Reshape": Reshape(node); return;
                case "Conv": Conv(node); return;
                case "MaxPool":
                case "AveragePool": Pool(node); return;
                case "GlobalAveragePool": Add(node, Input(node), new GlobalAvgPool2D()); return;
                case "BatchNormalization":
                {
                    var x = Input(node);
                    if (node.Output.Count > 1 && node.Output.Skip(1).Any(o => !string.IsNullOrEmpty(o))) throw Unsupported(node, "in training mode is not supported.");
                    int channels = x.Shape[0];
                    Add(node, x, new BatchNorm(Epsilon: Attribute(node, "epsilon")?.F ?? 1e-5f), new()
                    {
                        ["weight"] = Weight(node, 1, [channels]), ["bias"] = Weight(node, 2, [channels]),
                        ["running_mean"] = Weight(node, 3, [channels]), ["running_var"] = Weight(node, 4, [channels]),
                    });
                    return;
                }
                case "Gemm": Gemm(node); return;
                case "MatMul":
                {
                    var x = Input(node);
                    if (x.Shape.Length != 1) throw Unsupported(node, $"on a [{string.Join(", ", x.Shape)}] sample is not supported (only a flat vector times a weight matrix).");
                    var w = Weight(node, 1, null);
                    if (w.dim() != 2 || w.shape[0] != x.Shape[0]) throw Unsupported(node, $"with weights [{string.Join(", ", w.shape)}] does not fit its input of {x.Shape[0]}.");
                    Add(node, x, new Dense((int)w.shape[1], UseBias: false), new() { ["weight"] = Keep(w.t().contiguous()) });
                    return;
                }
                case "Add": AddNode(node); return;
                case "Pad": Pad(node); return;
                default:
                    throw Unsupported(node, "is not supported by the ONNX importer (supported: Conv, Gemm, MatMul, Add, Relu, LeakyRelu, Elu, Sigmoid, Tanh, Softmax, MaxPool, AveragePool, " +
                        "GlobalAveragePool, BatchNormalization, Flatten, Reshape, Pad, Dropout, Identity, Constant).");
            }
        }

        private Value Input(NodeProto node) =>
            node.Input.Count == 0 ? throw Unsupported(node, "has no input.") : Get(node.Input[0], $"node '{NodeName(node)}'");

        private static AttributeProto? Attribute(NodeProto node, string key) => node.Attribute.FirstOrDefault(a => a.Name == key);

        private static long[] Ints(NodeProto node, string key, long[] fallback) => Attribute(node, key) is { } a ? a.Ints.ToArray() : fallback;

        /// <summary>A constant input of a node as a float tensor, its shape checked against <paramref name="shape"/> when given.</summary>
        private Tensor Weight(NodeProto node, int index, long[]? shape)
        {
            if (index >= node.Input.Count || string.IsNullOrEmpty(node.Input[index])) throw Unsupported(node, $"lacks its input {index}.");
            if (!_constants.TryGetValue(node.Input[index], out var proto))
                throw Unsupported(node, $"has a computed input '{node.Input[index]}' where the importer needs stored weights.");
            var tensor = Keep(ToTensor(proto, node));
            if (shape is not null && !tensor.shape.SequenceEqual(shape))
                throw new InvalidDataException($"'{name}': node '{NodeName(node)}' ({node.OpType}) has weights '{proto.Name}' of shape [{string.Join(", ", tensor.shape)}], expected [{string.Join(", ", shape)}].");
            return tensor;
        }

        private Tensor Keep(Tensor tensor)
        {
            _made.Add(tensor);
            return tensor;
        }

        /// <summary>A stored ONNX tensor (float, or int64 for shapes) as a TorchSharp tensor; sizes are checked before anything is allocated.</summary>
        private Tensor ToTensor(TensorProto proto, NodeProto node)
        {
            if (proto.Dims.Count > 8 || proto.Dims.Any(d => d < 0)) throw new InvalidDataException($"'{name}': tensor '{proto.Name}' has an invalid shape [{string.Join(", ", proto.Dims)}].");
            long count = 1;
            foreach (var d in proto.Dims)
            {
                count = d == 0 ? 0 : count > MaxTensorValues / d ? MaxTensorValues + 1 : count * d;
                if (count > MaxTensorValues) throw new InvalidDataException($"'{name}': tensor '{proto.Name}' [{string.Join(", ", proto.Dims)}] has more than {MaxTensorValues:N0} values.");
            }
            var shape = proto.Dims.ToArray();
            if (proto.DataLocation == TensorProto.Types.DataLocation.External)
                throw new InvalidDataException($"'{name}': tensor '{proto.Name}' is stored in an external file, which the importer does not read.");
            switch ((TensorProto.Types.DataType)proto.DataType)
            {
                case TensorProto.Types.DataType.Float:
                {
                    float[] values;
                    if (!proto.RawData.IsEmpty)
                    {
                        if (proto.RawData.Length != count * 4) throw new InvalidDataException($"'{name}': tensor '{proto.Name}' holds {proto.RawData.Length} bytes for {count} floats.");
                        values = new float[count];
                        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(proto.RawData.Span).CopyTo(values);
                        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("Reading ONNX raw data needs a little-endian machine.");
                    }
                    else
                    {
                        if (proto.FloatData.Count != count) throw new InvalidDataException($"'{name}': tensor '{proto.Name}' holds {proto.FloatData.Count} floats for its shape of {count}.");
                        values = proto.FloatData.ToArray();
                    }
                    if (values.Any(v => !float.IsFinite(v))) throw new InvalidDataException($"'{name}': tensor '{proto.Name}' holds a value that is not a finite number.");
                    return tensor(values, shape);
                }
                case TensorProto.Types.DataType.Int64:
                {
                    long[] values;
                    if (!proto.RawData.IsEmpty)
                    {
                        if (proto.RawData.Length != count * 8) throw new InvalidDataException($"'{name}': tensor '{proto.Name}' holds {proto.RawData.Length} bytes for {count} int64 values.");
                        values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(proto.RawData.Span).ToArray();
                    }
                    else
                    {
                        if (proto.Int64Data.Count != count) throw new InvalidDataException($"'{name}': tensor '{proto.Name}' holds {proto.Int64Data.Count} int64 values for its shape of {count}.");
                        values = proto.Int64Data.ToArray();
                    }
                    return tensor(values, shape);
                }
                default:
                    throw Unsupported(node, $"reads tensor '{proto.Name}' of ONNX data type {(TensorProto.Types.DataType)proto.DataType}; the importer reads float weights and int64 shapes.");
            }
        }

        private void Reshape(NodeProto node)
        {
            var x = Input(node);
            var target = Weight(node, 1, null);
            if (target.dtype != ScalarType.Int64) throw Unsupported(node, "has a shape that is not int64.");
            var dims = target.data<long>().ToArray();
            int total = x.Shape.Aggregate(1, (a, b) => a * b);
            if (dims.Length == 2 && (dims[1] == -1 || dims[1] == total) && dims[0] is -1 or 0 or 1)
            {
                Add(node, x, new Flatten());
                return;
            }
            if (dims.Length is 2 or 4 && dims[0] is -1 or 0 or 1 && dims.Skip(1).All(d => d > 0))
            {
                Add(node, x, new Networks.Reshape(dims.Skip(1).Select(d => (int)d).ToArray()));
                return;
            }
            throw Unsupported(node, $"to [{string.Join(", ", dims)}] is not supported (only flattening, or reshaping one sample keeping the batch first).");
        }

        private (int Kernel, int Stride, long[] Pads) Window(NodeProto node, Value x)
        {
            if (x.Shape.Length != 3) throw Unsupported(node, $"needs an image input [channels, height, width], not [{string.Join(", ", x.Shape)}].");
            var kernel = Ints(node, "kernel_shape", []);
            var strides = Ints(node, "strides", [1, 1]);
            var pads = Ints(node, "pads", [0, 0, 0, 0]);
            var dilations = Ints(node, "dilations", [1, 1]);
            if (kernel.Length != 2 || kernel[0] != kernel[1] || kernel[0] is < 1 or > 64) throw Unsupported(node, $"with kernel [{string.Join(", ", kernel)}] is not supported (square kernels of 1 to 64).");
            if (strides.Length != 2 || strides[0] != strides[1] || strides[0] is < 1 or > 64) throw Unsupported(node, $"with strides [{string.Join(", ", strides)}] is not supported (equal strides of 1 to 64).");
            if (dilations.Any(d => d != 1)) throw Unsupported(node, $"with dilations [{string.Join(", ", dilations)}] is not supported.");
            if (pads.Length != 4 || pads.Any(p => p is < 0 or > 64)) throw Unsupported(node, $"with pads [{string.Join(", ", pads)}] is not supported.");
            if ((Attribute(node, "auto_pad")?.S.ToStringUtf8() ?? "NOTSET") is not ("NOTSET" or "VALID" or ""))
                throw Unsupported(node, $"with auto_pad {Attribute(node, "auto_pad")!.S.ToStringUtf8()} is not supported (give explicit pads).");
            if ((Attribute(node, "ceil_mode")?.I ?? 0) != 0) throw Unsupported(node, "with ceil_mode 1 is not supported.");
            return ((int)kernel[0], (int)strides[0], pads);
        }

        /// <summary>ONNX pads [top, left, bottom, right] before a window layer: nothing, or a Pad2D layer.</summary>
        private Value Padded(NodeProto node, Value x, long[] pads, PadFill fill)
        {
            if (pads.All(p => p == 0)) return x;
            var layer = new Pad2D((int)pads[0], (int)pads[2], (int)pads[1], (int)pads[3], fill);
            return new Value(x, new Piece(layer, []), layer.OutputShape(x.Shape));
        }

        private void Conv(NodeProto node)
        {
            var x = Input(node);
            var (kernel, stride, pads) = Window(node, x);
            if ((Attribute(node, "group")?.I ?? 1) != 1) throw Unsupported(node, $"with group {Attribute(node, "group")!.I} is not supported.");
            var w = Weight(node, 1, null);
            if (w.dim() != 4 || w.shape[1] != x.Shape[0] || w.shape[2] != kernel || w.shape[3] != kernel)
                throw new InvalidDataException($"'{name}': node '{NodeName(node)}' (Conv) has weights [{string.Join(", ", w.shape)}] for {x.Shape[0]} input channels and a {kernel}x{kernel} kernel.");
            int filters = (int)w.shape[0];
            bool bias = node.Input.Count > 2 && !string.IsNullOrEmpty(node.Input[2]);
            var weights = new Dictionary<string, Tensor> { ["weight"] = w };
            if (bias) weights["bias"] = Weight(node, 2, [filters]);
            // Symmetric pads that are also Keras' "same" for this size become Conv2D's own same padding; others a Pad2D layer.
            var (top, bottom) = SamePads(x.Shape[1], kernel, stride);
            var (left, right) = SamePads(x.Shape[2], kernel, stride);
            bool same = pads.Any(p => p > 0) && pads[0] == top && pads[2] == bottom && pads[1] == left && pads[3] == right && top == bottom && left == right;
            var source = same ? x : Padded(node, x, pads, PadFill.Zero);
            Add(node, source, new Conv2D(filters, kernel, stride, same ? PaddingMode.Same : PaddingMode.Valid, UseBias: bias), weights);
        }

        private static (int Before, int After) SamePads(int size, int kernel, int stride)
        {
            int outSize = (size + stride - 1) / stride;
            int total = Math.Max((outSize - 1) * stride + kernel - size, 0);
            return (total / 2, total - total / 2);
        }

        private void Pool(NodeProto node)
        {
            var x = Input(node);
            var (kernel, stride, pads) = Window(node, x);
            bool max = node.OpType == "MaxPool";
            if (!max && pads.Any(p => p > 0) && (Attribute(node, "count_include_pad")?.I ?? 0) == 0)
                throw Unsupported(node, "with pads and count_include_pad 0 is not supported (the padded pixels would have to be left out of each mean).");
            if (max && node.Output.Count > 1 && !string.IsNullOrEmpty(node.Output[1])) throw Unsupported(node, "with an indices output is not supported.");
            var source = Padded(node, x, pads, max ? PadFill.Minimum : PadFill.Zero);
            Add(node, source, max ? new MaxPool2D(kernel, stride) : new AvgPool2D(kernel, stride));
        }

        private void Pad(NodeProto node)
        {
            var x = Input(node);
            string mode = Attribute(node, "mode")?.S.ToStringUtf8() ?? "constant";
            if (mode != "constant") throw Unsupported(node, $"in mode {mode} is not supported (only constant).");
            var pads = Weight(node, 1, null);
            if (pads.dtype != ScalarType.Int64 || pads.numel() != 8) throw Unsupported(node, "needs 8 int64 pads for an [N, C, H, W] input.");
            var p = pads.data<long>().ToArray(); // [n0, c0, h0, w0, n1, c1, h1, w1]
            if (p[0] != 0 || p[1] != 0 || p[4] != 0 || p[5] != 0 || p.Any(v => v is < 0 or > 4096)) throw Unsupported(node, "pads only height and width here.");
            if (node.Input.Count > 2 && !string.IsNullOrEmpty(node.Input[2]) && Weight(node, 2, null).item<float>() != 0) throw Unsupported(node, "with a fill other than 0 is not supported.");
            var layer = new Pad2D((int)p[2], (int)p[6], (int)p[3], (int)p[7]);
            Add(node, x, layer);
        }

        private void Gemm(NodeProto node)
        {
            var x = Input(node);
            if (x.Shape.Length != 1) throw Unsupported(node, $"on a [{string.Join(", ", x.Shape)}] sample needs a Flatten first.");
            if ((Attribute(node, "transA")?.I ?? 0) != 0) throw Unsupported(node, "with transA 1 is not supported.");
            if ((Attribute(node, "alpha")?.F ?? 1f) != 1f || (Attribute(node, "beta")?.F ?? 1f) != 1f) throw Unsupported(node, "with alpha or beta other than 1 is not supported.");
            var w = Weight(node, 1, null);
            if (w.dim() != 2) throw Unsupported(node, "needs a weight matrix.");
            if ((Attribute(node, "transB")?.I ?? 0) == 0) w = Keep(w.t().contiguous());
            if (w.shape[1] != x.Shape[0]) throw new InvalidDataException($"'{name}': node '{NodeName(node)}' (Gemm) has weights for {w.shape[1]} inputs, but its input has {x.Shape[0]}.");
            int units = (int)w.shape[0];
            var weights = new Dictionary<string, Tensor> { ["weight"] = w };
            bool bias = node.Input.Count > 2 && !string.IsNullOrEmpty(node.Input[2]);
            if (bias)
            {
                var b = Weight(node, 2, null);
                if (b.numel() != units) throw Unsupported(node, $"with a bias of shape [{string.Join(", ", b.shape)}] is not supported (one value per output).");
                weights["bias"] = Keep(b.reshape(units));
            }
            Add(node, x, new Dense(units, UseBias: bias), weights);
        }

        private void AddNode(NodeProto node)
        {
            if (node.Input.Count != 2) throw Unsupported(node, "needs two inputs.");
            bool constantA = _constants.ContainsKey(node.Input[0]), constantB = _constants.ContainsKey(node.Input[1]);
            if (constantA || constantB)
            {
                // x W + b after a MatMul: the bias of that Dense layer.
                var x = Get(node.Input[constantA ? 1 : 0], $"node '{NodeName(node)}'");
                if (x.Piece is not { Layer: Dense { UseBias: false } dense } piece || x.Parent is null)
                    throw Unsupported(node, "adds a constant to something other than a MatMul's output, which is not supported.");
                var b = Weight(node, constantA ? 0 : 1, null);
                if (b.numel() != dense.Units) throw Unsupported(node, $"adds [{string.Join(", ", b.shape)}] to {dense.Units} outputs.");
                var weights = new Dictionary<string, Tensor>(piece.Weights) { ["bias"] = Keep(b.reshape(dense.Units)) };
                Add(node, x.Parent, dense with { UseBias = true }, weights);
                return;
            }
            var a = Get(node.Input[0], $"node '{NodeName(node)}'");
            var c = Get(node.Input[1], $"node '{NodeName(node)}'");
            var ancestorsOfA = new HashSet<Value>(ReferenceEqualityComparer.Instance);
            for (var v = a; v is not null; v = v.Parent) ancestorsOfA.Add(v);
            Value? common = c;
            while (common is not null && !ancestorsOfA.Contains(common)) common = common.Parent;
            if (common is null) throw Unsupported(node, "adds two values that do not branch from one value, which is not supported.");
            var left = Chain(a, common);
            var right = Chain(c, common);
            if (left.Count == 0 && right.Count == 0) throw Unsupported(node, "adds a value to itself, which is not supported.");
            var (body, shortcut) = left.Count >= right.Count ? (left, right) : (right, left);
            var layer = new Residual(body.Select(p => p.Layer).ToArray(), shortcut.Count == 0 ? null : shortcut.Select(p => p.Layer).ToArray());
            _values[node.Output[0]] = new Value(common, new Piece(layer, [], body, shortcut.Count == 0 ? null : shortcut), layer.OutputShape(common.Shape));
        }

        /// <summary>The pieces from <paramref name="stop"/> (exclusive; null: the graph input) to <paramref name="value"/>, in order.</summary>
        private List<Piece> Chain(Value value, Value? stop)
        {
            var pieces = new List<Piece>();
            for (var v = value; !ReferenceEquals(v, stop); v = v.Parent)
            {
                if (v is null) throw new InvalidDataException($"'{name}': a branch does not lead back to the value it branched from.");
                if (v.Piece is not null) pieces.Add(v.Piece);
            }
            pieces.Reverse();
            return pieces;
        }

        /// <summary>Copies a piece's weights into its module: by the last part of each state name; a residual block's body and shortcut in turn.</summary>
        private void Load(Piece piece, nn.Module module, string where)
        {
            if (piece.Body is not null)
            {
                var parts = module.named_children().ToDictionary(c => c.name, c => c.module);
                var body = parts["body"].children().ToList();
                for (int i = 0; i < piece.Body.Count; i++) Load(piece.Body[i], body[i], $"{where}, body layer {i}");
                if (piece.Shortcut is not null)
                {
                    var shortcut = parts["shortcut"].children().ToList();
                    for (int i = 0; i < piece.Shortcut.Count; i++) Load(piece.Shortcut[i], shortcut[i], $"{where}, shortcut layer {i}");
                }
                return;
            }
            using var noGrad = no_grad();
            foreach (var (key, target) in module.state_dict())
            {
                var shortName = key[(key.LastIndexOf('.') + 1)..];
                if (shortName == "num_batches_tracked") continue;
                if (!piece.Weights.TryGetValue(shortName, out var source))
                    throw new InvalidDataException($"'{name}': {where} needs '{shortName}', which the ONNX node does not give.");
                if (!source.shape.SequenceEqual(target.shape))
                    throw new InvalidDataException($"'{name}': {where} has '{shortName}' of shape [{string.Join(", ", source.shape)}], expected [{string.Join(", ", target.shape)}].");
                target.copy_(source);
            }
        }
    }
}
