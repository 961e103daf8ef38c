using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

/// <summary>The sequence layers of the network spec: recurrent (LSTM, GRU, SimpleRNN), Conv1D, global pooling, Dense per step.</summary>
public class SequenceLayerTests
{
    private static NetworkSpec Spec(params Layer[] layers) => new(layers);

    [Fact]
    public void ShapesFollowKerasConventions()
    {
        Assert.Equal([10, 16], Spec(new Embedding(20, 8), new LSTM(16, ReturnSequences: true)).OutputShape([10]));
        Assert.Equal([12], Spec(new Embedding(20, 8), new GRU(12)).OutputShape([10]));
        Assert.Equal([10, 5], Spec(new Embedding(20, 8), new SimpleRNN(5, true)).OutputShape([10]));
        Assert.Equal([8, 6], Spec(new Embedding(20, 8), new Conv1D(6, 3)).OutputShape([10]));
        Assert.Equal([5, 6], Spec(new Embedding(20, 8), new Conv1D(6, 3, Stride: 2, Padding: PaddingMode.Same)).OutputShape([10]));
        Assert.Equal([8], Spec(new Embedding(20, 8), new GlobalMaxPool1D()).OutputShape([10]));
        Assert.Equal([8], Spec(new Embedding(20, 8), new GlobalAvgPool1D()).OutputShape([10]));
        Assert.Equal([10, 20], Spec(new Embedding(20, 8), new LSTM(16, true), new Dense(20, ActivationKind.Softmax)).OutputShape([10]));

        var flat = Assert.Throws<InvalidOperationException>(() => Spec(new LSTM(4)).OutputShape([10]));
        Assert.Contains("a sequence [steps, features]", flat.Message);
        var image = Assert.Throws<InvalidOperationException>(() => Spec(new Dense(3)).OutputShape([1, 4, 4]));
        Assert.Contains("add a Flatten layer", image.Message);
        var shortSequence = Assert.Throws<InvalidOperationException>(() => Spec(new Embedding(20, 8), new Conv1D(4, 5)).OutputShape([3]));
        Assert.Contains("at least 5 steps", shortSequence.Message);
    }

    [Fact]
    public void ModulesProduceTheInferredShapesAndHoldTheCountedParameters()
    {
        var layers = new Layer[]
        {
            new LSTM(7, true), new GRU(6, true), new SimpleRNN(5, true), new Conv1D(4, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU),
            new LSTM(3), new Dense(2),
        };
        int[] shape = [9, 8];
        using var x = randn(4, 9, 8);
        var current = x;
        foreach (var layer in layers)
        {
            using var module = layer.Build(shape);
            var expected = layer.OutputShape(shape);
            long parameters = module.parameters().Sum(p => p.numel());
            Assert.Equal(parameters, layer.StateSize(shape));
            current = module.call(current);
            Assert.Equal([4L, .. expected.Select(d => (long)d)], current.shape);
            shape = expected;
        }
    }

    [Fact]
    public void TheLastStepAloneEqualsTheLastOfTheWholeSequence()
    {
        foreach (var (all, last) in new (Layer, Layer)[] { (new LSTM(5, true), new LSTM(5)), (new GRU(5, true), new GRU(5)), (new SimpleRNN(5, true), new SimpleRNN(5)) })
        {
            using var sequences = all.Build([6, 3]);
            using var final = last.Build([6, 3]);
            using (no_grad())
                foreach (var (name, tensor) in final.state_dict()) tensor.copy_(sequences.state_dict()[name]);
            using var x = randn(2, 6, 3);
            var whole = sequences.call(x);
            var end = final.call(x);
            Close.Equal(whole.select(1, -1).contiguous().data<float>().ToArray(), end.contiguous().data<float>().ToArray());
        }
    }

    [Fact]
    public void SpecsWithSequenceLayersRoundTripThroughJsonAndSummarise()
    {
        var spec = new NetworkSpec([new Embedding(30, 8), new Conv1D(8, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU), new LSTM(16, true),
            new GRU(8, true), new SimpleRNN(8, true), new GlobalMaxPool1D(), new Dense(Dense.TaskOutputs)]) { Name = "sequence-net" };
        var back = NetworkSpec.FromJson(spec.ToJson());
        Assert.Equal(spec, back);
        var summary = spec.WithTaskOutputs(3).Summary([12]);
        Assert.Contains("LSTM(16, sequences)", summary);
        Assert.Contains("Conv1D(8, 3", summary);
        Assert.Contains("GlobalMaxPool1D", summary);
    }

    private sealed class Sequence
    {
        [VectorType(8)] public float[] Tokens { get; set; } = [];
        public uint Label { get; set; }
    }

    [Fact]
    public void AnLstmClassifierLearnsWhereATokenIsAndSavesAndLoads()
    {
        // Label: does token 1 come before token 2 in the sequence? Order matters, so a bag of tokens cannot tell.
        var random = new Random(3);
        var rows = Enumerable.Range(0, 400).Select(_ =>
        {
            var tokens = Enumerable.Range(0, 8).Select(_ => (float)random.Next(3, 6)).ToArray();
            int a = random.Next(8), b = random.Next(8);
            while (b == a) b = random.Next(8);
            tokens[a] = 1;
            tokens[b] = 2;
            return new Sequence { Tokens = tokens, Label = a < b ? 1u : 0u };
        }).ToList();
        var ml = new MLContext(seed: 1);
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(rows)).Transform(ml.Data.LoadFromEnumerable(rows));
        var split = ml.Data.TrainTestSplit(data, 0.25, seed: 1);
        var model = ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Tokens", InputShape = [8], Epochs = 25, BatchSize = 16, Optimizer = new Adam(1e-2),
            Network = new NetworkSpec([new Embedding(6, 8), new LSTM(16), new Dense(Dense.TaskOutputs)]),
        }).Fit(split.TrainSet);
        var accuracy = ml.MulticlassClassification.Evaluate(model.Transform(split.TestSet)).MicroAccuracy;
        Assert.True(accuracy > 0.9, $"accuracy {accuracy}");

        var path = TestData.TempFile();
        try
        {
            ml.Model.SaveDeep(model, data.Schema, path);
            var loaded = ml.Model.LoadDeep(path, out _);
            Assert.Equal(TestData.Column(model.Transform(split.TestSet), "Score"), TestData.Column(loaded.Transform(split.TestSet), "Score"));
        }
        finally { File.Delete(path); }
    }
}
