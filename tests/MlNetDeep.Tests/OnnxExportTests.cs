using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Regression;
using MlNetDeep.Networks;

namespace MlNetDeep.Tests;

/// <summary>An exported network, run by ML.NET's own ApplyOnnxModel (ONNX Runtime), scores as the TorchSharp model does.</summary>
public class OnnxExportTests
{
    [Fact]
    public void ExportedClassifierMatchesAndBecomesAPlainMlNetModel()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.MnistTrain(ml, 300);
        var options = new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Epochs = 1, BatchSize = 32,
            Network = new NetworkSpec(
            [
                new Conv2D(4, 3, 2, PaddingMode.Same, ActivationKind.ReLU), new BatchNorm(), new MaxPool2D(2, Padding: PaddingMode.Same),
                new Conv2D(4, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ELU), new AvgPool2D(2), new Flatten(),
                new Dense(16, ActivationKind.GELU), new Dropout(0.3), new Dense(16, ActivationKind.LeakyReLU), new Dense(Dense.TaskOutputs, ActivationKind.Tanh),
            ]),
        };
        using var model = ml.MulticlassClassification.Trainers.NeuralNetwork(options).Fit(train);
        var path = TestData.TempFile(".onnx");
        model.SaveAsOnnx(path);

        var test = TestData.MnistTest(ml, 64);
        var onnx = ml.Transforms.ApplyOnnxModel(outputColumnNames: ["Score"], inputColumnNames: ["Pixels"], modelFile: path).Fit(test);
        var expected = TestData.Column(model.Transform(test), "Score");
        var actual = TestData.Column(onnx.Transform(test), "Score");
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            for (int j = 0; j < 10; j++)
                Close.Equal(expected[i][j], actual[i][j], Close.OtherEngine);

        // The ONNX stage saves and loads with ML.NET alone.
        var mlnetFile = TestData.TempFile();
        ml.Model.Save(onnx, test.Schema, mlnetFile);
        var reloaded = ml.Model.Load(mlnetFile, out _);
        Assert.Equal(actual, TestData.Column(reloaded.Transform(test), "Score"));
        File.Delete(path);
        File.Delete(mlnetFile);
    }

    [Fact]
    public void ExportedRegressorMatches()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.Sine(ml, 64);
        using var model = ml.Regression.Trainers.NeuralNetwork(new NeuralNetworkRegressorOptions { Epochs = 3, Network = Networks.Networks.Mlp([8], ActivationKind.Sigmoid) }).Fit(data);
        var path = TestData.TempFile(".onnx");
        model.SaveAsOnnx(path, "Prediction");
        var onnx = ml.Transforms.ApplyOnnxModel(["Prediction"], ["Features"], path).Fit(data);
        var expected = model.Transform(data).GetColumn<float>("Score").ToArray();
        var actual = TestData.Column(onnx.Transform(data), "Prediction").Select(v => v.Single()).ToArray();
        Close.Equal(expected, actual, Close.OtherEngine);
        File.Delete(path);
    }
}

public class GeneratorOnnxExportTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AnExportedGeneratorDrawsTheSameImagesThroughApplyOnnxModel(bool conditional)
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.MnistTrain(ml, 128);
        using var generator = ml.Transforms.GenerativeAdversarialNetwork(new Models.Generative.GanOptions
        {
            Kind = Models.Generative.GanKind.Dcgan, LabelColumnName = conditional ? "Label" : null, Epochs = 1, LatentSize = 16, Seed = 3,
        }).Fit(data);
        var path = TestData.TempFile(".onnx");
        try
        {
            generator.SaveAsOnnx(path);
            var noise = generator.NoiseData(ml, 6, seed: 5, labels: conditional ? [0, 3, 9, 1, 1, 7] : null);
            var onnx = ml.Transforms.ApplyOnnxModel(["Image"], ["Noise"], path).Fit(noise);
            var expected = TestData.Column(generator.Transform(noise), "Image");
            var actual = TestData.Column(onnx.Transform(noise), "Image");
            Close.Equal(expected, actual, Close.OtherEngine);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void UpsamplingAndTransposedConvolutionsExportExactly()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.MnistTrain(ml, 64);
        // A decoder-shaped regressor net: odd kernels, "same" and "valid" transposed convolutions and nearest upsampling.
        using var model = ml.Regression.Trainers.NeuralNetwork(new NeuralNetworkRegressorOptions
        {
            FeatureColumnName = "Pixels", LabelColumnName = "Target", InputShape = [1, 28, 28], Epochs = 1,
            Network = new NetworkSpec([
                new Conv2D(2, 3, 2, PaddingMode.Same), new ConvTranspose2D(3, 3, 2, PaddingMode.Same, ActivationKind.ReLU),
                new Upsample2D(2), new ConvTranspose2D(2, 2, 1, PaddingMode.Valid), new ConvTranspose2D(1, 1, 2, PaddingMode.Same),
                new Flatten(), new Dense(Dense.TaskOutputs),
            ]),
        }).Fit(ml.Transforms.Conversion.MapKeyToValue("Digit", "Label").Append(ml.Transforms.Conversion.ConvertType("Target", "Digit", DataKind.Single)).Fit(data).Transform(data));
        var path = TestData.TempFile(".onnx");
        try
        {
            model.SaveAsOnnx(path, "Prediction");
            var onnx = ml.Transforms.ApplyOnnxModel(["Prediction"], ["Pixels"], path).Fit(data);
            var expected = model.Transform(data).GetColumn<float>("Score").ToArray();
            var actual = TestData.Column(onnx.Transform(data), "Prediction").Select(v => v.Single()).ToArray();
            Close.Equal(expected, actual, Close.OtherEngine);
        }
        finally { File.Delete(path); }
    }
}
