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
/// Reads an ONNX model into a graph <see cref="NetworkSpec"/> with its weights: the operators of the common vision
/// architectures as PyTorch and other exporters write them (convolutions with groups, dilation and padding, pooling
/// with ceil mode, batch and layer normalisation, the ReLU family, Clip, HardSigmoid, HardSwish, Sigmoid times its
/// input, element-wise Add/Sub/Mul/Div, Concat, Split, Slice, Transpose, Reshape and Flatten, Gemm and MatMul, Pad,
/// Resize), with the exporters' shape arithmetic (Shape, Gather, Unsqueeze, Concat, ... of sizes) worked out once at
/// import, and Identity, Dropout and Constant nodes. See <see cref="SupportedOperators"/>.
/// The file is untrusted: it is parsed by Google.Protobuf (OnnxSharp's generated ONNX classes, whose nesting limit
/// refuses deeply nested messages), the node count and graph depth are capped, every size is checked before anything
/// is allocated, the network may hold no more values than the file's weights (so one large initializer read by many
/// nodes is refused before it is copied), each weight is copied once from the file's bytes into its parameter, and an
/// operator or attribute the importer cannot reproduce exactly is an error naming it and its node.
/// </summary>
public static class OnnxImporter
{
    /// <summary>Largest ONNX file read (VGG16's is 528 MB).</summary>
    public const long MaxFileBytes = 2_000_000_000;

    /// <summary>Largest tensor accepted (values).</summary>
    public const long MaxTensorValues = 500_000_000;

    /// <summary>Most nodes in a graph (DenseNet-121 as PyTorch exports it has under 1,000).</summary>
    public const int MaxNodes = 50_000;

    /// <summary>Longest path from the input to the output, in layers.</summary>
    public const int MaxDepth = 10_000;

    /// <summary>The ONNX operators the importer reads.</summary>
    public static IReadOnlyList<string> SupportedOperators { get; } =
    [
        "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv", "ConvTranspose", "Div", "Dropout",
        "Elu", "Flatten", "Gather", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "HardSigmoid", "HardSwish", "Identity", "LayerNormalization", "LeakyRelu",
        "MatMul", "MaxPool", "Mul", "Pad", "ReduceMean", "Relu", "Reshape", "Resize", "Shape", "Sigmoid", "Slice", "Softmax", "Softplus", "Split", "Squeeze",
        "Sub", "Tanh", "Transpose", "Unsqueeze", "Upsample",
    ];

    public static ImportedNetwork Import(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"The ONNX file '{path}' does not exist.", path);
        if (info.Length > MaxFileBytes) throw new InvalidDataException($"'{path}' is {info.Length:N0} bytes; ONNX files of at most {MaxFileBytes:N0} bytes are read.");
        Native.TorchRuntime.EnsureLoaded();
        ModelProto model;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16))
            model = Parse(() => ModelProto.Parser.ParseFrom(stream), Path.GetFileName(path));
        // The parser reads a large field in pieces and then joins them: give those pieces back before the network is built.
        if (info.Length > 4 << 20) GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        return Import(model, Path.GetFileNameWithoutExtension(path));
    }

    public static ImportedNetwork Import(byte[] bytes, string name = "onnx")
    {
        ArgumentNullException.ThrowIfNull(bytes);
        Native.TorchRuntime.EnsureLoaded();
        return Import(Parse(() => ModelProto.Parser.ParseFrom(bytes), name), name);
    }

    private static ModelProto Parse(Func<ModelProto> parse, string name)
    {
        try
        {
            return parse();
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new InvalidDataException($"'{name}' is not a readable ONNX model (damaged or not ONNX): {ex.Message}", ex);
        }
    }

    private static ImportedNetwork Import(ModelProto model, string name)
    {
        if (model.Graph is null || model.Graph.Node.Count == 0) throw new InvalidDataException($"'{name}' holds no ONNX graph.");
        if (model.Graph.Node.Count > MaxNodes) throw new InvalidDataException($"'{name}' has {model.Graph.Node.Count:N0} nodes; the importer reads graphs of at most {MaxNodes:N0}.");
        return new OnnxGraphReader(model.Graph, name).Read();
    }
}
