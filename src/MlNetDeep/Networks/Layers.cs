using System.Text.Json.Serialization;
using MlNetDeep.Persistence.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Networks;

/// <summary>Activation functions a layer can apply.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ActivationKind>))]
public enum ActivationKind { None, ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Softplus, GELU, Softmax, ReLU6, HardSigmoid, HardSwish, SiLU }

/// <summary>How a convolution or pooling window treats the border: Keras' "valid" (no padding) or "same" (output = ceil(input / stride)).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<PaddingMode>))]
public enum PaddingMode { Valid, Same }

/// <summary>
/// One layer of a <see cref="NetworkSpec"/>: a small serialisable record that infers its output shape from its
/// input shape (shapes exclude the batch dimension) and builds the TorchSharp module it stands for.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "type")]
[JsonDerivedType(typeof(Dense), "Dense")]
[JsonDerivedType(typeof(WeightNormDense), "WeightNormDense")]
[JsonDerivedType(typeof(Conv2D), "Conv2D")]
[JsonDerivedType(typeof(MaxPool2D), "MaxPool2D")]
[JsonDerivedType(typeof(AvgPool2D), "AvgPool2D")]
[JsonDerivedType(typeof(Dropout), "Dropout")]
[JsonDerivedType(typeof(BatchNorm), "BatchNorm")]
[JsonDerivedType(typeof(Flatten), "Flatten")]
[JsonDerivedType(typeof(Reshape), "Reshape")]
[JsonDerivedType(typeof(Activation), "Activation")]
[JsonDerivedType(typeof(ConvTranspose2D), "ConvTranspose2D")]
[JsonDerivedType(typeof(Upsample2D), "Upsample2D")]
[JsonDerivedType(typeof(Embedding), "Embedding")]
[JsonDerivedType(typeof(LSTM), "LSTM")]
[JsonDerivedType(typeof(GRU), "GRU")]
[JsonDerivedType(typeof(SimpleRNN), "SimpleRNN")]
[JsonDerivedType(typeof(Conv1D), "Conv1D")]
[JsonDerivedType(typeof(GlobalMaxPool1D), "GlobalMaxPool1D")]
[JsonDerivedType(typeof(GlobalAvgPool1D), "GlobalAvgPool1D")]
[JsonDerivedType(typeof(SequenceEncoder), "SequenceEncoder")]
[JsonDerivedType(typeof(Pad2D), "Pad2D")]
[JsonDerivedType(typeof(GlobalAvgPool2D), "GlobalAvgPool2D")]
[JsonDerivedType(typeof(Residual), "Residual")]
[JsonDerivedType(typeof(Add), "Add")]
[JsonDerivedType(typeof(Multiply), "Multiply")]
[JsonDerivedType(typeof(Subtract), "Subtract")]
[JsonDerivedType(typeof(Divide), "Divide")]
[JsonDerivedType(typeof(Concat), "Concat")]
[JsonDerivedType(typeof(Slice), "Slice")]
[JsonDerivedType(typeof(Transpose), "Transpose")]
[JsonDerivedType(typeof(AdaptiveAvgPool2D), "AdaptiveAvgPool2D")]
[JsonDerivedType(typeof(LayerNorm), "LayerNorm")]
[JsonDerivedType(typeof(Clip), "Clip")]
[JsonDerivedType(typeof(ConstantTensor), "Constant")]
[JsonDerivedType(typeof(Custom), "Custom")]
[JsonDerivedType(typeof(NormalizeChannels), "NormalizeChannels")]
public abstract record Layer
{
    /// <summary>The shape this layer produces for one sample of shape <paramref name="input"/>.</summary>
    public abstract int[] OutputShape(int[] input);

    /// <summary>The TorchSharp module for an input of shape <paramref name="input"/>.</summary>
    public abstract nn.Module<Tensor, Tensor> Build(int[] input);

    /// <summary>A short description for network summaries.</summary>
    public virtual string Describe() => GetType().Name;

    protected InvalidOperationException ShapeError(int[] input, string expected) =>
        new($"{Describe()} expects {expected}, but its input has shape [{string.Join(", ", input)}].");

    protected static int Product(int[] shape) => Shapes.Product(shape);

    /// <summary>
    /// The values (parameters and buffers) the module built for <paramref name="input"/> keeps, computed from the
    /// layer's settings without building it, in checked arithmetic; 0 for layers without state.
    /// </summary>
    internal virtual long StateSize(int[] input) => 0;

    /// <summary>This layer applied to <paramref name="inputs"/> in a network written in the functional style (<see cref="GraphNode"/>).</summary>
    public GraphNode On(params GraphNode[] inputs) => GraphNode.Apply(this, inputs);

    /// <summary>How many inputs the layer reads: one for most; two or more for merges (<see cref="Concat"/>, <see cref="Add"/>, ...).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public virtual (int Min, int Max) InputCount => (1, 1);

    /// <summary>The output shape for the shapes of all the layer's inputs (a graph network's view; one input for most layers).</summary>
    public virtual int[] OutputShape(IReadOnlyList<int[]> inputs) => OutputShape(Single(inputs));

    /// <summary>The module for the shapes of all the layer's inputs.</summary>
    public virtual nn.Module<Tensor, Tensor> Build(IReadOnlyList<int[]> inputs) => Build(Single(inputs));

    internal virtual long StateSize(IReadOnlyList<int[]> inputs) => StateSize(Single(inputs));

    private int[] Single(IReadOnlyList<int[]> inputs) =>
        inputs is [var one] ? one : throw new InvalidOperationException($"{Describe()} reads one input, but is given {inputs.Count}.");

    /// <summary>
    /// Appends the layer to an ONNX graph: <paramref name="inputs"/> are the names of its inputs, <paramref name="shapes"/>
    /// their sample shapes, <paramref name="weights"/> the state of its module by name (e.g. weight, bias, layer.weight).
    /// Returns the name of its output.
    /// </summary>
    internal virtual string ToOnnx(OnnxGraph graph, IReadOnlyList<string> inputs, IReadOnlyList<int[]> shapes, LayerWeights weights) =>
        throw new NotSupportedException($"ONNX export does not support the layer {Describe()} yet.");
}

/// <summary>Checked size arithmetic for shapes: a product that does not fit is a clear error, never a wrapped-around size.</summary>
internal static class Shapes
{
    /// <summary>The number of values in one sample of <paramref name="shape"/>; more than an int holds is an error.</summary>
    public static int Product(IReadOnlyList<int> shape)
    {
        long product = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new InvalidOperationException($"Shape [{string.Join(", ", shape)}] has a negative size.");
            product *= d;
            if (product > int.MaxValue)
                throw new InvalidOperationException($"Shape [{string.Join(", ", shape)}] holds more than {int.MaxValue:N0} values per sample (the size overflows).");
        }
        return (int)product;
    }

    /// <summary>An output size <paramref name="a"/> * <paramref name="b"/> + <paramref name="add"/> (all from ints); more than an int holds is an error.</summary>
    public static int Size(long a, long b, long add = 0)
    {
        long size = a * b + add; // factors and addend come from ints: no long overflow
        if (size is < 0 or > int.MaxValue)
            throw new InvalidOperationException($"an output size of {a} x {b}{(add != 0 ? $" + {add}" : "")} overflows ({int.MaxValue:N0} at most).");
        return (int)size;
    }

    /// <summary>The product of <paramref name="factors"/> as a count of values, in checked arithmetic.</summary>
    public static long Values(params long[] factors)
    {
        long product = 1;
        foreach (var f in factors)
        {
            if (f < 0) throw new InvalidOperationException($"A negative size ({f}) in [{string.Join(", ", factors)}].");
            product = checked(product * f);
        }
        return product;
    }
}

/// <summary>A fully connected layer over a flat input.</summary>
/// <param name="Units">Number of outputs; <see cref="TaskOutputs"/> (0) means as many as the task needs (classes, or targets).</param>
/// <param name="Activation">The activation applied to the outputs.</param>
/// <param name="UseBias">Whether the layer adds a learned bias.</param>
public sealed record Dense(int Units, ActivationKind Activation = ActivationKind.None, bool UseBias = true) : Layer
{
    /// <summary>Units = 0: the trainer sets the width to the task's output count.</summary>
    public const int TaskOutputs = 0;

    /// <summary>A flat input [features] gives [Units]; a sequence [steps, features] gets the same weights at every step: [steps, Units].</summary>
    public override int[] OutputShape(int[] input)
    {
        if (input.Length is not (1 or 2)) throw ShapeError(input, "a flat input (add a Flatten layer before it) or a sequence [steps, features]");
        if (Units < 0) throw new InvalidOperationException($"Dense units must be positive, got {Units}.");
        if (Units == TaskOutputs) throw new InvalidOperationException("Dense(Units: TaskOutputs) must be resolved by the trainer before its shape is known.");
        return input.Length == 1 ? [Units] : [input[0], Units];
    }

    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        return Activations.Wrap(nn.Linear(input[^1], Units, hasBias: UseBias), Activation);
    }

    internal override long StateSize(int[] input) => Shapes.Values(input[^1], Units) + (UseBias ? Units : 0);

    public override string Describe() => $"Dense({(Units == TaskOutputs ? "outputs" : Units)}{Activations.Suffix(Activation)})";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w)
    {
        if (shapes[0].Length == 2)
        {
            // Per step over a sequence [N, steps, features]: x W^T + b on the last axis.
            var y = g.Node("MatMul", [x[0], OnnxExporter.Constant(g, "WT", w["weight"].t())]);
            if (UseBias) y = g.Node("Add", [y, OnnxExporter.Constant(g, "B", w["bias"])]);
            return OnnxExporter.Activate(g, y, Activation, 0);
        }
        var inputs = new List<string> { x[0], OnnxExporter.Constant(g, "W", w["weight"]) };
        if (UseBias) inputs.Add(OnnxExporter.Constant(g, "B", w["bias"]));
        return OnnxExporter.Activate(g, g.Node("Gemm", inputs.ToArray(), ("transB", 1L)), Activation, 0);
    }
}

/// <summary>
/// A fully connected layer with weight normalisation (Salimans and Kingma, 2016): each output unit's weight vector is
/// w = g * v / ||v||, a learned direction v and a learned length g trained separately, which decouples the size of the
/// weights from their direction and smooths optimisation without depending on the batch (unlike batch normalisation).
/// At the start g = ||v||, so the layer computes what a Dense layer with the same initial weights does. The module's
/// parameters are weight_v [Units, inputs], weight_g [Units] and bias [Units]; ONNX export writes the effective w as a Gemm.
/// </summary>
/// <param name="Units">Number of outputs; <see cref="Dense.TaskOutputs"/> (0) means as many as the task needs.</param>
/// <param name="Activation">The activation applied to the outputs.</param>
/// <param name="UseBias">Whether the layer adds a learned bias.</param>
public sealed record WeightNormDense(int Units, ActivationKind Activation = ActivationKind.None, bool UseBias = true) : Layer
{
    /// <summary>A flat input [features] gives [Units]; a sequence [steps, features] gets the same weights at every step: [steps, Units].</summary>
    public override int[] OutputShape(int[] input)
    {
        if (input.Length is not (1 or 2)) throw ShapeError(input, "a flat input (add a Flatten layer before it) or a sequence [steps, features]");
        if (Units < 0) throw new InvalidOperationException($"WeightNormDense units must be positive, got {Units}.");
        if (Units == Dense.TaskOutputs) throw new InvalidOperationException("WeightNormDense(Units: TaskOutputs) must be resolved by the trainer before its shape is known.");
        return input.Length == 1 ? [Units] : [input[0], Units];
    }

    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        return Activations.Wrap(new WeightNormLinearModule(input[^1], Units, UseBias), Activation);
    }

    internal override long StateSize(int[] input) => Shapes.Values(input[^1] + 1, Units) + (UseBias ? Units : 0);

    public override string Describe() => $"WeightNormDense({(Units == Dense.TaskOutputs ? "outputs" : Units)}{Activations.Suffix(Activation)})";

    /// <summary>The effective weights g * v / ||v|| (one row per output unit) from the direction <paramref name="v"/> and the lengths <paramref name="g"/>.</summary>
    public static Tensor EffectiveWeight(Tensor v, Tensor g) => WeightNormLinearModule.Weight(v, g);

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w)
    {
        using var scope = NewDisposeScope();
        var state = new Dictionary<string, Tensor> { ["weight"] = EffectiveWeight(w["weight_v"], w["weight_g"]) };
        if (UseBias) state["bias"] = w["bias"];
        return new Dense(Units, Activation, UseBias).ToOnnx(g, x, shapes, new LayerWeights(state));
    }
}

/// <summary>A linear map whose weight rows are g * v / ||v|| (weight normalisation).</summary>
internal sealed class WeightNormLinearModule : nn.Module<Tensor, Tensor>
{
    private readonly TorchSharp.Modules.Parameter weight_v;
    private readonly TorchSharp.Modules.Parameter weight_g;
    private readonly TorchSharp.Modules.Parameter? bias;

    public WeightNormLinearModule(int inputs, int units, bool useBias) : base("WeightNormLinear")
    {
        // torch's Linear initialisation for v and the bias; g starts at ||v|| so that w = v at first.
        using var linear = nn.Linear(inputs, units, hasBias: useBias);
        using (no_grad())
        {
            weight_v = nn.Parameter(linear.weight!.detach().clone());
            weight_g = nn.Parameter(Norms(weight_v).detach().clone());
            bias = useBias ? nn.Parameter(linear.bias!.detach().clone()) : null;
        }
        RegisterComponents();
    }

    private static Tensor Norms(Tensor v) => v.pow(2).sum(1).sqrt();

    /// <summary>g * v / ||v||, the norm taken over each row of v (one row per output unit).</summary>
    public static Tensor Weight(Tensor v, Tensor g) => v * (g / Norms(v)).unsqueeze(1);

    public override Tensor forward(Tensor input) => nn.functional.linear(input, Weight(weight_v, weight_g), bias);
}

/// <summary>
/// A 2-D convolution over [channels, height, width]: a square kernel, "valid" or "same" padding (or an explicit
/// <paramref name="Pad"/> of that many pixels on every side), dilation, and groups (grouped convolutions; depthwise when
/// <paramref name="Groups"/> equals the input channels and the filters).
/// </summary>
public sealed record Conv2D(int Filters, int KernelSize, int Stride = 1, PaddingMode Padding = PaddingMode.Valid,
    ActivationKind Activation = ActivationKind.None, bool UseBias = true, int Groups = 1, int Dilation = 1, int? Pad = null) : Layer
{
    /// <summary>The span of the dilated kernel.</summary>
    private int Span => Dilation * (KernelSize - 1) + 1;

    public override int[] OutputShape(int[] input)
    {
        if (input.Length != 3) throw ShapeError(input, "an image shape [channels, height, width]");
        if (Filters <= 0 || KernelSize <= 0 || Stride <= 0 || Dilation <= 0 || Groups <= 0)
            throw new InvalidOperationException($"{Describe()}: filters, kernel size, stride, dilation and groups must be positive.");
        if (KernelSize > 4096 || Dilation > 4096 || Stride > 4096) throw new InvalidOperationException($"{Describe()}: kernel size, stride and dilation must be at most 4,096.");
        if (input[0] % Groups != 0 || Filters % Groups != 0)
            throw new InvalidOperationException($"{Describe()}: {Groups} groups must divide the {input[0]} input channels and the {Filters} filters.");
        if (Pad is { } pad && (pad < 0 || pad > 4096 || Padding == PaddingMode.Same))
            throw new InvalidOperationException($"{Describe()}: an explicit pad must be 0 to 4,096 pixels, with Padding left at Valid.");
        var (h, w) = (OutSize(input[1]), OutSize(input[2]));
        if (h <= 0 || w <= 0) throw ShapeError(input, $"an image of at least {Span}x{Span} pixels");
        return [Filters, h, w];
    }

    private int OutSize(int size) => Pad is { } pad ? Windows.OutSize(size + 2 * pad, Span, Stride, PaddingMode.Valid) : Windows.OutSize(size, Span, Stride, Padding);

    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        (long, long) kernel = (KernelSize, KernelSize), stride = (Stride, Stride), dilation = (Dilation, Dilation);
        if (Pad is { } pad)
            return Activations.Wrap(nn.Conv2d(input[0], Filters, kernel, stride: stride, padding: (pad, pad), dilation: dilation, groups: Groups, bias: UseBias), Activation);
        if (Padding == PaddingMode.Same)
        {
            var (top, bottom) = Windows.SamePadding(input[1], Span, Stride);
            var (left, right) = Windows.SamePadding(input[2], Span, Stride);
            // Symmetric "same" padding is the convolution's own (no padded copy of the input); the module keeps the
            // "layer" name that the explicitly padded form has, so saved weights load either way.
            if (top + bottom + left + right > 0 && top == bottom && left == right)
                return Activations.Wrap(nn.Sequential(("layer", nn.Conv2d(input[0], Filters, kernel, stride: stride,
                    padding: (top, left), dilation: dilation, groups: Groups, bias: UseBias))), Activation);
        }
        var conv = nn.Conv2d(input[0], Filters, kernel, stride: stride, dilation: dilation, groups: Groups, bias: UseBias);
        return Activations.Wrap(Windows.WithSamePadding(conv, input, Span, Stride, Padding, padValue: 0), Activation);
    }

    internal override long StateSize(int[] input) => Shapes.Values(input[0] / Groups, Filters, KernelSize, KernelSize) + (UseBias ? Filters : 0);

    public override string Describe() =>
        $"Conv2D({Filters}, {KernelSize}x{KernelSize}, stride {Stride}, {(Pad is { } p ? $"pad {p}" : Padding.ToString().ToLowerInvariant())}" +
        $"{(Groups != 1 ? $", groups {Groups}" : "")}{(Dilation != 1 ? $", dilation {Dilation}" : "")}{Activations.Suffix(Activation)})";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w)
    {
        var inputs = new List<string> { x[0], OnnxExporter.Constant(g, "W", w["weight"]) };
        if (UseBias) inputs.Add(OnnxExporter.Constant(g, "B", w["bias"]));
        var pads = Pad is { } p ? new long[] { p, p, p, p } : OnnxExporter.Pads(shapes[0], Span, Stride, Padding);
        var y = g.Node("Conv", inputs.ToArray(), ("kernel_shape", new long[] { KernelSize, KernelSize }), ("strides", new long[] { Stride, Stride }),
            ("pads", pads), ("dilations", new long[] { Dilation, Dilation }), ("group", (long)Groups));
        return OnnxExporter.Activate(g, y, Activation, 0);
    }
}

/// <summary>
/// A transposed 2-D convolution over [channels, height, width] (Keras' Conv2DTranspose), the learned upsampling of
/// convolutional decoders. "valid" gives (size - 1) * stride + kernel; "same" gives size * stride.
/// </summary>
public sealed record ConvTranspose2D(int Filters, int KernelSize, int Stride = 1, PaddingMode Padding = PaddingMode.Valid,
    ActivationKind Activation = ActivationKind.None, bool UseBias = true) : Layer
{
    public override int[] OutputShape(int[] input)
    {
        if (input.Length != 3) throw ShapeError(input, "an image shape [channels, height, width]");
        if (Filters <= 0 || KernelSize <= 0 || Stride <= 0) throw new InvalidOperationException($"{Describe()}: filters, kernel size and stride must be positive.");
        return [Filters, OutSize(input[1]), OutSize(input[2])];
    }

    private int OutSize(int size) => Padding == PaddingMode.Same
        ? Shapes.Size(size, Stride)
        : Shapes.Size(size - 1, Stride, KernelSize);

    internal override long StateSize(int[] input) => Shapes.Values(input[0], Filters, KernelSize, KernelSize) + (UseBias ? Filters : 0);

    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        // "same": the full transposed output is (size - 1) * stride + kernel; crop (kernel - stride) pixels, or,
        // when the kernel is smaller than the stride, extend by (stride - kernel) with output padding.
        int extra = Padding == PaddingMode.Same ? Math.Max(Stride - KernelSize, 0) : 0;
        int crop = Padding == PaddingMode.Same ? Math.Max(KernelSize - Stride, 0) : 0;
        nn.Module<Tensor, Tensor> conv;
        if (crop > 0 && crop % 2 == 0)
            // An even crop is the transposed convolution's own padding: the cropped pixels are never computed. Same
            // "layer" name as the cropped form, so saved weights load either way.
            conv = nn.Sequential(("layer", nn.ConvTranspose2d(input[0], Filters, KernelSize, stride: Stride, padding: crop / 2, bias: UseBias)));
        else
        {
            conv = nn.ConvTranspose2d(input[0], Filters, KernelSize, stride: Stride, output_padding: extra, bias: UseBias);
            if (crop > 0) conv = nn.Sequential(("layer", conv), ("crop", new CropModule(crop / 2, crop - crop / 2)));
        }
        return Activations.Wrap(conv, Activation);
    }

    public override string Describe() => $"ConvTranspose2D({Filters}, {KernelSize}x{KernelSize}, stride {Stride}, {Padding.ToString().ToLowerInvariant()}{Activations.Suffix(Activation)})";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w)
    {
        // As built: a ConvTranspose2d with output padding (stride > kernel) and a crop (kernel > stride) for "same";
        // ONNX's pads crop the same pixels from the full transposed output.
        int extra = Padding == PaddingMode.Same ? Math.Max(Stride - KernelSize, 0) : 0;
        int crop = Padding == PaddingMode.Same ? Math.Max(KernelSize - Stride, 0) : 0;
        var inputs = new List<string> { x[0], OnnxExporter.Constant(g, "W", w["weight"]) };
        if (UseBias) inputs.Add(OnnxExporter.Constant(g, "B", w["bias"]));
        var y = g.Node("ConvTranspose", inputs.ToArray(), ("kernel_shape", new long[] { KernelSize, KernelSize }),
            ("strides", new long[] { Stride, Stride }), ("output_padding", new long[] { extra, extra }),
            ("pads", new long[] { crop / 2, crop / 2, crop - crop / 2, crop - crop / 2 }));
        return OnnxExporter.Activate(g, y, Activation, 0);
    }
}

/// <summary>
/// A lookup table of <paramref name="Dimension"/> learned values for each of <paramref name="Vocabulary"/> token ids
/// (Keras' Embedding): [steps] ids (whole numbers stored as floats, 0 to Vocabulary - 1) become [steps, Dimension].
/// An id outside the table is an error naming it.
/// </summary>
public sealed record Embedding(int Vocabulary, int Dimension) : Layer
{
    public override int[] OutputShape(int[] input)
    {
        if (input.Length != 1) throw ShapeError(input, "a sequence of token ids [steps]");
        if (Vocabulary <= 0 || Dimension <= 0) throw new InvalidOperationException($"{Describe()}: vocabulary and dimension must be positive.");
        return [input[0], Dimension];
    }

    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        return new EmbeddingModule(Vocabulary, Dimension);
    }

    internal override long StateSize(int[] input) => Shapes.Values(Vocabulary, Dimension);

    public override string Describe() => $"Embedding({Vocabulary}, {Dimension})";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w) =>
        g.Node("Gather", [OnnxExporter.Constant(g, "table", w["weight"]), g.Node("Cast", [g.Node("Round", [x[0]])], ("to", 7L))], ("axis", 0L));
}

internal sealed class EmbeddingModule : nn.Module<Tensor, Tensor>
{
    private readonly TorchSharp.Modules.Embedding table;
    private readonly int _vocabulary;

    public EmbeddingModule(int vocabulary, int dimension) : base("Embedding")
    {
        _vocabulary = vocabulary;
        table = nn.Embedding(vocabulary, dimension);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        var ids = input.round().to(ScalarType.Int64);
        if (ids.numel() > 0 && (ids.min().item<long>() < 0 || ids.max().item<long>() >= _vocabulary))
            throw new ArgumentOutOfRangeException(nameof(input), $"Token ids must be whole numbers from 0 to {_vocabulary - 1}; the batch holds {ids.min().item<long>()} to {ids.max().item<long>()}.");
        return table.call(ids);
    }
}

/// <summary>Nearest-neighbour upsampling of [channels, height, width] by an integer <paramref name="Size"/> (Keras' UpSampling2D).</summary>
public sealed record Upsample2D(int Size = 2) : Layer
{
    public override int[] OutputShape(int[] input)
    {
        if (input.Length != 3) throw ShapeError(input, "an image shape [channels, height, width]");
        if (Size <= 0) throw new InvalidOperationException($"Upsample2D size must be positive, got {Size}.");
        return [input[0], Shapes.Size(input[1], Size), Shapes.Size(input[2], Size)];
    }

    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        return nn.Upsample(scale_factor: [Size, Size], mode: UpsampleMode.Nearest);
    }

    public override string Describe() => $"Upsample2D({Size}x)";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w) =>
        g.Node("Resize", [x[0], "", g.Initializer("scales", [1f, 1f, Size, Size], [4])],
            ("mode", "nearest"), ("coordinate_transformation_mode", "asymmetric"), ("nearest_mode", "floor"));
}

/// <summary>
/// Max pooling over [channels, height, width]; the stride defaults to the pool size. <paramref name="Pad"/> pads every
/// side (never winning the max) and <paramref name="CeilMode"/> keeps a last partial window, as PyTorch and ONNX do.
/// </summary>
public sealed record MaxPool2D(int PoolSize = 2, int? Stride = null, PaddingMode Padding = PaddingMode.Valid, int Pad = 0, bool CeilMode = false) : Layer
{
    public override int[] OutputShape(int[] input) => Windows.PoolShape(this, input, PoolSize, Stride ?? PoolSize, Padding, Pad, CeilMode);
    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        int stride = Stride ?? PoolSize;
        return Windows.WithSamePadding(nn.MaxPool2d(PoolSize, stride, Pad, ceil_mode: CeilMode), input, PoolSize, stride, Padding, padValue: double.NegativeInfinity);
    }
    public override string Describe() => $"MaxPool2D({PoolSize}x{PoolSize}, stride {Stride ?? PoolSize}{Windows.Suffix(Padding, Pad, CeilMode)})";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w) =>
        g.Node("MaxPool", [x[0]], Windows.PoolAttributes(shapes[0], PoolSize, Stride ?? PoolSize, Padding, Pad, CeilMode));
}

/// <summary>
/// Average pooling over [channels, height, width]; the stride defaults to the pool size. <paramref name="Pad"/> pads
/// every side with zeros, counted in each mean when <paramref name="CountIncludePad"/> (PyTorch's default) and left out
/// otherwise; <paramref name="CeilMode"/> keeps a last partial window.
/// </summary>
public sealed record AvgPool2D(int PoolSize = 2, int? Stride = null, PaddingMode Padding = PaddingMode.Valid, int Pad = 0, bool CeilMode = false,
    bool CountIncludePad = true) : Layer
{
    public override int[] OutputShape(int[] input) => Windows.PoolShape(this, input, PoolSize, Stride ?? PoolSize, Padding, Pad, CeilMode);
    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        int stride = Stride ?? PoolSize;
        return Windows.WithSamePadding(nn.AvgPool2d(PoolSize, stride, Pad, ceil_mode: CeilMode, count_include_pad: CountIncludePad), input, PoolSize, stride, Padding, padValue: 0);
    }
    public override string Describe() =>
        $"AvgPool2D({PoolSize}x{PoolSize}, stride {Stride ?? PoolSize}{Windows.Suffix(Padding, Pad, CeilMode)}{(CountIncludePad || Pad == 0 ? "" : ", pads not counted")})";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w) =>
        g.Node("AveragePool", [x[0]], [.. Windows.PoolAttributes(shapes[0], PoolSize, Stride ?? PoolSize, Padding, Pad, CeilMode), ("count_include_pad", CountIncludePad ? 1L : 0L)]);
}

/// <summary>
/// Dropout: zeroes a fraction <paramref name="Rate"/> of its inputs while training, with masks from the training run's
/// own generator (<see cref="Training.TrainingRandom"/>), so concurrent trainings do not disturb each other.
/// </summary>
public sealed record Dropout(double Rate) : Layer
{
    public override int[] OutputShape(int[] input)
    {
        if (Rate is < 0 or >= 1 || double.IsNaN(Rate)) throw new InvalidOperationException($"Dropout rate must be in [0, 1), got {Rate}.");
        return input;
    }
    public override nn.Module<Tensor, Tensor> Build(int[] input) { OutputShape(input); return new DropoutModule(Rate); }
    public override string Describe() => $"Dropout({Rate})";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w) => x[0];
}

/// <summary>Batch normalisation over the features of a flat input or the channels of an image.</summary>
public sealed record BatchNorm(double Momentum = 0.1, double Epsilon = 1e-5) : Layer
{
    public override int[] OutputShape(int[] input)
    {
        if (input.Length is not (1 or 3)) throw ShapeError(input, "a flat input or an image [channels, height, width]");
        return input;
    }
    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        return input.Length == 1 ? nn.BatchNorm1d(input[0], Epsilon, Momentum) : nn.BatchNorm2d(input[0], Epsilon, Momentum);
    }

    /// <summary>Scale, shift, running mean and running variance per channel, and the count of batches seen.</summary>
    internal override long StateSize(int[] input) => Shapes.Values(4, input[0]) + 1;

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w) =>
        g.Node("BatchNormalization", [x[0], OnnxExporter.Constant(g, "scale", w["weight"]), OnnxExporter.Constant(g, "bias", w["bias"]),
            OnnxExporter.Constant(g, "mean", w["running_mean"]), OnnxExporter.Constant(g, "var", w["running_var"])], ("epsilon", Epsilon));
}

/// <summary>Flattens a sample to one dimension.</summary>
public sealed record Flatten : Layer
{
    public override int[] OutputShape(int[] input) => [Product(input)];
    public override nn.Module<Tensor, Tensor> Build(int[] input) => nn.Flatten();

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w) => g.Node("Flatten", [x[0]], ("axis", 1L));
}

/// <summary>Reshapes a sample to <paramref name="Shape"/> (same number of elements).</summary>
public sealed record Reshape(int[] Shape) : Layer
{
    public override int[] OutputShape(int[] input)
    {
        if (Shape is null || Shape.Length == 0 || Shape.Any(d => d <= 0)) throw new InvalidOperationException("Reshape needs a shape of positive sizes.");
        if (Product(Shape) != Product(input)) throw ShapeError(input, $"{Product(Shape)} elements to reshape to [{string.Join(", ", Shape)}]");
        return Shape;
    }
    public override nn.Module<Tensor, Tensor> Build(int[] input) { OutputShape(input); return new ReshapeModule(Shape); }
    public override string Describe() => $"Reshape([{string.Join(", ", Shape)}])";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w) => g.Node("Reshape", [x[0], g.Int64Initializer("shape", [-1, .. Shape.Select(d => (long)d)])]);
    public bool Equals(Reshape? other) => other is not null && Shape.SequenceEqual(other.Shape);
    public override int GetHashCode() => Shape.Aggregate(17, (h, d) => h * 31 + d);
}

/// <summary>A standalone activation; <paramref name="Alpha"/> is LeakyReLU's negative slope or ELU's alpha.</summary>
public sealed record Activation(ActivationKind Kind, double Alpha = 0) : Layer
{
    public override int[] OutputShape(int[] input) => input;
    public override nn.Module<Tensor, Tensor> Build(int[] input) => Activations.Create(Kind, Alpha);
    public override string Describe() => Kind.ToString();

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w) => OnnxExporter.Activate(g, x[0], Kind, Alpha);
}

internal static class Activations
{
    public static nn.Module<Tensor, Tensor> Create(ActivationKind kind, double alpha = 0) => kind switch
    {
        ActivationKind.None => nn.Identity(),
        ActivationKind.ReLU => nn.ReLU(),
        ActivationKind.LeakyReLU => nn.LeakyReLU(alpha == 0 ? 0.01 : alpha),
        ActivationKind.ELU => nn.ELU(alpha == 0 ? 1.0 : alpha),
        ActivationKind.Sigmoid => nn.Sigmoid(),
        ActivationKind.Tanh => nn.Tanh(),
        ActivationKind.Softplus => nn.Softplus(),
        ActivationKind.GELU => nn.GELU(),
        ActivationKind.Softmax => nn.Softmax(-1),
        ActivationKind.ReLU6 => nn.ReLU6(),
        ActivationKind.HardSigmoid => nn.Hardsigmoid(),
        ActivationKind.HardSwish => nn.Hardswish(),
        ActivationKind.SiLU => nn.SiLU(),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown activation."),
    };

    public static nn.Module<Tensor, Tensor> Wrap(nn.Module<Tensor, Tensor> module, ActivationKind activation) =>
        activation == ActivationKind.None ? module : nn.Sequential(("layer", module), ("activation", Create(activation)));

    public static string Suffix(ActivationKind activation) => activation == ActivationKind.None ? "" : ", " + activation;
}

internal static class Windows
{
    public static int OutSize(int size, int kernel, int stride, PaddingMode padding) =>
        padding == PaddingMode.Same ? (size + stride - 1) / stride : size >= kernel ? (size - kernel) / stride + 1 : 0;

    /// <summary>Keras' "same" padding: total = max((out - 1) * stride + kernel - size, 0), the extra pixel at the bottom/right.</summary>
    public static (int Before, int After) SamePadding(int size, int kernel, int stride)
    {
        int outSize = (size + stride - 1) / stride;
        int total = Math.Max((outSize - 1) * stride + kernel - size, 0);
        return (total / 2, total - total / 2);
    }

    public static nn.Module<Tensor, Tensor> WithSamePadding(nn.Module<Tensor, Tensor> module, int[] input, int kernel, int stride, PaddingMode padding, double padValue)
    {
        if (padding == PaddingMode.Valid) return module;
        var (top, bottom) = SamePadding(input[1], kernel, stride);
        var (left, right) = SamePadding(input[2], kernel, stride);
        if (top + bottom + left + right == 0) return module;
        return nn.Sequential(("pad", new PadModule([left, right, top, bottom], padValue)), ("layer", module));
    }

    public static int[] PoolShape(Layer layer, int[] input, int pool, int stride, PaddingMode padding, int pad = 0, bool ceilMode = false)
    {
        if (input.Length != 3) throw new InvalidOperationException($"{layer.Describe()} expects an image shape [channels, height, width], but its input has shape [{string.Join(", ", input)}].");
        if (pool <= 0 || stride <= 0 || pool > 4096 || stride > 4096) throw new InvalidOperationException($"{layer.Describe()}: pool size and stride must be 1 to 4,096.");
        if (pad < 0 || pad > pool / 2) throw new InvalidOperationException($"{layer.Describe()}: the pad must be 0 to half the pool size ({pool / 2}).");
        if ((pad > 0 || ceilMode) && padding == PaddingMode.Same) throw new InvalidOperationException($"{layer.Describe()}: an explicit pad or ceil mode needs Padding left at Valid.");
        int h = PoolOut(input[1], pool, stride, padding, pad, ceilMode), w = PoolOut(input[2], pool, stride, padding, pad, ceilMode);
        if (h <= 0 || w <= 0) throw new InvalidOperationException($"{layer.Describe()} needs an input of at least {pool}x{pool} pixels, got [{string.Join(", ", input)}].");
        return [input[0], h, w];
    }

    /// <summary>PyTorch's pooled size: floor (or ceil) of (size + 2 pad - pool) / stride + 1, where a last window must start inside the padded-left image.</summary>
    private static int PoolOut(int size, int pool, int stride, PaddingMode padding, int pad, bool ceilMode)
    {
        if (padding == PaddingMode.Same) return OutSize(size, pool, stride, padding);
        long span = (long)size + 2 * pad - pool;
        if (span < 0) return 0;
        long outSize = (ceilMode ? (span + stride - 1) / stride : span / stride) + 1;
        if (ceilMode && (outSize - 1) * stride >= size + pad) outSize--;
        return (int)outSize;
    }

    public static string Suffix(PaddingMode padding, int pad, bool ceilMode) =>
        (padding == PaddingMode.Same ? ", same" : "") + (pad > 0 ? $", pad {pad}" : "") + (ceilMode ? ", ceil" : "");

    /// <summary>ONNX attributes of a pooling node as built.</summary>
    public static (string, object)[] PoolAttributes(int[] input, int pool, int stride, PaddingMode padding, int pad, bool ceilMode) =>
    [
        ("kernel_shape", new long[] { pool, pool }), ("strides", new long[] { stride, stride }),
        ("pads", pad > 0 ? new long[] { pad, pad, pad, pad } : Persistence.Onnx.OnnxExporter.Pads(input, pool, stride, padding)), ("ceil_mode", ceilMode ? 1L : 0L),
    ];
}

/// <summary>Dropout while training (masks from <see cref="Training.TrainingRandom"/>), the identity in eval mode.</summary>
internal sealed class DropoutModule : nn.Module<Tensor, Tensor>
{
    private readonly double _rate;
    public DropoutModule(double rate) : base("Dropout") { _rate = rate; }
    public override Tensor forward(Tensor input) => training ? Training.TrainingRandom.Dropout(input, _rate) : input.alias();
}

internal sealed class ReshapeModule : nn.Module<Tensor, Tensor>
{
    private readonly long[] _shape;
    public ReshapeModule(int[] shape) : base("Reshape") { _shape = [-1, .. shape.Select(d => (long)d)]; }
    public override Tensor forward(Tensor input) => input.reshape(_shape);
}

internal sealed class PadModule : nn.Module<Tensor, Tensor>
{
    private readonly long[] _pad;
    private readonly double _value;
    public PadModule(long[] pad, double value) : base("Pad") { _pad = pad; _value = value; }
    public override Tensor forward(Tensor input) => nn.functional.pad(input, _pad, PaddingModes.Constant, _value);
}

/// <summary>Removes <c>before</c> rows/columns at the top/left and <c>after</c> at the bottom/right of an image batch.</summary>
internal sealed class CropModule : nn.Module<Tensor, Tensor>
{
    private readonly long _before, _after;
    public CropModule(int before, int after) : base("Crop") { _before = before; _after = after; }
    public override Tensor forward(Tensor input)
    {
        long h = input.shape[2], w = input.shape[3];
        return input.slice(2, _before, h - _after, 1).slice(3, _before, w - _after, 1);
    }
}
