// The training half of the model, in Model Builder's layout: the pipeline and the code that trains and saves it.
using Microsoft.ML;
using Microsoft.ML.Transforms.Image;
using MlNetDeep;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Training;

namespace DigitImages;

public partial class DigitModel
{
    public const int Side = 28;

    /// <summary>
    /// Scans a folder-per-class image set (<c>&lt;folder&gt;/&lt;label&gt;/&lt;image&gt;</c>), trains the pipeline on it and saves
    /// the model to <paramref name="outputModelPath"/>; unreadable images are left out and counted.
    /// </summary>
    public static ITransformer Train(string outputModelPath, string imageFolder, int epochs = 3, IProgress<TrainingProgress>? progress = null)
    {
        var ml = new MLContext(seed: 1);
        var scan = ImageFolder.Scan(imageFolder);
        Console.WriteLine($"{scan.Images.Count} images in {scan.Classes.Count} classes under {scan.Root}" +
            (scan.Skipped.Count > 0 ? $"; {scan.Skipped.Count} left out (e.g. {scan.Skipped[0].Path}: {scan.Skipped[0].Reason})" : ""));
        var data = ml.Data.ShuffleRows(scan.ToDataView(ml.Data), seed: 1);
        var model = BuildPipeline(ml, epochs, progress).Fit(data);
        ml.Model.SaveDeep(model, data.Schema, outputModelPath);
        return model;
    }

    /// <summary>
    /// ML.NET's own image transforms (load the file, resize to 28x28, grey, pixels in [0, 1]) into Keras' MNIST CNN;
    /// the label text becomes a key for training and comes back as text in PredictedLabel.
    /// </summary>
    public static IEstimator<ITransformer> BuildPipeline(MLContext ml, int epochs = 3, IProgress<TrainingProgress>? progress = null) =>
        ml.Transforms.Conversion.MapValueToKey(@"Label", @"Label")
            .Append(ml.Transforms.LoadImages(@"Image", imageFolder: null, inputColumnName: @"ImagePath"))
            .Append(ml.Transforms.ResizeImages(@"Image", Side, Side, inputColumnName: @"Image"))
            .Append(ml.Transforms.ConvertToGrayscale(@"Image", @"Image"))
            .Append(ml.Transforms.ExtractPixels(@"Pixels", @"Image", ImagePixelExtractingEstimator.ColorBits.Red, scaleImage: 1f / 255))
            .Append(ml.MulticlassClassification.Trainers.ConvolutionalNetwork(new NeuralNetworkClassifierOptions
            {
                LabelColumnName = @"Label", FeatureColumnName = @"Pixels", InputShape = [1, Side, Side],
                Network = Networks.KerasMnistCnn, Epochs = epochs, BatchSize = 128, Optimizer = new Adam(1e-3), Progress = progress,
            }))
            .Append(ml.Transforms.Conversion.MapKeyToValue(@"PredictedLabel", @"PredictedLabel"));
}
