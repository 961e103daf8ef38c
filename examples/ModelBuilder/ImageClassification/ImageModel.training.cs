// The training half of the model, in Model Builder's layout: the pipeline and the code that trains and saves it.
using Microsoft.ML;
using Microsoft.ML.Transforms.Image;
using MlNetDeep;
using MlNetDeep.Data;
using MlNetDeep.Models.Transfer;
using MlNetDeep.Networks;
using MlNetDeep.Training;

namespace ImageClassification;

public partial class ImageModel
{
    /// <summary>
    /// Scans a folder-per-class image set (<c>&lt;folder&gt;/&lt;label&gt;/&lt;image&gt;</c>), trains a classifier on the pretrained
    /// backbone in <paramref name="backbonePath"/> (an ONNX file, or a model saved by MlNetDeep) and saves the model to
    /// <paramref name="outputModelPath"/>. Unreadable images are left out and counted.
    /// </summary>
    public static ITransformer Train(string outputModelPath, string imageFolder, string backbonePath, int epochs = 10, int fineTuneEpochs = 0,
        IProgress<TrainingProgress>? progress = null)
    {
        var ml = new MLContext(seed: 1);
        var scan = ImageFolder.Scan(imageFolder);
        Console.WriteLine($"{scan.Images.Count} images in {scan.Classes.Count} classes under {scan.Root}" +
            (scan.Skipped.Count > 0 ? $"; {scan.Skipped.Count} left out (e.g. {scan.Skipped[0].Path}: {scan.Skipped[0].Reason})" : ""));
        var data = ml.Data.ShuffleRows(scan.ToDataView(ml.Data), seed: 1);
        var backbone = backbonePath.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase)
            ? TransferBackbone.FromOnnx(backbonePath)
            : TransferBackbone.FromModelFile(ml, backbonePath);
        var model = BuildPipeline(ml, backbone, epochs, fineTuneEpochs, progress).Fit(data);
        ml.Model.SaveDeep(model, data.Schema, outputModelPath);
        return model;
    }

    /// <summary>
    /// ML.NET's own image transforms (load the file, resize to the backbone's size, grey or colour as it reads, pixels in
    /// [0, 1]) into the transfer-learning classifier: the backbone frozen under a new head (its features cached), then,
    /// when asked, fine-tuned; the label text becomes a key for training and comes back as text in PredictedLabel.
    /// </summary>
    public static IEstimator<ITransformer> BuildPipeline(MLContext ml, TransferBackbone backbone, int epochs = 10, int fineTuneEpochs = 0,
        IProgress<TrainingProgress>? progress = null)
    {
        int channels = backbone.InputShape[0], height = backbone.InputShape[1], width = backbone.InputShape[2];
        var pixels = ml.Transforms.Conversion.MapValueToKey(@"Label", @"Label")
            .Append(ml.Transforms.LoadImages(@"Image", imageFolder: null, inputColumnName: @"ImagePath"))
            .Append(ml.Transforms.ResizeImages(@"Image", width, height, inputColumnName: @"Image"));
        var extract = channels == 1
            ? pixels.Append(ml.Transforms.ConvertToGrayscale(@"Image", @"Image"))
                .Append(ml.Transforms.ExtractPixels(@"Pixels", @"Image", ImagePixelExtractingEstimator.ColorBits.Red, scaleImage: 1f / 255))
            : pixels.Append(ml.Transforms.ExtractPixels(@"Pixels", @"Image", scaleImage: 1f / 255));
        return extract
            .Append(ml.MulticlassClassification.Trainers.TransferLearning(new TransferLearningOptions
            {
                LabelColumnName = @"Label", FeatureColumnName = @"Pixels", Backbone = backbone,
                // torchvision's backbones expect ImageNet's normalisation; the project's own reads pixels in [0, 1].
                Normalization = channels == 3 ? ImageNormalization.ImageNet : null,
                // A small grey backbone's last block is worth reading whole (where the strokes are); a large colour
                // backbone's is pooled, as Keras and Model Builder do (docs/transfer-learning.md compares the two).
                Network = channels == 1 ? new NetworkSpec([new Flatten(), new Dense(Dense.TaskOutputs)]) { Name = "flatten-head" } : TransferLearningOptions.DefaultHead,
                Epochs = epochs, FineTuneEpochs = fineTuneEpochs, BatchSize = 16, Optimizer = new Adam(3e-3), Progress = progress,
            }))
            .Append(ml.Transforms.Conversion.MapKeyToValue(@"PredictedLabel", @"PredictedLabel"));
    }
}
