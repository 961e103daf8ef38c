using Microsoft.ML;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Persistence.Onnx;
using MlNetDeep.Vision;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

/// <summary>
/// Graph networks: the functional style (branches, concatenations, products and sums), their wiring checks, JSON,
/// shape inference against the modules, training in a trainer, SaveDeep/LoadDeep, ONNX export and import, and every
/// layer's settings reaching the module it builds.
/// </summary>
public class GraphNetworkTests
{
    /// <summary>An Inception-style block, a squeeze-excitation gate and a projected residual sum on a [3, 12, 12] image.</summary>
    private static NetworkSpec InceptionLike(int outputs = Dense.TaskOutputs)
    {
        var x = GraphNode.Input();
        var a = x.Then(new Conv2D(4, 1, Activation: ActivationKind.ReLU));
        var b = x.Then(new Conv2D(4, 3, Padding: PaddingMode.Same)).Then(new BatchNorm()).Then(new Activation(ActivationKind.ReLU6));
        var c = x.Then(new MaxPool2D(3, 1, Pad: 1)).Then(new Conv2D(2, 1));
        var joined = new Concat().On(a, b, c);                                                                  // [10, 12, 12]
        var gate = joined.Then(new GlobalAvgPool2D()).Then(new Conv2D(10, 1, Activation: ActivationKind.HardSigmoid));
        var excited = new Multiply().On(joined, gate);                                                        // [10, 12, 12] * [10, 1, 1]
        var sum = new Add().On(excited, x.Then(new Conv2D(10, 1, Groups: 1)));
        var y = sum.Then(new Conv2D(10, 3, 2, Groups: 5, Pad: 1, Activation: ActivationKind.SiLU)).Then(new AdaptiveAvgPool2D(2, 2)).Then(new Flatten()).Then(new Dense(outputs));
        return NetworkSpec.FromGraph(y, "inception-like");
    }

    private static Tensor Run(nn.Module module, Tensor x) => ((nn.Module<Tensor, Tensor>)module).call(x);

    [Fact]
    public void AFunctionalNetworkInfersTheShapesItsModuleProducesAndRoundTripsThroughJson()
    {
        var spec = InceptionLike(5);
        Assert.False(spec.IsChain);
        var shapes = spec.InferShapes([3, 12, 12]);
        Assert.Equal([10, 12, 12], shapes[spec.Layers.ToList().FindIndex(l => l is Concat)]);
        Assert.Equal([5], shapes[^1]);
        var json = spec.ToJson();
        Assert.Contains("\"Inputs\"", json);
        var back = NetworkSpec.FromJson(json);
        Assert.Equal(spec, back);

        using var module = Native.TorchRuntime.Seeded(3, () => spec.Build([3, 12, 12]));
        using var again = Native.TorchRuntime.Seeded(3, () => back.Build([3, 12, 12]));
        module.eval();
        again.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = rand(4, 3, 12, 12);
        var y = Run(module, x);
        Assert.Equal(new long[] { 4, 5 }, y.shape);
        Assert.Equal(0f, (y - Run(again, x)).abs().max().item<float>()); // same seed, same batch, same process: the same numbers
        // Each layer's module is child i, as in a Sequential: the weight names say which layer they belong to.
        Assert.Equal(spec.Layers.Count, module.children().Count());
        // Every intermediate output has its inferred shape.
        var all = NetworkRunner.Run(spec, module, x, Enumerable.Range(0, spec.Layers.Count).ToArray());
        for (int i = 0; i < all.Length; i++) Assert.Equal(shapes[i].Select(d => (long)d).Prepend(4L).ToArray(), all[i].shape);
        var summary = spec.Summary([3, 12, 12]);
        Assert.Contains("<- input", summary);
        Assert.Contains("Concat(axis 0)", summary);
    }

    [Fact]
    public void AChainWrittenInTheFunctionalStyleIsAChainAndOldJsonStillLoads()
    {
        var y = GraphNode.Input().Then(new Flatten()).Then(new Dense(3, ActivationKind.ReLU)).Then(new Dense(2));
        var spec = NetworkSpec.FromGraph(y, "mlp");
        Assert.True(spec.IsChain);
        Assert.Null(spec.Inputs);
        Assert.DoesNotContain("Inputs", spec.ToJson());
        Assert.Equal(new NetworkSpec([new Flatten(), new Dense(3, ActivationKind.ReLU), new Dense(2)]) { Name = "mlp" }, spec);
        using var module = spec.Build([4]);
        Assert.IsType<TorchSharp.Modules.Sequential>(module); // saved weights keep their names
        const string saved = """{ "Name": "old", "Layers": [ { "type": "Flatten" }, { "type": "Dense", "Units": 4, "Activation": "ReLU", "UseBias": true } ] }""";
        Assert.True(NetworkSpec.FromJson(saved).IsChain);
    }

    [Fact]
    public void WrongWiringIsRefusedWithItsCause()
    {
        var layers = new Layer[] { new Dense(3), new Dense(3), new Add() };
        var forward = new NetworkSpec(layers) { Inputs = [[-1], [2], [0, 1]] };
        Assert.Contains("reads layer 2", Assert.Throws<InvalidOperationException>(() => forward.InferShapes([3])).Message);
        var lonely = new NetworkSpec(layers) { Inputs = [[-1], [0], [1]] };
        Assert.Contains("reads 1 inputs; it takes 2", Assert.Throws<InvalidOperationException>(() => lonely.InferShapes([3])).Message);
        var short_ = new NetworkSpec(layers) { Inputs = [[-1], [0]] };
        Assert.Contains("inputs for 2", Assert.Throws<InvalidOperationException>(() => short_.Build([3])).Message);
        var mismatch = new NetworkSpec([new Dense(3), new Dense(4), new Add()]) { Inputs = [[-1], [-1], [0, 1]] };
        Assert.Contains("differ on axis 0", Assert.Throws<InvalidOperationException>(() => mismatch.InferShapes([3])).Message);
        const string hostile = """{ "Name": "x", "Layers": [ { "type": "Dense", "Units": 2 }, { "type": "Add" } ], "Inputs": [[-1], [1, 1]] }""";
        Assert.Contains("reads layer 1", Assert.Throws<InvalidDataException>(() => NetworkSpec.FromJson(hostile)).Message);
        Assert.Throws<ArgumentException>(() => new Add().On(GraphNode.Input()));
        Assert.Throws<ArgumentException>(() => NetworkSpec.FromGraph(new Add().On(GraphNode.Input().Then(new Dense(2)), GraphNode.Input().Then(new Dense(2)))));
        Assert.Throws<InvalidOperationException>(() => new Concat().Build([3, 4, 4]));
    }

    [Fact]
    public void AGraphNetworkTrainsSavesLoadsScoresAndExportsToOnnx()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.MnistTrain(ml, 600);
        var test = TestData.MnistTest(ml, 48);
        // A DenseNet-style block: each convolution reads the concatenation of everything before it.
        var x = GraphNode.Input();
        var stem = x.Then(new Conv2D(4, 3, 2, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU));
        var grown = new Concat().On(stem, stem.Then(new Conv2D(3, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU)));
        grown = new Concat().On(grown, grown.Then(new Conv2D(3, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU)));
        var output = grown.Then(new AvgPool2D(2, CeilMode: true)).Then(new Flatten()).Then(new Dense(Dense.TaskOutputs));
        var options = new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Epochs = 4, BatchSize = 32,
            Network = NetworkSpec.FromGraph(output, "dense-block"),
        };
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.MulticlassClassification.Trainers.NeuralNetwork(options));
        var model = pipeline.Fit(train);
        var scored = model.Transform(test);
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        Assert.True(metrics.MicroAccuracy > 0.5, $"accuracy {metrics.MicroAccuracy}");
        var scores = TestData.Column(scored, "Score");

        var path = TestData.TempFile();
        ml.Model.SaveDeep(model, train.Schema, path);
        var loaded = new MLContext(seed: 5).Model.LoadDeep(path, out _);
        Assert.Equal(scores, TestData.Column(loaded.Transform(test), "Score")); // same rows, same batches: the same numbers

        var trained = model.LastTransformer;
        var onnxPath = TestData.TempFile(".onnx");
        trained.SaveAsOnnx(onnxPath);
        var onnx = ml.Transforms.ApplyOnnxModel(["Score"], ["Pixels"], onnxPath).Fit(test);
        Close.Equal(scores, TestData.Column(onnx.Transform(test), "Score"), 1e-4);

        // And it reads back into a graph network.
        using var imported = OnnxImporter.Import(onnxPath);
        Assert.Equal(2, imported.Network.Layers.Count(l => l is Concat));
        File.Delete(path);
        File.Delete(onnxPath);
    }

    /// <summary>Every layer type, each with settings that change its output, on an input that fits it.</summary>
    public static TheoryData<string, Layer, int[]> EveryLayer() => new()
    {
        { "dense", new Dense(5, ActivationKind.Tanh, UseBias: false), [7] },
        { "conv", new Conv2D(6, 3, 2, PaddingMode.Same, ActivationKind.ELU), [3, 9, 9] },
        { "conv-groups", new Conv2D(6, 3, Groups: 3, Dilation: 2, Pad: 2), [3, 9, 9] },
        { "conv-depthwise", new Conv2D(4, 3, Groups: 4, Pad: 1, Activation: ActivationKind.HardSwish), [4, 6, 6] },
        { "deconv", new ConvTranspose2D(2, 3, 2, PaddingMode.Same), [3, 5, 5] },
        { "maxpool", new MaxPool2D(3, 2, Pad: 1, CeilMode: true), [2, 8, 8] },
        { "avgpool", new AvgPool2D(3, 2, Pad: 1, CountIncludePad: false), [2, 7, 7] },
        { "avgpool-ceil", new AvgPool2D(2, CeilMode: true), [2, 7, 7] },
        { "batchnorm", new BatchNorm(Epsilon: 1e-3), [3, 4, 4] },
        { "flatten", new Flatten(), [2, 3, 4] },
        { "reshape", new Reshape([6, 4]), [2, 3, 4] },
        { "relu6", new Activation(ActivationKind.ReLU6), [10] },
        { "hardsigmoid", new Activation(ActivationKind.HardSigmoid), [10] },
        { "silu", new Activation(ActivationKind.SiLU), [10] },
        { "leaky", new Activation(ActivationKind.LeakyReLU, 0.3), [10] },
        { "upsample", new Upsample2D(3), [2, 3, 3] },
        { "pad", new Pad2D(1, 2, 0, 3), [2, 3, 3] },
        { "gap", new GlobalAvgPool2D(), [2, 3, 3] },
        { "adaptive", new AdaptiveAvgPool2D(3, 3), [2, 6, 6] },
        { "layernorm", new LayerNorm(2, 1e-3), [3, 4, 5] },
        { "clip", new Clip(-0.25, 0.5), [10] },
        { "weightnorm", new WeightNormDense(5, ActivationKind.Tanh), [7] },
        { "weightnorm-sequence", new WeightNormDense(4, UseBias: false), [3, 6] },
        { "slice", new Slice(0, 1, -1, 2), [7, 3] },
        { "transpose", new Transpose([2, 0, 1]), [2, 3, 4] },
        { "residual", new Residual([new Conv2D(3, 3, Padding: PaddingMode.Same), new Activation(ActivationKind.ReLU)]), [3, 5, 5] },
    };

    [Theory]
    [MemberData(nameof(EveryLayer))]
    public void EveryLayersModuleProducesItsInferredShapeAndItsJsonKeepsItsSettings(string name, Layer layer, int[] input)
    {
        var spec = new NetworkSpec([layer]) { Name = name };
        var back = NetworkSpec.FromJson(spec.ToJson());
        Assert.Equal(spec, back);
        Assert.Equal(layer, back.Layers[0]); // every setting survives
        using var module = Native.TorchRuntime.Seeded(2, () => spec.Build(input));
        module.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var y = Run(module, randn([3, .. input.Select(d => (long)d)]));
        Assert.Equal(layer.OutputShape(input).Select(d => (long)d).Prepend(3L).ToArray(), y.shape);
    }

    [Theory]
    [MemberData(nameof(EveryLayer))]
    public void EveryVisionLayerRoundTripsThroughOnnxExportAndImport(string name, Layer layer, int[] input)
    {
        // The importer reads networks of one input: the layer sits between a flat input (reshaped) and the output.
        var spec = new NetworkSpec([layer]) { Name = name };
        using var module = Native.TorchRuntime.Seeded(4, () => spec.Build(input));
        using (no_grad())
            foreach (var (_, buffer) in module.named_buffers().Where(b => b.name.EndsWith("running_var")))
                buffer.copy_(rand_like(buffer) + 0.5); // batch normalisation with statistics of its own
        module.eval();
        var bytes = OnnxExporter.Export(spec, module, input, "Features", "Score", OnnxExporter.Head.None);
        using var imported = OnnxImporter.Import(bytes, name);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = randn([3, .. input.Select(d => (long)d)]);
        var expected = Run(module, x).reshape(3, -1);
        var actual = imported.Module.call(x.reshape([3, .. imported.InputShape.Select(d => (long)d)])).reshape(3, -1);
        Assert.Equal(expected.shape, actual.shape);
        double difference = (expected - actual).abs().max().item<float>();
        Assert.True(difference <= 1e-5, $"{name}: {difference}");
    }

    [Fact]
    public void SettingsReachTheModulesTheyBuild()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        // Groups divide the weights; dilation widens the window; a pad keeps the size.
        using (var grouped = new Conv2D(6, 3, Groups: 3).Build([3, 8, 8]))
            Assert.Equal(new long[] { 6, 1, 3, 3 }, grouped.parameters().First().shape);
        Assert.Equal([2, 4, 4], new Conv2D(2, 3, Dilation: 2).OutputShape([1, 8, 8]));
        Assert.Equal([2, 8, 8], new Conv2D(2, 3, Pad: 1).OutputShape([1, 8, 8]));
        // Ceil mode keeps the last partial window: 7 -> 4, not 3.
        Assert.Equal([1, 4, 4], new MaxPool2D(2, CeilMode: true).OutputShape([1, 7, 7]));
        Assert.Equal([1, 3, 3], new MaxPool2D(2).OutputShape([1, 7, 7]));
        using (var adaptive = new AdaptiveAvgPool2D(2, 3).Build([1, 6, 6])) Assert.Equal(new long[] { 5, 1, 2, 3 }, Run(adaptive, rand(5, 1, 6, 6)).shape);
        // Counting the pad in the mean changes a corner: ones padded with zeros average below one unless the pad is left out.
        var ones = TorchSharp.torch.ones(1, 1, 4, 4);
        using (var counted = new AvgPool2D(3, 1, Pad: 1).Build([1, 4, 4]))
        using (var uncounted = new AvgPool2D(3, 1, Pad: 1, CountIncludePad: false).Build([1, 4, 4]))
        {
            Assert.Equal(4f / 9, Run(counted, ones)[0, 0, 0, 0].item<float>(), 6);
            Assert.Equal(1f, Run(uncounted, ones)[0, 0, 0, 0].item<float>(), 6);
        }
        var values = arange(-4, 4, 1f).reshape(1, 8);
        using (var clip = new Clip(-1, 2).Build([8])) Assert.Equal(new float[] { -1, -1, -1, -1, 0, 1, 2, 2 }, Run(clip, values).data<float>().ToArray());
        using (var relu6 = new Activation(ActivationKind.ReLU6).Build([8])) Assert.Equal(0f, Run(relu6, values).min().item<float>());
        using (var slice = new Slice(0, 2, 5).Build([8])) Assert.Equal(new float[] { -2, -1, 0 }, Run(slice, values).data<float>().ToArray());
        using (var transpose = new Transpose([1, 0]).Build([2, 4]))
            Assert.Equal(new float[] { -4, 0, -3, 1, -2, 2, -1, 3 }, Run(transpose, values.reshape(1, 2, 4)).data<float>().ToArray());
        using (var norm = new LayerNorm(1).Build([8]))
            Assert.Equal(0f, Run(norm, values).mean().item<float>(), 5);
    }

    [Fact]
    public void TheVisionToolsNameAndRunTheLayersOfAGraph()
    {
        var spec = InceptionLike(3);
        var module = Native.TorchRuntime.Seeded(1, () => spec.Build([3, 12, 12]));
        int concat = spec.Layers.ToList().FindIndex(l => l is Concat);
        int last = Enumerable.Range(0, spec.Layers.Count).Last(i => spec.InferShapes([3, 12, 12])[i].Length == 3);
        using var features = FeatureNetwork.FromModule(module, spec.Prefix(last + 1), 3);
        Assert.StartsWith("concat_", features.LayerNames[concat]);
        var image = new VisionImage(Enumerable.Range(0, 3 * 12 * 12).Select(i => (i % 5) / 5f).ToArray(), 3, 12, 12);
        var dreamed = DeepDream.Dream(features, image, features.LayerNames[concat], new InputOptimizationOptions { Steps = 2 });
        Assert.Equal(image.Pixels.Length, dreamed.Pixels.Length);
        using var scope = NewDisposeScope();
        var outputs = features.Run(image.ToTensor(CPU), [concat]);
        Assert.Equal(new long[] { 1, 10, 12, 12 }, outputs[0].shape);
    }
}
