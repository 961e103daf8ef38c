using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Common;
using MlNetDeep.Training;

namespace MlNetDeep.Tests;

public class BinaryClassifierTests
{
    private sealed class Tumour
    {
        [VectorType(BreastCancer.FeatureCount)] public float[] Features { get; set; } = [];
        public bool Label { get; set; }
    }

    private sealed class Diagnosis
    {
        public bool PredictedLabel { get; set; }
        public float Score { get; set; }
        public float Probability { get; set; }
    }

    private static IEstimator<ITransformer> Pipeline(MLContext ml, int epochs = 15) =>
        ml.Transforms.NormalizeMeanVariance("Features", fixZero: false)
            .Append(ml.BinaryClassification.Trainers.NeuralNetwork(new NeuralNetworkBinaryClassifierOptions
            {
                Network = Networks.Networks.Mlp(32), Epochs = epochs, Optimizer = new Adam(1e-3, WeightDecay: 1e-2),
            }));

    [Fact]
    public void LearnsBreastCancerWithMlNetsBinaryColumnsAndEvaluate()
    {
        var ml = new MLContext(seed: 1);
        var split = ml.Data.TrainTestSplit(ml.Data.LoadBreastCancer(), testFraction: 0.3, seed: 1);
        var model = Pipeline(ml).Fit(split.TrainSet);
        var scored = model.Transform(split.TestSet);

        Assert.Equal(NumberDataViewType.Single, scored.Schema["Score"].Type);
        Assert.Equal(NumberDataViewType.Single, scored.Schema["Probability"].Type);
        Assert.Equal(BooleanDataViewType.Instance, scored.Schema["PredictedLabel"].Type);
        var metrics = ml.BinaryClassification.Evaluate(scored);
        Assert.True(metrics.Accuracy > 0.93, $"accuracy {metrics.Accuracy}");
        Assert.True(metrics.AreaUnderRocCurve > 0.97, $"AUC {metrics.AreaUnderRocCurve}");
        Assert.True(metrics.F1Score > 0.9, $"F1 {metrics.F1Score}");
        Assert.True(metrics.LogLoss < 0.3, $"log-loss {metrics.LogLoss}");

        // Probability is the sigmoid of Score and PredictedLabel is Score > 0, row by row.
        var scores = scored.GetColumn<float>("Score").ToArray();
        var probabilities = scored.GetColumn<float>("Probability").ToArray();
        var predicted = scored.GetColumn<bool>("PredictedLabel").ToArray();
        for (int i = 0; i < scores.Length; i++)
        {
            Close.Equal(1 / (1 + Math.Exp(-scores[i])), probabilities[i]);
            Assert.Equal(scores[i] > 0, predicted[i]);
        }
        Assert.Contains(true, predicted);
        Assert.Contains(false, predicted);
    }

    [Fact]
    public void CrossValidatePredictionEngineAndSaveLoadWork()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadBreastCancer();
        var folds = ml.BinaryClassification.CrossValidate(data, Pipeline(ml, epochs: 8), numberOfFolds: 3, labelColumnName: "Label", seed: 1);
        Assert.Equal(3, folds.Count);
        Assert.All(folds, f => Assert.True(f.Metrics.AreaUnderRocCurve > 0.95, $"fold AUC {f.Metrics.AreaUnderRocCurve}"));

        var model = Pipeline(ml, epochs: 8).Fit(data);
        var path = TestData.TempFile();
        try
        {
            ml.Model.SaveDeep(model, data.Schema, path);
            var loaded = ml.Model.LoadDeep(path, out var schema);
            Assert.Equal(model.Transform(data).GetColumn<float>("Score"), loaded.Transform(data).GetColumn<float>("Score"));

            var rows = ml.Data.CreateEnumerable<Tumour>(data, reuseRowObject: false).Take(40).ToList();
            var engine = ml.Model.CreatePredictionEngine<Tumour, Diagnosis>(loaded, schema);
            int right = 0;
            foreach (var row in rows)
            {
                var p = engine.Predict(row);
                Assert.InRange(p.Probability, 0f, 1f);
                Assert.Equal(p.Score > 0, p.PredictedLabel);
                if (p.PredictedLabel == row.Label) right++;
            }
            Assert.True(right >= 36, $"{right} of 40 rows right");
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void ANonBooleanLabelIsRejectedWithTheColumnAndTheFix()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Transforms.Conversion.ConvertType("Label", outputKind: DataKind.Single).Fit(ml.Data.LoadBreastCancer()).Transform(ml.Data.LoadBreastCancer());
        var trainer = ml.BinaryClassification.Trainers.NeuralNetwork(epochs: 1);
        var fit = Assert.Throws<ArgumentOutOfRangeException>(() => trainer.Fit(data));
        Assert.Contains("'Label' must be Boolean", fit.Message);
        Assert.Contains("Single", fit.Message);
        var shape = Assert.Throws<ArgumentOutOfRangeException>(() => trainer.GetOutputSchema(new SchemaShape(data.Schema.Select(SchemaShapes.FromSchemaColumn))));
        Assert.Contains("'Label' must be Boolean", shape.Message);

        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
        var key = Assert.Throws<ArgumentOutOfRangeException>(() => trainer.Fit(keyed));
        Assert.Contains("MulticlassClassification", key.Message);
    }

    [Fact]
    public void OutputColumnsThatShareANameAreRejected()
    {
        var ml = new MLContext(seed: 1);
        var error = Assert.Throws<ArgumentException>(() => ml.BinaryClassification.Trainers.NeuralNetwork(new NeuralNetworkBinaryClassifierOptions
        {
            ProbabilityColumnName = "Score",
        }));
        Assert.Contains("distinct names", error.Message);
    }
}
