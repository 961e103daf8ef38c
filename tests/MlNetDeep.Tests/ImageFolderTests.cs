using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Training;

namespace MlNetDeep.Tests;

/// <summary>Folder-per-class image sets written by the tests themselves: shapes drawn into small PNGs.</summary>
public sealed class ImageFolderTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "mlnetdeep-images-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    /// <summary>Draws a class's pattern (horizontal bar, vertical bar, or a square) at a random place, with noise.</summary>
    private static float[] Shape(string kind, int side, int channels, Random random)
    {
        var pixels = new float[channels * side * side];
        int at = random.Next(2, side - 3);
        for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++)
        {
            bool on = kind switch
            {
                "bars" => Math.Abs(y - at) <= 1,
                "columns" => Math.Abs(x - at) <= 1,
                _ => Math.Abs(x - side / 2) <= 3 && Math.Abs(y - side / 2) <= 3 && (Math.Abs(x - side / 2) == 3 || Math.Abs(y - side / 2) == 3),
            };
            for (int c = 0; c < channels; c++)
            {
                float tint = channels == 3 && kind == "bars" && c == 2 ? 0.5f : 1f;
                pixels[c * side * side + y * side + x] = Math.Clamp((on ? 0.9f * tint : 0.1f) + (float)(random.NextDouble() - 0.5) * 0.2f, 0, 1);
            }
        }
        return pixels;
    }

    private string WriteSet(string name, string[] classes, int perClass, int side = 16, int channels = 1, int seed = 1)
    {
        var random = new Random(seed);
        var folder = Path.Combine(_root, name);
        foreach (var kind in classes)
            for (int i = 0; i < perClass; i++)
                ImageFiles.SavePng(Path.Combine(folder, kind, $"{i:D3}.png"), Shape(kind, side, channels, random), channels, side, side);
        return folder;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void TrainsACnnFromPngFoldersThroughMlNetsImageTransforms(int channels)
    {
        var ml = new MLContext(seed: 1);
        var train = ImageFolder.Scan(WriteSet("train", ["bars", "columns", "squares"], 40, channels: channels));
        var test = ImageFolder.Scan(WriteSet("test", ["bars", "columns", "squares"], 15, channels: channels, seed: 2));
        Assert.Equal(["bars", "columns", "squares"], train.Classes);
        Assert.Equal((16, 16), train.CommonSize);
        Assert.Empty(train.Skipped);
        bool grey = channels == 1;
        Assert.Equal([channels, 16, 16], train.InputShape(grayscale: grey));

        var pipeline = train.PixelPipeline(ml, grayscale: grey)
            .Append(ml.Transforms.Conversion.MapValueToKey("Label"))
            .Append(ml.MulticlassClassification.Trainers.ConvolutionalNetwork(new NeuralNetworkClassifierOptions
            {
                FeatureColumnName = "Pixels", InputShape = train.InputShape(grayscale: grey), Epochs = 15, BatchSize = 16, Optimizer = new Adam(3e-3),
                Network = new NetworkSpec([new Conv2D(8, 3, Activation: ActivationKind.ReLU), new MaxPool2D(2), new Flatten(), new Dense(Dense.TaskOutputs)]),
                TrainingInputTransform = new ImageAugmentation(new ImageAugmentationOptions { MaxRotationDegrees = 5, MaxShiftFraction = 0.05 }),
            }))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        var model = pipeline.Fit(train.ToDataView(ml.Data));
        var scored = model.Transform(test.ToDataView(ml.Data));
        var pixels = scored.GetColumn<float[]>("Pixels").First();
        Assert.Equal(channels * 16 * 16, pixels.Length);
        Assert.InRange(pixels.Min(), 0f, 0.3f);
        Assert.InRange(pixels.Max(), 0.7f, 1f);
        var metrics = ml.MulticlassClassification.Evaluate(scored);
        Assert.True(metrics.MicroAccuracy > 0.9, $"accuracy {metrics.MicroAccuracy}");
        var predicted = scored.GetColumn<ReadOnlyMemory<char>>("PredictedLabel").Select(p => p.ToString()).ToHashSet();
        Assert.Subset(new HashSet<string> { "bars", "columns", "squares" }, predicted);
    }

    [Fact]
    public void WrittenPngsReadBackAsTheSamePixels()
    {
        var random = new Random(3);
        var pixels = Enumerable.Range(0, 5 * 7).Select(_ => (float)Math.Round(random.NextDouble() * 255) / 255).ToArray();
        var path = Path.Combine(_root, "one", "a.png");
        ImageFiles.SavePng(path, pixels, 1, 5, 7);
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable([new { ImagePath = path }]);
        var read = ml.Transforms.LoadImages("Image", null, "ImagePath").Append(ml.Transforms.ResizeImages("Image", 7, 5))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Image", Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorBits.Red, scaleImage: 1f / 255))
            .Fit(data).Transform(data).GetColumn<float[]>("Pixels").Single();
        Assert.Equal(pixels.Length, read.Length);
        for (int i = 0; i < pixels.Length; i++) Assert.Equal(pixels[i], read[i], 5);
    }

    [Fact]
    public void LoadImageFolderGivesPathAndLabelRows()
    {
        var folder = WriteSet("rows", ["bars", "columns"], 3);
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadImageFolder(folder);
        var labels = data.GetColumn<string>("Label").ToArray();
        var paths = data.GetColumn<string>("ImagePath").ToArray();
        Assert.Equal(["bars", "bars", "bars", "columns", "columns", "columns"], labels);
        Assert.All(paths, p => Assert.True(File.Exists(p), p));
        Assert.All(paths.Zip(labels), pair => Assert.Equal(pair.Second, Path.GetFileName(Path.GetDirectoryName(pair.First))));
    }

    [Fact]
    public void AMissingFolderIsNamed()
    {
        var missing = Path.Combine(_root, "nowhere");
        var error = Assert.Throws<DirectoryNotFoundException>(() => ImageFolder.Scan(missing));
        Assert.Contains(missing, error.Message);
    }

    [Fact]
    public void AnEmptyFolderSaysWhatLayoutItWants()
    {
        var empty = Directory.CreateDirectory(Path.Combine(_root, "empty", "cats")).Parent!.FullName;
        File.WriteAllText(Path.Combine(empty, "cats", "notes.txt"), "not an image");
        var error = Assert.Throws<InvalidDataException>(() => ImageFolder.Scan(empty));
        Assert.Contains("holds no images", error.Message);
        Assert.Contains("one subfolder per class", error.Message);
    }

    [Fact]
    public void OneClassIsNotEnough()
    {
        var folder = WriteSet("single", ["bars"], 3);
        var error = Assert.Throws<InvalidDataException>(() => ImageFolder.Scan(folder));
        Assert.Contains("1 class(es)", error.Message);
        Assert.Contains("'bars'", error.Message);
    }

    [Fact]
    public void CorruptTruncatedAndEmptyFilesAreSkippedWithACountOrThrowAsTheOptionSays()
    {
        var folder = WriteSet("damaged", ["bars", "columns"], 4);
        File.WriteAllText(Path.Combine(folder, "bars", "corrupt.png"), "this is not a PNG at all");
        var good = File.ReadAllBytes(Path.Combine(folder, "columns", "000.png"));
        File.WriteAllBytes(Path.Combine(folder, "columns", "truncated.png"), good[..(good.Length / 2)]);
        File.WriteAllBytes(Path.Combine(folder, "columns", "empty.jpg"), []);
        File.Copy(Path.Combine(folder, "columns", "001.png"), Path.Combine(folder, "stray.png"));

        var scan = ImageFolder.Scan(folder);
        Assert.Equal(8, scan.Images.Count);
        Assert.Equal(4, scan.Skipped.Count);
        Assert.Contains(scan.Skipped, s => s.Path.EndsWith("corrupt.png") && s.Reason.Contains("not a readable image"));
        Assert.Contains(scan.Skipped, s => s.Path.EndsWith("truncated.png") && s.Reason.Contains("damaged or cut short"));
        Assert.Contains(scan.Skipped, s => s.Path.EndsWith("empty.jpg") && s.Reason.Contains("empty"));
        Assert.Contains(scan.Skipped, s => s.Path.EndsWith("stray.png") && s.Reason.Contains("not inside a class folder"));

        var messages = new List<string>();
        var ml = new MLContext(seed: 1);
        ml.Log += (_, e) => { if (e.Message.Contains("left out")) messages.Add(e.Message); };
        Assert.Equal(8, ml.Data.LoadImageFolder(folder).GetColumn<string>("Label").Count());
        Assert.Contains(messages, m => m.Contains("4 file(s)"));

        var error = Assert.Throws<InvalidDataException>(() => ImageFolder.Scan(folder, new ImageFolderOptions { InvalidImages = InvalidImageHandling.Throw }));
        Assert.Contains("3 of 11 images", error.Message);
        Assert.Contains("corrupt.png", error.Message);
    }

    [Fact]
    public void AnImageLargerThanTheCapIsRefusedFromItsHeader()
    {
        var folder = WriteSet("large", ["bars", "columns"], 2, side: 16);
        var error = Assert.Throws<InvalidDataException>(() => ImageFolder.Scan(folder, new ImageFolderOptions { MaxPixelsPerImage = 100, InvalidImages = InvalidImageHandling.Throw }));
        Assert.Contains("16x16 pixels is more than MaxPixelsPerImage", error.Message);
    }

    [Fact]
    public void MixedSizesNeedAResizeAndSaySo()
    {
        var folder = WriteSet("mixed", ["bars"], 3, side: 16);
        var random = new Random(5);
        for (int i = 0; i < 2; i++)
            ImageFiles.SavePng(Path.Combine(folder, "columns", $"{i}.png"), Shape("columns", 20, 1, random), 1, 20, 20);
        var scan = ImageFolder.Scan(folder);
        Assert.Null(scan.CommonSize);
        var ml = new MLContext(seed: 1);
        var error = Assert.Throws<InvalidOperationException>(() => scan.PixelPipeline(ml, grayscale: true));
        Assert.Contains("different sizes", error.Message);
        Assert.Contains("16x16 (3 images", error.Message);
        Assert.Contains("20x20 (2 images", error.Message);

        // With a resize every row has the same length.
        var pixels = scan.PixelPipeline(ml, 12, 12, grayscale: true).Fit(scan.ToDataView(ml.Data)).Transform(scan.ToDataView(ml.Data)).GetColumn<float[]>("Pixels");
        Assert.All(pixels, p => Assert.Equal(144, p.Length));
    }

    [Fact]
    public void MnistWrittenAsPngFoldersHasTheIdxPixels()
    {
        var images = Mnist.Read(MnistSplit.Test, TestData.MnistFolder, maxRows: 30, download: false);
        var folder = Path.Combine(_root, "mnist");
        Assert.Equal(30, ImageFiles.WriteMnistFolders(images, folder));
        Assert.Equal(0, ImageFiles.WriteMnistFolders(images, folder));
        var scan = ImageFolder.Scan(folder);
        Assert.Equal(30, scan.Images.Count);
        Assert.Equal((28, 28), scan.CommonSize);
        var ml = new MLContext(seed: 1);
        var rows = scan.PixelPipeline(ml, grayscale: true).Fit(scan.ToDataView(ml.Data)).Transform(scan.ToDataView(ml.Data));
        var byPath = rows.GetColumn<string>("ImagePath").Zip(rows.GetColumn<float[]>("Pixels")).ToDictionary(p => p.First, p => p.Second);
        for (int i = 0; i < images.Count; i++)
        {
            var path = Path.Combine(folder, images[i].Label.ToString(), $"{i:D5}.png");
            var read = byPath[path];
            for (int p = 0; p < Mnist.PixelCount; p++) Assert.Equal(images[i].Pixels[p], read[p], 5);
        }
    }
}
