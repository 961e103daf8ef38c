using System.Reflection;
using Microsoft.ML;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Transfer;
using MlNetDeep.Networks;
using MlNetDeep.Training;
using MlNetDeep.Vision;
using TorchSharp;

namespace MlNetDeep.Tests;

/// <summary>A family refuses every option it cannot honour, and passes on every one it delegates.</summary>
public class FamilyOptionTests
{
    [Fact]
    public void AGanRefusesTheSupervisedOptionsItCannotHonour()
    {
        var ml = new MLContext(seed: 1);
        var augment = TinyFamilies.Gan();
        augment.TrainingInputTransform = new GaussianCorruption(0.1);
        var transform = Assert.Throws<ArgumentException>(() => ml.Transforms.GenerativeAdversarialNetwork(augment));
        Assert.Equal("TrainingInputTransform", transform.ParamName);

        var adversarial = TinyFamilies.Gan();
        adversarial.AdversarialTraining = new AdversarialTraining(Attack.Fgsm(0.1));
        var attack = Assert.Throws<ArgumentException>(() => ml.Transforms.GenerativeAdversarialNetwork(adversarial));
        Assert.Equal("AdversarialTraining", attack.ParamName);

        ml.Transforms.GenerativeAdversarialNetwork(TinyFamilies.Gan()); // the same options without them are accepted
    }

    private static TransferLearningOptions Transfer()
    {
        var backbone = new NetworkSpec([new Conv2D(2, 3, Padding: PaddingMode.Same), new Activation(ActivationKind.ReLU), new Conv2D(2, 3, Padding: PaddingMode.Same)]) { Name = "tiny-backbone" };
        using var module = Native.TorchRuntime.Seeded(1, () => backbone.Build([1, 8, 8]));
        return new TransferLearningOptions { FeatureColumnName = "Pixels", Backbone = TransferBackbone.FromNetwork(backbone, module, [1, 8, 8]) };
    }

    [Fact]
    public void TheTransferClassifierRefusesFineTuningSettingsWithoutFineTuning()
    {
        var ml = new MLContext(seed: 1);
        var layers = Transfer();
        layers.FineTuneLayers = 2;
        Assert.Equal("FineTuneLayers", Assert.Throws<ArgumentException>(() => ml.MulticlassClassification.Trainers.TransferLearning(layers)).ParamName);
        var rate = Transfer();
        rate.FineTuneLearningRate = 1e-4;
        Assert.Equal("FineTuneLearningRate", Assert.Throws<ArgumentException>(() => ml.MulticlassClassification.Trainers.TransferLearning(rate)).ParamName);
        var adversarial = Transfer();
        adversarial.AdversarialTraining = new AdversarialTraining(Attack.Fgsm(0.1));
        Assert.Equal("AdversarialTraining", Assert.Throws<ArgumentException>(() => ml.MulticlassClassification.Trainers.TransferLearning(adversarial)).ParamName);

        var tuned = Transfer();
        tuned.FineTuneEpochs = 1;
        tuned.FineTuneLayers = 2;
        tuned.FineTuneLearningRate = 1e-4;
        ml.MulticlassClassification.Trainers.TransferLearning(tuned); // with fine-tuning they are accepted
    }

    [Fact]
    public void TheSequenceClassifierPassesEveryTrainingOptionToItsClassifier()
    {
        // Every shared setting set to a value other than its default; the columns and the shape are the family's own.
        var source = new SequenceClassifierOptions();
        var values = new Dictionary<string, object?>
        {
            [nameof(DeepTrainerOptions.Epochs)] = 7, [nameof(DeepTrainerOptions.BatchSize)] = 3, [nameof(DeepTrainerOptions.Optimizer)] = new Sgd(0.5),
            [nameof(DeepTrainerOptions.LearningRateSchedule)] = new StepDecay(2), [nameof(DeepTrainerOptions.EarlyStopping)] = new EarlyStopping(5),
            [nameof(DeepTrainerOptions.Monitor)] = new MonitoredMetric("val_accuracy", true), [nameof(DeepTrainerOptions.ValidationFraction)] = 0.25,
            [nameof(DeepTrainerOptions.ValidationData)] = new MLContext(1).Data.LoadFromEnumerable(TinyFamilies.Rows(2)),
            [nameof(DeepTrainerOptions.Shuffle)] = false, [nameof(DeepTrainerOptions.Seed)] = 11, [nameof(DeepTrainerOptions.ScoringBatchSize)] = 5,
            [nameof(DeepTrainerOptions.MaxStagedBytes)] = 1234L, [nameof(DeepTrainerOptions.Progress)] = new Progress<TrainingProgress>(),
            [nameof(DeepTrainerOptions.CancellationToken)] = new CancellationTokenSource().Token,
            [nameof(DeepTrainerOptions.Callbacks)] = new List<ITrainingCallback> { new EpochCallback(_ => { }) },
            [nameof(DeepTrainerOptions.TrainingInputTransform)] = new GaussianCorruption(0.1),
            [nameof(DeepTrainerOptions.AdversarialTraining)] = new AdversarialTraining(Attack.Fgsm(0.1)),
        };
        var shared = typeof(DeepTrainerOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite && p.Name is not (nameof(DeepTrainerOptions.FeatureColumnName) or nameof(DeepTrainerOptions.InputShape))).ToList();
        Assert.Equal(shared.Select(p => p.Name).Order(), values.Keys.Order()); // a new shared option must be added here
        foreach (var property in shared) property.SetValue(source, values[property.Name]);

        var target = new NeuralNetworkClassifierOptions();
        source.CopyTrainingTo(target);
        foreach (var property in shared)
        {
            var copied = property.GetValue(target);
            if (property.Name == nameof(DeepTrainerOptions.Callbacks))
                Assert.Equal((IEnumerable<ITrainingCallback>)values[property.Name]!, (IEnumerable<ITrainingCallback>)copied!);
            else Assert.True(Equals(values[property.Name], copied), $"{property.Name} was not passed on: {copied}");
        }
    }
}
