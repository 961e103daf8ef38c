using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Recurrent;
using MlNetDeep.Networks;
using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

/// <summary>The sequence classifier: masked encoders over token ids, padding of token keys, the ML.NET workflow.</summary>
public class SequenceClassifierTests
{
    [Theory]
    [InlineData(SequenceEncoderKind.Lstm)]
    [InlineData(SequenceEncoderKind.Gru)]
    [InlineData(SequenceEncoderKind.Convolution)]
    public void PaddingDoesNotChangeASequencesOutput(SequenceEncoderKind kind)
    {
        using var scope = NewDisposeScope();
        manual_seed(7);
        var layer = new SequenceEncoder(Vocabulary: 20, EmbeddingSize: 6, Units: 5, kind, Layers: 2, KernelSize: 3);
        using var module = layer.Build([12]);
        module.eval();
        using var noGrad = no_grad();
        float[] tokens = [4, 9, 2, 17, 5, 3];
        var shortRow = tensor(tokens.Concat(new float[2]).ToArray(), [1, 8]);
        var longRow = tensor(tokens.Concat(new float[10]).ToArray(), [1, 16]);
        var unpadded = tensor(tokens, [1, tokens.Length]);
        // Equal up to float rounding (a different batch shape may take another summation order).
        var a = module.call(shortRow).data<float>().ToArray();
        Close.Equal([a], [module.call(longRow).data<float>().ToArray()]);
        Close.Equal([a], [module.call(unpadded).data<float>().ToArray()]);
        // A batch mixing lengths gives each row what it gives alone.
        var other = new float[] { 8, 1, 1, 6, 0, 0, 0, 0 };
        var batch = module.call(tensor(tokens.Concat(new float[2]).Concat(other).ToArray(), [2, 8])).data<float>().ToArray();
        Close.Equal([a, module.call(tensor(other, [1, 8])).data<float>().ToArray()], [batch[..5], batch[5..]]);
        // Other tokens do change it, and an empty row gives zeros.
        var changed = module.call(tensor(new float[] { 11, 12, 13, 14, 15, 16, 0, 0 }, [1, 8])).data<float>().ToArray();
        Assert.True(a.Zip(changed).Max(p => Math.Abs(p.First - p.Second)) > 1e-4);
        Assert.All(module.call(zeros(1, 8)).data<float>().ToArray(), v => Assert.Equal(0f, v));
        Assert.Throws<ArgumentOutOfRangeException>(() => module.call(tensor(new float[] { 20, 0 }, [1, 2])));
    }

    [Fact]
    public void TheEncoderRoundTripsThroughJsonAndCountsItsParameters()
    {
        var spec = new NetworkSpec([new SequenceEncoder(50, 8, 6, SequenceEncoderKind.Lstm, Layers: 2), new Dense(3)]);
        Assert.Equal(spec, NetworkSpec.FromJson(spec.ToJson()));
        foreach (var kind in Enum.GetValues<SequenceEncoderKind>())
        {
            var layer = new SequenceEncoder(50, 8, 6, kind, Layers: 2, KernelSize: 4);
            using var module = layer.Build([10]);
            Assert.Equal(module.parameters().Sum(p => p.numel()), layer.StateSize([10]));
        }
        Assert.Throws<InvalidOperationException>(() => new NetworkSpec([new SequenceEncoder(1, 8, 6)]).OutputShape([10]));
    }

    private sealed class Passage
    {
        public string Text { get; set; } = "";
        public string Book { get; set; } = "";
    }

    /// <summary>Two "books" with their own words, passages of varying length; some words are shared.</summary>
    private static List<Passage> Passages(int count, int seed)
    {
        string[] first = ["sea", "whale", "ship", "harpoon", "captain", "deck"], second = ["ball", "dance", "letter", "marriage", "sister", "carriage"],
            shared = ["the", "a", "and", "of", "was"];
        var random = new Random(seed);
        var rows = new List<Passage>();
        for (int i = 0; i < count; i++)
        {
            bool moby = i % 2 == 0;
            var own = moby ? first : second;
            int length = random.Next(3, 25);
            var words = Enumerable.Range(0, length).Select(_ => random.NextDouble() < 0.35 ? own[random.Next(own.Length)] : shared[random.Next(shared.Length)]);
            rows.Add(new Passage { Text = string.Join(" ", words), Book = moby ? "moby" : "emma" });
        }
        return rows;
    }

    private static IEstimator<ITransformer> Pipeline(MLContext ml, SequenceClassifierOptions options) =>
        ml.Transforms.Conversion.MapValueToKey("Label", "Book")
            .Append(ml.Transforms.Text.TokenizeIntoWords("Words", "Text"))
            .Append(ml.Transforms.Conversion.MapValueToKey("Tokens", "Words"))
            .Append(ml.MulticlassClassification.Trainers.SequenceClassifier(options));

    private static SequenceClassifierOptions Options(SequenceEncoderKind kind = SequenceEncoderKind.Lstm) => new()
    {
        Encoder = kind, MaxLength = 20, EmbeddingSize = 12, Units = 16, Epochs = 8, BatchSize = 16, Seed = 2, Optimizer = new Adam(1e-2),
    };

    [Theory]
    [InlineData(SequenceEncoderKind.Lstm)]
    [InlineData(SequenceEncoderKind.Convolution)]
    public void ItLearnsWhichBookAPassageComesFromAndWorksWithMlNet(SequenceEncoderKind kind)
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Passages(240, seed: 1));
        var test = ml.Data.LoadFromEnumerable(Passages(100, seed: 2));
        var model = Pipeline(ml, Options(kind)).Fit(train);
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
        Assert.True(metrics.MicroAccuracy > 0.9, $"accuracy {metrics.MicroAccuracy}");

        var engine = ml.Model.CreatePredictionEngine<Passage, Prediction>(model);
        var prediction = engine.Predict(new Passage { Text = "the whale and the ship and the captain" });
        Assert.Equal(2, prediction.Score.Length);
        Assert.Equal(1, prediction.Score.Sum(), 4);
        // Words the key map never saw become the unknown id instead of failing.
        Assert.Equal(2, engine.Predict(new Passage { Text = "zebra quantum whale" }).Score.Length);

        var path = TestData.TempFile();
        try
        {
            ml.Model.SaveDeep(model, train.Schema, path);
            var loaded = ml.Model.LoadDeep(path, out _);
            var before = TestData.Column(model.Transform(test), "Score");
            Close.Equal(before, TestData.Column(loaded.Transform(test), "Score"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    private sealed class Prediction
    {
        public float[] Score { get; set; } = [];
    }

    [Fact]
    public void CrossValidateRunsTheWholePipelinePerFold()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Passages(120, seed: 3));
        var options = Options();
        options.Epochs = 3;
        var folds = ml.MulticlassClassification.CrossValidate(data, Pipeline(ml, options), numberOfFolds: 2);
        Assert.Equal(2, folds.Count);
        Assert.All(folds, f => Assert.InRange(f.Metrics.MicroAccuracy, 0.0, 1.0));
    }

    [Fact]
    public void PaddingCutsLongRowsAndMapsUnknownKeys()
    {
        var padding = new TokenKeyPaddingTransformer("Ids", "Tokens", maxLength: 4, keyCount: 10);
        Assert.Equal([4f, 1, 11, 0], padding.Pad([3u, 0u, 10u]));
        Assert.Equal([2f, 3, 4, 5], padding.Pad([1u, 2u, 3u, 4u, 5u, 6u]));
        Assert.Equal(12, padding.Vocabulary);
    }

    [Fact]
    public void ColumnsThatAreNotTokenKeysAreRefused()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Passages(10, seed: 1));
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label", "Book")
            .Append(ml.Transforms.Text.TokenizeIntoWords("Tokens", "Text"))
            .Append(ml.MulticlassClassification.Trainers.SequenceClassifier(Options()));
        var ex = Assert.ThrowsAny<ArgumentException>(() => pipeline.Fit(data));
        Assert.Contains("vector of keys", ex.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.SequenceClassifier(new SequenceClassifierOptions { MaxLength = 0 }));
        var shortConvolution = Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.SequenceClassifier(
            new SequenceClassifierOptions { Encoder = SequenceEncoderKind.Convolution, MaxLength = 3, KernelSize = 5 }));
        Assert.Contains("KernelSize", shortConvolution.Message);
        Assert.Throws<InvalidOperationException>(() => new NetworkSpec([new SequenceEncoder(10, 4, 4, SequenceEncoderKind.Convolution, KernelSize: 5), new Dense(2)]).OutputShape([3]));
    }
}
