// An image classification app laid out as Model Builder lays out its code: DigitModel.training.cs builds and trains the
// pipeline from a folder of images (one subfolder per class), DigitModel.consumption.cs predicts.
//
//   dotnet run -c Release -- <train-folder> [<test-folder>] [--epochs N]
//
// Without folders it uses MNIST as PNG folders under the MlNetDeep data folder, written there from the IDX files on
// first use (`mlnetdeep images export-mnist` writes the same).
using DigitImages;
using Microsoft.ML;
using MlNetDeep.Data;

var folders = args.Where(a => !a.StartsWith("--")).ToList();
int epochs = args.SkipWhile(a => a != "--epochs").Skip(1).Select(int.Parse).FirstOrDefault(3);
string trainFolder, testFolder;
if (folders.Count > 0)
{
    trainFolder = folders[0];
    testFolder = folders.Count > 1 ? folders[1] : folders[0];
}
else
{
    var root = Path.Combine(Path.GetDirectoryName(Mnist.DefaultFolder)!, "mnist-png");
    trainFolder = Path.Combine(root, "train");
    testFolder = Path.Combine(root, "test");
    foreach (var (split, folder) in new[] { (MnistSplit.Train, trainFolder), (MnistSplit.Test, testFolder) })
        if (!Directory.Exists(folder))
        {
            Console.WriteLine($"Writing MNIST {split} as PNG folders under {folder} ...");
            ImageFiles.WriteMnistFolders(Mnist.Read(split), folder);
        }
}

DigitModel.ModelPath = Path.GetFullPath("DigitModel.zip");
var progress = new Progress<MlNetDeep.Training.TrainingProgress>(p => { if (p.Completed is { } m) Console.WriteLine($"epoch {m.Epoch + 1} of {p.Epochs}: {m.Describe()}"); });
var model = DigitModel.Train(DigitModel.ModelPath, trainFolder, epochs, progress);
Console.WriteLine($"Saved {DigitModel.ModelPath}");

var ml = new MLContext(seed: 1);
var test = ImageFolder.Scan(testFolder, new ImageFolderOptions { MinimumClasses = 1 });
var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test.ToDataView(ml.Data)));
Console.WriteLine($"Accuracy on {test.Images.Count} images of {test.Root}: {metrics.MicroAccuracy:P2}");

foreach (var image in test.Images.Take(3))
{
    var best = DigitModel.PredictAllLabels(new DigitModel.ModelInput { ImagePath = image.Path }).Take(3);
    Console.WriteLine($"{Path.GetFileName(image.Path)} (label {image.Label}): {string.Join(", ", best.Select(l => $"{l.Key} {l.Value:P1}"))}");
}
