using Microsoft.ML;
using MlNetDeep.Models.Autoencoders;

namespace MlNetDeep.Tests;

/// <summary>Autoencoders, VAEs and decoders exported to ONNX score under ML.NET's ApplyOnnxModel as their transformers do.</summary>
public class AutoencoderOnnxExportTests
{
    private static void AssertColumnsMatch(MLContext ml, IDataView data, AutoencoderTransformerBase model, string path)
    {
        model.SaveAsOnnx(path);
        var onnx = ml.Transforms.ApplyOnnxModel(["Latent", "Reconstruction"], ["Pixels"], path).Fit(data);
        var viaOnnx = onnx.Transform(data);
        var viaModel = model.Transform(data);
        foreach (var column in new[] { "Latent", "Reconstruction" })
        {
            var expected = TestData.Column(viaModel, column);
            var actual = TestData.Column(viaOnnx, column);
            Assert.Equal(expected.Length, actual.Length);
            Assert.Equal(expected[0].Length, actual[0].Length);
            for (int i = 0; i < expected.Length; i++)
                for (int j = 0; j < expected[i].Length; j++)
                    Close.Equal(expected[i][j], actual[i][j], Close.OtherEngine);
        }
    }

    [Fact]
    public void DenseAndConvolutionalAutoencodersExportBothColumns()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.MnistTrain(ml, 200);
        var test = TestData.MnistTest(ml, 32);
        var dense = AutoencoderNetworks.DenseAutoencoder(8);
        dense.Epochs = 1;
        using var denseModel = ml.Transforms.Autoencoder(dense).Fit(train);
        var path = TestData.TempFile(".onnx");
        try
        {
            AssertColumnsMatch(ml, test, denseModel, path);
            var conv = AutoencoderNetworks.ConvolutionalAutoencoder(8);
            conv.Epochs = 1;
            using var convModel = ml.Transforms.Autoencoder(conv).Fit(train);
            AssertColumnsMatch(ml, test, convModel, path);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void VariationalAutoencoderExportsItsMeanAndReconstructionAndTheDecoderExportsAlone()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.MnistTrain(ml, 200);
        var test = TestData.MnistTest(ml, 32);
        using var vae = ml.Transforms.VariationalAutoencoder(new VariationalAutoencoderOptions { FeatureColumnName = "Pixels", LatentSize = 2, Epochs = 1 }).Fit(train);
        var path = TestData.TempFile(".onnx");
        try
        {
            AssertColumnsMatch(ml, test, vae, path);

            using var decoder = vae.CreateDecoder();
            var latents = vae.Transform(test);
            decoder.SaveAsOnnx(path, "Image");
            var onnx = ml.Transforms.ApplyOnnxModel(["Image"], ["Latent"], path).Fit(latents);
            var expected = TestData.Column(decoder.Transform(latents), decoder.OutputColumns[0].Name);
            var actual = TestData.Column(onnx.Transform(latents), "Image");
            for (int i = 0; i < expected.Length; i++)
                for (int j = 0; j < expected[i].Length; j++)
                    Close.Equal(expected[i][j], actual[i][j], Close.OtherEngine);
        }
        finally { File.Delete(path); }
    }
}
