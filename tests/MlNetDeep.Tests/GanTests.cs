using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Generative;
using MlNetDeep.Networks;
using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

public class GanTests
{
    private static GanOptions Small(GanKind kind, string? label = null) => new()
    {
        Kind = kind, LabelColumnName = label, Epochs = 1, BatchSize = 64, LatentSize = 16, Seed = 7,
    };

    [Fact]
    public void ADcganTrainsWithNamedMetricsAndGeneratesImagesOfTheInputShape()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.MnistTrain(ml, 256);
        using var generator = ml.Transforms.GenerativeAdversarialNetwork(Small(GanKind.Dcgan)).Fit(data);
        var history = generator.History!;
        Assert.Equal(["d_loss", "g_loss", "d_real_acc", "d_fake_acc"], history.MetricNames);
        Assert.All(history.Epochs, e => Assert.True(double.IsFinite(e["d_loss"]) && double.IsFinite(e["g_loss"])));
        Assert.Equal([1, 28, 28], generator.ImageShape);
        var images = generator.Generate(5, seed: 3);
        Assert.Equal(5, images.Length);
        Assert.All(images, i => Assert.Equal(784, i.Length));
        Assert.All(images, i => Assert.All(i, v => Assert.InRange(v, 0f, 1f)));
        // The same seed draws the same images; another seed others.
        Close.Equal(images, generator.Generate(5, seed: 3));
        Assert.NotEqual(images[0], generator.Generate(5, seed: 4)[0]);
    }

    [Fact]
    public void TrainingIsRepeatableForASeed()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.MnistTrain(ml, 128);
        using var a = ml.Transforms.GenerativeAdversarialNetwork(Small(GanKind.Dense)).Fit(data);
        using var b = ml.Transforms.GenerativeAdversarialNetwork(Small(GanKind.Dense)).Fit(data);
        Assert.Equal(a.History!.Values("g_loss"), b.History!.Values("g_loss"));
        Close.Equal(a.Generate(3, 1), b.Generate(3, 1));
    }

    private static Dictionary<string, Tensor> Copy(IEnumerable<TorchSharp.Modules.Parameter> parameters) =>
        parameters.Select((p, i) => (i, p.detach().clone())).ToDictionary(p => p.i.ToString(), p => p.Item2);

    private static bool Same(Dictionary<string, Tensor> before, IEnumerable<TorchSharp.Modules.Parameter> after) =>
        after.Select((p, i) => before[i.ToString()].eq(p).all().item<bool>()).All(x => x);

    [Fact]
    public void EachHalfOfTheStepMovesOnlyItsOwnNetwork()
    {
        Native.TorchRuntime.EnsureLoaded();
        var options = Small(GanKind.Dcgan);
        var (g, d) = options.Resolve([1, 28, 28]);
        using var gan = Native.TorchRuntime.Seeded(1, () => new GanModule(g, d, [1, 28, 28], 16, 0, 10));
        using var step = new GanStep(gan, options);
        using var generator = new Generator(5);
        var context = new StepContext(CPU, generator, 1);
        using var real = rand([32, 1, 28, 28], generator: generator) * 2 - 1;

        var generatorBefore = Copy(gan.GeneratorParameters());
        var discriminatorBefore = Copy(gan.DiscriminatorParameters());
        var fake = step.Fake(32, null, context);
        var (_, _, _, realFeatures) = step.TrainDiscriminator(real, fake, null, context);
        Assert.True(Same(generatorBefore, gan.GeneratorParameters()), "a discriminator step leaves the generator's weights alone");
        Assert.False(Same(discriminatorBefore, gan.DiscriminatorParameters()), "a discriminator step moves the discriminator");

        discriminatorBefore = Copy(gan.DiscriminatorParameters());
        step.TrainGenerator(fake, realFeatures, null, context);
        Assert.True(Same(discriminatorBefore, gan.DiscriminatorParameters()), "a generator step leaves the discriminator's weights alone");
        Assert.False(Same(generatorBefore, gan.GeneratorParameters()), "a generator step moves the generator");
    }

    [Fact]
    public void TheGeneratorAverageFollowsItsDecayAndSwapsInAndOut()
    {
        Native.TorchRuntime.EnsureLoaded();
        var options = Small(GanKind.Dcgan);
        options.GeneratorAverage = 0.9;
        var (g, d) = options.Resolve([1, 28, 28]);
        using var gan = Native.TorchRuntime.Seeded(1, () => new GanModule(g, d, [1, 28, 28], 16, 0, 10));
        using var step = new GanStep(gan, options);
        Assert.True(gan.HasGeneratorAverage);
        using var generator = new Generator(5);
        var context = new StepContext(CPU, generator, 1);
        using var real = rand([32, 1, 28, 28], generator: generator) * 2 - 1;

        var expected = Copy(gan.GeneratorParameters());
        for (int n = 1; n <= 3; n++)
        {
            var fake = step.Fake(32, null, context);
            var (_, _, _, realFeatures) = step.TrainDiscriminator(real, fake, null, context);
            step.TrainGenerator(fake, realFeatures, null, context);
            double decay = Math.Min(0.9, (1.0 + n) / (10.0 + n));
            var weights = gan.GeneratorParameters().ToList();
            for (int i = 0; i < weights.Count; i++)
                expected[i.ToString()] = expected[i.ToString()] * decay + weights[i].detach() * (1 - decay);
        }
        var trained = Copy(gan.GeneratorParameters());
        Assert.False(Same(expected, gan.GeneratorParameters()), "the average lags behind the trained weights");
        using (gan.WithAveragedGenerator())
        {
            var averaged = gan.GeneratorParameters().ToList();
            for (int i = 0; i < averaged.Count; i++)
                Close.Equal(expected[i.ToString()].data<float>().ToArray(), averaged[i].detach().data<float>().ToArray());
        }
        Assert.True(Same(trained, gan.GeneratorParameters()), "the trained weights come back after the swap");
    }

    [Fact]
    public void AFittedGeneratorIsTheAverageWhenOneIsKept()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.MnistTrain(ml, 128);
        var averagedOptions = Small(GanKind.Dense);
        averagedOptions.GeneratorAverage = 0.5;
        using var plain = ml.Transforms.GenerativeAdversarialNetwork(Small(GanKind.Dense)).Fit(data);
        using var averaged = ml.Transforms.GenerativeAdversarialNetwork(averagedOptions).Fit(data);
        // Averaging draws no random numbers: both runs train the same networks, and only the kept weights differ.
        Assert.Equal(plain.History!.Values("g_loss"), averaged.History!.Values("g_loss"));
        Assert.NotEqual(plain.Generate(1, 1)[0], averaged.Generate(1, 1)[0]);
        Assert.Throws<ArgumentOutOfRangeException>(() => new GanEstimator(ml, new GanOptions { GeneratorAverage = 1 }));
    }

    [Fact]
    public void AConditionalGanDrawsTheRequestedClassesAndRefusesOthers()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.MnistTrain(ml, 128);
        using var generator = ml.Transforms.GenerativeAdversarialNetwork(Small(GanKind.Dense, "Label")).Fit(data);
        Assert.Equal(10, generator.Classes);
        var images = generator.Generate([0, 1, 9], seed: 2);
        Assert.Equal(3, images.Length);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => generator.Generate([3, 10], seed: 2));
        Assert.Contains("Label 10", ex.Message);
        Assert.Contains("0 to 9", ex.Message);
        var unconditional = Assert.Throws<InvalidOperationException>(() => generator.Generate(4, seed: 2));
        Assert.Contains("conditional", unconditional.Message);
        // Through the pipeline: noise rows with classes in, an image column out, the same images as Generate.
        var scored = generator.Transform(generator.NoiseData(ml, 3, seed: 2, labels: [0, 1, 9]));
        Close.Equal(images, TestData.Column(scored, "Image"));
    }

    [Fact]
    public void ASelfConditionedGanClustersItsImagesAndDrawsClustersByTheirShares()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.MnistTrain(ml, 256);
        var options = Small(GanKind.Dense);
        options.SelfConditioning = 4;
        using var generator = ml.Transforms.GenerativeAdversarialNetwork(options).Fit(data);
        Assert.True(generator.SelfConditioned);
        Assert.Equal(4, generator.Classes);
        var shares = generator.ClassShares!;
        Assert.Equal(1.0, shares.Sum(), 6);
        // Each share is a whole number of the 256 images, and k-means leaves no cluster empty here.
        Assert.All(shares, v => Assert.Equal(Math.Round(v * 256), v * 256, 6));
        Assert.All(shares, v => Assert.True(v > 0));
        // Unconditional use: clusters drawn from the seed, the same images for the same seed.
        var images = generator.Generate(6, seed: 3);
        Close.Equal(images, generator.Generate(6, seed: 3));
        Close.Equal(images, TestData.Column(generator.Transform(generator.NoiseData(ml, 6, seed: 3)), "Image"));
        // A chosen cluster, and a cluster that is not one.
        Assert.Equal(2, generator.Generate([0, 3], seed: 3).Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => generator.Generate([4], seed: 3));
        // The GAN keeps the k-means centres: an image's cluster is the one the k-means model gave it in training.
        var pixels = TestData.Column(data, "Pixels").Take(64).ToList();
        var kmeans = new MLContext(7).Clustering.Trainers.KMeans(new Microsoft.ML.Trainers.KMeansTrainer.Options
        {
            FeatureColumnName = "Pixels", NumberOfClusters = 4, NumberOfThreads = 1,
            InitializationAlgorithm = Microsoft.ML.Trainers.KMeansTrainer.InitializationAlgorithm.KMeansPlusPlus,
        }).Fit(data);
        var clusters = kmeans.Transform(data).GetColumn<uint>("PredictedLabel").Take(64).Select(k => (int)k - 1).ToList();
        Assert.Equal(4, clusters.Distinct().Count());
        var realness = generator.Realness(pixels);
        Assert.Equal(generator.Realness(pixels, clusters), realness); // the same clusters, the same batch of 64: the same computation
        Assert.NotEqual(generator.Realness(pixels, clusters.Select(c => (c + 1) % 4).ToList()), realness);
        // Its discriminator transformer reads the pixels alone (scoring batches of 128 rows against Realness's 64).
        using var discriminator = generator.CreateDiscriminator();
        Close.Equal(realness, discriminator.Transform(data).GetColumn<float>("Realness").Take(64));
        var path = TestData.TempFile();
        try
        {
            ml.Model.SaveDeep(generator, generator.NoiseData(ml, 1, 1).Schema, path);
            var reloaded = Assert.IsType<GeneratorTransformer>(((TransformerChain<ITransformer>)ml.Model.LoadDeep(path, out _)).Single());
            Assert.Equal(shares, reloaded.ClassShares!);
            Close.Equal(images, reloaded.Generate(6, seed: 3));
            Assert.Equal(realness, reloaded.Realness(pixels));
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void ClustersAreDrawnInProportionToTheirShares()
    {
        Native.TorchRuntime.EnsureLoaded();
        var (g, d) = Small(GanKind.Dense).Resolve([1, 28, 28]);
        using var gan = new GanModule(g, d, [1, 28, 28], 16, 3, 10, classShares: [0.7, 0.2, 0.1]);
        using var random = new Generator(11);
        using var drawn = gan.DrawClasses(20_000, random);
        var counts = drawn.data<long>().GroupBy(c => c).ToDictionary(c => c.Key, c => c.Count() / 20_000.0);
        Assert.Equal(0.7, counts[0], 2);
        Assert.Equal(0.2, counts[1], 2);
        Assert.Equal(0.1, counts[2], 2);
        var wrong = Assert.Throws<ArgumentException>(() => new GanModule(g, d, [1, 28, 28], 16, 3, 10, classShares: [0.7, 0.2, 0.2]));
        Assert.Contains("sum to 1", wrong.Message);
        Assert.Throws<ArgumentException>(() => new GanModule(g, d, [1, 28, 28], 16, 3, 10, classShares: [0.5, 0.5]));
        var ml = new MLContext(1);
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.GenerativeAdversarialNetwork(new GanOptions { SelfConditioning = 1 }));
        var both = Assert.Throws<ArgumentException>(() => ml.Transforms.GenerativeAdversarialNetwork(new GanOptions { SelfConditioning = 10, LabelColumnName = "Label" }));
        Assert.Contains("Label", both.Message);
    }

    [Fact]
    public void TheGeneratorAndDiscriminatorSurviveSaveAndLoad()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.MnistTrain(ml, 128);
        using var generator = ml.Transforms.GenerativeAdversarialNetwork(Small(GanKind.Dcgan, "Label")).Fit(data);
        var path = TestData.TempFile();
        try
        {
            var noise = generator.NoiseData(ml, 4, seed: 9, labels: [1, 2, 3, 4]);
            ml.Model.SaveDeep(generator, noise.Schema, path);
            var loaded = ml.Model.LoadDeep(path, out var schema);
            Assert.NotNull(schema.GetColumnOrNull("Noise"));
            Close.Equal(TestData.Column(generator.Transform(noise), "Image"), TestData.Column(loaded.Transform(noise), "Image"));
            var reloaded = Assert.IsType<GeneratorTransformer>(((TransformerChain<ITransformer>)loaded).Single());
            var images = generator.Generate([5, 6], seed: 1);
            Assert.Equal(generator.Realness(images, [5, 6]), reloaded.Realness(images, [5, 6]));
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void TheDiscriminatorIsATransformerOfItsOwn()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.MnistTrain(ml, 128);
        using var generator = ml.Transforms.GenerativeAdversarialNetwork(Small(GanKind.Dense)).Fit(data);
        using var discriminator = generator.CreateDiscriminator();
        var scored = discriminator.Transform(data).GetColumn<float>("Realness").Take(8).ToArray();
        var pixels = TestData.Column(data, "Pixels").Take(8).ToList();
        Close.Equal(generator.Realness(pixels), scored); // 8 images against the transformer's batch of 128
        Assert.All(scored, p => Assert.InRange(p, 0f, 1f));
        // Its own copy of the weights: disposing the generator leaves it working, and it survives SaveDeep/LoadDeep.
        generator.Dispose();
        var path = TestData.TempFile();
        try
        {
            ml.Model.SaveDeep(discriminator, data.Schema, path);
            var loaded = ml.Model.LoadDeep(path, out _);
            Assert.Equal(scored, loaded.Transform(data).GetColumn<float>("Realness").Take(8).ToArray());
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void MinibatchStandardDeviationTrainsOnTheBatchsSpreadAndScoresWithTheSpreadItKept()
    {
        Native.TorchRuntime.EnsureLoaded();
        var options = Small(GanKind.Dense);
        options.MinibatchStdDev = true;
        var (g, d) = options.Resolve([1, 28, 28]);
        using var gan = Native.TorchRuntime.Seeded(1, () => new GanModule(g, d, [1, 28, 28], 16, 0, 10, minibatchStdDev: true));
        using var step = new GanStep(gan, options);
        using var random = new Generator(5);
        var context = new StepContext(CPU, random, 1);
        using var real = rand([32, 1, 28, 28], generator: random) * 2 - 1;
        using var copies = real[0].unsqueeze(0).expand(32, -1, -1, -1).contiguous();
        Assert.True(gan.KeepsSpread);
        Assert.Equal(0.0, gan.KeptSpread);

        // A discriminator step on real images keeps their spread: the first batch's as it is, later ones averaged in.
        gan.train();
        var (_, _, _, features) = step.TrainDiscriminator(real, step.Fake(32, null, context), null, context);
        double first = (features.var(0, unbiased: false) + 1e-8).sqrt().mean().item<float>();
        Close.Equal(first, gan.KeptSpread!.Value);
        step.TrainDiscriminator(real, step.Fake(32, null, context), null, context);
        Assert.NotEqual(first, gan.KeptSpread!.Value);
        double kept = gan.KeptSpread!.Value;

        using (no_grad())
        {
            // Training: each image sees its batch's spread, so an image among copies of itself scores differently.
            float InBatch(Tensor images) => gan.Discriminate(images, null).Logits[0].item<float>();
            Assert.NotEqual(InBatch(real), InBatch(copies));
            Assert.Equal(kept, gan.KeptSpread!.Value); // only the discriminator's step on real images updates it

            // Scoring: the kept spread, so an image scores the same alone, in a varied batch and among copies of itself.
            gan.eval();
            float alone = InBatch(real.narrow(0, 0, 1));
            Close.Equal(alone, InBatch(real));
            Close.Equal(alone, InBatch(copies));
        }
    }

    [Fact]
    public void AMinibatchSpreadGansRealnessOfARowDoesNotDependOnTheOtherRows()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.MnistTrain(ml, 128);
        var options = Small(GanKind.Dense);
        options.MinibatchStdDev = true;
        using var generator = ml.Transforms.GenerativeAdversarialNetwork(options).Fit(data);
        var pixels = TestData.Column(data, "Pixels").Take(16).ToList();
        var inBatch = generator.Realness(pixels);
        Close.Equal(inBatch, pixels.Select(p => generator.Realness([p])[0]));
        Close.Equal(Enumerable.Repeat(inBatch[0], 16), generator.Realness(Enumerable.Repeat(pixels[0], 16).ToList()));

        // The discriminator transformer: its batches of 128 rows and a PredictionEngine's single row agree.
        using var discriminator = generator.CreateDiscriminator();
        Close.Equal(inBatch, discriminator.Transform(data).GetColumn<float>("Realness").Take(16));
        var engine = ml.Model.CreatePredictionEngine<PixelsRow, RealnessRow>(discriminator);
        Close.Equal(inBatch[3], engine.Predict(new PixelsRow { Pixels = pixels[3] }).Realness);

        // The kept spread is saved with the weights.
        var path = TestData.TempFile();
        try
        {
            var noise = generator.NoiseData(ml, 2, seed: 1);
            ml.Model.SaveDeep(generator, noise.Schema, path);
            var reloaded = Assert.IsType<GeneratorTransformer>(((TransformerChain<ITransformer>)ml.Model.LoadDeep(path, out _)).Single());
            Assert.Equal(generator.WithModule(m => ((GanModule)m).KeptSpread), reloaded.WithModule(m => ((GanModule)m).KeptSpread));
            Assert.Equal(inBatch, reloaded.Realness(pixels)); // the same 16 images: the same computation
        }
        finally { File.Delete(path); }
    }

    private sealed class RealnessRow
    {
        public float Realness { get; set; }
    }

    [Fact]
    public void BadInputsAreClearErrors()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.MnistTrain(ml, 64);
        var shape = Assert.Throws<ArgumentException>(() => ml.Transforms.GenerativeAdversarialNetwork(new GanOptions { InputShape = [784] }));
        Assert.Contains("[channels, height, width]", shape.Message);
        var mismatch = Assert.ThrowsAny<ArgumentException>(() => ml.Transforms.GenerativeAdversarialNetwork(new GanOptions { InputShape = [1, 20, 20], Kind = GanKind.Dense }).Fit(data));
        Assert.Contains("784", mismatch.Message);
        var missing = Assert.ThrowsAny<ArgumentException>(() => ml.Transforms.GenerativeAdversarialNetwork(Small(GanKind.Dense, "Digit")).Fit(data));
        Assert.Contains("Digit", missing.Message);
        var notImage = Assert.ThrowsAny<ArgumentException>(() => ml.Transforms.GenerativeAdversarialNetwork(new GanOptions { FeatureColumnName = "Label" }).Fit(data));
        Assert.Contains("Label", notImage.Message);
        var scaled = ml.Transforms.CustomMapping<PixelsRow, PixelsRow>((i, o) => o.Pixels = i.Pixels.Select(v => v * 255).ToArray(), null).Fit(data).Transform(data);
        var range = Assert.Throws<InvalidOperationException>(() => ml.Transforms.GenerativeAdversarialNetwork(Small(GanKind.Dense)).Fit(scaled));
        Assert.Contains("[0, 1]", range.Message);
        using var generator = ml.Transforms.GenerativeAdversarialNetwork(Small(GanKind.Dense)).Fit(data);
        Assert.Throws<ArgumentOutOfRangeException>(() => generator.Generate(0, seed: 1));
        Assert.Throws<InvalidOperationException>(() => generator.Generate([1], seed: 1));
        var odd = Assert.Throws<ArgumentException>(() => ml.Transforms.GenerativeAdversarialNetwork(new GanOptions { InputShape = [1, 30, 30] }));
        Assert.Contains("multiples of 4", odd.Message);
    }

    private sealed class PixelsRow
    {
        [VectorType(784)] public float[] Pixels { get; set; } = [];
    }
}

public class GenerationQualityTests
{
    private static List<float[]> Gaussian(int rows, int width, int seed, float shift = 0)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, rows).Select(_ => Enumerable.Range(0, width).Select(_ =>
            shift + (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()))).ToArray()).ToList();
    }

    [Fact]
    public void IdenticalSetsAreAtDistanceZeroAndAShiftedMeanAddsItsSquare()
    {
        var a = Gaussian(2000, 8, 1);
        Assert.Equal(0, GenerationQuality.FrechetDistance(a, a), 6);
        // Same spread, mean moved by 1 in each of 8 dimensions: the distance is about 8 (plus sampling noise).
        var shifted = a.Select(r => r.Select(v => v + 1f).ToArray()).ToList();
        Assert.Equal(8, GenerationQuality.FrechetDistance(a, shifted), 3);
        // Two independent samples of one Gaussian are close; a scaled one is not.
        var b = Gaussian(2000, 8, 2);
        Assert.InRange(GenerationQuality.FrechetDistance(a, b), 0, 0.2);
        var wide = b.Select(r => r.Select(v => v * 2).ToArray()).ToList();
        Assert.InRange(GenerationQuality.FrechetDistance(a, wide), 7, 9); // Tr(S) = 8, 32; 2 Tr((S_a S_b)^(1/2)) = 32: 40 - 32 = 8
    }

    [Fact]
    public void AOneClassSetHasOneModeAndAUniformSetAllTen()
    {
        var collapsed = GenerationQuality.Histogram(Enumerable.Repeat(3, 500).ToList(), 10);
        Assert.Equal(1, collapsed.ClassesPresent);
        Assert.Equal(1, collapsed.ClassesCovering90);
        Assert.Equal(0, collapsed.Entropy, 9);
        var uniform = GenerationQuality.Histogram(Enumerable.Range(0, 1000).Select(i => i % 10).ToList(), 10);
        Assert.Equal(10, uniform.ClassesPresent);
        Assert.Equal(9, uniform.ClassesCovering90);
        Assert.Equal(Math.Log2(10), uniform.Entropy, 9);
        Assert.Throws<ArgumentOutOfRangeException>(() => GenerationQuality.Histogram([0, 10], 10));
        Assert.Throws<ArgumentException>(() => GenerationQuality.FrechetDistance([[1f, 2f]], [[1f, 2f], [3f, 4f]]));
    }
}
