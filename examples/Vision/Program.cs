// Seeing inside and fooling a network: a small CNN is trained on MNIST; its feature maps flow into k-means as an
// ML.NET column; FGSM and PGD attack it (accuracy against epsilon); adversarial training hardens a second one; the
// inputs that most excite its second convolution are found by gradient ascent; and a photo is restyled with a random
// multi-scale network (pass a content and a style image).
// Run: dotnet run --project examples/Vision -c Release [-- <content image> <style image>]
using Microsoft.ML;
using MlNetDeep;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Training;
using MlNetDeep.Vision;

var ml = new MLContext(seed: 1);
var train = ml.Data.LoadMnist(MnistSplit.Train, maxRows: 10_000);
var test = ml.Data.LoadMnist(MnistSplit.Test, maxRows: 1_000);
var network = new NetworkSpec(
[
    new Conv2D(16, 3, Activation: ActivationKind.ReLU), new MaxPool2D(2),
    new Conv2D(32, 3, Activation: ActivationKind.ReLU), new MaxPool2D(2),
    new Flatten(), new Dense(Dense.TaskOutputs),
]) { Name = "small-cnn" };
NeuralNetworkClassificationTransformer Train(AdversarialTraining? adversarial) =>
    (NeuralNetworkClassificationTransformer)ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
    {
        FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Network = network, Epochs = 3, BatchSize = 64, Seed = 1, AdversarialTraining = adversarial,
    }).Fit(train);

using var model = Train(null);
Console.WriteLine($"Layers: {string.Join(", ", model.LayerNames())}");

// Feature maps as a column: the second pooling layer's 32x5x5 maps of each digit, clustered by ML.NET's k-means.
var clusters = ml.Transforms.LayerActivations(model, "maxpool2d_3", "Maps")
    .Append(ml.Clustering.Trainers.KMeans("Maps", numberOfClusters: 10))
    .Fit(test);
var metrics = ml.Clustering.Evaluate(clusters.Transform(test), featureColumnName: "Maps");
Console.WriteLine($"k-means on the feature maps: average distance {metrics.AverageDistance:F2}, Davies-Bouldin {metrics.DaviesBouldinIndex:F3}");

// Accuracy against epsilon, then a hardened model.
var attacks = new[] { 0.0, 0.1, 0.2, 0.3 }.Select(e => Attack.Fgsm(e)).Append(Attack.Pgd(0.3, steps: 20)).ToList();
using var robust = Train(new AdversarialTraining(Attack.Fgsm(0.2, randomStart: true)));
foreach (var (plain, hardened) in model.Robustness(test, attacks).Zip(robust.Robustness(test, attacks)))
    Console.WriteLine($"{plain.Attack.Method} epsilon {plain.Attack.Epsilon}: plain {plain.Accuracy:P1}, adversarially trained {hardened.Accuracy:P1}");

// What the second convolution looks for.
using var features = FeatureNetwork.From(model);
var excite = Filters.Maximize(features, "conv2d_2", channels: [0, 1, 2, 3]);
Directory.CreateDirectory("out");
for (int c = 0; c < excite.Count; c++) excite[c].SavePng($"out/conv2d_2-channel{c}.png");
Console.WriteLine("Wrote out/conv2d_2-channel*.png");

if (args.Length >= 2)
{
    using var random = FeatureNetwork.Random(3, seed: 1);
    var styled = StyleTransfer.Transfer(random, VisionImage.Read(ml, args[0], 192), VisionImage.Read(ml, args[1], 192),
        new StyleTransferOptions { Optimization = new InputOptimizationOptions { Steps = 200, LearningRate = 0.02 } });
    styled.SavePng("out/styled.png");
    Console.WriteLine("Wrote out/styled.png");
}
