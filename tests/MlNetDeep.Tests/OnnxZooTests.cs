using System.Text.Json;
using Microsoft.ML;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Persistence.Onnx;
using MlNetDeep.Vision;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

/// <summary>
/// The standard vision architectures as PyTorch exports them: small-width variants of eleven torchvision models
/// (the same operators and export patterns, kilobytes each), exported at opsets 11, 13 and 17 and with a dynamic batch
/// by tests/fixtures/make_onnx_zoo.py, with PyTorch's outputs stored beside them.
/// </summary>
public class OnnxZooTests(ITestOutputHelper output)
{
    private static string Folder => Path.Combine(AppContext.BaseDirectory, "data", "onnx-zoo");

    private sealed record ZooModel(string Name, int[] InputShape, int[] OutputShape, string[] Files);

    private static readonly Lazy<IReadOnlyList<ZooModel>> Manifest = new(() =>
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "manifest.json")));
        return json.RootElement.GetProperty("models").EnumerateArray().Select(m => new ZooModel(
            m.GetProperty("name").GetString()!,
            m.GetProperty("input_shape").EnumerateArray().Select(d => d.GetInt32()).ToArray(),
            m.GetProperty("output_shape").EnumerateArray().Select(d => d.GetInt32()).ToArray(),
            m.GetProperty("files").EnumerateArray().Select(f => f.GetProperty("file").GetString()!).ToArray())).ToList();
    });

    public static TheoryData<string, string> Files()
    {
        var data = new TheoryData<string, string>();
        foreach (var model in Manifest.Value)
            foreach (var file in model.Files) data.Add(model.Name, file);
        return data;
    }

    private static float[] Floats(string file)
    {
        var bytes = File.ReadAllBytes(Path.Combine(Folder, file));
        var values = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
        return values;
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void EachArchitectureImportsAsExportedAndAgreesWithPyTorch(string name, string file)
    {
        var model = Manifest.Value.Single(m => m.Name == name);
        using var imported = OnnxImporter.Import(Path.Combine(Folder, file));
        Assert.Equal(model.InputShape[1..], imported.InputShape);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var input = tensor(Floats(name + ".input.bin"), model.InputShape.Select(d => (long)d).ToArray());
        var ours = imported.Module.call(input).reshape(model.OutputShape[0], -1).data<float>().ToArray();
        var pytorch = Floats(name + ".output.bin");
        Assert.Equal(pytorch.Length, ours.Length);
        double difference = ours.Zip(pytorch).Max(p => Math.Abs(p.First - p.Second));
        output.WriteLine($"{file}: {imported.Network.Layers.Count} layers, graph {!imported.Network.IsChain}, max |difference| from PyTorch {difference:G3}");
        Assert.True(difference <= 1e-4, $"{file}: {difference} from PyTorch");
        // The spec survives its JSON form (as SaveDeep stores it) and rebuilds the same network.
        Assert.Equal(imported.Network, NetworkSpec.FromJson(imported.Network.ToJson()));
    }

    [Fact]
    public void IdentityNodesOverWeightsAndConstantNodesAreFolded()
    {
        // Older exporters write an Identity node over each shared initializer and Constant nodes for weights: the same
        // network, written that way, imports to the same function.
        var model = Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(Folder, "resnet18-op13.onnx")));
        var graph = model.Graph;
        int rewritten = 0;
        foreach (var node in graph.Node.Where(n => n.OpType == "Conv").ToList())
        {
            var identity = new Onnx.NodeProto { OpType = "Identity", Name = $"Identity_{rewritten}" };
            identity.Input.Add(node.Input[1]);
            identity.Output.Add($"identity_{rewritten}");
            graph.Node.Insert(0, identity);
            node.Input[1] = $"identity_{rewritten++}";
        }
        var gemm = graph.Node.First(n => n.OpType == "Gemm");
        var bias = graph.Initializer.First(t => t.Name == gemm.Input[2]);
        graph.Initializer.Remove(bias);
        var constant = new Onnx.NodeProto { OpType = "Constant", Name = "Constant_bias" };
        constant.Output.Add(bias.Name);
        constant.Attribute.Add(new Onnx.AttributeProto { Name = "value", Type = Onnx.AttributeProto.Types.AttributeType.Tensor, T = bias });
        graph.Node.Insert(0, constant);
        Assert.True(rewritten > 10);
        using var imported = OnnxImporter.Import(Google.Protobuf.MessageExtensions.ToByteArray(model), "resnet18-identity");
        var zoo = Manifest.Value.Single(m => m.Name == "resnet18");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ours = imported.Module.call(tensor(Floats("resnet18.input.bin"), zoo.InputShape.Select(d => (long)d).ToArray())).reshape(-1).data<float>().ToArray();
        Assert.True(ours.Zip(Floats("resnet18.output.bin")).Max(p => Math.Abs(p.First - p.Second)) <= 1e-4);
    }

    [Theory]
    [InlineData("resnet18")]
    [InlineData("vgg11")]
    [InlineData("mobilenet_v2")]
    [InlineData("squeezenet1_1")]
    [InlineData("efficientnet_b0")]
    [InlineData("densenet121")]
    [InlineData("shufflenet_v2_x0_5")]
    [InlineData("googlenet")]
    public void EachArchitectureFeedsTheVisionTools(string name)
    {
        var model = Manifest.Value.Single(m => m.Name == name);
        using var features = FeatureNetwork.FromOnnx(Path.Combine(Folder, name + "-op13.onnx"));
        Assert.Equal(3, features.InputChannels);
        int size = model.InputShape[2];
        var image = new VisionImage(Enumerable.Range(0, 3 * size * size).Select(i => (i % 11) / 11f).ToArray(), 3, size, size);
        var dreamed = DeepDream.Dream(features, image, features.LayerNames[^1], new InputOptimizationOptions { Steps = 2 });
        Assert.Equal(image.Pixels.Length, dreamed.Pixels.Length);
        Assert.NotEqual(image.Pixels, dreamed.Pixels);
        var styled = StyleTransfer.Transfer(features, image, image, new StyleTransferOptions { Optimization = new InputOptimizationOptions { Steps = 1 } });
        Assert.Equal(image.Pixels.Length, styled.Pixels.Length);
        Assert.NotEmpty(Filters.FirstLayerKernels(features).Images);
        int conv = features.Network.Layers.ToList().FindIndex(l => l is Conv2D);
        var maximised = Filters.Maximize(features, features.LayerNames[conv], [0], size, options: new InputOptimizationOptions { Steps = 2 });
        Assert.Single(maximised);
    }

    [Theory]
    [InlineData("resnet18")]
    [InlineData("shufflenet_v2_x0_5")]
    public void ADynamicBatchExportImportsAndScoresAnyBatch(string name)
    {
        var model = Manifest.Value.Single(m => m.Name == name);
        using var imported = OnnxImporter.Import(Path.Combine(Folder, name + "-op13-dynamic.onnx"));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var input = tensor(Floats(name + ".input.bin"), model.InputShape.Select(d => (long)d).ToArray());
        var pytorch = Floats(name + ".output.bin");
        var one = imported.Module.call(input.narrow(0, 1, 1)).data<float>().ToArray(); // the second image alone
        int width = model.OutputShape[1];
        Assert.True(one.Zip(pytorch.Skip(width)).Max(p => Math.Abs(p.First - p.Second)) <= 1e-4);
    }

    [Theory]
    [InlineData("resnet18")]
    [InlineData("vgg11")]
    [InlineData("mobilenet_v2")]
    [InlineData("efficientnet_b0")]
    [InlineData("densenet121")]
    [InlineData("shufflenet_v2_x0_5")]
    [InlineData("googlenet")]
    public void EachArchitecturesSpecTrainsInTheClassifier(string name)
    {
        var ml = new MLContext(seed: 1);
        using var imported = OnnxImporter.Import(Path.Combine(Folder, name + "-op13.onnx"));
        var data = ColourSet(ml, imported.InputShape[1]);
        var model = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", InputShape = imported.InputShape, Epochs = 4, BatchSize = 16, Optimizer = new Training.Adam(3e-3),
            Network = WithTaskHead(imported.Network),
        })).Fit(data);
        var losses = model.LastTransformer.History!.Values("loss");
        output.WriteLine($"{name}: training loss by epoch {string.Join(", ", losses.Select(l => l.ToString("F3")))}");
        Assert.True(losses[^1] < losses[0], $"{name}: the loss went from {losses[0]} to {losses[^1]}");
        Assert.Equal(2, TestData.Column(model.Transform(data), "Score")[0].Length);
    }

    /// <summary>The imported network with its last Dense layer sized by the trainer (the task's classes).</summary>
    private static NetworkSpec WithTaskHead(NetworkSpec network)
    {
        int last = network.Layers.Count - 1;
        return network with { Layers = network.Layers.Select((l, i) => i == last && l is Dense d ? d with { Units = Dense.TaskOutputs } : l).ToArray() };
    }

    /// <summary>64 colour images of size x size, red or blue, with a little pattern.</summary>
    private static IDataView ColourSet(MLContext ml, int size)
    {
        var rows = Enumerable.Range(0, 64).Select(i => new ColourRow
        {
            Label = i % 2 == 0 ? "red" : "blue",
            Pixels = Enumerable.Range(0, 3 * size * size).Select(p => (p / (size * size) == (i % 2 == 0 ? 0 : 2) ? 0.8f : 0.1f) + (i * 7 + p) % 13 / 100f).ToArray(),
        }).ToList();
        return ml.Data.LoadFromEnumerable(rows, SchemaFor<ColourRow>(3 * size * size));
    }

    [Fact]
    public void AnImportedArchitectureTrainsInTheClassifierAndServesAsAnMlNetClassifier()
    {
        var ml = new MLContext(seed: 1);
        using var imported = OnnxImporter.Import(Path.Combine(Folder, "densenet121-op13.onnx"));
        // The imported architecture (its spec) trains from scratch on a tiny two-class colour set.
        int size = imported.InputShape[1];
        var data = ColourSet(ml, size);
        var options = new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", InputShape = imported.InputShape, Epochs = 6, BatchSize = 16, Optimizer = new Training.Adam(3e-3),
            Network = WithTaskHead(imported.Network),
        };
        var model = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.MulticlassClassification.Trainers.NeuralNetwork(options)).Fit(data);
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(data));
        output.WriteLine($"densenet121 (small) trained 6 epochs: accuracy {metrics.MicroAccuracy:P1}");
        Assert.True(metrics.MicroAccuracy >= 0.75, $"accuracy {metrics.MicroAccuracy}");

        // The file itself, with its weights, as an ML.NET classifier: its scores are PyTorch's softmax.
        var zoo = Manifest.Value.Single(m => m.Name == "mobilenet_v2");
        using var classifier = ml.Model.ImportOnnxClassifier(Path.Combine(Folder, "mobilenet_v2-op13.onnx"), "Pixels", [.. Enumerable.Range(0, 10).Select(i => $"class{i}")]);
        var input = Floats("mobilenet_v2.input.bin");
        int width = 3 * size * size;
        var images = ml.Data.LoadFromEnumerable(new[] { 0, 1 }.Select(i => new ImageRow { Pixels = input.AsSpan(i * width, width).ToArray() }),
            SchemaFor<ImageRow>(width));
        var scores = TestData.Column(classifier.Transform(images), "Score");
        var logits = Floats("mobilenet_v2.output.bin");
        for (int i = 0; i < 2; i++)
        {
            var row = logits.AsSpan(i * 10, 10).ToArray();
            double max = row.Max(), sum = row.Sum(v => Math.Exp(v - max));
            var expected = row.Select(v => (float)(Math.Exp(v - max) / sum)).ToArray();
            Close.Equal([expected], [scores[i]], 1e-5);
        }
        // Exported back to ONNX (graph layers included), it scores in ML.NET's own ApplyOnnxModel as it does here.
        var onnxPath = TestData.TempFile(".onnx");
        classifier.SaveAsOnnx(onnxPath);
        var applied = ml.Transforms.ApplyOnnxModel(["Score"], ["Pixels"], onnxPath).Fit(images).Transform(images);
        Close.Equal(scores, TestData.Column(applied, "Score"), 1e-4);
        File.Delete(onnxPath);

        var path = TestData.TempFile();
        ml.Model.SaveDeep(classifier, images.Schema, path);
        var loaded = ml.Model.LoadDeep(path, out _);
        Close.Equal(scores, TestData.Column(loaded.Transform(images), "Score"), 1e-6);
        File.Delete(path);
        Assert.Throws<ArgumentException>(() => ml.Model.ImportOnnxClassifier(Path.Combine(Folder, "mobilenet_v2-op13.onnx"), "Pixels", ["a", "b"]));
    }

    private static Microsoft.ML.Data.SchemaDefinition SchemaFor<T>(int width)
    {
        var schema = Microsoft.ML.Data.SchemaDefinition.Create(typeof(T));
        schema["Pixels"].ColumnType = new Microsoft.ML.Data.VectorDataViewType(Microsoft.ML.Data.NumberDataViewType.Single, width);
        return schema;
    }

    private sealed class ColourRow
    {
        public string Label { get; set; } = "";
        public float[] Pixels { get; set; } = [];
    }

    private sealed class ImageRow
    {
        public float[] Pixels { get; set; } = [];
    }
}
