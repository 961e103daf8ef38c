using System.Diagnostics;
using Google.Protobuf;
using MlNetDeep.Persistence.Onnx;
using Onnx;

namespace MlNetDeep.Tests;

/// <summary>
/// Crafted ONNX files: each is refused with a one-line error naming its cause before the importer allocates for it,
/// and nothing recurses on the file's structure (the deep case runs in a child process with a small stack).
/// </summary>
public class OnnxHardeningTests
{
    private static ValueInfoProto FloatInput(string name, params long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } } };
    }

    private static ModelProto Model(GraphProto graph)
    {
        var model = new ModelProto { IrVersion = 8, Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Version = 13 });
        return model;
    }

    private static NodeProto Node(string op, string output, params string[] inputs)
    {
        var node = new NodeProto { OpType = op, Name = output };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        return node;
    }

    /// <summary>A chain of <paramref name="count"/> Relu nodes from a [1, 4] input.</summary>
    private static GraphProto Chain(int count)
    {
        var graph = new GraphProto { Name = "chain" };
        graph.Input.Add(FloatInput("x", 1, 4));
        string previous = "x";
        for (int i = 0; i < count; i++)
        {
            graph.Node.Add(Node("Relu", $"r{i}", previous));
            previous = $"r{i}";
        }
        graph.Output.Add(FloatInput(previous, 1, 4));
        return graph;
    }

    private static string Refusal<T>(GraphProto graph, string name) where T : Exception
    {
        var message = Assert.Throws<T>(() => OnnxImporter.Import(Model(graph).ToByteArray(), name)).Message;
        Assert.DoesNotContain('\n', message);
        return message;
    }

    [Fact]
    public void TooManyNodesAreRefusedBeforeAnyLayerIsMade()
    {
        var message = Refusal<InvalidDataException>(Chain(100_000), "wide");
        Assert.Contains("100,000 nodes", message);
    }

    [Fact]
    public void AGraphDeeperThanTheLimitIsRefused()
    {
        var message = Refusal<InvalidDataException>(Chain(OnnxImporter.MaxDepth + 5), "deep");
        Assert.Contains("layers deep", message);
    }

    [Fact]
    public void OneLargeInitializerReadByAThousandNodesIsRefusedBeforeItIsCopied()
    {
        const int width = 600; // 360,000 floats, 1.4 MB, read by 1,000 MatMul nodes: 1.4 GB if each took its own copy
        var graph = new GraphProto { Name = "shared" };
        graph.Input.Add(FloatInput("x", 1, width));
        var weight = new TensorProto { Name = "W", DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(new byte[width * width * 4]) };
        weight.Dims.AddRange([width, width]);
        graph.Initializer.Add(weight);
        string previous = "x";
        for (int i = 0; i < 1000; i++)
        {
            graph.Node.Add(Node("MatMul", $"m{i}", previous, "W"));
            previous = $"m{i}";
        }
        graph.Output.Add(FloatInput(previous, 1, width));
        long before = GC.GetTotalAllocatedBytes(precise: true);
        var message = Refusal<InvalidDataException>(graph, "shared");
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.Contains("more than the", message);
        Assert.Contains("weights of 'shared'", message);
        // The managed side allocated about the file (the protobuf copy) and nothing per node's weights.
        Assert.True(allocated < 2L * width * width * 4 + (32 << 20), $"{allocated:N0} bytes allocated");
    }

    [Fact]
    public void CyclesAndDanglingNamesAreRefusedByName()
    {
        var cycle = new GraphProto { Name = "cycle" };
        cycle.Input.Add(FloatInput("x", 1, 4));
        cycle.Node.Add(Node("Add", "a", "x", "b"));
        cycle.Node.Add(Node("Relu", "b", "a"));
        cycle.Output.Add(FloatInput("b", 1, 4));
        Assert.Contains("reads 'b', which no earlier node makes", Refusal<InvalidDataException>(cycle, "cycle"));

        var dangling = Chain(3);
        dangling.Node[1].Input[0] = "nowhere";
        Assert.Contains("reads 'nowhere'", Refusal<InvalidDataException>(dangling, "dangling"));

        var noOutput = Chain(2);
        noOutput.Output[0].Name = "missing";
        Assert.Contains("the graph output reads 'missing'", Refusal<InvalidDataException>(noOutput, "no-output"));
    }

    [Fact]
    public void ShapesWhoseProductOverflowsAreRefused()
    {
        var wide = Chain(1);
        wide.Input[0] = FloatInput("x", 1, 60_000, 60_000, 60_000);
        Assert.Contains("overflow", Refusal<InvalidDataException>(wide, "wide-input"));

        var tensor = new GraphProto { Name = "tensor" };
        tensor.Input.Add(FloatInput("x", 1, 4));
        var huge = new TensorProto { Name = "W", DataType = (int)TensorProto.Types.DataType.Float };
        huge.Dims.AddRange([1L << 32, 1L << 32]);
        tensor.Initializer.Add(huge);
        tensor.Node.Add(Node("MatMul", "y", "x", "W"));
        tensor.Output.Add(FloatInput("y", 1, 4));
        Assert.Contains("more than", Refusal<InvalidDataException>(tensor, "huge-tensor"));

        var reshape = new GraphProto { Name = "reshape" };
        reshape.Input.Add(FloatInput("x", 1, 4));
        var target = new TensorProto { Name = "shape", DataType = (int)TensorProto.Types.DataType.Int64 };
        target.Dims.Add(3);
        target.Int64Data.AddRange([1, 1L << 31, 1L << 31]);
        reshape.Initializer.Add(target);
        reshape.Node.Add(Node("Reshape", "y", "x", "shape"));
        reshape.Output.Add(FloatInput("y", 1, 4));
        Assert.Contains("does not fit", Refusal<NotSupportedException>(reshape, "reshape"));
    }

    /// <summary>
    /// <paramref name="depth"/> nested subgraphs (an If node whose then_branch holds an If node, ...), written as raw
    /// protobuf from the inside out: GraphProto.node (1) -> NodeProto.op_type (4), attribute (5) -> AttributeProto.name (1),
    /// g (6), type (20) = GRAPH.
    /// </summary>
    private static byte[] NestedGraphs(int depth)
    {
        byte[] name = Field(1, "then_branch"u8.ToArray()), op = Field(4, "If"u8.ToArray()), suffix = Varint(20, 5);
        var prefixes = new List<byte[]>(depth);
        long inner = 0;
        for (int i = 0; i < depth; i++)
        {
            long attribute = name.Length + Key(6).Length + Encode((ulong)inner).Length + inner + suffix.Length;
            long node = op.Length + Key(5).Length + Encode((ulong)attribute).Length + attribute;
            prefixes.Add([.. Key(1), .. Encode((ulong)node), .. op, .. Key(5), .. Encode((ulong)attribute), .. name, .. Key(6), .. Encode((ulong)inner)]);
            inner = Key(1).Length + Encode((ulong)node).Length + node;
        }
        var model = new List<byte>([.. Varint(1, 8), .. Key(7), .. Encode((ulong)inner)]);
        for (int i = depth - 1; i >= 0; i--) model.AddRange(prefixes[i]);
        for (int i = 0; i < depth; i++) model.AddRange(suffix);
        return model.ToArray();

        static byte[] Varint(int field, long value) => [.. Encode((ulong)(field << 3)), .. Encode((ulong)value)];
        static byte[] Field(int field, byte[] payload) => [.. Key(field), .. Encode((ulong)payload.Length), .. payload];
        static byte[] Key(int field) => Encode((ulong)((field << 3) | 2));
        static byte[] Encode(ulong value)
        {
            var bytes = new List<byte>();
            do { byte b = (byte)(value & 0x7F); value >>= 7; bytes.Add(value != 0 ? (byte)(b | 0x80) : b); } while (value != 0);
            return bytes.ToArray();
        }
    }

    [Fact]
    public void TenThousandNestedGraphsAreRefusedWithoutOverflowingASmallStack()
    {
        var path = TestData.TempFile(".onnx");
        File.WriteAllBytes(path, NestedGraphs(10_000));
        try
        {
            // In-process first: a clear error.
            Assert.Contains("not a readable ONNX model", Assert.Throws<InvalidDataException>(() => OnnxImporter.Import(path)).Message);
            // Then the CLI in a child process whose threads get a 256 KB stack: a recursion on the nesting would kill it.
            var cli = Path.Combine(AppContext.BaseDirectory, "MlNetDeep.Cli.dll");
            Assert.True(File.Exists(cli), cli);
            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var argument in new[] { cli, "onnx", "import", path }) start.ArgumentList.Add(argument);
            start.Environment["DOTNET_DefaultStackSize"] = "40000"; // hexadecimal: 256 KB
            using var process = Process.Start(start)!;
            string stdout = process.StandardOutput.ReadToEnd(), stderr = process.StandardError.ReadToEnd();
            Assert.True(process.WaitForExit(120_000));
            Assert.Equal(1, process.ExitCode);
            Assert.Contains("not a readable ONNX model", stderr);
            Assert.DoesNotContain("   at ", stderr + stdout);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
