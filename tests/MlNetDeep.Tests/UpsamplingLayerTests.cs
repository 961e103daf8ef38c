using MlNetDeep.Networks;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

public class UpsamplingLayerTests
{
    [Theory]
    [InlineData(7, 3, 2, PaddingMode.Same, 14)]
    [InlineData(14, 3, 2, PaddingMode.Same, 28)]
    [InlineData(7, 3, 2, PaddingMode.Valid, 15)]
    [InlineData(5, 3, 1, PaddingMode.Same, 5)]
    [InlineData(5, 4, 1, PaddingMode.Same, 5)]
    [InlineData(4, 2, 3, PaddingMode.Same, 12)]
    [InlineData(4, 4, 1, PaddingMode.Valid, 7)]
    public void TransposedConvolutionInfersTheShapeItsModuleProduces(int size, int kernel, int stride, PaddingMode padding, int expected)
    {
        var layer = new ConvTranspose2D(3, kernel, stride, padding);
        Assert.Equal(new[] { 3, expected, expected }, layer.OutputShape([2, size, size]));
        using var module = layer.Build([2, size, size]);
        using var x = rand(4, 2, size, size);
        using var y = module.call(x);
        Assert.Equal(new long[] { 4, 3, expected, expected }, y.shape);
    }

    [Fact]
    public void UpsamplingRepeatsEachPixel()
    {
        var layer = new Upsample2D(2);
        Assert.Equal(new[] { 1, 4, 6 }, layer.OutputShape([1, 2, 3]));
        using var module = layer.Build([1, 2, 3]);
        using var x = arange(6, dtype: float32).reshape(1, 1, 2, 3);
        using var y = module.call(x);
        Assert.Equal(new long[] { 1, 1, 4, 6 }, y.shape);
        Assert.Equal(new float[] { 0, 0, 1, 1, 2, 2 }, y[0, 0, 1].data<float>().ToArray());
        Assert.Equal(new float[] { 3, 3, 4, 4, 5, 5 }, y[0, 0, 2].data<float>().ToArray());
    }

    [Fact]
    public void BadInputsNameTheLayer()
    {
        Assert.Contains("ConvTranspose2D", Assert.Throws<InvalidOperationException>(() => new ConvTranspose2D(4, 3).OutputShape([16])).Message);
        Assert.Contains("Upsample2D", Assert.Throws<InvalidOperationException>(() => new Upsample2D(0).OutputShape([1, 4, 4])).Message);
    }

    [Fact]
    public void DecoderWithUpsamplingRoundTripsThroughJson()
    {
        var spec = new NetworkSpec(
        [
            new Dense(32 * 7 * 7, ActivationKind.ReLU), new Reshape([32, 7, 7]),
            new ConvTranspose2D(16, 3, 2, PaddingMode.Same, ActivationKind.ReLU), new Upsample2D(2),
            new Conv2D(1, 3, Padding: PaddingMode.Same, Activation: ActivationKind.Sigmoid),
        ]) { Name = "decoder" };
        var back = NetworkSpec.FromJson(spec.ToJson());
        Assert.Equal(spec, back);
        Assert.Contains("\"ConvTranspose2D\"", spec.ToJson());
        Assert.Equal(new[] { 1, 28, 28 }, back.OutputShape([2]));
        Assert.Contains("Upsample2D(2x)", back.Summary([2]));
    }
}
