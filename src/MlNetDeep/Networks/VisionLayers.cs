using MlNetDeep.Persistence.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Networks;

/// <summary>What a <see cref="Pad2D"/> layer fills its border with.</summary>
public enum PadFill
{
    /// <summary>Zeros (before a convolution or an average pool).</summary>
    Zero,
    /// <summary>Minus infinity (before a max pool, so the border never wins).</summary>
    Minimum,
}

/// <summary>Pads an image [channels, height, width] with rows and columns on each side (ONNX's explicit pads).</summary>
public sealed record Pad2D(int Top, int Bottom, int Left, int Right, PadFill Fill = PadFill.Zero) : Layer
{
    public override int[] OutputShape(int[] input)
    {
        if (input.Length != 3) throw ShapeError(input, "an image shape [channels, height, width]");
        if (Top < 0 || Bottom < 0 || Left < 0 || Right < 0 || Top > 4096 || Bottom > 4096 || Left > 4096 || Right > 4096)
            throw new InvalidOperationException($"{Describe()}: padding must be 0 to 4,096 pixels on each side.");
        return [input[0], input[1] + Top + Bottom, input[2] + Left + Right];
    }

    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        return new PadModule([Left, Right, Top, Bottom], Fill == PadFill.Zero ? 0 : double.NegativeInfinity);
    }

    public override string Describe() => $"Pad2D(top {Top}, bottom {Bottom}, left {Left}, right {Right}{(Fill == PadFill.Minimum ? ", -inf" : "")})";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w) =>
        g.Node("Pad", [x[0], g.Int64Initializer("pads", [0, 0, Top, Left, 0, 0, Bottom, Right]),
            g.Initializer("fill", [Fill == PadFill.Zero ? 0f : float.NegativeInfinity], [])], ("mode", "constant"));
}

/// <summary>The mean of each channel over the image: [channels, height, width] to [channels, 1, 1] (ONNX's GlobalAveragePool).</summary>
public sealed record GlobalAvgPool2D : Layer
{
    public override int[] OutputShape(int[] input)
    {
        if (input.Length != 3) throw ShapeError(input, "an image shape [channels, height, width]");
        return [input[0], 1, 1];
    }

    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        return new GlobalAveragePoolModule();
    }

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w) => g.Node("GlobalAveragePool", [x[0]]);
}

/// <summary>
/// A residual block (He et al. 2016): the sum of <paramref name="Body"/> applied to the input and of
/// <paramref name="Shortcut"/> applied to it (the input itself when null), which must have the same shape.
/// </summary>
public sealed record Residual(Layer[] Body, Layer[]? Shortcut = null) : Layer
{
    public override int[] OutputShape(int[] input)
    {
        if (Body is null || Body.Length == 0) throw new InvalidOperationException("A residual block needs at least one layer in its body.");
        var body = Chain(Body, input);
        var shortcut = Shortcut is null ? input : Chain(Shortcut, input);
        if (!body.SequenceEqual(shortcut))
            throw new InvalidOperationException($"{Describe()}: the body gives [{string.Join(", ", body)}] but the shortcut [{string.Join(", ", shortcut)}]; a residual sum needs one shape.");
        return body;
    }

    private static int[] Chain(IEnumerable<Layer> layers, int[] shape)
    {
        foreach (var layer in layers) shape = layer.OutputShape(shape);
        return shape;
    }

    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        return new ResidualModule(BuildChain(Body, input), Shortcut is null ? null : BuildChain(Shortcut, input));
    }

    private static nn.Module<Tensor, Tensor> BuildChain(Layer[] layers, int[] shape)
    {
        var modules = new List<(string, nn.Module<Tensor, Tensor>)>();
        for (int i = 0; i < layers.Length; i++)
        {
            modules.Add(($"{i}", layers[i].Build(shape)));
            shape = layers[i].OutputShape(shape);
        }
        return nn.Sequential(modules);
    }

    internal override long StateSize(int[] input)
    {
        long total = 0;
        foreach (var chain in new[] { Body, Shortcut ?? [] })
        {
            var shape = input;
            foreach (var layer in chain)
            {
                total = checked(total + layer.StateSize(shape));
                shape = layer.OutputShape(shape);
            }
        }
        return total;
    }

    public override string Describe() =>
        $"Residual({string.Join(" - ", Body.Select(l => l.Describe()))}{(Shortcut is null ? "" : $" + shortcut {string.Join(" - ", Shortcut.Select(l => l.Describe()))}")})";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w)
    {
        string Chain(Layer[] layers, string part)
        {
            string current = x[0];
            var shape = shapes[0];
            for (int i = 0; i < layers.Length; i++)
            {
                current = layers[i].ToOnnx(g, [current], [shape], w.Under($"{part}.{i}"));
                shape = layers[i].OutputShape(shape);
            }
            return current;
        }
        return g.Node("Add", [Chain(Body, "body"), Shortcut is null ? x[0] : Chain(Shortcut, "shortcut")]);
    }

    public bool Equals(Residual? other) => other is not null && Body.SequenceEqual(other.Body) &&
        (Shortcut is null ? other.Shortcut is null : other.Shortcut is not null && Shortcut.SequenceEqual(other.Shortcut));

    public override int GetHashCode() => Body.Concat(Shortcut ?? []).Aggregate(Shortcut is null ? 17 : 19, (h, l) => h * 31 + l.GetHashCode());
}

internal sealed class GlobalAveragePoolModule : nn.Module<Tensor, Tensor>
{
    public GlobalAveragePoolModule() : base("GlobalAveragePool") { }
    public override Tensor forward(Tensor input) => input.mean([2, 3], keepdim: true);
}

internal sealed class ResidualModule : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> body;
    private readonly nn.Module<Tensor, Tensor>? shortcut;

    public ResidualModule(nn.Module<Tensor, Tensor> body, nn.Module<Tensor, Tensor>? shortcut) : base("Residual")
    {
        this.body = body;
        this.shortcut = shortcut;
        RegisterComponents();
    }

    public override Tensor forward(Tensor input) => body.call(input) + (shortcut is null ? input : shortcut.call(input));
}
