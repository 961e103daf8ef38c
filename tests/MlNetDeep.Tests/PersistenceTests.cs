using Microsoft.ML.Data;
using System.IO.Compression;
using Microsoft.ML;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;

namespace MlNetDeep.Tests;

public class PersistenceTests
{
    private static (MLContext Ml, ITransformer Model, IDataView Test, string Path) SavedMixedPipeline()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.MnistTrain(ml, 400);
        var options = new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Features", InputShape = [1, 28, 28], Epochs = 1, BatchSize = 32,
            Network = new NetworkSpec([new Conv2D(4, 3, Activation: ActivationKind.ReLU), new BatchNorm(), new MaxPool2D(2), new Flatten(), new Dropout(0.2), new Dense(Dense.TaskOutputs)]),
        };
        var pipeline = ml.Transforms.CopyColumns("Features", "Pixels")
            .Append(ml.Transforms.NormalizeMeanVariance("Features"))
            .Append(ml.MulticlassClassification.Trainers.NeuralNetwork(options))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedDigit", "PredictedLabel"));
        var model = pipeline.Fit(train);
        var path = TestData.TempFile();
        ml.Model.SaveDeep(model, train.Schema, path);
        return (ml, model, TestData.MnistTest(ml, 100), path);
    }

    [Fact]
    public void MixedPipelineRoundTripsWithIdenticalScores()
    {
        var (ml, model, test, path) = SavedMixedPipeline();
        var loaded = new MLContext(seed: 99).Model.LoadDeep(path, out var schema);
        Assert.NotNull(schema.GetColumnOrNull("Pixels"));
        Assert.Equal(TestData.Column(model.Transform(test), "Score"), TestData.Column(loaded.Transform(test), "Score"));
        Assert.Equal(model.Transform(test).GetColumn<uint>("PredictedDigit"), loaded.Transform(test).GetColumn<uint>("PredictedDigit"));
        File.Delete(path);
    }

    [Fact]
    public void MlNetsOwnSaveExplainsWhatToUse()
    {
        var (ml, model, test, path) = SavedMixedPipeline();
        var ex = Assert.Throws<NotSupportedException>(() => ml.Model.Save(model, test.Schema, TestData.TempFile()));
        Assert.Contains("SaveDeep", ex.Message);
        File.Delete(path);
    }

    [Fact]
    public void DamagedTruncatedAndForeignFilesGiveClearErrors()
    {
        var (ml, model, test, path) = SavedMixedPipeline();
        var bytes = File.ReadAllBytes(path);

        // Half a file has lost the zip's central directory (at its end); the cause is kept as the inner exception.
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var truncated = Assert.Throws<InvalidDataException>(() => ml.Model.LoadDeep(path, out _));
        Assert.Contains($"'{path}' is not a readable MlNetDeep model", truncated.Message);
        Assert.Contains("Central Directory", truncated.Message);
        Assert.IsType<InvalidDataException>(truncated.InnerException);

        // One byte of the weights changed: the entry's SHA-256 names the damage and where it is.
        var damaged = (byte[])bytes.Clone();
        var flipped = DamageWeights(damaged);
        File.WriteAllBytes(path, flipped);
        var ex = Assert.Throws<InvalidDataException>(() => ml.Model.LoadDeep(path, out _));
        Assert.Matches(@"entry 'stages/\d+/weights\.bin' is damaged: its SHA-256 does not match the manifest", ex.Message);

        File.WriteAllText(path, "just some text");
        Assert.Contains("Central Directory", Assert.Throws<InvalidDataException>(() => ml.Model.LoadDeep(path, out _)).Message);

        // An ML.NET model file is recognised as such.
        var plain = ml.Transforms.NormalizeMinMax("Pixels").Fit(test);
        ml.Model.Save(plain, test.Schema, path);
        Assert.Contains("mlContext.Model.Load", Assert.Throws<InvalidDataException>(() => ml.Model.LoadDeep(path, out _)).Message);

        File.Delete(path);
        Assert.Throws<FileNotFoundException>(() => ml.Model.LoadDeep(path, out _));
    }

    /// <summary>Rewrites the zip with one byte of the weights changed.</summary>
    private static byte[] DamageWeights(byte[] zipBytes)
    {
        var input = new MemoryStream(zipBytes);
        var output = new MemoryStream();
        using (var source = new ZipArchive(input, ZipArchiveMode.Read))
        using (var target = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var entry in source.Entries)
            {
                var data = new MemoryStream();
                using (var s = entry.Open()) s.CopyTo(data);
                var content = data.ToArray();
                if (entry.FullName.EndsWith("weights.bin")) content[content.Length - 3] ^= 0x5a;
                using var t = target.CreateEntry(entry.FullName).Open();
                t.Write(content);
            }
        }
        return output.ToArray();
    }
}
