using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MlNetDeep.Networks;
using MlNetDeep.Persistence.Onnx;
using MlNetDeep.Vision;
using Onnx;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

/// <summary>
/// ONNX import: three models exported once from PyTorch (data/onnx/make_models.py: a CNN, one with batch
/// normalisation, one with residual blocks) read into network specs and checked against ONNX Runtime and PyTorch;
/// a round trip through the project's own exporter; the VGG16 preset; damaged files and unsupported operators.
/// </summary>
public class OnnxImportTests(ITestOutputHelper output)
{
    private static string Model(string name) => Path.Combine(AppContext.BaseDirectory, "data", "onnx", name);

    private static float[] ReadFloats(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var values = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
        return values;
    }

    private static float[] OnnxRuntime(string path, float[] input, int[] shape)
    {
        using var session = new InferenceSession(path);
        var tensorInput = new DenseTensor<float>(input, shape);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(session.InputMetadata.Keys.First(), tensorInput)]);
        return results.First().AsEnumerable<float>().ToArray();
    }

    private static float[] Ours(ImportedNetwork network, float[] input, int batch)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = tensor(input, [batch, .. network.InputShape.Select(d => (long)d)]);
        return network.Module.call(x).reshape(batch, -1).data<float>().ToArray();
    }

    [Theory]
    [InlineData("cnn", typeof(MaxPool2D))]
    [InlineData("batchnorm", typeof(BatchNorm))]
    [InlineData("residual", typeof(Add))]
    public void ImportedModelsAgreeWithOnnxRuntimeAndPyTorch(string name, Type expectedLayer)
    {
        using var imported = OnnxImporter.Import(Model(name + ".onnx"));
        output.WriteLine($"{name}: input [{string.Join(", ", imported.InputShape)}]\n{imported.Network.Summary(imported.InputShape)}");
        Assert.Contains(imported.Network.Layers, l => l.GetType() == expectedLayer);
        var input = ReadFloats(Model(name + ".input.bin"));
        int batch = input.Length / imported.InputShape.Aggregate(1, (a, b) => a * b);
        var ours = Ours(imported, input, batch);
        var runtime = OnnxRuntime(Model(name + ".onnx"), input, [batch, .. imported.InputShape]);
        var pytorch = ReadFloats(Model(name + ".output.bin"));
        double againstRuntime = ours.Zip(runtime).Max(p => Math.Abs(p.First - p.Second));
        double againstPytorch = ours.Zip(pytorch).Max(p => Math.Abs(p.First - p.Second));
        output.WriteLine($"max |difference|: ONNX Runtime {againstRuntime:G3}, PyTorch {againstPytorch:G3}");
        Assert.Equal(runtime.Length, ours.Length);
        Assert.True(againstRuntime <= 1e-4, $"{name}: {againstRuntime} from ONNX Runtime");
        Assert.True(againstPytorch <= 1e-4, $"{name}: {againstPytorch} from PyTorch");
        // The spec survives its JSON form (as SaveDeep stores it).
        Assert.Equal(imported.Network, NetworkSpec.FromJson(imported.Network.ToJson()));
    }

    [Fact]
    public void TheProjectsOwnExportReadsBackToTheSameFunction()
    {
        var spec = new NetworkSpec(
        [
            new Conv2D(6, 3, Activation: ActivationKind.ReLU), new MaxPool2D(2), new Conv2D(8, 3, Padding: PaddingMode.Same), new BatchNorm(),
            new Activation(ActivationKind.ReLU), new AvgPool2D(2), new Flatten(), new Dense(16, ActivationKind.Tanh), new Dropout(0.3), new Dense(4),
        ]) { Name = "round-trip" };
        int[] shape = [1, 20, 20];
        using var module = Native.TorchRuntime.Seeded(5, () => spec.Build(shape));
        module.eval();
        var bytes = OnnxExporter.Export(spec, module, shape, "Pixels", "Score", OnnxExporter.Head.Softmax);
        using var imported = OnnxImporter.Import(bytes, "round-trip");
        Assert.Equal(shape, imported.InputShape);
        var input = Enumerable.Range(0, 3 * 400).Select(i => (float)Math.Sin(i * 0.37) * 0.5f + 0.5f).ToArray();
        float[] expected;
        using (var scope = NewDisposeScope())
        using (no_grad())
            expected = nn.functional.softmax(module.call(tensor(input, [3, 1, 20, 20])), 1).data<float>().ToArray();
        var ours = Ours(imported, input, 3);
        Assert.True(ours.Zip(expected).Max(p => Math.Abs(p.First - p.Second)) <= 1e-5);
    }

    [Fact]
    public void AnImportedNetworkFeedsTheVisionTools()
    {
        using var features = FeatureNetwork.FromOnnx(Model("residual.onnx"));
        Assert.Equal(3, features.InputChannels);
        Assert.DoesNotContain(features.Network.Layers, l => l is Dense or GlobalAvgPool2D);
        var image = new VisionImage(Enumerable.Range(0, 3 * 32 * 32).Select(i => (i % 7) / 7f).ToArray(), 3, 32, 32);
        var dreamed = DeepDream.Dream(features, image, features.LayerNames[^1], new InputOptimizationOptions { Steps = 3 });
        Assert.Equal(image.Pixels.Length, dreamed.Pixels.Length);
    }

    [Fact]
    public void Vgg16HasItsKnownSize()
    {
        var vgg = Networks.Networks.Vgg16();
        Assert.Equal(138_357_544, vgg.ParameterCount([3, 224, 224]));
        Assert.Equal(13, vgg.Layers.Count(l => l is Conv2D));
    }

    [Fact]
    public void DamagedFilesAndUnsupportedOperatorsAreNamed()
    {
        var good = File.ReadAllBytes(Model("cnn.onnx"));
        var damaged = Assert.Throws<InvalidDataException>(() => OnnxImporter.Import(good.Take(good.Length / 3).ToArray(), "truncated"));
        Assert.Contains("truncated", damaged.Message);
        Assert.Throws<InvalidDataException>(() => OnnxImporter.Import(Enumerable.Range(0, 500).Select(i => (byte)(i * 37)).ToArray(), "noise"));
        Assert.Throws<FileNotFoundException>(() => OnnxImporter.Import(Model("missing.onnx")));

        var model = ModelProto.Parser.ParseFrom(good);
        var relu = model.Graph.Node.First(n => n.OpType == "Relu");
        relu.OpType = "LRN";
        relu.Name = "the_lrn_node";
        var unsupported = Assert.Throws<NotSupportedException>(() => OnnxImporter.Import(model.ToByteArray(), "lrn"));
        Assert.Contains("LRN", unsupported.Message);
        Assert.Contains("the_lrn_node", unsupported.Message);

        var wrongWeights = ModelProto.Parser.ParseFrom(good);
        var conv = wrongWeights.Graph.Node.First(n => n.OpType == "Conv");
        var weight = wrongWeights.Graph.Initializer.First(t => t.Name == conv.Input[1]);
        weight.RawData = ByteString.CopyFrom(weight.RawData.Span[..8]);
        Assert.Contains(weight.Name, Assert.Throws<InvalidDataException>(() => OnnxImporter.Import(wrongWeights.ToByteArray(), "short")).Message);

        var huge = ModelProto.Parser.ParseFrom(good);
        var first = huge.Graph.Initializer.First();
        first.Dims.Clear();
        first.Dims.AddRange([1_000_000, 1_000_000]);
        Assert.Contains("more than", Assert.Throws<InvalidDataException>(() => OnnxImporter.Import(huge.ToByteArray(), "huge")).Message);
    }
}
