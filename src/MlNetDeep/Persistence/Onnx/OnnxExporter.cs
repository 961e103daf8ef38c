using MlNetDeep.Networks;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Persistence.Onnx;

/// <summary>
/// Writes a trained <see cref="NetworkSpec"/> network as an ONNX model (opset 17) with one input [N, features] and one
/// output [N, outputs], so that ML.NET's own <c>ApplyOnnxModel</c> can score it and <c>Model.Save</c> can store it:
/// a plain ML.NET model, no MlNetDeep needed to use it.
/// </summary>
public static class OnnxExporter
{
    /// <summary>What to append after the network: nothing, or a softmax over the outputs.</summary>
    public enum Head { None, Softmax }

    public static byte[] Export(NetworkSpec network, nn.Module module, int[] inputShape, string inputName, string outputName, Head head)
    {
        var graph = new OnnxGraph();
        int width = inputShape.Aggregate(1, (a, b) => a * b);
        var (current, shape) = EmitNetwork(graph, network, module, inputName, inputShape);
        if (shape.Length != 1) current = graph.Node("Flatten", [current], ("axis", 1L));
        if (head == Head.Softmax) current = graph.Node("Softmax", [current], ("axis", -1L));
        return graph.ToModel(network.Name, inputName, width, current, outputName, shape.Aggregate(1, (a, b) => a * b));
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
        var shape = inputShape;
        for (int i = 0; i < network.Layers.Count; i++)
        {
            var layer = network.Layers[i];
            var weights = state.Where(kv => kv.Key.StartsWith($"{i}.", StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key[(kv.Key.LastIndexOf('.') + 1)..], kv => kv.Value);
            current = Emit(graph, layer, current, shape, weights);
            shape = layer.OutputShape(shape);
        }
        return (current, shape);
    }

    /// <summary>Appends one layer (weights by their short names, e.g. weight and bias) to the graph; returns its node's name.</summary>
    internal static string EmitLayer(OnnxGraph graph, Layer layer, string input, int[] inputShape, Dictionary<string, Tensor> weights) =>
        Emit(graph, layer, input, inputShape, weights);

    /// <summary>A float tensor as a graph constant.</summary>
    internal static string Constant(OnnxGraph graph, string hint, Tensor value) => Const(graph, hint, value);

    /// <summary>A float scalar as a graph constant.</summary>
    internal static string Constant(OnnxGraph graph, float value) => Scalar(graph, value);

    private static string Emit(OnnxGraph g, Layer layer, string x, int[] input, Dictionary<string, Tensor> w)
    {
        switch (layer)
        {
            case Dense dense when input.Length == 2:
            {
                // Per step over a sequence [N, steps, features]: x W^T + b on the last axis.
                var y = g.Node("MatMul", [x, Const(g, "WT", w["weight"].t())]);
                if (dense.UseBias) y = g.Node("Add", [y, Const(g, "B", w["bias"])]);
                return Activate(g, y, dense.Activation, 0);
            }
            case RecurrentLayer recurrent:
                return Recurrent(g, recurrent, x, w);
            case Dense dense:
            {
                if (input.Length != 1) throw new NotSupportedException($"ONNX export does not support {layer.Describe()} over a sequence [{string.Join(", ", input)}] yet.");
                var inputs = new List<string> { x, Const(g, "W", w["weight"]) };
                if (dense.UseBias) inputs.Add(Const(g, "B", w["bias"]));
                return Activate(g, g.Node("Gemm", inputs.ToArray(), ("transB", 1L)), dense.Activation, 0);
            }
            case Conv2D conv:
            {
                var inputs = new List<string> { x, Const(g, "W", w["weight"]) };
                if (conv.UseBias) inputs.Add(Const(g, "B", w["bias"]));
                var y = g.Node("Conv", inputs.ToArray(), ("kernel_shape", new long[] { conv.KernelSize, conv.KernelSize }),
                    ("strides", new long[] { conv.Stride, conv.Stride }), ("pads", Pads(input, conv.KernelSize, conv.Stride, conv.Padding)));
                return Activate(g, y, conv.Activation, 0);
            }
            case MaxPool2D pool:
                return g.Node("MaxPool", [x], ("kernel_shape", new long[] { pool.PoolSize, pool.PoolSize }),
                    ("strides", new long[] { pool.Stride ?? pool.PoolSize, pool.Stride ?? pool.PoolSize }), ("pads", Pads(input, pool.PoolSize, pool.Stride ?? pool.PoolSize, pool.Padding)));
            case AvgPool2D pool:
                return g.Node("AveragePool", [x], ("kernel_shape", new long[] { pool.PoolSize, pool.PoolSize }),
                    ("strides", new long[] { pool.Stride ?? pool.PoolSize, pool.Stride ?? pool.PoolSize }), ("pads", Pads(input, pool.PoolSize, pool.Stride ?? pool.PoolSize, pool.Padding)),
                    ("count_include_pad", 1L));
            case ConvTranspose2D deconv:
            {
                // As built: a ConvTranspose2d with output padding (stride > kernel) and a crop (kernel > stride) for
                // "same"; ONNX's pads crop the same pixels from the full transposed output.
                int extra = deconv.Padding == PaddingMode.Same ? Math.Max(deconv.Stride - deconv.KernelSize, 0) : 0;
                int crop = deconv.Padding == PaddingMode.Same ? Math.Max(deconv.KernelSize - deconv.Stride, 0) : 0;
                var inputs = new List<string> { x, Const(g, "W", w["weight"]) };
                if (deconv.UseBias) inputs.Add(Const(g, "B", w["bias"]));
                var y = g.Node("ConvTranspose", inputs.ToArray(), ("kernel_shape", new long[] { deconv.KernelSize, deconv.KernelSize }),
                    ("strides", new long[] { deconv.Stride, deconv.Stride }), ("output_padding", new long[] { extra, extra }),
                    ("pads", new long[] { crop / 2, crop / 2, crop - crop / 2, crop - crop / 2 }));
                return Activate(g, y, deconv.Activation, 0);
            }
            case Upsample2D upsample:
                return g.Node("Resize", [x, "", g.Initializer("scales", [1f, 1f, upsample.Size, upsample.Size], [4])],
                    ("mode", "nearest"), ("coordinate_transformation_mode", "asymmetric"), ("nearest_mode", "floor"));
            case Embedding:
                return g.Node("Gather", [Const(g, "table", w["weight"]), g.Node("Cast", [g.Node("Round", [x])], ("to", 7L))], ("axis", 0L));
            case Dropout:
                return x;
            case BatchNorm norm:
                return g.Node("BatchNormalization", [x, Const(g, "scale", w["weight"]), Const(g, "bias", w["bias"]), Const(g, "mean", w["running_mean"]), Const(g, "var", w["running_var"])],
                    ("epsilon", norm.Epsilon));
            case Flatten:
                return g.Node("Flatten", [x], ("axis", 1L));
            case Reshape reshape:
                return g.Node("Reshape", [x, g.Int64Initializer("shape", [-1, .. reshape.Shape.Select(d => (long)d)])]);
            case Activation activation:
                return Activate(g, x, activation.Kind, activation.Alpha);
            default:
                throw new NotSupportedException($"ONNX export does not support the layer {layer.Describe()} yet.");
        }
    }

    /// <summary>
    /// A recurrent layer as ONNX's LSTM, GRU or RNN (time first, so the batch-first sequence is transposed around it).
    /// Torch keeps an LSTM's gates in the order input, forget, cell, output and ONNX in input, output, forget, cell; a
    /// GRU's reset, update, new against ONNX's update, reset, new (with the reset applied after the recurrent product,
    /// linear_before_reset = 1, as torch does). The weights are reordered to match.
    /// </summary>
    private static string Recurrent(OnnxGraph g, RecurrentLayer layer, string x, Dictionary<string, Tensor> w)
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
        var y = g.Node(op, [timeFirst, Const(g, "W", inputWeights), Const(g, "R", recurrentWeights), Const(g, "B", biases)], attributes.ToArray()); // [steps, 1, N, units]
        var steps = g.Node("Squeeze", [y, g.Int64Initializer("axes", [1])]); // [steps, N, units]
        if (layer.ReturnSequences) return g.Node("Transpose", [steps], ("perm", new long[] { 1, 0, 2 }));
        return g.Node("Squeeze", [g.Node("Gather", [steps, g.Int64Initializer("last", [-1])], ("axis", 0L)), g.Int64Initializer("axes", [0])]);
    }

    private static string Activate(OnnxGraph g, string x, ActivationKind kind, double alpha) => kind switch
    {
        ActivationKind.None => x,
        ActivationKind.ReLU => g.Node("Relu", [x]),
        ActivationKind.LeakyReLU => g.Node("LeakyRelu", [x], ("alpha", alpha == 0 ? 0.01 : alpha)),
        ActivationKind.ELU => g.Node("Elu", [x], ("alpha", alpha == 0 ? 1.0 : alpha)),
        ActivationKind.Sigmoid => g.Node("Sigmoid", [x]),
        ActivationKind.Tanh => g.Node("Tanh", [x]),
        ActivationKind.Softplus => g.Node("Softplus", [x]),
        ActivationKind.Softmax => g.Node("Softmax", [x], ("axis", -1L)),
        // GELU(x) = x * 0.5 * (1 + erf(x / sqrt 2)), as PyTorch's default (exact) GELU.
        ActivationKind.GELU => g.Node("Mul", [x, g.Node("Mul", [g.Node("Add", [g.Node("Erf", [g.Node("Mul", [x, Scalar(g, (float)(1 / Math.Sqrt(2)))])]), Scalar(g, 1f)]), Scalar(g, 0.5f)])]),
        _ => throw new NotSupportedException($"ONNX export does not support the activation {kind}."),
    };

    private static long[] Pads(int[] input, int kernel, int stride, PaddingMode padding)
    {
        if (padding == PaddingMode.Valid) return [0, 0, 0, 0];
        var (top, bottom) = Windows.SamePadding(input[1], kernel, stride);
        var (left, right) = Windows.SamePadding(input[2], kernel, stride);
        return [top, left, bottom, right];
    }

    private static string Const(OnnxGraph g, string hint, Tensor t)
    {
        using var cpu = t.detach().cpu().to(float32).contiguous();
        return g.Initializer(hint, cpu.data<float>().ToArray(), cpu.shape);
    }

    private static string Scalar(OnnxGraph g, float value) => g.Initializer("c", [value], []);
}
