using MlNetDeep.Persistence.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Networks;

/// <summary>
/// A layer that joins two or more inputs into one (Keras' merge layers): element-wise sums, products, differences and
/// quotients with broadcasting, and concatenation. It reads the layers named by <see cref="NetworkSpec.Inputs"/>.
/// </summary>
public abstract record MergeLayer : Layer
{
    public override (int Min, int Max) InputCount => (2, NetworkSpec.MaxLayerInputs);

    public override int[] OutputShape(int[] input) => throw new InvalidOperationException($"{Describe()} joins two or more inputs; use it in a graph network (layer.On(a, b)).");

    public override nn.Module<Tensor, Tensor> Build(int[] input) => throw new InvalidOperationException($"{Describe()} joins two or more inputs; use it in a graph network (layer.On(a, b)).");

    public abstract override int[] OutputShape(IReadOnlyList<int[]> inputs);

    public override nn.Module<Tensor, Tensor> Build(IReadOnlyList<int[]> inputs)
    {
        OutputShape(inputs);
        return new MergeModule(GetType().Name, Merge);
    }

    internal override long StateSize(IReadOnlyList<int[]> inputs) => 0;

    /// <summary>Joins the input batches (each [N, ...sample shape]).</summary>
    private protected abstract Tensor Merge(IReadOnlyList<Tensor> inputs);

    private protected static string Shape(int[] shape) => $"[{string.Join(", ", shape)}]";
}

/// <summary>Element-wise arithmetic over inputs of the same rank; a size of 1 broadcasts (a squeeze-excitation scale [C, 1, 1] over [C, H, W]).</summary>
public abstract record ElementWise : MergeLayer
{
    private protected abstract string OnnxOp { get; }

    public override int[] OutputShape(IReadOnlyList<int[]> inputs)
    {
        if (inputs.Count < InputCount.Min || inputs.Count > InputCount.Max)
            throw new InvalidOperationException($"{Describe()} reads {InputCount.Min}{(InputCount.Max > InputCount.Min ? " or more" : "")} inputs, not {inputs.Count}.");
        var result = inputs[0];
        foreach (var shape in inputs.Skip(1))
        {
            if (shape.Length != result.Length)
                throw new InvalidOperationException($"{Describe()} needs inputs of one rank (sizes of 1 broadcast), got {string.Join(" and ", inputs.Select(Shape))}.");
            var joined = new int[shape.Length];
            for (int d = 0; d < shape.Length; d++)
            {
                if (shape[d] != result[d] && shape[d] != 1 && result[d] != 1)
                    throw new InvalidOperationException($"{Describe()}: {string.Join(" and ", inputs.Select(Shape))} differ on axis {d} ({result[d]} against {shape[d]}); only a size of 1 broadcasts.");
                joined[d] = Math.Max(shape[d], result[d]);
            }
            result = joined;
        }
        return result;
    }

    private protected override Tensor Merge(IReadOnlyList<Tensor> inputs)
    {
        var result = inputs[0];
        for (int i = 1; i < inputs.Count; i++) result = Apply(result, inputs[i]);
        return result;
    }

    private protected abstract Tensor Apply(Tensor a, Tensor b);

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w)
    {
        var result = x[0];
        for (int i = 1; i < x.Count; i++) result = g.Node(OnnxOp, [result, x[i]]);
        return result;
    }
}

/// <summary>The element-wise sum of two or more inputs (residual connections).</summary>
public sealed record Add : ElementWise
{
    private protected override string OnnxOp => "Add";
    private protected override Tensor Apply(Tensor a, Tensor b) => a + b;
}

/// <summary>The element-wise product of two or more inputs (gates, squeeze-excitation).</summary>
public sealed record Multiply : ElementWise
{
    private protected override string OnnxOp => "Mul";
    private protected override Tensor Apply(Tensor a, Tensor b) => a * b;
}

/// <summary>The first input minus the second.</summary>
public sealed record Subtract : ElementWise
{
    public override (int Min, int Max) InputCount => (2, 2);
    private protected override string OnnxOp => "Sub";
    private protected override Tensor Apply(Tensor a, Tensor b) => a - b;
}

/// <summary>The first input divided by the second.</summary>
public sealed record Divide : ElementWise
{
    public override (int Min, int Max) InputCount => (2, 2);
    private protected override string OnnxOp => "Div";
    private protected override Tensor Apply(Tensor a, Tensor b) => a / b;
}

/// <summary>
/// Joins its inputs along <paramref name="Axis"/> of the sample shape (0: channels of an image, the default; negative
/// counts from the end); every other size must agree (Inception's branches, DenseNet's growing features).
/// </summary>
public sealed record Concat(int Axis = 0) : MergeLayer
{
    public override int[] OutputShape(IReadOnlyList<int[]> inputs)
    {
        if (inputs.Count < 2) throw new InvalidOperationException($"{Describe()} reads two or more inputs, not {inputs.Count}.");
        int rank = inputs[0].Length, axis = SampleAxes.Resolve(Axis, rank, Describe());
        long size = 0;
        foreach (var shape in inputs)
        {
            if (shape.Length != rank || Enumerable.Range(0, rank).Any(d => d != axis && shape[d] != inputs[0][d]))
                throw new InvalidOperationException($"{Describe()} needs inputs that agree on every axis but {axis}, got {string.Join(" and ", inputs.Select(Shape))}.");
            size += shape[axis];
        }
        if (size > int.MaxValue) throw new InvalidOperationException($"{Describe()}: the joined axis overflows.");
        var result = inputs[0].ToArray();
        result[axis] = (int)size;
        return result;
    }

    private protected override Tensor Merge(IReadOnlyList<Tensor> inputs) => cat(inputs.ToArray(), SampleAxes.Resolve(Axis, (int)inputs[0].dim() - 1, Describe()) + 1);

    public override string Describe() => $"Concat(axis {Axis})";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w) =>
        g.Node("Concat", x.ToArray(), ("axis", (long)SampleAxes.Resolve(Axis, shapes[0].Length, Describe()) + 1));
}

/// <summary>
/// The elements <paramref name="Start"/> to <paramref name="End"/> (exclusive, every <paramref name="Step"/>-th) along
/// <paramref name="Axis"/> of the sample shape; negative positions count from the end and positions past it are cut,
/// as in Python (half of the channels for ShuffleNet's split, for example).
/// </summary>
public sealed record Slice(int Axis, int Start, int End, int Step = 1) : Layer
{
    public override int[] OutputShape(int[] input)
    {
        var (axis, start, end) = Resolve(input);
        var result = input.ToArray();
        result[axis] = (end - start + Step - 1) / Step;
        return result;
    }

    private (int Axis, int Start, int End) Resolve(int[] input)
    {
        int axis = SampleAxes.Resolve(Axis, input.Length, Describe());
        if (Step <= 0) throw new InvalidOperationException($"{Describe()}: the step must be positive.");
        int size = input[axis];
        int Clamp(long position) => (int)Math.Clamp(position < 0 ? position + size : position, 0, size);
        int start = Clamp(Start), end = Clamp(End);
        if (end <= start) throw new InvalidOperationException($"{Describe()} keeps nothing of the {size} elements on axis {axis}.");
        return (axis, start, end);
    }

    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        var (axis, start, end) = Resolve(input);
        return new LambdaModule("Slice", x => x.slice(axis + 1, start, end, Step));
    }

    public override string Describe() => $"Slice(axis {Axis}, {Start}:{End}{(Step != 1 ? $":{Step}" : "")})";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w)
    {
        var (axis, start, end) = Resolve(shapes[0]);
        return g.Node("Slice", [x[0], g.Int64Initializer("starts", [start]), g.Int64Initializer("ends", [end]), g.Int64Initializer("axes", [axis + 1]), g.Int64Initializer("steps", [Step])]);
    }
}

/// <summary>Reorders the axes of a sample: output axis i is input axis <c>Order[i]</c> (the batch stays first; ShuffleNet's channel shuffle).</summary>
public sealed record Transpose(int[] Order) : Layer
{
    public override int[] OutputShape(int[] input)
    {
        if (Order is null || Order.Length != input.Length || Order.Distinct().Count() != Order.Length || Order.Any(a => a < 0 || a >= input.Length))
            throw ShapeError(input, $"an order that names each of its {input.Length} axes once (got [{string.Join(", ", Order ?? [])}])");
        return Order.Select(a => input[a]).ToArray();
    }

    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        long[] permutation = [0, .. Order.Select(a => (long)a + 1)];
        return new LambdaModule("Transpose", x => x.permute(permutation));
    }

    public override string Describe() => $"Transpose([{string.Join(", ", Order)}])";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w) =>
        g.Node("Transpose", [x[0]], ("perm", Order.Select(a => (long)a + 1).Prepend(0L).ToArray()));

    public bool Equals(Transpose? other) => other is not null && Order.SequenceEqual(other.Order);
    public override int GetHashCode() => Order.Aggregate(23, (h, d) => h * 31 + d);
}

/// <summary>Average pooling to a fixed <paramref name="Height"/> x <paramref name="Width"/> whatever the image size (PyTorch's AdaptiveAvgPool2d).</summary>
public sealed record AdaptiveAvgPool2D(int Height = 1, int Width = 1) : Layer
{
    public override int[] OutputShape(int[] input)
    {
        if (input.Length != 3) throw ShapeError(input, "an image shape [channels, height, width]");
        if (Height is < 1 or > 4096 || Width is < 1 or > 4096) throw new InvalidOperationException($"{Describe()}: the output size must be 1 to 4,096.");
        return [input[0], Height, Width];
    }

    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        return nn.AdaptiveAvgPool2d((Height, Width));
    }

    public override string Describe() => $"AdaptiveAvgPool2D({Height}x{Width})";

    /// <summary>ONNX has no adaptive pooling: a global pool for 1x1, or an average pool when the sizes divide evenly (as PyTorch exports it).</summary>
    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w)
    {
        var input = shapes[0];
        if (Height == 1 && Width == 1) return g.Node("GlobalAveragePool", [x[0]]);
        if (input[1] % Height != 0 || input[2] % Width != 0)
            throw new NotSupportedException($"ONNX export of {Describe()} needs an input whose size divides evenly, not [{string.Join(", ", input)}].");
        long kh = input[1] / Height, kw = input[2] / Width;
        return g.Node("AveragePool", [x[0]], ("kernel_shape", new[] { kh, kw }), ("strides", new[] { kh, kw }));
    }
}

/// <summary>Layer normalisation (Ba et al.) over the last <paramref name="Axes"/> axes of a sample, with a learned scale and shift.</summary>
public sealed record LayerNorm(int Axes = 1, double Epsilon = 1e-5) : Layer
{
    public override int[] OutputShape(int[] input)
    {
        if (Axes < 1 || Axes > input.Length) throw ShapeError(input, $"at least {Axes} axes to normalise");
        if (!(Epsilon > 0)) throw new InvalidOperationException($"{Describe()}: epsilon must be positive.");
        return input;
    }

    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        return nn.LayerNorm(input.Skip(input.Length - Axes).Select(d => (long)d).ToArray(), Epsilon);
    }

    internal override long StateSize(int[] input) => Shapes.Values(2, Shapes.Product(input.Skip(input.Length - Axes).ToArray()));

    public override string Describe() => $"LayerNorm({Axes} axes)";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w) =>
        g.Node("LayerNormalization", [x[0], OnnxExporter.Constant(g, "scale", w["weight"]), OnnxExporter.Constant(g, "bias", w["bias"])],
            ("axis", (long)-Axes), ("epsilon", (float)Epsilon));
}

/// <summary>Clamps every value to [<paramref name="Min"/>, <paramref name="Max"/>] (ONNX's Clip; ReLU6 is Clip(0, 6)).</summary>
public sealed record Clip(double Min, double Max) : Layer
{
    public override int[] OutputShape(int[] input)
    {
        if (double.IsNaN(Min) || double.IsNaN(Max) || Min > Max) throw new InvalidOperationException($"{Describe()}: the minimum must not exceed the maximum.");
        return input;
    }

    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        return new LambdaModule("Clip", x => x.clamp(Min, Max));
    }

    public override string Describe() => $"Clip({Min}, {Max})";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w) =>
        g.Node("Clip", [x[0], OnnxExporter.Constant(g, (float)Min), OnnxExporter.Constant(g, (float)Max)]);
}

/// <summary>
/// A constant tensor of a network (a scale or shift an exporter wrote as an initializer), read by an element-wise layer:
/// it reads no input and keeps its value as the module's "value" buffer, saved with the weights.
/// </summary>
public sealed record ConstantTensor(int[] Shape) : Layer
{
    public override (int Min, int Max) InputCount => (0, 0);

    public override int[] OutputShape(int[] input) => throw new InvalidOperationException($"{Describe()} reads no input.");

    public override nn.Module<Tensor, Tensor> Build(int[] input) => throw new InvalidOperationException($"{Describe()} reads no input.");

    public override int[] OutputShape(IReadOnlyList<int[]> inputs)
    {
        if (inputs.Count != 0) throw new InvalidOperationException($"{Describe()} reads no input.");
        if (Shape is null || Shape.Length == 0 || Shape.Any(d => d < 1)) throw new InvalidOperationException($"{Describe()} needs a shape of positive sizes.");
        Shapes.Product(Shape);
        return Shape;
    }

    public override nn.Module<Tensor, Tensor> Build(IReadOnlyList<int[]> inputs)
    {
        OutputShape(inputs);
        return new ConstantModule(Shape);
    }

    internal override long StateSize(IReadOnlyList<int[]> inputs) => Shapes.Product(Shape);

    public override string Describe() => $"Constant([{string.Join(", ", Shape ?? [])}])";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w) => OnnxExporter.Constant(g, "constant", w["value"]);

    public bool Equals(ConstantTensor? other) => other is not null && Shape.SequenceEqual(other.Shape);
    public override int GetHashCode() => Shape.Aggregate(29, (h, d) => h * 31 + d);
}

internal sealed class ConstantModule : nn.Module<Tensor, Tensor>
{
    public ConstantModule(int[] shape) : base("Constant")
    {
        register_buffer("value", zeros([1, .. shape.Select(d => (long)d)]));
    }

    public override Tensor forward(Tensor input) => get_buffer("value")!.alias();
}

internal static class SampleAxes
{
    /// <summary>A sample axis, negative counting from the end; out of range is an error naming <paramref name="layer"/>.</summary>
    public static int Resolve(int axis, int rank, string layer)
    {
        int resolved = axis < 0 ? axis + rank : axis;
        if (resolved < 0 || resolved >= rank) throw new InvalidOperationException($"{layer}: axis {axis} is outside a sample of {rank} axes.");
        return resolved;
    }
}

/// <summary>A stateless module that applies a function (slices, permutations, clamps).</summary>
internal sealed class LambdaModule(string name, Func<Tensor, Tensor> function) : nn.Module<Tensor, Tensor>(name)
{
    public override Tensor forward(Tensor input) => function(input);
}

/// <summary>The module of a <see cref="MergeLayer"/>: it joins several inputs, so only its network can run it.</summary>
internal sealed class MergeModule(string name, Func<IReadOnlyList<Tensor>, Tensor> merge) : nn.Module<Tensor, Tensor>(name)
{
    public Tensor Merge(IReadOnlyList<Tensor> inputs) => merge(inputs);

    public override Tensor forward(Tensor input) => throw new InvalidOperationException($"{GetName()} joins several inputs; it runs inside its network.");
}

/// <summary>
/// A graph network's module: one child per layer, named by its position as in a Sequential ("0", "1", ...), so weights
/// and the vision tools' layer positions mean the same in both; runs the layers in order, each on the outputs it reads.
/// </summary>
internal sealed class GraphModule : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor>[] _layers;
    private readonly int[][] _inputs;

    public GraphModule(IReadOnlyList<(string Name, nn.Module<Tensor, Tensor> Module)> layers, NetworkSpec spec) : base(spec.Name)
    {
        _layers = layers.Select(l => l.Module).ToArray();
        _inputs = Enumerable.Range(0, layers.Count).Select(spec.InputsOf).ToArray();
        foreach (var (name, module) in layers) register_module(name, module);
    }

    public override Tensor forward(Tensor input) => NetworkRunner.Run(_layers, i => _inputs[i], input, [_layers.Length - 1])[0];

    /// <summary>Layers kept in eval mode whatever mode the network is put in (a frozen backbone's batch normalisation keeps its statistics).</summary>
    internal HashSet<int> Frozen { get; } = [];

    public override void train(bool on = true)
    {
        base.train(on);
        if (on)
            foreach (var i in Frozen) _layers[i].eval();
    }
}

/// <summary>Runs a network's layers (a Sequential's or a graph module's children) in order, keeping the outputs asked for.</summary>
internal static class NetworkRunner
{
    /// <summary>
    /// The outputs of the layers at <paramref name="capture"/> for the batch <paramref name="input"/>, running only the
    /// layers they depend on. <paramref name="replace"/>, when given, runs in place of a layer's module (position, module, inputs).
    /// </summary>
    public static Tensor[] Run(IReadOnlyList<nn.Module<Tensor, Tensor>> layers, Func<int, int[]> inputsOf, Tensor input, IReadOnlyList<int> capture,
        Func<int, nn.Module<Tensor, Tensor>, Tensor, Tensor?>? replace = null)
    {
        int deepest = capture.Count == 0 ? -1 : capture.Max();
        var needed = new bool[deepest + 1];
        foreach (var i in capture) needed[i] = true;
        for (int i = deepest; i >= 0; i--)
            if (needed[i])
                foreach (var source in inputsOf(i))
                    if (source >= 0) needed[source] = true;
        var outputs = new Tensor?[deepest + 1];
        for (int i = 0; i <= deepest; i++)
        {
            if (!needed[i]) continue;
            var sources = inputsOf(i);
            var module = layers[i];
            if (sources.Length == 0) outputs[i] = module.call(input); // a constant
            else if (module is MergeModule merge) outputs[i] = merge.Merge(sources.Select(s => s < 0 ? input : outputs[s]!).ToArray());
            else
            {
                var x = sources[0] < 0 ? input : outputs[sources[0]]!;
                outputs[i] = replace?.Invoke(i, module, x) ?? module.call(x);
            }
        }
        return capture.Select(i => outputs[i]!).ToArray();
    }

    /// <summary>Runs a module built from <paramref name="spec"/> (chain or graph) and keeps the outputs of the layers at <paramref name="capture"/>.</summary>
    public static Tensor[] Run(NetworkSpec spec, nn.Module module, Tensor input, IReadOnlyList<int> capture,
        Func<int, nn.Module<Tensor, Tensor>, Tensor, Tensor?>? replace = null) =>
        Run(Layers(module), spec.InputsOf, input, capture, replace);

    /// <summary>The modules of a network's layers, in order.</summary>
    public static IReadOnlyList<nn.Module<Tensor, Tensor>> Layers(nn.Module module) =>
        module.children().Select(m => m as nn.Module<Tensor, Tensor>
            ?? throw new InvalidOperationException($"The network holds a {m.GetType().Name}, which cannot be run layer by layer.")).ToList();
}

/// <summary>
/// A value in a network being written in the functional style (Keras' functional API): the network's input, or the
/// output of a layer applied to other nodes. <c>var x = GraphNode.Input(); var y = x.Then(new Conv2D(16, 3));
/// var z = new Concat().On(x, y); var spec = NetworkSpec.FromGraph(z.Then(new Flatten()).Then(new Dense(Dense.TaskOutputs)));</c>
/// </summary>
public sealed class GraphNode
{
    private GraphNode(Layer? layer, GraphNode[] inputs)
    {
        Layer = layer;
        Inputs = inputs;
    }

    /// <summary>The layer that makes this value; null for the network's input.</summary>
    public Layer? Layer { get; }

    /// <summary>The values the layer reads.</summary>
    public IReadOnlyList<GraphNode> Inputs { get; }

    /// <summary>A network's input (its shape is given when the network is built).</summary>
    public static GraphNode Input() => new(null, []);

    /// <summary>This value passed through <paramref name="layer"/>.</summary>
    public GraphNode Then(Layer layer) => Apply(layer, [this]);

    /// <summary><paramref name="layer"/> applied to <paramref name="inputs"/> (several for a merge layer).</summary>
    public static GraphNode Apply(Layer layer, params GraphNode[] inputs)
    {
        ArgumentNullException.ThrowIfNull(layer);
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.Any(i => i is null)) throw new ArgumentException("A layer's inputs cannot be null.", nameof(inputs));
        var (min, max) = layer.InputCount;
        if (inputs.Length < min || inputs.Length > max)
            throw new ArgumentException($"{layer.Describe()} reads {(min == max ? $"{min}" : $"{min} or more")} inputs, not {inputs.Length}.", nameof(inputs));
        return new GraphNode(layer, inputs.ToArray());
    }

    /// <summary>The layers behind <paramref name="output"/> in a run order (inputs before the layers that read them), without recursion.</summary>
    internal static NetworkSpec ToSpec(GraphNode output, string name)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (output.Layer is null) throw new ArgumentException("The network's output is its input: add a layer.", nameof(output));
        var index = new Dictionary<GraphNode, int>(ReferenceEqualityComparer.Instance);
        var layers = new List<Layer>();
        var inputs = new List<int[]>();
        GraphNode? networkInput = null;
        var stack = new Stack<(GraphNode Node, bool Expanded)>();
        stack.Push((output, false));
        while (stack.Count > 0)
        {
            var (node, expanded) = stack.Pop();
            if (node.Layer is null)
            {
                if (networkInput is not null && !ReferenceEquals(networkInput, node))
                    throw new ArgumentException("The network reads two different inputs; a network has one GraphNode.Input().", nameof(output));
                networkInput = node;
                continue;
            }
            if (index.ContainsKey(node)) continue;
            if (expanded)
            {
                index[node] = layers.Count;
                layers.Add(node.Layer);
                inputs.Add(node.Inputs.Select(i => i.Layer is null ? -1 : index[i]).ToArray());
                continue;
            }
            stack.Push((node, true));
            for (int i = node.Inputs.Count - 1; i >= 0; i--)
                if (!index.ContainsKey(node.Inputs[i])) stack.Push((node.Inputs[i], false));
        }
        if (networkInput is null) throw new ArgumentException("The network does not read a GraphNode.Input().", nameof(output));
        var spec = new NetworkSpec(layers) { Name = name, Inputs = inputs };
        return spec.IsChain ? spec with { Inputs = null } : spec;
    }
}
