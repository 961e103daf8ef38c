using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Common;
using MlNetDeep.Networks;

namespace MlNetDeep.Tests;

/// <summary>Scoring through ONNX Runtime: the same scores as TorchSharp, chosen by Auto for convolutional networks on the CPU, refused where it cannot be exact.</summary>
public class ScoringBackendTests(TinyCnn cnn) : IClassFixture<TinyCnn>
{
    private float[][] Scores(ITransformer model) => TestData.Column(model.Transform(cnn.Test), "Score");

    [Fact]
    public void OnnxRuntimeScoresWhatTorchSharpScores()
    {
        var model = cnn.Model;
        try
        {
            model.Backend = ScoringBackend.Auto;
            Assert.Equal(ScoringBackend.OnnxRuntime, model.ActiveBackend);
            var onnx = Scores(model);
            model.Backend = ScoringBackend.TorchSharp;
            Assert.Equal(ScoringBackend.TorchSharp, model.ActiveBackend);
            var torch = Scores(model);
            Close.Equal(torch, onnx);

            // Row by row through a PredictionEngine, on both engines.
            model.Backend = ScoringBackend.OnnxRuntime;
            var engine = cnn.Ml.Model.CreatePredictionEngine<TinyCnn.Digit, Scored>(model);
            var rows = cnn.Ml.Data.CreateEnumerable<TinyCnn.Digit>(cnn.Test, reuseRowObject: false).Take(5).ToList();
            for (int i = 0; i < rows.Count; i++) Close.Equal([torch[i]], [engine.Predict(rows[i]).Score]);
        }
        finally
        {
            model.Backend = ScoringBackend.Auto;
        }
    }

    private sealed class Scored
    {
        public float[] Score { get; set; } = [];
    }

    [Fact]
    public void AutoKeepsTorchSharpWhereOnnxRuntimeIsNotTheFasterOrCannotBeExact()
    {
        using var mlp = (NeuralNetworkClassificationTransformer)cnn.Ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", Network = Networks.Networks.Mlp(16), Epochs = 1, Seed = 1,
        }).Fit(cnn.Train);
        Assert.Equal(ScoringBackend.TorchSharp, mlp.ActiveBackend); // a dense network: TorchSharp measured faster
        mlp.Backend = ScoringBackend.OnnxRuntime;                     // but it may be asked for, and agrees
        var onnx = Scores(mlp);
        mlp.Backend = ScoringBackend.TorchSharp;
        Close.Equal(Scores(mlp), onnx);

        // A layer the exporter does not write: Auto falls back to TorchSharp; OnnxRuntime asked for is an error naming it.
        using var residual = (NeuralNetworkClassificationTransformer)cnn.Ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Epochs = 1, Seed = 1,
            Network = new NetworkSpec([new Conv2D(4, 3, Padding: PaddingMode.Same), new Residual([new Conv2D(4, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU)]),
                new AdaptiveAvgPool2D(5, 5), new Flatten(), new Dense(Dense.TaskOutputs)]), // 28 x 28 to 5 x 5: no ONNX pooling matches

        }).Fit(cnn.Train);
        Assert.Equal(ScoringBackend.OnnxRuntime, residual.ActiveBackend);
        var scores = Scores(residual);
        Assert.Equal(ScoringBackend.TorchSharp, residual.ActiveBackend);
        residual.Backend = ScoringBackend.TorchSharp;
        Assert.Equal(Scores(residual), scores); // Auto fell back to TorchSharp: the same computation
        residual.Backend = ScoringBackend.OnnxRuntime;
        Assert.Contains("AdaptiveAvgPool2D", Assert.Throws<NotSupportedException>(() => Scores(residual)).Message);

        var autoencoder = cnn.Ml.Transforms.Autoencoder(new Models.Autoencoders.AutoencoderOptions { FeatureColumnName = "Pixels", Epochs = 1, Seed = 1 }).Fit(cnn.Train);
        using (autoencoder)
            Assert.Throws<NotSupportedException>(() => autoencoder.Backend = ScoringBackend.OnnxRuntime);
    }
}
