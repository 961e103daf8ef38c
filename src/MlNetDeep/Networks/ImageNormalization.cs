using MlNetDeep.Persistence.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Networks;

/// <summary>
/// Normalises the channels of an image [channels, height, width]: y = (x - Mean[c]) / Std[c], after reversing the
/// channel order first when <paramref name="ReverseChannels"/> (RGB to BGR, for backbones trained on BGR). As the first
/// layer of a network, it makes the network read pixels as they come (ML.NET's ExtractPixels, [0, 1] with
/// <c>PixelPipeline</c>) while its backbone sees the input it was trained on; it exports to ONNX with the rest.
/// </summary>
public sealed record NormalizeChannels(double[] Mean, double[] Std, bool ReverseChannels = false) : Layer
{
    public override int[] OutputShape(int[] input)
    {
        if (input.Length != 3) throw ShapeError(input, "an image shape [channels, height, width]");
        if (Mean is null || Std is null || Mean.Length != input[0] || Std.Length != input[0])
            throw new InvalidOperationException($"{Describe()} gives {Mean?.Length ?? 0} means and {Std?.Length ?? 0} standard deviations for an image of {input[0]} channel(s).");
        if (Mean.Any(m => !double.IsFinite(m)) || Std.Any(s => !(s > 0) || !double.IsFinite(s)))
            throw new InvalidOperationException($"{Describe()}: the means must be numbers and the standard deviations positive.");
        return input;
    }

    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        return new NormalizeChannelsModule(Mean, Std, ReverseChannels);
    }

    internal override long StateSize(int[] input) => Shapes.Values(2, input[0]);

    public override string Describe() =>
        $"NormalizeChannels(mean [{string.Join(", ", (Mean ?? []).Select(m => m.ToString("G4")))}], std [{string.Join(", ", (Std ?? []).Select(s => s.ToString("G4")))}]{(ReverseChannels ? ", reversed" : "")})";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w)
    {
        var input = x[0];
        if (ReverseChannels)
            input = g.Node("Gather", [input, g.Int64Initializer("channels", Enumerable.Range(0, Mean.Length).Reverse().Select(c => (long)c).ToArray())], ("axis", 1L));
        return g.Node("Add", [g.Node("Mul", [input, OnnxExporter.Constant(g, "scale", w["scale"])]), OnnxExporter.Constant(g, "shift", w["shift"])]);
    }

    public bool Equals(NormalizeChannels? other) => other is not null && ReverseChannels == other.ReverseChannels &&
        (Mean ?? []).SequenceEqual(other.Mean ?? []) && (Std ?? []).SequenceEqual(other.Std ?? []);

    public override int GetHashCode() => (Mean ?? []).Concat(Std ?? []).Aggregate(ReverseChannels ? 7 : 5, (h, v) => h * 31 + v.GetHashCode());
}

/// <summary>The input normalisations backbones expect, for pixels in [0, 1] (what <c>PixelPipeline</c> gives).</summary>
public static class ImageNormalization
{
    /// <summary>torchvision's and most ImageNet models': mean (0.485, 0.456, 0.406), standard deviation (0.229, 0.224, 0.225), RGB.</summary>
    public static NormalizeChannels ImageNet { get; } = new([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);

    /// <summary>Pixels mapped to [-1, 1] (Inception, MobileNet in Keras, GANs): (x - 0.5) / 0.5 on every channel.</summary>
    public static NormalizeChannels MinusOneToOne(int channels = 3) => new(Enumerable.Repeat(0.5, channels).ToArray(), Enumerable.Repeat(0.5, channels).ToArray());

    /// <summary>Pixels in [0, 255] where the backbone was trained on [0, 255] while the pipeline gives [0, 1].</summary>
    public static NormalizeChannels ZeroTo255(int channels = 3) => new(new double[channels], Enumerable.Repeat(1 / 255.0, channels).ToArray());
}

/// <summary>y = x * scale + shift per channel (scale = 1 / std, shift = -mean / std), kept as buffers so that they move with the module.</summary>
internal sealed class NormalizeChannelsModule : nn.Module<Tensor, Tensor>
{
    private readonly Tensor? _order;

    public NormalizeChannelsModule(double[] mean, double[] std, bool reverse) : base("NormalizeChannels")
    {
        long channels = mean.Length;
        register_buffer("scale", tensor(std.Select(s => (float)(1 / s)).ToArray(), [1, channels, 1, 1]));
        register_buffer("shift", tensor(mean.Zip(std, (m, s) => (float)(-m / s)).ToArray(), [1, channels, 1, 1]));
        if (reverse) _order = arange(channels - 1, -1, -1, ScalarType.Int64);
    }

    public override Tensor forward(Tensor input)
    {
        var x = _order is null ? input : input.index_select(1, _order.to(input.device));
        return x * get_buffer("scale")! + get_buffer("shift")!;
    }
}
