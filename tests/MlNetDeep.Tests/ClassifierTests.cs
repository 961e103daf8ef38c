using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Training;

namespace MlNetDeep.Tests;

/// <summary>The multiclass trainer on the MNIST subset, as an ML.NET user composes it.</summary>
public class ClassifierTests
{
    internal static NeuralNetworkClassifierOptions MlpOptions(int epochs = 5) => new()
    {
        FeatureColumnName = "Pixels", Network = Networks.Networks.Mlp(64), Epochs = epochs, BatchSize = 32, Optimizer = new Adam(2e-3),
    };

    [Fact]
    public void MlpReachesASaneAccuracyAndEvaluateWorks()
    {
        var ml = new MLContext(seed: 1);
        var model = ml.MulticlassClassification.Trainers.NeuralNetwork(MlpOptions()).Fit(TestData.MnistTrain(ml));
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(TestData.MnistTest(ml)));
        Assert.True(metrics.MicroAccuracy > 0.85, $"accuracy {metrics.MicroAccuracy:P2}");
        Assert.True(metrics.LogLoss < 0.6, $"log-loss {metrics.LogLoss}");
        Assert.Equal(10, metrics.PerClassLogLoss.Count);
        Assert.Equal(5, model.History!.Epochs.Count);
        Assert.True(model.History.Epochs[^1].TrainLoss < model.History.Epochs[0].TrainLoss);
    }

    [Fact]
    public void CnnTrainsOnImagesThroughTheConvolutionalEntryPoint()
    {
        var ml = new MLContext(seed: 1);
        var options = new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Epochs = 3, BatchSize = 32,
            Network = new NetworkSpec([new Conv2D(8, 3, Activation: ActivationKind.ReLU), new MaxPool2D(2), new Flatten(), new Dense(Dense.TaskOutputs)]),
        };
        var model = ml.MulticlassClassification.Trainers.ConvolutionalNetwork(options).Fit(TestData.MnistTrain(ml));
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(TestData.MnistTest(ml)));
        Assert.True(metrics.MicroAccuracy > 0.85, $"accuracy {metrics.MicroAccuracy:P2}");
        Assert.Equal(new[] { 1, 28, 28 }, model.InputShape);
    }

    [Fact]
    public void ScoresAreProbabilitiesAndPredictedLabelKeepsTheKeyValues()
    {
        var ml = new MLContext(seed: 1);
        var pipeline = ml.MulticlassClassification.Trainers.NeuralNetwork(MlpOptions(2))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedDigit", "PredictedLabel"));
        var model = pipeline.Fit(TestData.MnistTrain(ml, 500));
        var scored = model.Transform(TestData.MnistTest(ml, 50));
        var scores = TestData.Column(scored, "Score");
        Assert.All(scores, s => Assert.Equal(1.0, s.Sum(), 3));
        var digits = scored.GetColumn<uint>("PredictedDigit").ToArray();
        Assert.All(digits, d => Assert.InRange(d, 0u, 9u));
        Assert.Equal(scores.Select(s => (uint)Array.IndexOf(s, s.Max())), digits);
        VBuffer<ReadOnlyMemory<char>> slotNames = default;
        scored.Schema["Score"].GetSlotNames(ref slotNames);
        Assert.Equal("7", slotNames.GetValues()[7].ToString());
    }

    [Fact]
    public void MixedPipelineWithMlNetTransformsComposes()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(TestData.Column(TestData.MnistTrain(ml, 1000), "Pixels")
            .Zip(TestData.MnistTrain(ml, 1000).GetColumn<uint>("Label"))
            .Select(p => new DigitRow { Pixels = p.First, Digit = (p.Second - 1).ToString() }).ToList());
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label", "Digit")
            .Append(ml.Transforms.Concatenate("Features", "Pixels"))
            .Append(ml.Transforms.NormalizeMinMax("Features"))
            .Append(ml.Transforms.ProjectToPrincipalComponents("Features", rank: 40, seed: 1))
            .Append(ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions { Network = Networks.Networks.Mlp(32), Epochs = 10, BatchSize = 32 }))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        var model = pipeline.Fit(data);
        var scored = model.Transform(data);
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        Assert.True(metrics.MicroAccuracy > 0.8, $"training accuracy after PCA(40): {metrics.MicroAccuracy:P2}");
        var predicted = scored.GetColumn<ReadOnlyMemory<char>>("PredictedLabel").Select(m => m.ToString()).ToArray();
        Assert.All(predicted, p => Assert.Matches("^[0-9]$", p));

        // PredictionEngine through the whole chain: two different inputs get their own predictions.
        var engine = ml.Model.CreatePredictionEngine<DigitRow, DigitPrediction>(model);
        var rows = data.GetColumn<float[]>("Pixels").Take(20).ToArray();
        var single = rows.Select(p => engine.Predict(new DigitRow { Pixels = p, Digit = "0" })).ToArray();
        Assert.Equal(predicted.Take(20), single.Select(s => s.PredictedLabel));
        Assert.True(single.Select(s => s.PredictedLabel).Distinct().Count() > 3);
        var batchScores = TestData.Column(scored, "Score").Take(20).ToArray();
        for (int i = 0; i < 20; i++) Close.Equal(batchScores[i], single[i].Score);
    }

    [Fact]
    public void FiveFoldCrossValidationRunsUnchanged()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.MnistTrain(ml, 1000);
        var results = ml.MulticlassClassification.CrossValidate(data, ml.MulticlassClassification.Trainers.NeuralNetwork(MlpOptions(3)), numberOfFolds: 5);
        Assert.Equal(5, results.Count);
        Assert.All(results, r => Assert.True(r.Metrics.MicroAccuracy > 0.7, $"fold accuracy {r.Metrics.MicroAccuracy:P2}"));
    }

    [Fact]
    public void SameSeedGivesTheSameModel()
    {
        float[][] Scores()
        {
            var ml = new MLContext(seed: 7);
            var options = MlpOptions(2);
            options.Network = Networks.Networks.Mlp([32], dropout: 0.2);
            var model = ml.MulticlassClassification.Trainers.NeuralNetwork(options).Fit(TestData.MnistTrain(ml, 300));
            return TestData.Column(model.Transform(TestData.MnistTest(ml, 20)), "Score");
        }
        Assert.Equal(Scores(), Scores());
    }

    [Fact]
    public void ValidationSplitAndEarlyStoppingAreRecorded()
    {
        var ml = new MLContext(seed: 1);
        var options = MlpOptions(6);
        options.ValidationFraction = 0.2;
        // Only the first epoch improves by more than MinDelta (from nothing), so the run must stop after two more.
        options.EarlyStopping = new EarlyStopping(Patience: 2, MinDelta: 100);
        var model = ml.MulticlassClassification.Trainers.NeuralNetwork(options).Fit(TestData.MnistTrain(ml, 500));
        var history = model.History!;
        Assert.All(history.Epochs, e => Assert.NotNull(e.ValidationAccuracy));
        Assert.True(history.StoppedEarly);
        Assert.Equal(3, history.Epochs.Count);
        Assert.StartsWith("early stopping: val_loss did not improve for 2 epochs after its best", history.StopReason);
        Assert.Equal(0, history.BestEpoch);
        Assert.Equal(0, history.WeightsEpoch);
        Assert.True(history.RestoredBestWeights);
    }

    public sealed class DigitRow
    {
        [VectorType(784)] public float[] Pixels { get; set; } = [];
        public string Digit { get; set; } = "";
    }

    public sealed class DigitPrediction
    {
        public string PredictedLabel { get; set; } = "";
        public float[] Score { get; set; } = [];
    }
}
