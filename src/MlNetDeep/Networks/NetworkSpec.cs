using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Networks;

/// <summary>
/// A network described as data (Keras' Sequential and functional models): a list of layers in topological order, each
/// reading the previous layer (a chain) or the layers named by <see cref="Inputs"/> (a graph with branches, sums and
/// concatenations). Serialisable to JSON, with shape inference, and built into a TorchSharp module for an input shape.
/// Write a graph with <see cref="GraphNode"/> (<c>x.Then(layer)</c>, <c>new Concat().On(a, b)</c>) and
/// <see cref="FromGraph"/>.
/// </summary>
public sealed record NetworkSpec
{
    /// <summary>The most inputs one layer may read.</summary>
    public const int MaxLayerInputs = 1024;

    public NetworkSpec(IEnumerable<Layer> layers) : this((IReadOnlyList<Layer>)(layers ?? throw new ArgumentNullException(nameof(layers))).ToArray()) { }

    [JsonConstructor]
    public NetworkSpec(IReadOnlyList<Layer> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Any(l => l is null)) throw new ArgumentException("A network's layers cannot be null.", nameof(layers));
        Layers = layers.ToArray();
    }

    /// <summary>A name for summaries and saved models.</summary>
    public string Name { get; init; } = "network";

    /// <summary>The layers in the order they run; the last one is the network's output.</summary>
    public IReadOnlyList<Layer> Layers { get; init; }

    /// <summary>
    /// For each layer, the positions of the layers it reads (-1: the network's input); null for a chain, where each
    /// layer reads the one before it. A layer may only read layers before it, so the list order is the run order.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<int[]>? Inputs { get; init; }

    /// <summary>True when every layer reads the one before it (a Sequential network).</summary>
    [JsonIgnore]
    public bool IsChain => Inputs is null || Inputs.Select((inputs, i) => inputs is { Length: 1 } && inputs[0] == i - 1).All(b => b);

    /// <summary>The positions of the layers that layer <paramref name="index"/> reads (-1: the network's input).</summary>
    public int[] InputsOf(int index) => Inputs is null ? [index - 1] : Inputs[index];

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static NetworkSpec FromJson(string json)
    {
        try
        {
            var spec = JsonSerializer.Deserialize<NetworkSpec>(json, Json) ?? throw new InvalidDataException("The network JSON is empty.");
            spec.CheckWiring();
            return spec;
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or ArgumentException or InvalidOperationException)
        {
            throw new InvalidDataException("The network JSON is not a valid MlNetDeep network spec: " + ex.Message, ex);
        }
    }

    /// <summary>The network whose output is <paramref name="output"/>, written with <see cref="GraphNode"/>s.</summary>
    public static NetworkSpec FromGraph(GraphNode output, string name = "network") => GraphNode.ToSpec(output, name);

    /// <summary>Checks <see cref="Inputs"/>: one entry per layer, each reading earlier layers, as many as the layer takes.</summary>
    internal void CheckWiring()
    {
        if (Layers is null) throw new InvalidOperationException($"Network '{Name}' has no layer list.");
        if (Inputs is null) return;
        if (Inputs.Count != Layers.Count) throw new InvalidOperationException($"Network '{Name}' has {Layers.Count} layers but inputs for {Inputs.Count}.");
        for (int i = 0; i < Layers.Count; i++)
        {
            var inputs = Inputs[i] ?? throw new InvalidOperationException($"Network '{Name}', layer {i}: its inputs are missing.");
            var (min, max) = Layers[i].InputCount;
            if (inputs.Length < min || inputs.Length > Math.Min(max, MaxLayerInputs))
                throw new InvalidOperationException($"Network '{Name}', layer {i} ({Layers[i].Describe()}) reads {inputs.Length} inputs; it takes {(min == max ? $"{min}" : $"{min} to {Math.Min(max, MaxLayerInputs)}")}.");
            foreach (var source in inputs)
                if (source < -1 || source >= i)
                    throw new InvalidOperationException($"Network '{Name}', layer {i} ({Layers[i].Describe()}) reads layer {source}; a layer reads the input (-1) or a layer before it.");
        }
    }

    /// <summary>The shape after each layer, for one sample of shape <paramref name="input"/> (batch excluded).</summary>
    public IReadOnlyList<int[]> InferShapes(int[] input)
    {
        if (Layers.Count == 0) throw new InvalidOperationException($"Network '{Name}' has no layers.");
        ArgumentNullException.ThrowIfNull(input);
        if (input.Length == 0 || input.Any(d => d <= 0))
            throw new InvalidOperationException($"Network '{Name}': the input shape [{string.Join(", ", input)}] needs positive sizes.");
        Shapes.Product(input);
        CheckWiring();
        var shapes = new int[Layers.Count][];
        for (int i = 0; i < Layers.Count; i++)
        {
            var sources = InputShapes(i, input, shapes);
            try
            {
                shapes[i] = Layers[i].OutputShape(sources);
                Shapes.Product(shapes[i]);
            }
            catch (InvalidOperationException ex) { throw new InvalidOperationException($"Network '{Name}', layer {i} ({Layers[i].Describe()}): {ex.Message}", ex); }
        }
        return shapes;
    }

    private int[][] InputShapes(int index, int[] input, int[][] shapes) => InputsOf(index).Select(s => s < 0 ? input : shapes[s]).ToArray();

    public int[] OutputShape(int[] input) => InferShapes(input)[^1];

    /// <summary>Replaces <c>Dense(Units: TaskOutputs)</c> layers with the task's output width.</summary>
    public NetworkSpec WithTaskOutputs(int outputs) =>
        this with
        {
            Layers = Layers.Select(l => l switch
            {
                Dense { Units: Dense.TaskOutputs } d => d with { Units = outputs },
                WeightNormDense { Units: Dense.TaskOutputs } d => d with { Units = outputs },
                _ => l,
            }).ToArray(),
        };

    /// <summary>The first <paramref name="count"/> layers, the last of them the output (positions and weight names unchanged).</summary>
    public NetworkSpec Prefix(int count)
    {
        if (count < 1 || count > Layers.Count) throw new ArgumentOutOfRangeException(nameof(count), count, $"Network '{Name}' has {Layers.Count} layers.");
        return this with { Layers = Layers.Take(count).ToArray(), Inputs = Inputs?.Take(count).ToArray() };
    }

    /// <summary>This network followed by <paramref name="next"/>, whose input becomes this network's output.</summary>
    public NetworkSpec Then(NetworkSpec next, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(next);
        if (IsChain && next.IsChain) return new NetworkSpec([.. Layers, .. next.Layers]) { Name = name ?? Name };
        int offset = Layers.Count;
        var inputs = Enumerable.Range(0, Layers.Count).Select(InputsOf)
            .Concat(Enumerable.Range(0, next.Layers.Count).Select(i => next.InputsOf(i).Select(s => s < 0 ? offset - 1 : s + offset).ToArray()));
        return new NetworkSpec([.. Layers, .. next.Layers]) { Name = name ?? Name, Inputs = inputs.ToArray() };
    }

    /// <summary>True when the last layer (ignoring dropout) is a softmax, i.e. the network already outputs probabilities.</summary>
    [JsonIgnore]
    public bool EndsWithSoftmax
    {
        get
        {
            int i = Layers.Count - 1;
            while (i > 0 && Layers[i] is Dropout && InputsOf(i) is [var source] && source >= 0) i = source;
            var last = i >= 0 ? Layers[i] : null;
            return last is Activation { Kind: ActivationKind.Softmax } or Dense { Activation: ActivationKind.Softmax } or WeightNormDense { Activation: ActivationKind.Softmax };
        }
    }

    /// <summary>Builds the TorchSharp module (on the CPU; move it with <c>.to(device)</c>): a Sequential for a chain, a graph module otherwise; the module of layer i is child "i" either way.</summary>
    public nn.Module<Tensor, Tensor> Build(int[] input) => Build(input, null);

    /// <summary>Builds the module, handing each layer's module to <paramref name="built"/> as soon as it exists (an importer fills its weights there).</summary>
    internal nn.Module<Tensor, Tensor> Build(int[] input, Action<int, nn.Module<Tensor, Tensor>>? built, bool asGraph = false)
    {
        var shapes = InferShapes(input);
        var modules = new List<(string, nn.Module<Tensor, Tensor>)>();
        try
        {
            for (int i = 0; i < Layers.Count; i++)
            {
                var sources = InputShapes(i, input, (int[][])shapes);
                StateBudget.Charge(Layers[i].StateSize(sources), $"Network '{Name}', layer {i} ({Layers[i].Describe()})");
                modules.Add(($"{i}", Layers[i].Build(sources)));
                built?.Invoke(i, modules[^1].Item2);
            }
            return IsChain && !asGraph ? nn.Sequential(modules) : new GraphModule(modules, this);
        }
        catch
        {
            foreach (var (_, module) in modules) module.Dispose();
            throw;
        }
    }

    /// <summary>Trainable parameters of the network built for <paramref name="input"/>.</summary>
    public long ParameterCount(int[] input)
    {
        using var module = Build(input);
        return module.parameters().Sum(p => p.numel());
    }

    /// <summary>A Keras-style table: layer, output shape, parameters (and, for a graph, the layers each one reads).</summary>
    public string Summary(int[] input)
    {
        var shapes = InferShapes(input);
        var sb = new StringBuilder();
        sb.AppendLine($"{Name}: input [{string.Join(", ", input)}]");
        long total = 0;
        bool chain = IsChain;
        using var module = Build(input);
        var children = module.children().ToList();
        for (int i = 0; i < Layers.Count; i++)
        {
            long count = children[i].parameters().Sum(p => p.numel());
            total += count;
            var reads = chain ? "" : "  <- " + string.Join(", ", InputsOf(i).Select(s => s < 0 ? "input" : $"{s}"));
            sb.AppendLine($"  {(chain ? "" : $"{i,4} ")}{Layers[i].Describe(),-48} [{string.Join(", ", shapes[i])}]".PadRight(chain ? 72 : 77) + $"{count,10:N0}{reads}");
        }
        sb.AppendLine($"  total parameters: {total:N0}");
        return sb.ToString();
    }

    public bool Equals(NetworkSpec? other) => other is not null && Name == other.Name && Layers.SequenceEqual(other.Layers) &&
        Enumerable.Range(0, Layers.Count).All(i => InputsOf(i).SequenceEqual(other.InputsOf(i)));
    public override int GetHashCode() => Layers.Aggregate(Name.GetHashCode(), (h, l) => h * 31 + l.GetHashCode());
}

/// <summary>
/// A limit on the values (parameters and buffers) that networks may allocate while they are built, in force while a
/// model file is read: each layer's state is computed from its settings and charged before the layer allocates
/// anything, so a record that asks for more than the file's weights hold fails without touching native memory.
/// Outside a <see cref="Limit"/> scope (training, building from code) nothing is charged.
/// </summary>
internal static class StateBudget
{
    private sealed class Scope(long values, string source, Scope? outer) : IDisposable
    {
        public long Remaining = values;
        public readonly string Source = source;

        public void Dispose() => Current.Value = outer;
    }

    private static readonly AsyncLocal<Scope?> Current = new();

    /// <summary>Allows at most <paramref name="values"/> values to be built on this flow until the result is disposed.</summary>
    public static IDisposable Limit(long values, string source)
    {
        var scope = new Scope(values, source, Current.Value);
        Current.Value = scope;
        return scope;
    }

    /// <summary>Takes <paramref name="values"/> from the budget in force, if any; more than is left is an error naming <paramref name="what"/>.</summary>
    public static void Charge(long values, string what)
    {
        if (Current.Value is not { } scope) return;
        if (values < 0) throw new InvalidDataException($"{what} has a negative size ({values}).");
        if (values > scope.Remaining)
            throw new InvalidDataException($"{what} needs {values:N0} parameter values, more than the {scope.Remaining:N0} left in {scope.Source}: " +
                "the record asks for a larger network than the file holds weights for.");
        scope.Remaining -= values;
    }
}

/// <summary>The course's networks, ready to use.</summary>
public static class Networks
{
    /// <summary>The multilayer perceptron: Flatten - Dense(hidden, ReLU) - Dense(outputs).</summary>
    public static NetworkSpec Mlp(int hidden = 128, ActivationKind activation = ActivationKind.ReLU) =>
        new([new Flatten(), new Dense(hidden, activation), new Dense(Dense.TaskOutputs)]) { Name = $"mlp-{hidden}" };

    /// <summary>A perceptron with several hidden layers of the given widths.</summary>
    public static NetworkSpec Mlp(IEnumerable<int> hidden, ActivationKind activation = ActivationKind.ReLU, double dropout = 0)
    {
        var layers = new List<Layer> { new Flatten() };
        foreach (var width in hidden)
        {
            layers.Add(new Dense(width, activation));
            if (dropout > 0) layers.Add(new Dropout(dropout));
        }
        layers.Add(new Dense(Dense.TaskOutputs));
        return new NetworkSpec(layers) { Name = "mlp-" + string.Join("-", hidden) };
    }

    /// <summary>The MLP preset used by the MNIST job: one hidden layer of 512 ReLU units with dropout 0.2.</summary>
    public static NetworkSpec MnistMlp { get; } = new NetworkSpec(
    [
        new Flatten(), new Dense(512, ActivationKind.ReLU), new Dropout(0.2), new Dense(Dense.TaskOutputs),
    ]) { Name = "mnist-mlp" };

    /// <summary>
    /// Keras' MNIST CNN: Conv2D(32, 3x3, ReLU) - Conv2D(64, 3x3, ReLU) - MaxPool(2) - Dropout(0.25) - Flatten -
    /// Dense(128, ReLU) - Dropout(0.5) - Dense(outputs). Expects input [1, 28, 28].
    /// </summary>
    public static NetworkSpec KerasMnistCnn { get; } = new NetworkSpec(
    [
        new Conv2D(32, 3, Activation: ActivationKind.ReLU),
        new Conv2D(64, 3, Activation: ActivationKind.ReLU),
        new MaxPool2D(2),
        new Dropout(0.25),
        new Flatten(),
        new Dense(128, ActivationKind.ReLU),
        new Dropout(0.5),
        new Dense(Dense.TaskOutputs),
    ]) { Name = "keras-mnist-cnn" };

    /// <summary>
    /// VGG16 (Simonyan and Zisserman 2015), the course's network for filters, dreams and style: 13 3x3 convolutions
    /// with ReLU in five blocks (64, 128, 256, 512, 512 channels, "same" padding), each block ending in a 2x2 max pool,
    /// then Dense(4096, ReLU) - Dropout(0.5) - Dense(4096, ReLU) - Dropout(0.5) - Dense(outputs) (1000 for ImageNet).
    /// Expects [3, 224, 224]. Its pretrained weights come from a file the user brings (VGG16 from the ONNX model zoo,
    /// read with <see cref="Persistence.Onnx.OnnxImporter"/>); none are downloaded.
    /// </summary>
    public static NetworkSpec Vgg16(int outputs = 1000)
    {
        var layers = new List<Layer>();
        foreach (var (channels, count) in new[] { (64, 2), (128, 2), (256, 3), (512, 3), (512, 3) })
        {
            for (int i = 0; i < count; i++) layers.Add(new Conv2D(channels, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU));
            layers.Add(new MaxPool2D(2));
        }
        layers.AddRange([new Flatten(), new Dense(4096, ActivationKind.ReLU), new Dropout(0.5), new Dense(4096, ActivationKind.ReLU), new Dropout(0.5), new Dense(outputs)]);
        return new NetworkSpec(layers) { Name = "vgg16" };
    }

    /// <summary>
    /// A small ResNet-style graph network (He et al. 2016) for small images: a 3x3 stem with batch normalisation, a
    /// residual block at <paramref name="width"/> channels, a strided block at twice the width with a 1x1 projection
    /// shortcut, global average pooling and Dense(outputs). A backbone for transfer learning on digits and icons.
    /// </summary>
    public static NetworkSpec SmallResNet(int width = 16)
    {
        var x = GraphNode.Input();
        var stem = x.Then(new Conv2D(width, 3, Padding: PaddingMode.Same)).Then(new BatchNorm()).Then(new Activation(ActivationKind.ReLU));
        var body = stem.Then(new Conv2D(width, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU)).Then(new Conv2D(width, 3, Padding: PaddingMode.Same));
        var block1 = new Add().On(stem, body).Then(new Activation(ActivationKind.ReLU));
        var down = block1.Then(new Conv2D(2 * width, 3, 2, Pad: 1, Activation: ActivationKind.ReLU)).Then(new Conv2D(2 * width, 3, Padding: PaddingMode.Same));
        var block2 = new Add().On(down, block1.Then(new Conv2D(2 * width, 1, 2))).Then(new Activation(ActivationKind.ReLU));
        var head = block2.Then(new GlobalAvgPool2D()).Then(new Flatten()).Then(new Dense(Dense.TaskOutputs));
        return NetworkSpec.FromGraph(head, $"small-resnet-{width}");
    }

    /// <summary>A linear model (one Dense layer): logistic or linear regression as a network.</summary>
    public static NetworkSpec Linear { get; } = new NetworkSpec([new Flatten(), new Dense(Dense.TaskOutputs)]) { Name = "linear" };
}
