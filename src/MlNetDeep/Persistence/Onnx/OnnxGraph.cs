namespace MlNetDeep.Persistence.Onnx;

/// <summary>
/// An ONNX graph being assembled: nodes, float initializers, one float input and one float output, encoded to an ONNX
/// ModelProto (field numbers from onnx.proto). Only what MlNetDeep's layers need.
/// </summary>
internal sealed class OnnxGraph
{
    public const int Opset = 17;
    private const int FloatType = 1, Int64Type = 7;
    private const int AttrFloat = 1, AttrInt = 2, AttrString = 3, AttrInts = 7;

    private readonly List<Action<ProtoWriter>> _nodes = [];
    private readonly List<Action<ProtoWriter>> _initializers = [];
    private int _next;

    public string NewName(string hint) => $"{hint}_{_next++}";

    public string Initializer(string hint, float[] values, long[] dims)
    {
        var name = NewName(hint);
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        _initializers.Add(w => w.Message(5, t =>
        {
            foreach (var d in dims) t.Varint(1, d);
            t.Varint(2, FloatType).String(8, name).Bytes(9, bytes);
        }));
        return name;
    }

    public string Int64Initializer(string hint, long[] values)
    {
        var name = NewName(hint);
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        _initializers.Add(w => w.Message(5, t => t.Varint(1, values.Length).Varint(2, Int64Type).String(8, name).Bytes(9, bytes)));
        return name;
    }

    /// <summary>Adds a node; attributes are (name, value) with value a float, long, long[] or string. Returns its output name.</summary>
    public string Node(string op, string[] inputs, params (string Name, object Value)[] attributes)
    {
        var output = NewName(op.ToLowerInvariant());
        _nodes.Add(w => w.Message(1, n =>
        {
            foreach (var input in inputs) n.String(1, input);
            n.String(2, output).String(3, output).String(4, op);
            foreach (var (name, value) in attributes)
                n.Message(5, a =>
                {
                    a.String(1, name);
                    switch (value)
                    {
                        case float f: a.Float(2, f).Varint(20, AttrFloat); break;
                        case double d: a.Float(2, (float)d).Varint(20, AttrFloat); break;
                        case long l: a.Varint(3, l).Varint(20, AttrInt); break;
                        case int i: a.Varint(3, i).Varint(20, AttrInt); break;
                        case long[] ints: foreach (var v in ints) a.Varint(8, v); a.Varint(20, AttrInts); break;
                        case string text: a.String(4, text).Varint(20, AttrString); break;
                        default: throw new ArgumentException($"Unsupported ONNX attribute value {value?.GetType().Name}.");
                    }
                });
        }));
        return output;
    }

    /// <summary>The ModelProto bytes with <paramref name="input"/> [N, inputWidth] and <paramref name="output"/> [N, outputWidth].</summary>
    public byte[] ToModel(string graphName, string input, int inputWidth, string lastNode, string output, int outputWidth) =>
        ToModel(graphName, input, inputWidth, [(lastNode, output, outputWidth)]);

    /// <summary>A model with one input [N, inputWidth] and several outputs [N, width], each the named node's result under its output name.</summary>
    public byte[] ToModel(string graphName, string input, int inputWidth, IReadOnlyList<(string Node, string Output, int Width)> outputs)
    {
        // Rename each output node's result to the requested output name with an Identity node.
        foreach (var (lastNode, output, _) in outputs)
            _nodes.Add(w => w.Message(1, n => n.String(1, lastNode).String(2, output).String(3, output).String(4, "Identity")));
        var model = new ProtoWriter()
            .Varint(1, 8) // ir_version
            .String(2, "MlNetDeep")
            .Message(8, o => o.String(1, "").Varint(2, Opset));
        model.Message(7, g =>
        {
            foreach (var node in _nodes) node(g);
            g.String(2, graphName);
            foreach (var init in _initializers) init(g);
            g.Message(11, v => ValueInfo(v, input, inputWidth));
            foreach (var (_, output, width) in outputs) g.Message(12, v => ValueInfo(v, output, width));
        });
        return model.ToArray();
    }

    private static void ValueInfo(ProtoWriter v, string name, int width) =>
        v.String(1, name).Message(2, t => t.Message(1, tensor => tensor.Varint(1, FloatType).Message(2, shape =>
        {
            shape.Message(1, d => d.String(2, "N"));
            shape.Message(1, d => d.Varint(1, width));
        })));
}
