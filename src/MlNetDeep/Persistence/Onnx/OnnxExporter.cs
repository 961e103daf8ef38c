using MlNetDeep.Networks;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Persistence.Onnx;

/// <summary>
/// Writes a trained <see cref="NetworkSpec"/> network as an ONNX model (opset 17) with one input [N, features] and one
/// output [N, outputs], so that ML.NET's own <c>ApplyOnnxModel</c> can score it and <c>Model.Save</c> can store it:
/// a plain ML.NET model, no MlNetDeep needed to use it.
/// </summary>
internal static class OnnxExporter
{
    /// <summary>
    /// What to append after the network: nothing, a softmax over the outputs, or (for in-process scoring of a binary
    /// classifier) the logit beside its sigmoid, [N, 2].
    /// </summary>
    public enum Head { None, Softmax, LogitAndProbability }

    public static byte[] Export(NetworkSpec network, nn.Module module, int[] inputShape, string inputName, string outputName, Head head)
    {
        var graph = new OnnxGraph();
        int width = inputShape.Aggregate(1, (a, b) => a * b);
        var (current, shape) = EmitNetwork(graph, network, module, inputName, inputShape);
        if (shape.Length != 1) current = graph.Node("Flatten", [current], ("axis", 1L));
        int outputs = shape.Aggregate(1, (a, b) => a * b);
        if (head == Head.Softmax) current = graph.Node("Softmax", [current], ("axis", -1L));
        if (head == Head.LogitAndProbability)
        {
            if (outputs != 1) throw new NotSupportedException($"A logit and its probability need one network output, not {outputs}.");
            current = graph.Node("Concat", [current, graph.Node("Sigmoid", [current])], ("axis", 1L));
            outputs = 2;
        }
        return graph.ToModel(network.Name, inputName, width, current, outputName, outputs);
    }

    /// <summary>
    /// Appends <paramref name="network"/>'s layers (weights from <paramref name="module"/>, built from that spec) to
    /// <paramref name="graph"/>, reading <paramref name="input"/> ([N, features], reshaped to <paramref name="inputShape"/>).
    /// Returns the last node's name and its sample shape.
    /// </summary>
    internal static (string Output, int[] Shape) EmitNetwork(OnnxGraph graph, NetworkSpec network, nn.Module module, string input, int[] inputShape)
    {
        var state = module.state_dict();
        string current = input;
        if (inputShape.Length > 1)
            current = graph.Node("Reshape", [current, graph.Int64Initializer("shape", [-1, .. inputShape.Select(d => (long)d)])]);
        var shapes = network.InferShapes(inputShape);
        var names = new string[network.Layers.Count];
        for (int i = 0; i < network.Layers.Count; i++)
        {
            var sources = network.InputsOf(i);
            var weights = new LayerWeights(state.Where(kv => kv.Key.StartsWith($"{i}.", StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key[($"{i}.".Length)..], kv => kv.Value));
            names[i] = network.Layers[i].ToOnnx(graph, sources.Select(s => s < 0 ? current : names[s]).ToArray(),
                sources.Select(s => s < 0 ? inputShape : shapes[s]).ToArray(), weights);
        }
        return (names[^1], shapes[^1]);
    }

    /// <summary>Appends one layer (weights by their names in its module, e.g. weight and bias) to the graph; returns its node's name.</summary>
    internal static string EmitLayer(OnnxGraph graph, Layer layer, string input, int[] inputShape, Dictionary<string, Tensor> weights) =>
        layer.ToOnnx(graph, [input], [inputShape], new LayerWeights(weights));

    /// <summary>A float tensor as a graph constant.</summary>
    internal static string Constant(OnnxGraph graph, string hint, Tensor value)
    {
        using var cpu = value.detach().cpu().to(float32).contiguous();
        return graph.Initializer(hint, cpu.data<float>().ToArray(), cpu.shape);
    }

    /// <summary>A float scalar as a graph constant.</summary>
    internal static string Constant(OnnxGraph graph, float value) => graph.Initializer("c", [value], []);

    /// <summary>
    /// A recurrent layer as ONNX's LSTM, GRU or RNN (time first, so the batch-first sequence is transposed around it).
    /// Torch keeps an LSTM's gates in the order input, forget, cell, output and ONNX in input, output, forget, cell; a
    /// GRU's reset, update, new against ONNX's update, reset, new (with the reset applied after the recurrent product,
    /// linear_before_reset = 1, as torch does). The weights are reordered to match.
    /// </summary>
    internal static string Recurrent(OnnxGraph g, RecurrentLayer layer, string x, LayerWeights w)
    {
        var (op, order) = layer switch
        {
            LSTM => ("LSTM", new[] { 0, 3, 1, 2 }),
            GRU => ("GRU", new[] { 1, 0, 2 }),
            _ => ("RNN", new[] { 0 }),
        };
        int units = layer.Units;
        using var scope = NewDisposeScope();
        Tensor Reorder(Tensor t) => cat(order.Select(k => t.detach().narrow(0, (long)k * units, units)).ToArray(), 0);
        var inputWeights = Reorder(w["weight_ih_l0"]).unsqueeze(0);
        var recurrentWeights = Reorder(w["weight_hh_l0"]).unsqueeze(0);
        var biases = cat([Reorder(w["bias_ih_l0"]), Reorder(w["bias_hh_l0"])], 0).unsqueeze(0);
        var timeFirst = g.Node("Transpose", [x], ("perm", new long[] { 1, 0, 2 }));
        var attributes = new List<(string, object)> { ("hidden_size", (long)units) };
        if (layer is GRU) attributes.Add(("linear_before_reset", 1L));
        var y = g.Node(op, [timeFirst, Constant(g, "W", inputWeights), Constant(g, "R", recurrentWeights), Constant(g, "B", biases)], attributes.ToArray()); // [steps, 1, N, units]
        var steps = g.Node("Squeeze", [y, g.Int64Initializer("axes", [1])]); // [steps, N, units]
        if (layer.ReturnSequences) return g.Node("Transpose", [steps], ("perm", new long[] { 1, 0, 2 }));
        return g.Node("Squeeze", [g.Node("Gather", [steps, g.Int64Initializer("last", [-1])], ("axis", 0L)), g.Int64Initializer("axes", [0])]);
    }

    internal static string Activate(OnnxGraph g, string x, ActivationKind kind, double alpha) => kind switch
    {
        ActivationKind.None => x,
        ActivationKind.ReLU => g.Node("Relu", [x]),
        ActivationKind.LeakyReLU => g.Node("LeakyRelu", [x], ("alpha", alpha == 0 ? 0.01 : alpha)),
        ActivationKind.ELU => g.Node("Elu", [x], ("alpha", alpha == 0 ? 1.0 : alpha)),
        ActivationKind.Sigmoid => g.Node("Sigmoid", [x]),
        ActivationKind.Tanh => g.Node("Tanh", [x]),
        ActivationKind.Softplus => g.Node("Softplus", [x]),
        ActivationKind.Softmax => g.Node("Softmax", [x], ("axis", -1L)),
        ActivationKind.ReLU6 => g.Node("Clip", [x, Constant(g, 0f), Constant(g, 6f)]),
        // PyTorch's hardsigmoid: clip(x / 6 + 1 / 2, 0, 1); hardswish: x times that.
        ActivationKind.HardSigmoid => g.Node("HardSigmoid", [x], ("alpha", 1f / 6), ("beta", 0.5f)),
        ActivationKind.HardSwish => g.Node("HardSwish", [x]),
        ActivationKind.SiLU => g.Node("Mul", [x, g.Node("Sigmoid", [x])]),
        // GELU(x) = x * 0.5 * (1 + erf(x / sqrt 2)), as PyTorch's default (exact) GELU.
        ActivationKind.GELU => g.Node("Mul", [x, g.Node("Mul", [g.Node("Add", [g.Node("Erf", [g.Node("Mul", [x, Constant(g, (float)(1 / Math.Sqrt(2)))])]), Constant(g, 1f)]), Constant(g, 0.5f)])]),
        _ => throw new NotSupportedException($"ONNX export does not support the activation {kind}."),
    };

    internal static long[] Pads(int[] input, int kernel, int stride, PaddingMode padding)
    {
        if (padding == PaddingMode.Valid) return [0, 0, 0, 0];
        var (top, bottom) = Windows.SamePadding(input[1], kernel, stride);
        var (left, right) = Windows.SamePadding(input[2], kernel, stride);
        return [top, left, bottom, right];
    }
}

/// <summary>The state of one layer's module by its names within the module (weight, bias, layer.weight, body.0.weight, ...).</summary>
internal sealed class LayerWeights(IReadOnlyDictionary<string, Tensor> state)
{
    /// <summary>The tensor named <paramref name="name"/>, or the one whose name ends in ".<paramref name="name"/>" (a wrapped module's weight).</summary>
    public Tensor this[string name]
    {
        get
        {
            if (state.TryGetValue(name, out var exact)) return exact;
            var matches = state.Where(kv => kv.Key.EndsWith("." + name, StringComparison.Ordinal)).ToList();
            return matches.Count == 1 ? matches[0].Value
                : throw new InvalidOperationException($"The layer's module has {(matches.Count == 0 ? "no" : "several")} '{name}' tensors ({string.Join(", ", state.Keys)}).");
        }
    }

    /// <summary>The weights under <paramref name="prefix"/> (e.g. "body.0"), by their names below it.</summary>
    public LayerWeights Under(string prefix) =>
        new(state.Where(kv => kv.Key.StartsWith(prefix + ".", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[(prefix.Length + 1)..], kv => kv.Value));
}
