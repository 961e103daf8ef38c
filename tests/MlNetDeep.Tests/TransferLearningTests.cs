using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Transfer;
using MlNetDeep.Networks;
using MlNetDeep.Persistence.Onnx;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

/// <summary>
/// Transfer learning: a small residual network pretrained on digits 0-4 as the backbone of a classifier of digits 5-9;
/// the frozen backbone keeps its weights, the bottleneck cache gives the run without it, fine-tuning moves only the
/// layers asked for, the result saves, loads and exports; bad settings are refused before any training.
/// </summary>
public class TransferLearningTests(ITestOutputHelper output)
{
    private sealed class Digit
    {
        public string Label { get; set; } = "";
        [VectorType(784)] public float[] Pixels { get; set; } = [];
    }

    private static IDataView Digits(MLContext ml, MnistSplit split, int first, int last, int perClass)
    {
        var rows = Mnist.Read(split, TestData.MnistFolder, download: false)
            .Where(r => r.Label >= first && r.Label <= last).GroupBy(r => r.Label).SelectMany(g => g.Take(perClass))
            .Select(r => new Digit { Label = r.Label.ToString(), Pixels = r.Pixels }).ToList();
        return ml.Data.LoadFromEnumerable(rows);
    }

    private static NetworkSpec SmallResNet() => Networks.Networks.SmallResNet(8);

    private static readonly Lazy<(TransferBackbone Backbone, NeuralNetworkClassificationTransformer Model)> Pretrained = new(() =>
    {
        var ml = new MLContext(seed: 1);
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Epochs = 4, BatchSize = 32, Network = SmallResNet(), Seed = 1, Optimizer = new Training.Adam(3e-3),
        }));
        var model = pipeline.Fit(Digits(ml, MnistSplit.Train, 0, 4, 200)).LastTransformer;
        return (TransferBackbone.FromModel(model), model);
    });

    private static TransferLearningOptions Options(int epochs = 10) => new()
    {
        FeatureColumnName = "Pixels", Backbone = Pretrained.Value.Backbone, Epochs = epochs, BatchSize = 16, Seed = 3, Optimizer = new Training.Adam(1e-2),
    };

    private static float[] Weight(NeuralNetworkClassificationTransformer model, int layer) =>
        model.WithModule(m => Networks.NetworkRunner.Layers(m)[layer].parameters().First().detach().cpu().data<float>().ToArray());

    [Fact]
    public void AFrozenBackboneKeepsItsWeightsAndTheCacheGivesTheSameHeadAsTheFullPass()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Transforms.Conversion.MapValueToKey("Label").Fit(Digits(ml, MnistSplit.Train, 5, 9, 20));
        var data = train.Transform(Digits(ml, MnistSplit.Train, 5, 9, 20));
        var test = train.Transform(Digits(ml, MnistSplit.Test, 5, 9, 30));
        var backbone = Pretrained.Value.Backbone;
        Assert.Equal("activation_11", backbone.LayerNames[backbone.CutIndex(null)]); // the last image-shaped layer, before the pool

        var cachedOptions = Options();
        using var cached = ml.MulticlassClassification.Trainers.TransferLearning(cachedOptions).Fit(data);
        var uncachedOptions = Options();
        uncachedOptions.CacheBottleneck = false;
        using var uncached = ml.MulticlassClassification.Trainers.TransferLearning(uncachedOptions).Fit(data);

        // The backbone's weights are the pretrained ones in both.
        Assert.Equal(Weight(Pretrained.Value.Model, 0), Weight(cached, 0));
        Assert.Equal(Weight(Pretrained.Value.Model, 9), Weight(uncached, 9));
        // The cache changes the cost, not the result: the same head within rounding.
        var cachedScores = TestData.Column(cached.Transform(test), "Score");
        Close.Equal(cachedScores, TestData.Column(uncached.Transform(test), "Score"), 1e-4);
        var accuracy = ml.MulticlassClassification.Evaluate(cached.Transform(test)).MicroAccuracy;
        output.WriteLine($"frozen backbone, 20 images per class: {accuracy:P1} on {test.GetRowCount()} test digits 5-9");
        Assert.True(accuracy > 0.3, $"accuracy {accuracy} (chance: 0.2)");
        Assert.Equal(10, cached.History!.Epochs.Count);
    }

    [Fact]
    public void FineTuningMovesOnlyTheTopLayersAndTheResultSavesLoadsAndExports()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(Digits(ml, MnistSplit.Train, 5, 9, 20)).Transform(Digits(ml, MnistSplit.Train, 5, 9, 20));
        var options = Options(epochs: 2);
        options.FineTuneEpochs = 2;
        options.FineTuneLayers = 3; // backbone layers 9-11: the projection shortcut, the sum and its activation
        options.Normalization = new NormalizeChannels([0.13], [0.31]);
        using var model = ml.MulticlassClassification.Trainers.TransferLearning(options).Fit(data);
        Assert.Equal(4, model.History!.Epochs.Count);
        Assert.IsType<NormalizeChannels>(model.Network.Layers[0]);
        // Layer i of the backbone is layer i + 1 here (the normalisation first).
        Assert.Equal(Weight(Pretrained.Value.Model, 0), Weight(model, 1));                 // below the fine-tuned layers: unchanged
        Assert.Equal(Weight(Pretrained.Value.Model, 8), Weight(model, 9));
        Assert.NotEqual(Weight(Pretrained.Value.Model, 9), Weight(model, 10));             // within them: moved

        // A transfer-learned classifier scores through ONNX Runtime (convolutional, on the CPU), as TorchSharp does.
        Assert.Equal(Models.Common.ScoringBackend.OnnxRuntime, model.ActiveBackend);
        var scores = TestData.Column(model.Transform(data), "Score");
        Assert.Equal("CPUExecutionProvider", model.OnnxRuntimeExecutionProvider);
        model.Backend = Models.Common.ScoringBackend.TorchSharp;
        Close.Equal(scores, TestData.Column(model.Transform(data), "Score"));
        model.Backend = Models.Common.ScoringBackend.Auto;
        var path = TestData.TempFile();
        ml.Model.SaveDeep(model, data.Schema, path);
        var loaded = ml.Model.LoadDeep(path, out _);
        Assert.Equal(scores, TestData.Column(loaded.Transform(data), "Score"));
        var onnxPath = TestData.TempFile(".onnx");
        model.SaveAsOnnx(onnxPath);
        var applied = ml.Transforms.ApplyOnnxModel(["Score"], ["Pixels"], onnxPath).Fit(data).Transform(data);
        Close.Equal(scores, TestData.Column(applied, "Score"), 1e-4);
        // The exported backbone reads back as a backbone.
        var imported = TransferBackbone.FromOnnx(onnxPath);
        Assert.Equal([1, 28, 28], imported.InputShape);
        File.Delete(path);
        File.Delete(onnxPath);
    }

    private sealed class BinaryDigit
    {
        public bool Label { get; set; }
        [VectorType(784)] public float[] Pixels { get; set; } = [];
    }

    [Fact]
    public void TheBinaryCatalogLearnsFiveAgainstSixAndCrossValidates()
    {
        var ml = new MLContext(seed: 1);
        var rows = Mnist.Read(MnistSplit.Train, TestData.MnistFolder, download: false).Where(r => r.Label is 5 or 6).Take(120)
            .Select(r => new BinaryDigit { Label = r.Label == 6, Pixels = r.Pixels }).ToList();
        var data = ml.Data.LoadFromEnumerable(rows);
        var estimator = ml.BinaryClassification.Trainers.TransferLearning(new BinaryTransferLearningOptions
        {
            FeatureColumnName = "Pixels", Backbone = Pretrained.Value.Backbone, Epochs = 8, BatchSize = 16, Seed = 3, Optimizer = new Training.Adam(1e-2),
            Network = new NetworkSpec([new Flatten(), new Dense(Dense.TaskOutputs)]),
        });
        var folds = ml.BinaryClassification.CrossValidate(data, estimator, numberOfFolds: 3);
        var auc = folds.Average(f => f.Metrics.AreaUnderRocCurve);
        output.WriteLine($"5 against 6, frozen backbone, 3-fold AUC {auc:F3}");
        Assert.True(auc > 0.9, $"AUC {auc}");
        using var model = (Models.Classification.NeuralNetworkBinaryClassificationTransformer)folds[0].Model;
        Assert.Contains(model.Transform(data).Schema, c => c.Name == "Probability");
        Assert.Equal(Models.Common.ScoringBackend.OnnxRuntime, model.ActiveBackend); // the binary head scores through ONNX Runtime too
        var probabilities = model.Transform(data).GetColumn<float>("Probability").ToArray();
        model.Backend = Models.Common.ScoringBackend.TorchSharp;
        Close.Equal(model.Transform(data).GetColumn<float>("Probability").ToArray(), probabilities);
    }

    [Fact]
    public void AnOnnxBackboneTrainsAHeadOnColourImages()
    {
        var ml = new MLContext(seed: 1);
        var backbone = TransferBackbone.FromOnnx(Path.Combine(AppContext.BaseDirectory, "data", "onnx-zoo", "mobilenet_v2-op13.onnx"));
        int size = backbone.InputShape[1];
        var rows = Enumerable.Range(0, 48).Select(i => new ColourRow
        {
            Label = (i % 3).ToString(),
            Pixels = Enumerable.Range(0, 3 * size * size).Select(p => p / (size * size) == i % 3 ? 0.9f : 0.1f + (i * 5 + p) % 7 / 50f).ToArray(),
        }).ToList();
        var schema = SchemaDefinition.Create(typeof(ColourRow));
        schema["Pixels"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, 3 * size * size);
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(rows, schema)).Transform(ml.Data.LoadFromEnumerable(rows, schema));
        using var model = ml.MulticlassClassification.Trainers.TransferLearning(new TransferLearningOptions
        {
            FeatureColumnName = "Pixels", Backbone = backbone, Normalization = ImageNormalization.ImageNet, Epochs = 15, BatchSize = 16, Optimizer = new Training.Adam(1e-2),
        }).Fit(data);
        var accuracy = ml.MulticlassClassification.Evaluate(model.Transform(data)).MicroAccuracy;
        output.WriteLine($"mobilenet_v2 (small, random weights) frozen, 3 colours: {accuracy:P1}");
        Assert.True(accuracy > 0.6, $"accuracy {accuracy}");
    }

    [Fact]
    public void BadSettingsAreRefusedBeforeAnyTraining()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(Digits(ml, MnistSplit.Train, 5, 9, 4)).Transform(Digits(ml, MnistSplit.Train, 5, 9, 4));
        var cut = Options();
        cut.CutAfter = "conv2d_99";
        var message = Assert.Throws<ArgumentException>(() => ml.MulticlassClassification.Trainers.TransferLearning(cut)).Message;
        Assert.Contains("no layer 'conv2d_99'", message);
        Assert.Contains("conv2d_0", message);

        var channels = Options();
        channels.Normalization = ImageNormalization.ImageNet; // three channels for a grey backbone
        Assert.Contains("3 channel(s)", Assert.Throws<ArgumentException>(() => ml.MulticlassClassification.Trainers.TransferLearning(channels)).Message);

        var augmented = Options();
        augmented.CacheBottleneck = true;
        augmented.TrainingInputTransform = new ImageAugmentation(new ImageAugmentationOptions());
        Assert.Contains("augmented images", Assert.Throws<ArgumentException>(() => ml.MulticlassClassification.Trainers.TransferLearning(augmented)).Message);

        var head = Options();
        head.Network = new NetworkSpec([new Dense(Dense.TaskOutputs)]); // a Dense on an image: needs a Flatten
        Assert.Contains("does not fit the backbone's output", Assert.Throws<ArgumentException>(() => ml.MulticlassClassification.Trainers.TransferLearning(head)).Message);

        var colour = Options();
        colour.Backbone = TransferBackbone.FromOnnx(Path.Combine(AppContext.BaseDirectory, "data", "onnx-zoo", "resnet18-op13.onnx"));
        var size = Assert.ThrowsAny<ArgumentException>(() => ml.MulticlassClassification.Trainers.TransferLearning(colour).Fit(data)).Message;
        Assert.Contains("784", size);
    }

    private sealed class ColourRow
    {
        public string Label { get; set; } = "";
        public float[] Pixels { get; set; } = [];
    }
}
