using Google.Protobuf;
using Onnx;

namespace MlNetDeep.Persistence.Onnx;

/// <summary>
/// An ONNX graph being assembled: nodes, initializers, one float input and float outputs, written as an ONNX
/// ModelProto with OnnxSharp's generated classes (Google.Protobuf), the same classes the importer reads with.
/// </summary>
internal sealed class OnnxGraph
{
    public const int Opset = 17;

    private readonly GraphProto _graph = new();
    private int _next;

    public string NewName(string hint) => $"{hint}_{_next++}";

    public string Initializer(string hint, float[] values, long[] dims)
    {
        var tensor = new TensorProto
        {
            Name = NewName(hint), DataType = (int)TensorProto.Types.DataType.Float,
            RawData = UnsafeByteOperations.UnsafeWrap(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray()),
        };
        tensor.Dims.AddRange(dims);
        _graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    public string Int64Initializer(string hint, long[] values)
    {
        var tensor = new TensorProto
        {
            Name = NewName(hint), DataType = (int)TensorProto.Types.DataType.Int64,
            RawData = UnsafeByteOperations.UnsafeWrap(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray()),
        };
        tensor.Dims.Add(values.Length);
        _graph.Initializer.Add(tensor);
        return tensor.Name;
    }

    /// <summary>Adds a node; attributes are (name, value) with value a float, double, long, int, long[] or string. Returns its output name.</summary>
    public string Node(string op, string[] inputs, params (string Name, object Value)[] attributes)
    {
        var output = NewName(op.ToLowerInvariant());
        var node = new NodeProto { OpType = op, Name = output };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        foreach (var (name, value) in attributes)
        {
            var attribute = new AttributeProto { Name = name };
            switch (value)
            {
                case float f: attribute.F = f; attribute.Type = AttributeProto.Types.AttributeType.Float; break;
                case double d: attribute.F = (float)d; attribute.Type = AttributeProto.Types.AttributeType.Float; break;
                case long l: attribute.I = l; attribute.Type = AttributeProto.Types.AttributeType.Int; break;
                case int i: attribute.I = i; attribute.Type = AttributeProto.Types.AttributeType.Int; break;
                case long[] ints: attribute.Ints.AddRange(ints); attribute.Type = AttributeProto.Types.AttributeType.Ints; break;
                case string text: attribute.S = ByteString.CopyFromUtf8(text); attribute.Type = AttributeProto.Types.AttributeType.String; break;
                default: throw new ArgumentException($"Unsupported ONNX attribute value {value?.GetType().Name}.");
            }
            node.Attribute.Add(attribute);
        }
        _graph.Node.Add(node);
        return output;
    }

    /// <summary>The ModelProto bytes with <paramref name="input"/> [N, inputWidth] and <paramref name="output"/> [N, outputWidth].</summary>
    public byte[] ToModel(string graphName, string input, int inputWidth, string lastNode, string output, int outputWidth) =>
        ToModel(graphName, input, inputWidth, [(lastNode, output, outputWidth)]);

    /// <summary>A model with one input [N, inputWidth] and several outputs [N, width], each the named node's result under its output name.</summary>
    public byte[] ToModel(string graphName, string input, int inputWidth, IReadOnlyList<(string Node, string Output, int Width)> outputs)
    {
        // Each output node's result is renamed to the requested output name with an Identity node.
        foreach (var (lastNode, output, _) in outputs)
        {
            var identity = new NodeProto { OpType = "Identity", Name = output };
            identity.Input.Add(lastNode);
            identity.Output.Add(output);
            _graph.Node.Add(identity);
        }
        _graph.Name = graphName;
        _graph.Input.Add(ValueInfo(input, inputWidth));
        foreach (var (_, output, width) in outputs) _graph.Output.Add(ValueInfo(output, width));
        var model = new ModelProto { IrVersion = 8, ProducerName = "MlNetDeep", Graph = _graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        return model.ToByteArray();
    }

    /// <summary>A float tensor [N, width] with a symbolic batch.</summary>
    private static ValueInfoProto ValueInfo(string name, int width)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = "N" });
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = width });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } } };
    }
}
