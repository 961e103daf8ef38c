using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Classical;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

public class ToyDataTests
{
    [Fact]
    public void GeneratorsAreSeededAndShaped()
    {
        var ml = new MLContext(seed: 1);
        foreach (var make in new Func<int, IDataView>[] { s => ml.Data.HalfMoons(101, 0.1, s), s => ml.Data.Circles(101, 0.05, seed: s), s => ml.Data.Blobs(101, 4, 1.0, s) })
        {
            var a = TestData.Column(make(3), "Features");
            var b = TestData.Column(make(3), "Features");
            var c = TestData.Column(make(4), "Features");
            Assert.Equal(101, a.Length);
            Assert.All(a, p => Assert.Equal(2, p.Length));
            Assert.Equal(a.SelectMany(p => p), b.SelectMany(p => p));
            Assert.NotEqual(a.SelectMany(p => p), c.SelectMany(p => p));
        }
        var labels = ml.Data.Blobs(100, 4, 1.0, 0).GetColumn<uint>("Label").ToArray();
        Assert.Equal([0u, 1u, 2u, 3u], labels.Distinct().Order());
    }

    [Fact]
    public void NoiseMovesPointsOffTheCurves()
    {
        double Radius(ToyPoint p) => Math.Sqrt(p.Features[0] * p.Features[0] + p.Features[1] * p.Features[1]);
        var clean = ToyData.Circles(200, 0, 1, factor: 0.3);
        Assert.All(clean, p => Assert.Equal(p.Label == 0 ? 1.0 : 0.3, Radius(p), 4));
        var noisy = ToyData.Circles(200, 0.1, 1, factor: 0.3);
        double spread = noisy.Where(p => p.Label == 0).Select(p => Math.Abs(Radius(p) - 1)).Average();
        Assert.InRange(spread, 0.03, 0.2);
        var moons = ToyData.HalfMoons(200, 0, 1);
        Assert.All(moons.Where(p => p.Label == 0), p => Assert.Equal(1.0, Radius(p), 4));
    }

    [Fact]
    public void BadArgumentsAreNamed()
    {
        Assert.Equal("noise", Assert.Throws<ArgumentOutOfRangeException>(() => ToyData.HalfMoons(10, -1, 0)).ParamName);
        Assert.Equal("count", Assert.Throws<ArgumentOutOfRangeException>(() => ToyData.Blobs(2, 3, 1, 0)).ParamName);
        Assert.Equal("factor", Assert.Throws<ArgumentOutOfRangeException>(() => ToyData.Circles(10, 0.1, 0, 1.5)).ParamName);
    }

    [Fact]
    public void TrainValidationTestSplitIsDisjointAndComplete()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.Curve(1000, x => x, seed: 2);
        var split = ml.Data.TrainValidationTestSplit(data, 0.2, 0.1, seed: 5);
        var parts = new[] { split.TrainSet, split.ValidationSet, split.TestSet }.Select(d => d.GetColumn<float>("X").ToArray()).ToArray();
        Assert.Equal(1000, parts.Sum(p => p.Length));
        Assert.InRange(parts[1].Length, 140, 260);
        Assert.InRange(parts[2].Length, 60, 140);
        Assert.Equal(data.GetColumn<float>("X").Order(), parts.SelectMany(p => p).Order());
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.Data.TrainValidationTestSplit(data, 0.6, 0.5));
    }
}

public class PolynomialFeaturesTests
{
    [Fact]
    public void ExpandsScalarsAndVectorsIntoPowers()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(new[] { new CurvePoint { X = 2, Label = 1 }, new CurvePoint { X = -0.5f, Label = 2 } });
        var model = ml.Transforms.PolynomialFeatures("Powers", "X", degree: 3).Fit(data);
        var output = model.Transform(data);
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 3), output.Schema["Powers"].Type);
        Assert.Equal(new float[] { 2, 4, 8 }, TestData.Column(output, "Powers")[0]);
        Assert.Equal(new float[] { -0.5f, 0.25f, -0.125f }, TestData.Column(output, "Powers")[1]);
        Assert.Equal(new float[] { 1, 2 }, output.GetColumn<float>("Label"));

        var points = ml.Data.LoadFromEnumerable(new[] { new ToyPoint { Features = [2, 3] } });
        var expanded = ml.Transforms.PolynomialFeatures("Features", degree: 2).Fit(points).Transform(points);
        Assert.Equal(new float[] { 2, 4, 3, 9 }, TestData.Column(expanded, "Features")[0]);
    }

    [Fact]
    public void WorksInsideAPipelineWithAnMLNetTrainer()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.Curve(300, x => 1 - 2 * x + 3 * x * x, -1, 1, noise: 0.01, seed: 1);
        var pipeline = ml.Transforms.PolynomialFeatures("Features", "X", degree: 2)
            .Append(ml.Transforms.NormalizeMinMax("Features"))
            .Append(ml.Regression.Trainers.Sdca(l2Regularization: 1e-2f));
        var shape = new SchemaShape(data.Schema.Select(Models.Common.SchemaShapes.FromSchemaColumn));
        Assert.Equal(SchemaShape.Column.VectorKind.Vector, pipeline.GetOutputSchema(shape).First(c => c.Name == "Features").Kind);
        var metrics = ml.Regression.Evaluate(pipeline.Fit(data).Transform(data));
        Assert.True(metrics.RSquared > 0.95, $"R² {metrics.RSquared}");
    }

    [Fact]
    public void PredictionEngineAndSaveDeepWorkThroughThePolynomialPipeline()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.Curve(200, x => 1 + x - x * x, -1, 1, noise: 0.01, seed: 2);
        var model = ml.Transforms.PolynomialFeatures("Features", "X", degree: 2)
            .Append(ml.Regression.Trainers.NeuralNetwork(new MlNetDeep.Models.Regression.NeuralNetworkRegressorOptions { Network = Networks.Networks.Linear, Epochs = 30 }))
            .Fit(data);
        var batch = model.Transform(data).GetColumn<float>("Score").ToArray();
        var xs = data.GetColumn<float>("X").ToArray();
        var engine = ml.Model.CreatePredictionEngine<CurvePoint, ScoreRow>(model);
        for (int i = 0; i < 5; i++) Close.Equal(batch[i], engine.Predict(new CurvePoint { X = xs[i] }).Score);

        var path = TestData.TempFile();
        ml.Model.SaveDeep(model, data.Schema, path);
        var loaded = ml.Model.LoadDeep(path, out _);
        Assert.Equal(batch, loaded.Transform(data).GetColumn<float>("Score"));
        File.Delete(path);
    }

    private sealed class ScoreRow { public float Score { get; set; } }

    [Fact]
    public void BadInputsGiveClearErrors()
    {
        var ml = new MLContext(seed: 1);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.PolynomialFeatures("P", "X", degree: 0));
        Assert.Contains("degree", e.Message);
        var data = ml.Data.LoadFromEnumerable(new[] { new { Name = "a" } }.Select(r => new TextRow { Text = r.Name }));
        var wrongType = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.PolynomialFeatures("P", "Text").Fit(data));
        Assert.Contains("'Text'", wrongType.Message);
        var missing = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.PolynomialFeatures("P", "Nope").Fit(data));
        Assert.Contains("'Nope'", missing.Message);
    }

    private sealed class TextRow { public string Text { get; set; } = ""; }
}

public class ClusteringTests
{
    [Fact]
    public void NmiAndPurityOnKnownCases()
    {
        int[] labels = [0, 0, 1, 1, 2, 2];
        Assert.Equal(1.0, ClusteringScores.NormalizedMutualInformation(labels, [5, 5, 3, 3, 9, 9]), 10);
        Assert.Equal(1.0, ClusteringScores.Purity(labels, [5, 5, 3, 3, 9, 9]), 10);
        Assert.Equal(0.0, ClusteringScores.NormalizedMutualInformation([0, 0, 1, 1], [0, 1, 0, 1]), 10);
        Assert.Equal(0.5, ClusteringScores.Purity([0, 0, 1, 1], [0, 1, 0, 1]), 10);
        // One cluster holding everything: purity is the largest class's share, NMI 0.
        Assert.Equal(0.5, ClusteringScores.Purity([0, 0, 1, 1], [7, 7, 7, 7]), 10);
        Assert.Equal(0.0, ClusteringScores.NormalizedMutualInformation([0, 0, 1, 1], [7, 7, 7, 7]), 10);
        // scikit-learn: normalized_mutual_info_score([0,0,1,1], [0,0,0,1]) = 0.3437110184854508
        Assert.Equal(0.3437110184854508, ClusteringScores.NormalizedMutualInformation([0, 0, 1, 1], [0, 0, 0, 1]), 9);
        Assert.Throws<ArgumentException>(() => ClusteringScores.Purity([0, 1], [0]));
    }

    [Fact]
    public void InertiaIsTheSumOfSquaredDistances()
    {
        float[][] points = [[0, 0], [2, 0], [10, 10]];
        Assert.Equal(2.0, ClusteringScores.Inertia(points, [0, 0, 1], [[1, 0], [10, 10]]), 10);
    }

    [Fact]
    public void KMeansFindsWellSeparatedBlobsAndRejectsTooLargeK()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.Blobs(300, 3, 0.5, seed: 2);
        var results = KMeansAnalysis.Sweep(ml, data, "Features", [1, 3, 6], "Label");
        Assert.True(results[1].NormalizedMutualInformation > 0.95, $"NMI {results[1].NormalizedMutualInformation}");
        Assert.True(results[0].Inertia > results[1].Inertia && results[1].Inertia > results[2].Inertia);
        Assert.Equal(3, results[1].Centroids.Length);
        var small = ml.Data.Blobs(5, 1, 1, 0);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => KMeansAnalysis.Fit(ml, small, "Features", 6));
        Assert.Contains("number of rows (5)", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => KMeansAnalysis.Fit(ml, small, "Nope", 2));
    }
}

public class PrincipalComponentsTests
{
    [Fact]
    public void RecoversTheMainDirectionAndReconstructionErrorFalls()
    {
        var random = new Random(1);
        var values = new List<float>();
        for (int i = 0; i < 500; i++)
        {
            double t = ToyData.Gaussian(random) * 3, u = ToyData.Gaussian(random) * 0.5, w = ToyData.Gaussian(random) * 0.1;
            values.AddRange([(float)(t + 1), (float)(t + u), (float)w]);
        }
        var pca = PrincipalComponents.Fit(values.ToArray(), 500, 3, 3);
        var first = pca.Components[0];
        Assert.Equal(1 / Math.Sqrt(2), Math.Abs(first[0]), 1);
        Assert.Equal(1.0, pca.CumulativeExplainedVariance()[^1], 6);
        var rows = Enumerable.Range(0, 500).Select(i => values.Skip(i * 3).Take(3).ToArray()).ToList();
        double e1 = pca.ReconstructionError(rows, 1), e2 = pca.ReconstructionError(rows, 2), e3 = pca.ReconstructionError(rows, 3);
        Assert.True(e1 > e2 && e2 > e3, $"{e1} {e2} {e3}");
        Assert.True(e3 < 1e-8);
        Assert.Throws<ArgumentOutOfRangeException>(() => PrincipalComponents.Fit(values.ToArray(), 500, 3, 4));
        Assert.Throws<ArgumentException>(() => pca.Project([1, 2], 1));
    }
}

public class AugmentationTests
{
    private static Tensor Batch()
    {
        var ml = new MLContext(seed: 1);
        var pixels = TestData.Column(TestData.MnistTrain(ml, 16), "Pixels").SelectMany(p => p).ToArray();
        return tensor(pixels, [16, 1, 28, 28]);
    }

    [Fact]
    public void KeepsShapeAndIsDeterministicForASeed()
    {
        Native.TorchRuntime.EnsureLoaded();
        using var batch = Batch();
        var augmentation = new ImageAugmentation(new ImageAugmentationOptions { MaxRotationDegrees = 15, HorizontalFlipProbability = 0.5 });
        using var g1 = new Generator(7);
        using var g2 = new Generator(7);
        using var g3 = new Generator(8);
        using var a = augmentation.Apply(batch, g1);
        using var b = augmentation.Apply(batch, g2);
        using var c = augmentation.Apply(batch, g3);
        Assert.Equal(batch.shape, a.shape);
        Assert.True(a.allclose(b, rtol: 0, atol: 0));
        Assert.False(a.allclose(c, atol: 1e-3));
        Assert.False(a.allclose(batch, atol: 1e-3));
        // A flat batch works when the image shape is given, and an identity warp leaves images unchanged.
        var identity = new ImageAugmentation(new ImageAugmentationOptions { MaxRotationDegrees = 0, MinScale = 1, MaxScale = 1, MaxShiftFraction = 0, ImageShape = [1, 28, 28] });
        using var g4 = new Generator(1);
        using var flat = batch.reshape(16, 784);
        using var same = identity.Apply(flat, g4);
        Assert.Equal(flat.shape, same.shape);
        Close.Equal(flat.data<float>().ToArray(), same.contiguous().data<float>().ToArray());
    }

    [Fact]
    public void BadShapesAndOptionsGiveClearErrors()
    {
        Native.TorchRuntime.EnsureLoaded();
        using var flat = zeros(4, 784);
        using var g = new Generator(1);
        var e = Assert.Throws<ArgumentException>(() => new ImageAugmentation().Apply(flat, g));
        Assert.Contains("InputShape", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new ImageAugmentation(new ImageAugmentationOptions { MinScale = 2, MaxScale = 1 }));
    }

    [Fact]
    public void TrainsWithAugmentationAndScoresWithout()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.MnistTrain(ml, 256);
        var counting = new CountingTransform(new ImageAugmentation());
        var trainer = ml.MulticlassClassification.Trainers.ConvolutionalNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Epochs = 2, BatchSize = 64,
            Network = new NetworkSpec([new Conv2D(4, 3, Activation: ActivationKind.ReLU), new MaxPool2D(2), new Flatten(), new Dense(Dense.TaskOutputs)]),
            TrainingInputTransform = counting,
        });
        var model = trainer.Fit(train);
        Assert.Equal(8, counting.Calls);
        var first = model.Transform(train).GetColumn<float[]>("Score").ToArray();
        var second = model.Transform(train).GetColumn<float[]>("Score").ToArray();
        Assert.Equal(8, counting.Calls);
        Assert.Equal(first.SelectMany(s => s), second.SelectMany(s => s));
        Assert.Equal(train.GetColumn<uint>("Label"), model.Transform(train).GetColumn<uint>("Label"));
    }

    private sealed class CountingTransform(IBatchTransform inner) : IBatchTransform
    {
        public int Calls { get; private set; }
        public Tensor Apply(Tensor batch, Generator generator) { Calls++; return inner.Apply(batch, generator); }
    }
}

public class CrossValidationTests
{
    [Fact]
    public void CrossValidateRunsOurTrainerPerFold()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.MnistTrain(ml, 600);
        var trainer = ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", Network = Networks.Networks.Mlp(32), Epochs = 3, BatchSize = 32,
        });
        var folds = ml.MulticlassClassification.CrossValidate(data, trainer, numberOfFolds: 3);
        Assert.Equal(3, folds.Count);
        Assert.All(folds, f => Assert.InRange(f.Metrics.MicroAccuracy, 0.6, 1.0));
        Assert.Equal(600, folds.Sum(f => f.ScoredHoldOutSet.GetColumn<uint>("Label").Count()));
    }
}
