using MlNetDeep.Networks;

namespace MlNetDeep.Tests;

public class NetworkSpecTests
{
    [Fact]
    public void KerasMnistCnnShapesAndParameterCount()
    {
        var net = Networks.Networks.KerasMnistCnn.WithTaskOutputs(10);
        var shapes = net.InferShapes([1, 28, 28]);
        Assert.Equal(new[] { 32, 26, 26 }, shapes[0]);
        Assert.Equal(new[] { 64, 24, 24 }, shapes[1]);
        Assert.Equal(new[] { 64, 12, 12 }, shapes[2]);
        Assert.Equal(new[] { 9216 }, shapes[4]);
        Assert.Equal(new[] { 10 }, shapes[^1]);
        Assert.Equal(1_199_882, net.ParameterCount([1, 28, 28])); // Keras' model.summary() for this network
    }

    [Theory]
    [InlineData(28, 3, 1, PaddingMode.Valid, 26)]
    [InlineData(28, 3, 1, PaddingMode.Same, 28)]
    [InlineData(28, 3, 2, PaddingMode.Same, 14)]
    [InlineData(28, 5, 2, PaddingMode.Valid, 12)]
    [InlineData(7, 2, 2, PaddingMode.Same, 4)]
    public void ConvolutionOutputSizesMatchKeras(int size, int kernel, int stride, PaddingMode padding, int expected)
    {
        var conv = new Conv2D(4, kernel, stride, padding);
        Assert.Equal(new[] { 4, expected, expected }, conv.OutputShape([1, size, size]));
        using var module = conv.Build([1, size, size]);
        using var x = TorchSharp.torch.zeros(2, 1, size, size);
        using var y = ((TorchSharp.torch.nn.Module<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor>)module).call(x);
        Assert.Equal(new long[] { 2, 4, expected, expected }, y.shape);
    }

    [Fact]
    public void PoolingAndOtherLayersInferShapesThatTheModulesProduce()
    {
        var net = new NetworkSpec(
        [
            new Reshape([1, 8, 8]), new Conv2D(3, 3, Padding: PaddingMode.Same, Activation: ActivationKind.LeakyReLU), new BatchNorm(),
            new MaxPool2D(2), new AvgPool2D(2, Padding: PaddingMode.Same), new Activation(ActivationKind.ELU), new Flatten(),
            new Dense(5, ActivationKind.GELU), new Dropout(0.1), new BatchNorm(), new Dense(4, ActivationKind.Softplus),
            new Dense(3, ActivationKind.Tanh), new Dense(2, ActivationKind.Sigmoid), new Activation(ActivationKind.Softmax),
        ]);
        var shapes = net.InferShapes([64]);
        Assert.Equal(new[] { 3, 4, 4 }, shapes[3]);
        Assert.Equal(new[] { 3, 2, 2 }, shapes[4]);
        Assert.Equal(new[] { 12 }, shapes[6]);
        using var module = net.Build([64]);
        module.eval();
        using var x = TorchSharp.torch.rand(5, 64);
        using var y = ((TorchSharp.torch.nn.Module<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor>)module).call(x);
        Assert.Equal(new long[] { 5, 2 }, y.shape);
        Assert.True(net.EndsWithSoftmax);
    }

    [Fact]
    public void ConfigRoundTripsThroughJson()
    {
        foreach (var net in new[] { Networks.Networks.KerasMnistCnn, Networks.Networks.MnistMlp, Networks.Networks.Mlp([64, 32], ActivationKind.Tanh, 0.3),
                     new NetworkSpec([new Reshape([1, 4, 4]), new Conv2D(2, 3, 2, PaddingMode.Same), new AvgPool2D(1), new Flatten(), new Dense(3)]) })
        {
            var json = net.ToJson();
            var back = NetworkSpec.FromJson(json);
            Assert.Equal(net, back);
            Assert.Equal(json, back.ToJson());
        }
    }

    [Fact]
    public void ShapeErrorsNameTheLayer()
    {
        var dense = new NetworkSpec([new Dense(10)]);
        var ex = Assert.Throws<InvalidOperationException>(() => dense.InferShapes([1, 28, 28]));
        Assert.Contains("layer 0", ex.Message);
        Assert.Contains("Flatten", ex.Message);
        Assert.Throws<InvalidOperationException>(() => new NetworkSpec([new Conv2D(8, 5)]).InferShapes([1, 3, 3]));
        Assert.Throws<InvalidOperationException>(() => new NetworkSpec([new Conv2D(8, 3)]).InferShapes([784]));
        Assert.Throws<InvalidOperationException>(() => new NetworkSpec([new Reshape([2, 5])]).InferShapes([9]));
        Assert.Throws<InvalidOperationException>(() => new NetworkSpec([new Dropout(1.5)]).InferShapes([9]));
        Assert.Throws<InvalidDataException>(() => NetworkSpec.FromJson("{\"layers\": [{\"type\": \"Nope\"}]}"));
    }
}

public class EmbeddingLayerTests
{
    [Fact]
    public void AnEmbeddingMapsTokenIdsToVectorsAndRoundTripsThroughJson()
    {
        var net = new NetworkSpec([new Embedding(50, 8), new Flatten(), new Dense(3)]) { Name = "tokens" };
        Assert.Equal(new[] { 12, 8 }, net.InferShapes([12])[0]);
        Assert.Equal(50 * 8 + 12 * 8 * 3 + 3, net.ParameterCount([12]));
        Assert.Equal(net, NetworkSpec.FromJson(net.ToJson()));
        Assert.Contains("Embedding(50, 8)", net.Summary([12]));
        Native.TorchRuntime.EnsureLoaded();
        using var module = net.Build([12]);
        using var ids = TorchSharp.torch.tensor(Enumerable.Range(0, 24).Select(i => (float)(i % 50)).ToArray(), [2, 12]);
        using var y = module.call(ids);
        Assert.Equal(new long[] { 2, 3 }, y.shape);
        using var bad = TorchSharp.torch.full([1, 12], 50f);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => module.call(bad));
        Assert.Contains("0 to 49", ex.Message);
        Assert.Throws<InvalidOperationException>(() => new Embedding(10, 4).OutputShape([3, 3]));
    }
}
