using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Training;
using MlNetDeep.Vision;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

/// <summary>A small CNN trained once on the repository's MNIST subset, shared by the vision tests.</summary>
public sealed class TinyCnn : IDisposable
{
    public TinyCnn()
    {
        Ml = new MLContext(seed: 1);
        Train = TestData.MnistTrain(Ml, 2000);
        Test = TestData.MnistTest(Ml, 200);
        Model = Fit(null);
        var rows = Ml.Data.CreateEnumerable<Digit>(Test, reuseRowObject: false).Take(40).ToList();
        Images = rows.Select(r => r.Pixels).ToList();
        Classes = rows.Select(r => (int)r.Label - 1).ToList();
    }

    public static NetworkSpec Network { get; } = new NetworkSpec(
    [
        new Conv2D(8, 3, Activation: ActivationKind.ReLU),
        new MaxPool2D(2),
        new Conv2D(16, 3, Activation: ActivationKind.ReLU),
        new MaxPool2D(2),
        new Flatten(),
        new Dense(Dense.TaskOutputs),
    ]) { Name = "tiny-cnn" };

    public NeuralNetworkClassificationTransformer Fit(AdversarialTraining? adversarial, int epochs = 3) =>
        (NeuralNetworkClassificationTransformer)Ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Network = Network, Epochs = epochs, BatchSize = 32, Seed = 3,
            Optimizer = new Adam(3e-3), AdversarialTraining = adversarial,
        }).Fit(Train);

    public MLContext Ml { get; }
    public IDataView Train { get; }
    public IDataView Test { get; }
    public NeuralNetworkClassificationTransformer Model { get; }
    public List<float[]> Images { get; }
    public List<int> Classes { get; }

    public sealed class Digit
    {
        public uint Label { get; set; }
        [VectorType(784)]
        public float[] Pixels { get; set; } = [];
    }

    public void Dispose() => Model.Dispose();
}

/// <summary>Feature maps, saliency, adversarial examples and training, the input-optimisation loop, Gram matrices and their bad inputs.</summary>
public class VisionTests(TinyCnn cnn, ITestOutputHelper output) : IClassFixture<TinyCnn>
{
    private double Loss(IReadOnlyList<float[]> images)
    {
        var scores = new float[images.Count * 10];
        cnn.Model.Score(images.SelectMany(i => i).ToArray(), images.Count, scores);
        return Enumerable.Range(0, images.Count).Average(i => -Math.Log(Math.Max(scores[i * 10 + cnn.Classes[i]], 1e-12)));
    }

    [Fact]
    public void LayersAreNamedAndTheirActivationsAreTheNetworksOwn()
    {
        Assert.Equal(["conv2d_0", "maxpool2d_1", "conv2d_2", "maxpool2d_3", "flatten_4", "dense_5"], cnn.Model.LayerNames());
        Assert.Equal([8, 26, 26], cnn.Model.LayerShape("conv2d_0"));
        var maps = cnn.Model.Activations(cnn.Images.Take(3).ToList(), "conv2d_2");
        Assert.Equal(16 * 11 * 11, maps[0].Length);
        Assert.All(maps.SelectMany(m => m), v => Assert.True(v >= 0)); // after the ReLU
        // The last layer's activations are the logits, whose softmax is the model's score.
        var logits = cnn.Model.Activations(cnn.Images.Take(3).ToList(), "5");
        var scores = new float[30];
        cnn.Model.Score(cnn.Images.Take(3).SelectMany(i => i).ToArray(), 3, scores);
        for (int i = 0; i < 3; i++)
        {
            var e = logits[i].Select(v => Math.Exp(v)).ToArray();
            for (int c = 0; c < 10; c++) Close.Equal(e[c] / e.Sum(), scores[i * 10 + c]);
        }

        var missing = Assert.Throws<ArgumentException>(() => cnn.Model.Activations(cnn.Images, "conv2d_9"));
        Assert.Contains("conv2d_0, maxpool2d_1, conv2d_2", missing.Message);
        var wrongSize = Assert.Throws<ArgumentException>(() => cnn.Model.Activations([new float[100]], "conv2d_0"));
        Assert.Contains("784", wrongSize.Message);
    }

    [Fact]
    public void FeatureMapsAreAColumnThatFlowsIntoKMeans()
    {
        var pipeline = cnn.Ml.Transforms.LayerActivations(cnn.Model, "maxpool2d_3", "Maps")
            .Append(cnn.Ml.Clustering.Trainers.KMeans("Maps", numberOfClusters: 3));
        var fitted = pipeline.Fit(cnn.Test);
        var scored = fitted.Transform(cnn.Test);
        Assert.Equal(16 * 5 * 5, ((VectorDataViewType)scored.Schema["Maps"].Type).Size);
        var first = TestData.Column(scored, "Maps").Take(2).ToArray();
        Close.Equal(cnn.Model.Activations(cnn.Images.Take(2).ToList(), "maxpool2d_3"), first);
        Assert.Equal(200, scored.GetColumn<uint>("PredictedLabel").Count());
        Assert.ThrowsAny<ArgumentException>(() => cnn.Ml.Transforms.LayerActivations(cnn.Model, "nope"));
    }

    [Fact]
    public void FgsmRaisesTheLossAndStaysWithinEpsilonAndThePixelRange()
    {
        var attacked = cnn.Model.AdversarialExamples(cnn.Images, cnn.Classes, Attack.Fgsm(0.2));
        for (int i = 0; i < attacked.Length; i++)
            for (int p = 0; p < 784; p++)
            {
                Assert.InRange(attacked[i][p], 0f, 1f);
                Assert.True(Math.Abs(attacked[i][p] - cnn.Images[i][p]) <= 0.2 + 1e-6);
            }
        double clean = Loss(cnn.Images), fgsm = Loss(attacked);
        var pgd = cnn.Model.AdversarialExamples(cnn.Images, cnn.Classes, Attack.Pgd(0.2, steps: 10));
        double projected = Loss(pgd);
        output.WriteLine($"loss: clean {clean:F3}, FGSM {fgsm:F3}, PGD {projected:F3}");
        Assert.True(fgsm > clean * 3, $"FGSM loss {fgsm} should be well above the clean {clean}");
        Assert.True(projected > fgsm, $"PGD ({projected}) should find a higher loss than FGSM ({fgsm})");
        Assert.All(pgd.Zip(cnn.Images).SelectMany(p => p.First.Zip(p.Second)), v =>
        {
            Assert.InRange(v.First, 0f, 1f);
            Assert.True(Math.Abs(v.First - v.Second) <= 0.2 + 1e-6);
        });
        Assert.Equal(cnn.Images, cnn.Model.AdversarialExamples(cnn.Images, cnn.Classes, Attack.Fgsm(0)));

        // Targeted: pushed towards class 3, more images are called 3.
        var targeted = cnn.Model.AdversarialExamples(cnn.Images, cnn.Classes, Attack.Pgd(0.3, steps: 20, targetClass: 3));
        int Threes(IReadOnlyList<float[]> images)
        {
            var scores = new float[images.Count * 10];
            cnn.Model.Score(images.SelectMany(i => i).ToArray(), images.Count, scores);
            return Enumerable.Range(0, images.Count).Count(i => Enumerable.Range(0, 10).MaxBy(c => scores[i * 10 + c]) == 3);
        }
        Assert.True(Threes(targeted) > Threes(cnn.Images) + 10);

        Assert.Throws<ArgumentOutOfRangeException>(() => cnn.Model.AdversarialExamples(cnn.Images, cnn.Classes, Attack.Fgsm(-0.1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => cnn.Model.AdversarialExamples(cnn.Images, cnn.Classes, Attack.Pgd(0.1, targetClass: 12)));
        Assert.Throws<ArgumentException>(() => cnn.Model.AdversarialExamples(cnn.Images, cnn.Classes.Take(3).ToList(), Attack.Fgsm(0.1)));
    }

    [Fact]
    public void RobustnessFallsWithEpsilonAndTheTransformAttacksEachRow()
    {
        var points = cnn.Model.Robustness(cnn.Test, [Attack.Fgsm(0), Attack.Fgsm(0.1), Attack.Fgsm(0.3)]);
        output.WriteLine(string.Join(", ", points.Select(p => $"{p.Attack.Epsilon}: {p.Accuracy:P1}")));
        var clean = cnn.Ml.MulticlassClassification.Evaluate(cnn.Model.Transform(cnn.Test)).MicroAccuracy;
        Assert.Equal(clean, points[0].Accuracy, 1e-9);
        Assert.True(points[1].Accuracy < points[0].Accuracy && points[2].Accuracy < points[1].Accuracy);
        Assert.Equal(0.3, points[2].LargestChange, 1e-5);

        var attacked = cnn.Ml.Transforms.AdversarialExamples(cnn.Model, Attack.Fgsm(0.3), "Attacked").Fit(cnn.Test).Transform(cnn.Test);
        var rows = TestData.Column(attacked, "Attacked").Take(5).ToArray();
        Close.Equal(cnn.Model.AdversarialExamples(cnn.Images.Take(5).ToList(), cnn.Classes.Take(5).ToList(), Attack.Fgsm(0.3)), rows);
        var badLabel = cnn.Ml.Data.LoadFromEnumerable([new { Pixels = new float[784], Label = 1f }]);
        Assert.ThrowsAny<ArgumentException>(() => cnn.Ml.Transforms.AdversarialExamples(cnn.Model, Attack.Fgsm(0.1)).Fit(badLabel));
    }

    [Fact]
    public void SaliencyIsTheGradientOfTheClassLogit()
    {
        // A little noise breaks the exact ties of MNIST's flat background (in max pooling and at the ReLUs' kinks),
        // where the network is not differentiable and a finite difference would disagree with any gradient.
        var rng = new Random(4);
        var image = cnn.Images[0].Select(v => v + 0.01f * (float)rng.NextDouble()).ToArray();
        var gradient = cnn.Model.Saliency([image], [cnn.Classes[0]], SaliencyKind.Gradient)[0];
        var times = cnn.Model.Saliency([image], [cnn.Classes[0]])[0];
        Close.Equal(gradient.Zip(image, (g, x) => g * x), times);
        // A step along the gradient raises the class logit by |gradient|^2 * h, to first order.
        double h = 1e-4;
        var moved = image.Select((v, p) => (float)(v + h * gradient[p])).ToArray();
        var before = cnn.Model.Activations([image], "dense_5")[0][cnn.Classes[0]];
        var after = cnn.Model.Activations([moved], "dense_5")[0][cnn.Classes[0]];
        double expected = h * gradient.Sum(g => (double)g * g);
        output.WriteLine($"logit change {after - before:G4}, first-order {expected:G4}");
        Assert.Equal(expected, after - before, expected * 0.05);
    }

    [Fact]
    public void SaliencyIsAColumnForThePredictedClass()
    {
        var scored = cnn.Ml.Transforms.Saliency(cnn.Model, SaliencyKind.Gradient, "Map").Fit(cnn.Test).Transform(cnn.Test);
        var maps = TestData.Column(scored, "Map").Take(3).ToArray();
        var scores = new float[30];
        cnn.Model.Score(cnn.Images.Take(3).SelectMany(i => i).ToArray(), 3, scores);
        var predicted = Enumerable.Range(0, 3).Select(i => Enumerable.Range(0, 10).MaxBy(c => scores[i * 10 + c])).ToList();
        Close.Equal(cnn.Model.Saliency(cnn.Images.Take(3).ToList(), predicted, SaliencyKind.Gradient), maps);
        var wrong = cnn.Ml.Data.LoadFromEnumerable([new { Pixels = new float[100] }]);
        Assert.ThrowsAny<ArgumentException>(() => cnn.Ml.Transforms.Saliency(cnn.Model).Fit(wrong));
    }

    [Fact]
    public void AdversarialTrainingReplacesPartOfEachBatchAndMakesTheModelHarderToFool()
    {
        var training = new AdversarialTraining(Attack.Fgsm(0.2, randomStart: true), Fraction: 0.5);
        using var robust = cnn.Fit(training);
        var attack = new[] { Attack.Fgsm(0.2) };
        double plain = cnn.Model.Robustness(cnn.Test, attack)[0].Accuracy, hardened = robust.Robustness(cnn.Test, attack)[0].Accuracy;
        output.WriteLine($"FGSM 0.2 accuracy: plain {plain:P1}, adversarially trained {hardened:P1}; training loss {robust.History!.Epochs[^1].Values["loss"]:F3} vs {cnn.Model.History!.Epochs[^1].Values["loss"]:F3}");
        Assert.True(hardened > plain + 0.15, $"adversarial training should resist FGSM: {hardened} vs {plain}");
        Assert.True(robust.History!.Epochs[^1].Values["loss"] > cnn.Model.History!.Epochs[^1].Values["loss"], "half of each batch is adversarial, so the training loss is higher");
        Assert.Throws<ArgumentOutOfRangeException>(() => new NeuralNetworkClassifier(cnn.Ml, new NeuralNetworkClassifierOptions { AdversarialTraining = new AdversarialTraining(Attack.Fgsm(0.1), 0) }));
        Assert.Throws<ArgumentException>(() => new NeuralNetworkClassifier(cnn.Ml, new NeuralNetworkClassifierOptions { AdversarialTraining = new AdversarialTraining(Attack.Fgsm(0.1, targetClass: 2)) }));
    }

    [Fact]
    public void GradientAscentRaisesTheChosenActivation()
    {
        using var features = FeatureNetwork.From(cnn.Model);
        Assert.Equal(["conv2d_0", "maxpool2d_1", "conv2d_2", "maxpool2d_3"], features.LayerNames);
        var images = Filters.Maximize(features, "conv2d_2", channels: [0, 5], options: new InputOptimizationOptions { Steps = 30, LearningRate = 0.05 });
        Assert.Equal(2, images.Count);
        double Mean(VisionImage image, int channel)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var a = features.Run(tensor(image.Pixels, [1, 1, image.Height, image.Width]), [2])[0];
            return a[0, channel].mean().item<float>();
        }
        var grey = new VisionImage(Enumerable.Repeat(0.5f, 784).ToArray(), 1, 28, 28);
        foreach (var (image, channel) in images.Zip([0, 5]))
        {
            output.WriteLine($"channel {channel}: grey {Mean(grey, channel):F4} -> {Mean(image, channel):F4}");
            Assert.True(Mean(image, channel) > Mean(grey, channel) + 0.1);
            Assert.All(image.Pixels, v => Assert.InRange(v, 0f, 1f));
        }
        var kernels = Filters.FirstLayerKernels(cnn.Model);
        Assert.Equal(8, kernels.Images.Count);
        Assert.Equal((3, 3), (kernels.Height, kernels.Width));
        Assert.Throws<ArgumentOutOfRangeException>(() => Filters.Maximize(features, "conv2d_0", channels: [8]));
        Assert.Contains("flatten_4", Assert.Throws<ArgumentException>(() => Filters.FirstLayerKernels(cnn.Model, "flatten_4")).Message);
    }

    [Fact]
    public void TheGramMatrixOfKnownFeatures()
    {
        using var features = tensor(new float[] { 1, 2, 3, 4 }, [1, 2, 2, 1]); // channel 0: (1, 2), channel 1: (3, 4)
        using var gram = StyleTransfer.Gram(features);
        Assert.Equal(new float[] { 2.5f, 5.5f, 5.5f, 12.5f }, gram.data<float>().ToArray()); // [[1+4, 3+8], [3+8, 9+16]] / 2 positions
        Assert.Throws<ArgumentException>(() => StyleTransfer.Gram(zeros(2, 3)));
    }

    [Fact]
    public void DreamingAndStyleTransferMoveTheImageTheWayTheirLossesSay()
    {
        using var random = FeatureNetwork.Random(inputChannels: 3, seed: 2);
        var rng = new Random(1);
        VisionImage Noise(int size, Func<int, int, int, float> pixel) =>
            new(Enumerable.Range(0, 3 * size * size).Select(i => pixel(i / (size * size), i / size % size, i % size)).ToArray(), 3, size, size);
        var content = Noise(32, (c, y, x) => c == 0 ? y / 32f : 0.5f);
        var style = Noise(32, (c, y, x) => (x / 4 + y / 4) % 2 == 0 ? 0.9f : 0.1f); // a checkerboard
        var layers = new[] { "conv2d_0", "conv2d_2" };
        double StyleLoss(VisionImage image)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var a = random.Run(tensor(image.Pixels, [1, 3, 32, 32]), [0, 2]);
            var b = random.Run(tensor(style.Pixels, [1, 3, 32, 32]), [0, 2]);
            return a.Zip(b).Sum(p => nn.functional.mse_loss(StyleTransfer.Gram(p.First), StyleTransfer.Gram(p.Second)).item<float>());
        }
        var styled = StyleTransfer.Transfer(random, content, style, new StyleTransferOptions
        {
            StyleLayers = layers, ContentLayer = "conv2d_2", Optimization = new InputOptimizationOptions { Steps = 40, LearningRate = 0.03 },
        });
        output.WriteLine($"style loss: content {StyleLoss(content):G4} -> result {StyleLoss(styled):G4}");
        Assert.True(StyleLoss(styled) < StyleLoss(content) * 0.5);

        var dreamed = DeepDream.Dream(random, content, "conv2d_2", new InputOptimizationOptions { Steps = 10, Octaves = 2, Jitter = 1, LearningRate = 0.02 });
        double Energy(VisionImage image)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            return random.Run(tensor(image.Pixels, [1, 3, 32, 32]), [2])[0].square().mean().item<float>();
        }
        Assert.True(Energy(dreamed) > Energy(content));

        Assert.Throws<ArgumentException>(() => DeepDream.Dream(random, new VisionImage(new float[784], 1, 28, 28), "conv2d_0"));
        Assert.Throws<ArgumentException>(() => DeepDream.Dream(random, new VisionImage(new float[10], 3, 28, 28), "conv2d_0"));
        Assert.Contains("avgpool2d_1", Assert.Throws<ArgumentException>(() => DeepDream.Dream(random, content, "conv5")).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => DeepDream.Dream(random, content, "conv2d_0", new InputOptimizationOptions { Steps = 0 }));
    }

    private sealed class ColourRow
    {
        public uint Label { get; set; }
        [VectorType(3 * 8 * 8)]
        public float[] Pixels { get; set; } = [];
    }

    [Fact]
    public void ColourImagesReadWithImageAnalyticsGoThroughTheSameTools()
    {
        // A colour image written as a PNG and read back through ML.NET's LoadImages / ResizeImages / ExtractPixels.
        var path = TestData.TempFile(".png");
        try
        {
            var pixels = Enumerable.Range(0, 3 * 12 * 16).Select(i => (i / (12 * 16)) switch { 0 => (i % 16) / 15f, 1 => (i / 16 % 12) / 11f, _ => 0.5f }).ToArray();
            Data.ImageFiles.SavePng(path, pixels, 3, 12, 16);
            var read = VisionImage.Read(cnn.Ml, path, maxSide: 16);
            Assert.Equal((3, 12, 16), (read.Channels, read.Height, read.Width));
            Assert.True(read.Pixels.Zip(pixels).Max(p => Math.Abs(p.First - p.Second)) < 0.01);
            var half = VisionImage.Read(cnn.Ml, path, maxSide: 8);
            Assert.Equal((3, 6, 8), (half.Channels, half.Height, half.Width));
            File.WriteAllBytes(path, [1, 2, 3, 4, 5]);
            Assert.Contains(path, Assert.Throws<InvalidDataException>(() => VisionImage.Read(cnn.Ml, path)).Message);
        }
        finally
        {
            File.Delete(path);
        }
        Assert.Throws<FileNotFoundException>(() => VisionImage.Read(cnn.Ml, "/no/such/image.png"));

        // A classifier of [3, 8, 8] images: red-ish against blue-ish squares.
        var rng = new Random(2);
        var rows = Enumerable.Range(0, 200).Select(i =>
        {
            uint label = (uint)(i % 2);
            var values = new float[192];
            for (int p = 0; p < 64; p++)
            {
                values[p] = (float)(label == 0 ? 0.6 + 0.3 * rng.NextDouble() : 0.1 + 0.3 * rng.NextDouble());
                values[64 + p] = (float)rng.NextDouble() * 0.5f;
                values[128 + p] = (float)(label == 1 ? 0.6 + 0.3 * rng.NextDouble() : 0.1 + 0.3 * rng.NextDouble());
            }
            return new ColourRow { Label = label, Pixels = values };
        }).ToList();
        var data = cnn.Ml.Data.LoadFromEnumerable(rows);
        var keyed = cnn.Ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
        using var model = (NeuralNetworkClassificationTransformer)cnn.Ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", InputShape = [3, 8, 8], Epochs = 5, BatchSize = 16, Seed = 1,
            Network = new NetworkSpec([new Conv2D(4, 3, Activation: ActivationKind.ReLU), new Flatten(), new Dense(Dense.TaskOutputs)]),
        }).Fit(keyed);
        var images = rows.Take(10).Select(r => r.Pixels).ToList();
        var classes = rows.Take(10).Select(r => (int)r.Label).ToList();
        Assert.Equal([4, 6, 6], model.LayerShape("conv2d_0"));
        Assert.Equal(144, model.Activations(images, "conv2d_0")[0].Length);
        var attacked = model.AdversarialExamples(images, classes, Attack.Pgd(0.3, steps: 10));
        Assert.All(attacked.Zip(images).SelectMany(p => p.First.Zip(p.Second)), v => Assert.True(Math.Abs(v.First - v.Second) <= 0.3 + 1e-6 && v.First is >= 0 and <= 1));
        Assert.Equal(192, model.Saliency(images, classes)[0].Length);
        var kernels = Filters.FirstLayerKernels(model);
        Assert.Equal(3, kernels.Channels);
        Assert.Equal(27, kernels.Images[0].Length);
        Assert.Contains("192", Assert.Throws<ArgumentException>(() => model.Activations([new float[64]], "conv2d_0")).Message);
    }
}
