using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Models.Anomaly;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Networks;
using Xunit.Abstractions;

namespace MlNetDeep.Tests;

/// <summary>Autoencoder anomaly detection on ML.NET's anomaly-detection catalog: MNIST digit 1 as the normal class.</summary>
public class AnomalyDetectionTests(ITestOutputHelper output)
{
    public sealed class Row
    {
        public float Label { get; set; } // 1 = anomalous, as ML.NET's anomaly evaluator reads it
        [VectorType(784)] public float[] Pixels { get; set; } = [];
    }

    private static readonly Lazy<(List<Row> Ones, List<Row> Test)> Data = new(() =>
    {
        var ones = Mnist.Read(MnistSplit.Train, TestData.MnistFolder, download: false).Where(r => r.Label == 1).Take(400)
            .Select(r => new Row { Label = 0, Pixels = r.Pixels }).ToList();
        var test = Mnist.Read(MnistSplit.Test, TestData.MnistFolder, download: false).Take(600)
            .Select(r => new Row { Label = r.Label != 1 ? 1 : 0, Pixels = r.Pixels }).ToList();
        return (ones, test);
    });

    private static AutoencoderAnomalyOptions Dense(int epochs = 15) => new()
    {
        Autoencoder = new AutoencoderOptions { FeatureColumnName = "Pixels", LatentSize = 16, Epochs = epochs, BatchSize = 32, Seed = 1 },
    };

    [Fact]
    public void ADenseDetectorTrainedOnOnesFindsTheOtherDigitsAndMlNetsEvaluatorAndThresholdChangeWork()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Data.Value.Ones);
        var test = ml.Data.LoadFromEnumerable(Data.Value.Test);
        using var model = ml.AnomalyDetection.Trainers.Autoencoder(Dense()).Fit(train);

        // The threshold is the 99th percentile of the training scores: about 1 % of the training rows are flagged.
        var trainScores = model.Transform(train).GetColumn<float>("Score").ToArray();
        double flagged = trainScores.Count(s => s > model.Threshold) / (double)trainScores.Length;
        Assert.InRange(flagged, 0.005, 0.02);
        Assert.Equal(trainScores.Max(), model.TrainingScores!.Max);

        var scored = model.Transform(test);
        var metrics = ml.AnomalyDetection.Evaluate(scored, falsePositiveCount: 5);
        output.WriteLine($"dense, digit 1 normal: AUC {metrics.AreaUnderRocCurve:F4}, detection rate at 5 false positives {metrics.DetectionRateAtFalsePositiveCount:F3}");
        Assert.True(metrics.AreaUnderRocCurve > 0.95, $"AUC {metrics.AreaUnderRocCurve}");

        // PredictedLabel is Score above the threshold; a dense autoencoder's score is the mean of its per-feature errors.
        var score = scored.GetColumn<float>("Score").ToArray();
        var predicted = scored.GetColumn<bool>("PredictedLabel").ToArray();
        var errors = scored.GetColumn<float[]>("FeatureErrors").ToArray();
        for (int i = 0; i < score.Length; i++)
        {
            Assert.Equal(score[i] > model.Threshold, predicted[i]);
            Assert.Equal(784, errors[i].Length);
            Close.Equal(errors[i].Average(), score[i], 1e-5);
        }

        // ML.NET's ChangeModelThreshold call, unchanged: a lower threshold flags more rows.
        using var lower = ml.AnomalyDetection.ChangeModelThreshold(model, model.Threshold / 4);
        Assert.Equal(model.Threshold / 4, lower.Threshold);
        int before = predicted.Count(p => p), after = lower.Transform(test).GetColumn<bool>("PredictedLabel").Count(p => p);
        Assert.True(after > before, $"{after} rows flagged at a quarter of the threshold, {before} at the threshold");
        Assert.Equal(score, lower.Transform(test).GetColumn<float>("Score").ToArray());
        Assert.Contains("outside the score range", Assert.Throws<ArgumentOutOfRangeException>(() => ml.AnomalyDetection.ChangeModelThreshold(model, -1f)).Message);

        // A PredictionEngine row, as a Model Builder app scores one.
        var engine = ml.Model.CreatePredictionEngine<Row, Prediction>(model);
        var first = engine.Predict(Data.Value.Test[0]);
        Close.Equal(score[0], first.Score, 1e-6);
        Assert.Equal(predicted[0], first.PredictedLabel);
    }

    public sealed class Prediction
    {
        public float Score { get; set; }
        public bool PredictedLabel { get; set; }
        public float[] FeatureErrors { get; set; } = [];
    }

    [Fact]
    public void AConvolutionalAndAVariationalDetectorSaveLoadAndExportTheirScores()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Data.Value.Ones.Take(200));
        var test = ml.Data.LoadFromEnumerable(Data.Value.Test.Take(200));
        var convolutional = new AutoencoderOptions
        {
            FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Epochs = 6, BatchSize = 32, Seed = 1,
            Encoder = AutoencoderNetworks.ConvolutionalEncoder, Decoder = AutoencoderNetworks.ConvolutionalDecoder, LatentSize = 16,
        };
        var variational = new VariationalAutoencoderOptions { FeatureColumnName = "Pixels", LatentSize = 8, Epochs = 8, BatchSize = 32, Seed = 1 };
        foreach (var (name, autoencoder) in new (string, AutoencoderOptionsBase)[] { ("convolutional", convolutional), ("variational", variational) })
        {
            using var model = ml.AnomalyDetection.Trainers.Autoencoder(new AutoencoderAnomalyOptions { Autoencoder = autoencoder }).Fit(train);
            Assert.Equal(autoencoder is VariationalAutoencoderOptions, model.IsVariational);
            var scored = model.Transform(test);
            var auc = ml.AnomalyDetection.Evaluate(scored).AreaUnderRocCurve;
            output.WriteLine($"{name}: AUC {auc:F4}");
            Assert.True(auc > 0.85, $"{name} AUC {auc}");
            var scores = scored.GetColumn<float>("Score").ToArray();

            // The negative ELBO is more than the reconstruction term (KL > 0); a dense or convolutional score is the mean error.
            var errors = scored.GetColumn<float[]>("FeatureErrors").ToArray();
            if (model.IsVariational) Assert.All(scores.Zip(errors), p => Assert.True(p.First > p.Second.Sum()));

            var path = TestData.TempFile();
            var onnxPath = TestData.TempFile(".onnx");
            try
            {
                ml.Model.SaveDeep(model, test.Schema, path);
                var loaded = ml.Model.LoadDeep(path, out _);
                Assert.Equal(scores, loaded.Transform(test).GetColumn<float>("Score").ToArray());
                var detector = ((TransformerChain<ITransformer>)loaded).OfType<AutoencoderAnomalyTransformer>().Single();
                Assert.Equal(model.Threshold, detector.Threshold);

                model.SaveAsOnnx(onnxPath);
                var applied = ml.Transforms.ApplyOnnxModel(["Score", "PredictedLabel", "FeatureErrors"], ["Pixels"], onnxPath).Fit(test).Transform(test);
                Close.Equal(scores, applied.GetColumn<float[]>("Score").Select(v => v[0]).ToArray(), 1e-4);
                var labels = applied.GetColumn<float[]>("PredictedLabel").Select(v => v[0] > 0.5f).ToArray();
                var expected = scored.GetColumn<bool>("PredictedLabel").ToArray();
                Assert.True(labels.Zip(expected).Count(p => p.First != p.Second) <= 1); // a score within rounding of the threshold may differ
                Close.Equal(errors, applied.GetColumn<float[]>("FeatureErrors").ToArray(), 1e-4);
            }
            finally
            {
                File.Delete(path);
                File.Delete(onnxPath);
            }
        }
    }

    [Fact]
    public void ContaminationAndALabelChooseTheThresholdAndTheTrainingRows()
    {
        var ml = new MLContext(seed: 1);
        // Mostly ones with 5 % of other digits, labelled.
        var mixed = Data.Value.Ones.Take(190).Concat(Data.Value.Test.Where(r => r.Label > 0.5f).Take(10)).ToList();
        var data = ml.Data.LoadFromEnumerable(mixed);

        var contaminated = Dense(epochs: 6);
        contaminated.Contamination = 0.05;
        using var byShare = ml.AnomalyDetection.Trainers.Autoencoder(contaminated).Fit(data);
        Assert.Equal(200, byShare.TrainingScores!.Rows);
        var flagged = byShare.Transform(data).GetColumn<bool>("PredictedLabel").Count(p => p);
        Assert.InRange(flagged, 9, 11); // the 95th percentile of the 200 training scores
        var anomalies = byShare.Transform(data).GetColumn<bool>("PredictedLabel").Skip(190).Count(p => p);
        output.WriteLine($"contamination 0.05: {flagged} flagged, {anomalies} of the 10 other digits among them");
        Assert.True(anomalies >= 7, $"{anomalies} of 10");

        // With the label, only the 190 rows labelled false train and set the threshold.
        var labelled = Dense(epochs: 6);
        labelled.LabelColumnName = "Label";
        using var normalOnly = ml.AnomalyDetection.Trainers.Autoencoder(labelled).Fit(data);
        Assert.Equal(190, normalOnly.TrainingScores!.Rows);

        var explicitThreshold = Dense(epochs: 1);
        explicitThreshold.Threshold = 0.01f;
        using var fixedModel = ml.AnomalyDetection.Trainers.Autoencoder(explicitThreshold).Fit(data);
        Assert.Equal(0.01f, fixedModel.Threshold);
    }

    [Fact]
    public void BadSettingsAndRowsAreOneLineErrorsNamingTheCause()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Data.Value.Ones.Take(64));
        AutoencoderAnomalyOptions With(Action<AutoencoderAnomalyOptions> change)
        {
            var options = Dense(epochs: 1);
            change(options);
            return options;
        }
        Assert.Contains("(0, 0.5)", Assert.Throws<ArgumentOutOfRangeException>(() => ml.AnomalyDetection.Trainers.Autoencoder(With(o => o.Contamination = 0.6))).Message);
        Assert.Contains("outside the score range", Assert.Throws<ArgumentOutOfRangeException>(() => ml.AnomalyDetection.Trainers.Autoencoder(With(o => o.Threshold = -0.5f))).Message);
        Assert.Contains("(0, 1)", Assert.Throws<ArgumentOutOfRangeException>(() => ml.AnomalyDetection.Trainers.Autoencoder(With(o => o.ThresholdQuantile = 1))).Message);
        Assert.Contains("not both", Assert.Throws<ArgumentException>(() => ml.AnomalyDetection.Trainers.Autoencoder(With(o => { o.Threshold = 1; o.Contamination = 0.1; }))).Message);
        Assert.Contains("feature column", Assert.Throws<ArgumentException>(() => ml.AnomalyDetection.Trainers.Autoencoder(With(o => o.ScoreColumnName = "Pixels"))).Message);

        // A label that is neither Boolean nor Single is refused before training.
        var text = ml.Transforms.Conversion.ConvertType("Label", "Label", DataKind.String).Fit(data).Transform(data);
        var labelError = Assert.Throws<ArgumentException>(() => ml.AnomalyDetection.Trainers.Autoencoder(With(o => o.LabelColumnName = "Label")).Fit(text));
        Assert.Contains("Boolean or Single", labelError.Message);

        // Rows of another width at scoring.
        using var model = ml.AnomalyDetection.Trainers.Autoencoder(Dense(epochs: 1)).Fit(data);
        var narrow = ml.Data.LoadFromEnumerable(new[] { new Narrow { Pixels = new float[100] } });
        var width = Assert.Throws<ArgumentOutOfRangeException>(() => model.Transform(narrow));
        Assert.Contains("784", width.Message);
    }

    private sealed class Narrow
    {
        [VectorType(100)] public float[] Pixels { get; set; } = [];
    }

    [Fact]
    public async Task TheServiceScoresADetectorLikeAnyModel()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Data.Value.Ones.Take(100));
        using var model = ml.AnomalyDetection.Trainers.Autoencoder(Dense(epochs: 2)).Fit(train);
        var path = TestData.TempFile();
        try
        {
            ml.Model.SaveDeep(model, train.Schema, path);
            await using var server = await Serving.ScoringServer.StartAsync(new Serving.ServingOptions { ModelPath = path }, "http://127.0.0.1:0", logging: _ => { });
            using var client = new HttpClient { BaseAddress = new Uri(server.Urls[0]) };
            var rows = Data.Value.Test.Take(3).ToList();
            var json = System.Text.Json.JsonSerializer.Serialize(new { rows = rows.Select(r => new { Pixels = r.Pixels }) });
            using var response = await client.PostAsync("/predict", new StringContent(json, System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
            using var body = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            var predictions = body.RootElement.GetProperty("predictions").EnumerateArray().ToList();
            var expected = model.Transform(ml.Data.LoadFromEnumerable(rows)).GetColumn<float>("Score").ToArray();
            for (int i = 0; i < rows.Count; i++)
            {
                float score = predictions[i].GetProperty("Score").GetSingle();
                Close.Equal(expected[i], score, 1e-5);
                Assert.Equal(score > model.Threshold, predictions[i].GetProperty("PredictedLabel").GetBoolean());
                Assert.Equal(784, predictions[i].GetProperty("FeatureErrors").GetArrayLength());
            }
        }
        finally
        {
            File.Delete(path);
        }
    }
}
