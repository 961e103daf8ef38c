using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Regression;
using MlNetDeep.Networks;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

/// <summary>A user's own TorchSharp module as a layer: registered by name, trained, saved, loaded and scored.</summary>
public class CustomModuleTests
{
    /// <summary>A gated linear unit of the user's own: out = (W x) * sigmoid(V x), its width read from the settings.</summary>
    private sealed class GatedBlock : nn.Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.Linear value, gate;

        public GatedBlock(int inputs, int units) : base("Gated")
        {
            value = nn.Linear(inputs, units);
            gate = nn.Linear(inputs, units);
            RegisterComponents();
        }

        public override Tensor forward(Tensor input) => value.call(input) * gate.call(input).sigmoid();
    }

    static CustomModuleTests() =>
        CustomLayers.Register("gated", (shape, settings) =>
        {
            if (shape.Length != 1) throw new ArgumentException($"gated reads a flat input, not [{string.Join(", ", shape)}].");
            int units = JsonDocument.Parse(settings ?? "{}").RootElement.TryGetProperty("units", out var u) ? u.GetInt32() : 16;
            return new GatedBlock(shape[0], units);
        });

    private static NetworkSpec Gated(int units) =>
        new([new Flatten(), new Custom("gated", $$"""{"units": {{units}}}"""), new Activation(ActivationKind.ReLU), new Dense(Dense.TaskOutputs)]) { Name = "gated-mlp" };

    private sealed class PixelRow
    {
        [VectorType(784)] public float[] Pixels { get; set; } = [];
    }

    [Fact]
    public void ACustomModuleTrainsInTheClassifierSavesLoadsAndScoresRowByRow()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.MnistTrain(ml, 600);
        var test = TestData.MnistTest(ml, 64);
        var spec = Gated(48);
        Assert.Equal([48], spec.WithTaskOutputs(10).InferShapes([784])[1]);
        Assert.Equal(spec, NetworkSpec.FromJson(spec.ToJson()));
        var model = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", Epochs = 3, BatchSize = 32, Network = spec,
        })).Fit(train);
        var scored = model.Transform(test);
        var accuracy = ml.MulticlassClassification.Evaluate(scored).MicroAccuracy;
        Assert.True(accuracy > 0.6, $"accuracy {accuracy}");
        var scores = TestData.Column(scored, "Score");
        var classifier = model.LastTransformer;
        // Its weights are the user's module's own parameters, by name.
        Assert.Contains(((Persistence.ISavedNetwork)classifier).Module.state_dict().Keys, k => k.EndsWith("gate.weight"));

        var path = TestData.TempFile();
        ml.Model.SaveDeep(model, train.Schema, path);
        var loaded = new MLContext(seed: 9).Model.LoadDeep(path, out _);
        Assert.Equal(scores, TestData.Column(loaded.Transform(test), "Score")); // same rows, same batches
        File.Delete(path);

        // Row by row, as an app's PredictionEngine scores (one-row batches: a tolerance, not bit equality).
        var engine = ml.Model.CreatePredictionEngine<PixelRow, ScoreRow>(classifier);
        var first = TestData.Column(test, "Pixels")[0];
        Close.Equal([scores[0]], [engine.Predict(new PixelRow { Pixels = first }).Score], 1e-5);

        // ONNX export is refused with the reason; the transformer keeps scoring with TorchSharp.
        var refusal = Assert.Throws<NotSupportedException>(() => classifier.SaveAsOnnx(TestData.TempFile(".onnx")));
        Assert.Contains("custom layer 'gated'", refusal.Message);
    }

    [Fact]
    public void ACustomModuleTrainsInTheRegressorAndTheAutoencoder()
    {
        var ml = new MLContext(seed: 1);
        var sine = TestData.Sine(ml, 128);
        var regressor = ml.Regression.Trainers.NeuralNetwork(new NeuralNetworkRegressorOptions
        {
            Epochs = 30, Network = new NetworkSpec([new Custom("gated", """{"units": 16}"""), new Activation(ActivationKind.Tanh), new Dense(Dense.TaskOutputs)]),
        }).Fit(sine);
        var metrics = ml.Regression.Evaluate(regressor.Transform(sine));
        Assert.True(metrics.RSquared > 0.5, $"R2 {metrics.RSquared}");

        var train = TestData.MnistTrain(ml, 300);
        using var autoencoder = ml.Transforms.Autoencoder(new AutoencoderOptions
        {
            FeatureColumnName = "Pixels", LatentSize = 8, Epochs = 2, BatchSize = 32,
            Encoder = new NetworkSpec([new Flatten(), new Custom("gated", """{"units": 32}"""), new Dense(Dense.TaskOutputs)]),
            Decoder = new NetworkSpec([new Custom("gated", """{"units": 32}"""), new Dense(Dense.TaskOutputs, ActivationKind.Sigmoid)]),
        }).Fit(train);
        var reconstruction = TestData.Column(autoencoder.Transform(train), "Reconstruction");
        Assert.Equal(784, reconstruction[0].Length);
    }

    [Fact]
    public void AMissingOrBrokenFactoryIsNamed()
    {
        var missing = new NetworkSpec([new Custom("not-registered")]);
        var message = Assert.Throws<InvalidOperationException>(() => missing.Build([4])).Message;
        Assert.Contains("'not-registered'", message);
        Assert.Contains("CustomLayers.Register", message);
        CustomLayers.Register("drops-the-batch", (shape, _) => new DropsBatch());
        Assert.Contains("keep the batch", Assert.Throws<InvalidOperationException>(() => new Custom("drops-the-batch").OutputShape([4])).Message);
        Assert.Contains("gated reads a flat input", Assert.Throws<ArgumentException>(() => new Custom("gated").OutputShape([2, 2])).Message);
    }

    private sealed class DropsBatch() : nn.Module<Tensor, Tensor>("DropsBatch")
    {
        public override Tensor forward(Tensor input) => input.sum();
    }

    private sealed class ScoreRow
    {
        public float[] Score { get; set; } = [];
    }
}
