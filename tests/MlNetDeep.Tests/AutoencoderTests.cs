using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Networks;

namespace MlNetDeep.Tests;

public class AutoencoderTests
{
    private static AutoencoderOptions SmallDense(int latent = 8, int epochs = 3) => new()
    {
        FeatureColumnName = "Pixels", LatentSize = latent, Epochs = epochs, BatchSize = 32, Optimizer = new MlNetDeep.Training.Adam(3e-3),
        Encoder = new NetworkSpec([new Flatten(), new Dense(64, ActivationKind.ReLU), new Dense(Dense.TaskOutputs)]),
        Decoder = new NetworkSpec([new Dense(64, ActivationKind.ReLU), new Dense(Dense.TaskOutputs, ActivationKind.Sigmoid)]),
    };

    [Fact]
    public void DenseAutoencoderAddsLatentAndReconstructionAndLearns()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.MnistTrain(ml, 600);
        var model = ml.Transforms.Autoencoder(SmallDense(epochs: 4)).Fit(train);
        var scored = model.Transform(TestData.MnistTest(ml, 50));

        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 8), scored.Schema["Latent"].Type);
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 784), scored.Schema["Reconstruction"].Type);
        var history = model.History!;
        Assert.True(history.Epochs[^1].TrainLoss < history.Epochs[0].TrainLoss * 0.8, $"loss {history.Epochs[0].TrainLoss} -> {history.Epochs[^1].TrainLoss}");

        var pixels = TestData.Column(scored, "Pixels");
        var reconstruction = TestData.Column(scored, "Reconstruction");
        Assert.All(reconstruction.SelectMany(r => r), v => Assert.InRange(v, 0f, 1f));
        double mse = ReconstructionMetrics.Compute(pixels, reconstruction).MeanSquaredError;
        double blank = ReconstructionMetrics.Compute(pixels, pixels.Select(p => new float[p.Length]).ToList()).MeanSquaredError;
        Assert.True(mse < blank * 0.8, $"reconstruction MSE {mse} vs all-black {blank}");
        Close.Equal(TestData.Column(scored, "Latent").Take(3).ToList(), model.Encode(pixels.Take(3).ToList()));
    }

    [Fact]
    public void SameSeedGivesIdenticalModels()
    {
        float[][] Latents()
        {
            var ml = new MLContext(seed: 7);
            var model = ml.Transforms.Autoencoder(SmallDense(epochs: 1)).Fit(TestData.MnistTrain(ml, 300));
            return TestData.Column(model.Transform(TestData.MnistTest(ml, 20)), "Latent");
        }
        Assert.Equal(Latents(), Latents());
    }

    [Fact]
    public void SaveAndLoadGiveIdenticalOutputsAndTheDecoderWorksAlone()
    {
        var ml = new MLContext(seed: 1);
        var model = ml.Transforms.Autoencoder(SmallDense(epochs: 1)).Fit(TestData.MnistTrain(ml, 300));
        var test = TestData.MnistTest(ml, 40);
        var path = TestData.TempFile();
        ml.Model.SaveDeep(model, test.Schema, path);
        var loaded = new MLContext(seed: 5).Model.LoadDeep(path, out _);
        File.Delete(path);
        Assert.Equal(TestData.Column(model.Transform(test), "Latent"), TestData.Column(loaded.Transform(test), "Latent"));
        Assert.Equal(TestData.Column(model.Transform(test), "Reconstruction"), TestData.Column(loaded.Transform(test), "Reconstruction"));

        // The decoder alone: an IDataView of latent vectors in, images out; it round-trips through SaveDeep too.
        var latents = TestData.Column(model.Transform(test), "Latent");
        var definition = SchemaDefinition.Create(typeof(LatentRow));
        definition["Latent"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, 8);
        var latentData = ml.Data.LoadFromEnumerable(latents.Select(l => new LatentRow { Latent = l }).ToList(), definition);
        using var decoder = model.CreateDecoder(outputColumnName: "Image");
        var images = TestData.Column(decoder.Transform(latentData), "Image");
        var expected = TestData.Column(model.Transform(test), "Reconstruction");
        Close.Equal(expected, images);
        var decoderPath = TestData.TempFile();
        ml.Model.SaveDeep(decoder, latentData.Schema, decoderPath);
        var decoderLoaded = ml.Model.LoadDeep(decoderPath, out _);
        File.Delete(decoderPath);
        Assert.Equal(images, TestData.Column(decoderLoaded.Transform(latentData), "Image"));
    }

    [Fact]
    public void KMeansAndPcaOnTheLatentColumnComposeInOnePipeline()
    {
        var ml = new MLContext(seed: 1);
        var pipeline = ml.Transforms.Autoencoder(SmallDense(epochs: 1))
            .Append(ml.Transforms.ProjectToPrincipalComponents("LatentPca", "Latent", rank: 2))
            .Append(ml.Clustering.Trainers.KMeans("Latent", numberOfClusters: 10));
        var model = pipeline.Fit(TestData.MnistTrain(ml, 300));
        var clusters = model.Transform(TestData.MnistTest(ml, 50)).GetColumn<uint>("PredictedLabel").ToList();
        Assert.Equal(50, clusters.Count);
        Assert.All(clusters, c => Assert.InRange(c, 1u, 10u));
        Assert.True(clusters.Distinct().Count() > 1);
        Assert.Equal(2, TestData.Column(model.Transform(TestData.MnistTest(ml, 5)), "LatentPca")[0].Length);
    }

    [Fact]
    public void ConvolutionalDenoiserPresetHasThe32x7x7Bottleneck()
    {
        var ml = new MLContext(seed: 1);
        var options = AutoencoderNetworks.DenoisingAutoencoder(0.5);
        options.Epochs = 1;
        options.BatchSize = 50;
        options.Seed = 3;
        var model = ml.Transforms.Autoencoder(options).Fit(TestData.MnistTrain(ml, 150));
        Assert.Equal(new[] { 32, 7, 7 }, model.LatentShape);
        var scored = model.Transform(TestData.MnistTest(ml, 5));
        Assert.Equal(32 * 7 * 7, ((VectorDataViewType)scored.Schema["Latent"].Type).Size);
        Assert.Equal(784, TestData.Column(scored, "Reconstruction")[0].Length);
        // The preset denoises Gaussian noise of the asked std, clipped to [0, 1], and the noise reaches training:
        // without it the same seed trains to a different loss.
        Assert.Equal(new GaussianCorruption(0.5, Clip: true), options.Corruption);
        options.Corruption = null;
        var clean = ml.Transforms.Autoencoder(options).Fit(TestData.MnistTrain(ml, 150));
        Assert.NotEqual(clean.History!.Epochs[0].TrainLoss, model.History!.Epochs[0].TrainLoss);
    }

    [Fact]
    public void ConvolutionalAutoencoderPresetInfersItsShapes()
    {
        var options = AutoencoderNetworks.ConvolutionalAutoencoder(16);
        var (encoder, decoder, latentShape) = options.Resolve([1, 28, 28]);
        Assert.Equal(new[] { 16 }, latentShape);
        Assert.Equal(new[] { 64, 7, 7 }, encoder.InferShapes([1, 28, 28])[1]);
        Assert.Equal(new[] { 1, 28, 28 }, decoder.OutputShape(latentShape));

        var ml = new MLContext(seed: 1);
        options.Epochs = 1;
        options.BatchSize = 50;
        var model = ml.Transforms.Autoencoder(options).Fit(TestData.MnistTrain(ml, 100));
        var scored = model.Transform(TestData.MnistTest(ml, 4));
        Assert.Equal(16, TestData.Column(scored, "Latent")[0].Length);
        Assert.Equal(784, TestData.Column(scored, "Reconstruction")[0].Length);
    }

    [Fact]
    public void ConvolutionalAutoencoderPresetLearnsBeyondTheBlackImage()
    {
        // With squared error this preset once stalled at the all-black output (MSE about 0.11 on MNIST); it must get well below.
        var ml = new MLContext(seed: 1);
        var options = AutoencoderNetworks.ConvolutionalAutoencoder(16);
        options.Epochs = 4;
        options.BatchSize = 32;
        var model = ml.Transforms.Autoencoder(options).Fit(TestData.MnistTrain(ml, 2000));
        var test = model.Transform(TestData.MnistTest(ml, 200));
        var metrics = ReconstructionMetrics.Compute(TestData.Column(test, "Pixels"), TestData.Column(test, "Reconstruction"));
        Assert.True(metrics.MeanSquaredError < 0.06, $"test MSE {metrics.MeanSquaredError:F4}");
    }

    [Fact]
    public void CorruptedInputsAreTrainedAgainstCleanTargets()
    {
        // Masking every pixel leaves all-zero inputs: against zero targets the loss would vanish; against the clean
        // images the best the network can do is the mean image, whose error is the pixels' variance (about 0.1).
        var ml = new MLContext(seed: 1);
        var options = SmallDense(epochs: 3);
        options.Corruption = new MaskingCorruption(1.0);
        var model = ml.Transforms.Autoencoder(options).Fit(TestData.MnistTrain(ml, 300));
        Assert.InRange(model.History!.Epochs[^1].TrainLoss, 0.03, 0.2);
    }

    [Fact]
    public void CorruptionsAreSeededClippedAndLeaveTheInputAlone()
    {
        var clean = Enumerable.Range(0, 4).Select(i => Enumerable.Range(0, 500).Select(j => (float)((i + j) % 7) / 6).ToArray()).ToList();
        var copy = clean.Select(r => (float[])r.Clone()).ToList();
        var gaussian = new GaussianCorruption(0.5);
        var noisy = gaussian.Corrupt(clean, seed: 3);
        Assert.Equal(noisy, gaussian.Corrupt(clean, seed: 3));
        Assert.NotEqual(noisy, gaussian.Corrupt(clean, seed: 4));
        Assert.All(noisy.SelectMany(r => r), v => Assert.InRange(v, 0f, 1f));
        Assert.Equal(copy, clean);

        var ones = new List<float[]> { Enumerable.Repeat(0.5f, 10_000).ToArray() };
        var masked = new MaskingCorruption(0.3).Corrupt(ones, 1)[0];
        Assert.InRange(masked.Count(v => v == 0) / 10_000.0, 0.27, 0.33);
        var salted = new SaltAndPepperCorruption(0.2).Corrupt(ones, 1)[0];
        Assert.InRange(salted.Count(v => v == 0) / 10_000.0, 0.08, 0.12);
        Assert.InRange(salted.Count(v => v == 1) / 10_000.0, 0.08, 0.12);
    }

    [Fact]
    public void BadInputsGiveClearErrors()
    {
        var ml = new MLContext(seed: 1);
        var zero = SmallDense();
        zero.LatentSize = 0;
        Assert.Contains("LatentSize", Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Autoencoder(zero)).Message);

        var train = TestData.MnistTrain(ml, 50);
        var mismatch = SmallDense();
        mismatch.InputShape = [1, 28, 27];
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Autoencoder(mismatch).Fit(train));
        Assert.Contains("Pixels", ex.Message);
        Assert.Contains("784", ex.Message);

        var missing = SmallDense();
        missing.FeatureColumnName = "Image";
        Assert.Contains("'Image'", Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Autoencoder(missing).Fit(train)).Message);

        var wrongDecoder = SmallDense();
        wrongDecoder.Decoder = new NetworkSpec([new Dense(100)]);
        Assert.Contains("decoder", Assert.Throws<ArgumentException>(() => ml.Transforms.Autoencoder(wrongDecoder).Fit(train)).Message);

        var bce = SmallDense(epochs: 1);
        bce.ReconstructionLoss = ReconstructionLoss.BinaryCrossEntropy;
        var scaled = ml.Transforms.NormalizeMeanVariance("Pixels").Fit(train).Transform(train);
        Assert.Contains("[0, 1]", Assert.Throws<InvalidOperationException>(() => ml.Transforms.Autoencoder(bce).Fit(scaled)).Message);

        var model = ml.Transforms.Autoencoder(SmallDense(epochs: 1)).Fit(train);
        Assert.Throws<ArgumentException>(() => LatentSpace.DecodeGrid(model, 5, (-1, 1), (-1, 1)));
    }

    public sealed class LatentRow
    {
        public float[] Latent { get; set; } = [];
    }
}
