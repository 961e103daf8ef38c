// An app that trains from an image folder: PNGs drawn with the app's own SkiaSharp, read by ImageFolder.Scan (which
// inspects them with SkiaSharp) and by ML.NET's LoadImages -> ResizeImages -> ExtractPixels (ImageAnalytics, on the
// same SkiaSharp), then a small CNN. Fails when the app's SkiaSharp and ML.NET's image transforms do not agree.
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Training;
using SkiaSharp;

var root = Path.Combine(Path.GetTempPath(), "consumer-images-" + Guid.NewGuid().ToString("N"));
try
{
    const int side = 12;
    foreach (var kind in new[] { "bars", "columns" })
    {
        Directory.CreateDirectory(Path.Combine(root, kind));
        for (int i = 0; i < 12; i++)
        {
            using var bitmap = new SKBitmap(side, side);
            for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++)
            {
                bool on = Math.Abs((kind == "bars" ? y : x) - (2 + i % 8)) <= 1;
                byte level = (byte)(on ? 230 : 20);
                bitmap.SetPixel(x, y, new SKColor(level, level, level));
            }
            using var png = bitmap.Encode(SKEncodedImageFormat.Png, 100);
            using var file = File.Create(Path.Combine(root, kind, $"{i:D2}.png"));
            png.SaveTo(file);
        }
    }

    var ml = new MLContext(seed: 1);
    var folder = ImageFolder.Scan(root);
    if (folder.Images.Count != 24 || folder.Skipped.Count != 0 || folder.CommonSize != (side, side))
        throw new InvalidOperationException($"the scan found {folder.Images.Count} images ({folder.Skipped.Count} skipped), size {folder.CommonSize}");
    var data = folder.ToDataView(ml.Data);
    var model = folder.PixelPipeline(ml, grayscale: true)
        .Append(ml.Transforms.Conversion.MapValueToKey("Label"))
        .Append(ml.MulticlassClassification.Trainers.ConvolutionalNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", InputShape = folder.InputShape(grayscale: true), Epochs = 20, BatchSize = 8, Optimizer = new Adam(1e-2),
            Network = new NetworkSpec([new Conv2D(4, 3, Activation: ActivationKind.ReLU), new MaxPool2D(2), new Flatten(), new Dense(Dense.TaskOutputs)]),
        }))
        .Fit(data);
    var scored = model.Transform(data);
    var pixels = scored.GetColumn<float[]>("Pixels").First();
    if (pixels.Length != side * side || pixels.Min() > 0.1f || pixels.Max() < 0.9f)
        throw new InvalidOperationException($"ML.NET's image transforms read {pixels.Length} values in [{pixels.Min()}, {pixels.Max()}]");
    var accuracy = ml.MulticlassClassification.Evaluate(scored).MicroAccuracy;
    if (accuracy < 0.9) throw new InvalidOperationException($"training accuracy {accuracy:P1} on bars against columns");
    Console.WriteLine($"images ok: {folder.Images.Count} PNGs through ImageFolder and ML.NET's image transforms, training accuracy {accuracy:P0}; " +
        $"ML.NET {Version(typeof(MLContext))}, SkiaSharp {Version(typeof(SKBitmap))}");
}
finally
{
    if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
}

// The package version an assembly was built as (its informational version without the commit).
static string Version(Type type) =>
    (type.Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
        .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion ?? "?").Split('+')[0];
