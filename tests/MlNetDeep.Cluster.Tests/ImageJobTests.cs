using Microsoft.ML;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Serving;

namespace MlNetDeep.Cluster.Tests;

/// <summary>A scoring job over a folder of images: the shards are ranges of the folder's image list, the output is what one process's <c>score</c> writes.</summary>
public sealed class ImageJobTests(ScoringData data) : IClassFixture<ScoringData>
{
    [Fact]
    public async Task AnImageFolderIsScoredInShardsOnEverySiloAsOneProcessScoresIt()
    {
        var folder = Directory.CreateDirectory(Path.Combine(data.Folder, "images-" + Guid.NewGuid().ToString("N")[..8])).FullName;
        var images = Path.Combine(folder, "images");
        var random = new Random(5);
        // 150 images in two classes (and a file that is not an image, which `score` leaves out too); a path with a comma.
        foreach (var (label, count) in new[] { ("dark, or light", 70), ("stripes", 80) })
            for (int i = 0; i < count; i++)
            {
                var pixels = Enumerable.Range(0, 64).Select(p => label == "stripes" ? (p / 8 % 2 == 0 ? 0.9f : 0.1f) : (float)random.NextDouble() * 0.3f).ToArray();
                ImageFiles.SavePng(Path.Combine(images, label, $"{i:D3}.png"), pixels, 1, 8, 8);
            }
        File.WriteAllText(Path.Combine(images, "stripes", "notes.png"), "not an image");

        // A small CNN through ML.NET's image transforms, which loads its images from the ImagePath column.
        var ml = new MLContext(seed: 1);
        var scan = ImageFolder.Scan(images);
        var model = scan.PixelPipeline(ml, grayscale: true)
            .Append(ml.Transforms.Conversion.MapValueToKey("Label"))
            .Append(ml.MulticlassClassification.Trainers.ConvolutionalNetwork(new NeuralNetworkClassifierOptions
            {
                FeatureColumnName = "Pixels", InputShape = scan.InputShape(grayscale: true), Epochs = 1, BatchSize = 32, Seed = 1,
                Network = new NetworkSpec([new Conv2D(4, 3, Activation: ActivationKind.ReLU), new Flatten(), new Dense(Dense.TaskOutputs)]),
            }))
            .Fit(scan.ToDataView(ml.Data));
        var modelPath = Path.Combine(folder, "cnn.zip");
        ml.Model.SaveDeep(model, scan.ToDataView(ml.Data).Schema, modelPath);
        var expectedPath = Path.Combine(folder, "expected.csv");
        Assert.Equal(150, BatchScorer.Score(modelPath, images, expectedPath));

        await using var cluster = await ScoringData.StartCluster(3, Path.Combine(folder, "state"), TimeSpan.FromMilliseconds(300));
        var request = new JobRequest { ModelPath = modelPath, InputPath = images, OutputPath = Path.Combine(folder, "scored.csv"), Shards = 8 };
        await cluster.Client.GetGrain<IScoringJobGrain>("images").Submit(request);
        var status = await ScoringData.WaitFor(cluster.Client, "images", s => s.State.Phase != JobPhase.Running);

        Assert.True(status.State.Phase == JobPhase.Completed, status.ToString());
        Assert.Equal(150, status.State.Rows);
        Assert.Equal(1, status.State.ImagesSkipped);
        Assert.Equal(3, status.State.Shards.Count); // 150 images in shards of whole 64-image passes: 64, 64, 22
        Assert.True(status.State.Shards.Select(s => s.Silo).Distinct().Count() >= 2, "the shards were scored on one silo");
        Assert.Equal(File.ReadAllLines(expectedPath), File.ReadAllLines(request.OutputPath));
        Assert.StartsWith("ImagePath,Label,", File.ReadLines(request.OutputPath).First());
        Assert.False(Directory.Exists(request.OutputPath + ".shards")); // the image list went with the shards
    }

    [Fact]
    public async Task AnImageFolderForAModelThatDoesNotLoadImagesIsRefusedAtSubmission()
    {
        var folder = Directory.CreateDirectory(Path.Combine(data.Folder, "notimages-" + Guid.NewGuid().ToString("N")[..8])).FullName;
        ImageFiles.SavePng(Path.Combine(folder, "images", "a", "0.png"), new float[16], 1, 4, 4);
        await using var cluster = await ScoringData.StartCluster(1, Path.Combine(folder, "state"), TimeSpan.Zero);
        var request = new JobRequest { ModelPath = data.ModelPath, InputPath = Path.Combine(folder, "images"), OutputPath = Path.Combine(folder, "out.csv"), Shards = 2 };
        var error = await Assert.ThrowsAnyAsync<Exception>(() => cluster.Client.GetGrain<IScoringJobGrain>("not-images").Submit(request));
        Assert.Contains("not an 'ImagePath' column", error.Message);
        Assert.False(File.Exists(request.OutputPath));
    }
}
