using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Networks;

namespace MlNetDeep.Tests;

public class VariationalAutoencoderTests
{
    private static VariationalAutoencoderOptions Small(int epochs = 3) => new()
    {
        FeatureColumnName = "Pixels", LatentSize = 2, Epochs = epochs, BatchSize = 64, SampleColumnName = "LatentSample", SampleSeed = 11,
        Encoder = new NetworkSpec([new Flatten(), new Dense(64, ActivationKind.ReLU)]),
        Decoder = new NetworkSpec([new Dense(64, ActivationKind.ReLU), new Dense(Dense.TaskOutputs, ActivationKind.Sigmoid)]),
    };

    [Fact]
    public void VaeLearnsAndAddsMeanReconstructionAndSeededSample()
    {
        var ml = new MLContext(seed: 1);
        var model = ml.Transforms.VariationalAutoencoder(Small()).Fit(TestData.MnistTrain(ml, 600));
        var history = model.History!;
        Assert.True(history.Epochs[^1].TrainLoss < history.Epochs[0].TrainLoss * 0.9, $"loss {history.Epochs[0].TrainLoss} -> {history.Epochs[^1].TrainLoss}");

        var test = TestData.MnistTest(ml, 60);
        var scored = model.Transform(test);
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 2), scored.Schema["Latent"].Type);
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 2), scored.Schema["LatentSample"].Type);
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 784), scored.Schema["Reconstruction"].Type);
        var mean = TestData.Column(scored, "Latent");
        var sample = TestData.Column(scored, "LatentSample");
        Assert.NotEqual(mean, sample);
        Assert.Equal(sample, TestData.Column(model.Transform(test), "LatentSample"));

        // A row's sample does not depend on the batch it is scored in.
        var engine = ml.Model.CreatePredictionEngine<PixelsRow, SampleRow>(model);
        var first = TestData.Column(test, "Pixels")[0];
        Close.Equal([sample[0]], [engine.Predict(new PixelsRow { Pixels = first }).LatentSample]);

        var elbo = model.EvaluateElbo(test);
        Assert.True(double.IsFinite(elbo.Elbo) && elbo.Elbo < 0 && elbo.KL > 0, elbo.ToString());
        Assert.Equal(elbo, model.EvaluateElbo(test));
    }

    [Fact]
    public void SaveLoadKeepsOutputsAndGenerationIsSeeded()
    {
        var ml = new MLContext(seed: 1);
        var model = ml.Transforms.VariationalAutoencoder(Small(epochs: 1)).Fit(TestData.MnistTrain(ml, 300));
        var test = TestData.MnistTest(ml, 30);
        var path = TestData.TempFile();
        ml.Model.SaveDeep(model, test.Schema, path);
        var loaded = new MLContext(seed: 2).Model.LoadDeep(path, out _);
        File.Delete(path);
        foreach (var column in new[] { "Latent", "Reconstruction", "LatentSample" })
            Assert.Equal(TestData.Column(model.Transform(test), column), TestData.Column(loaded.Transform(test), column));

        var reloaded = loaded is TransformerChain<ITransformer> chain ? chain.OfType<VariationalAutoencoderTransformer>().Single() : (VariationalAutoencoderTransformer)loaded;
        var images = model.Generate(6, seed: 3);
        Assert.Equal(6, images.Length);
        Assert.All(images, i => Assert.Equal(784, i.Length));
        Close.Equal(images, model.Generate(6, seed: 3));
        Close.Equal(images, reloaded.Generate(6, seed: 3));
        Assert.NotEqual(images, model.Generate(6, seed: 4));

        var grid = LatentSpace.DecodeGrid(model, 4, (-2, 2), (-2, 2));
        Assert.Equal(16, grid.Length);
        var pixels = TestData.Column(test, "Pixels");
        var path2 = LatentSpace.Interpolate(model, pixels[0], pixels[1], 5);
        Assert.Equal(5, path2.Length);
        var ends = model.Decode(model.Encode([pixels[0], pixels[1]]));
        Close.Equal([ends[0], ends[1]], [path2[0], path2[^1]]);
    }

    [Fact]
    public void BadVaeSettingsAreRejected()
    {
        var ml = new MLContext(seed: 1);
        var options = Small();
        options.LatentSize = 0;
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.VariationalAutoencoder(options));
        options = Small();
        options.Beta = -1;
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.VariationalAutoencoder(options));
        options = Small();
        options.SampleColumnName = "Latent";
        Assert.Throws<ArgumentException>(() => ml.Transforms.VariationalAutoencoder(options));
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.VariationalAutoencoder(Small()).Fit(TestData.MnistTrain(ml, 20)).Generate(0, 1));
    }

    public sealed class PixelsRow
    {
        [VectorType(784)] public float[] Pixels { get; set; } = [];
    }

    public sealed class SampleRow
    {
        public float[] LatentSample { get; set; } = [];
    }
}
