// Image classification on a pretrained backbone (ML.NET's Model Builder scenario), laid out as Model Builder lays out
// its code: ImageModel.training.cs builds and trains the pipeline from a folder of images (one subfolder per class),
// ImageModel.consumption.cs predicts.
//
//   dotnet run -c Release -- <train-folder> [<test-folder>] [--backbone model.onnx|model.zip] [--epochs N] [--fine-tune N]
//
// Without arguments it needs no download: the backbone is the project's own (models/small-resnet-digits-0-4: a small
// ResNet trained on MNIST digits 0-4, exported to ONNX) and the images are the digits 5-9 of the MNIST sample kept in
// the repository, written as PNG folders into a temporary folder. A torchvision model works the same way: export it
// with torch.onnx.export(model.eval(), torch.rand(1, 3, 224, 224), "resnet18.onnx") and pass --backbone resnet18.onnx.
using ImageClassification;
using Microsoft.ML;
using MlNetDeep.Data;

string Option(string name, string fallback) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault(fallback);
var folders = args.Where((a, i) => !a.StartsWith("--") && (i == 0 || !args[i - 1].StartsWith("--"))).ToList();
var repository = FindRepository();
string backbone = Path.GetFullPath(Option("--backbone", Path.Combine(repository, "models", "small-resnet-digits-0-4", "backbone.onnx")));
int epochs = int.Parse(Option("--epochs", "10")), fineTune = int.Parse(Option("--fine-tune", "0"));
string trainFolder, testFolder;
if (folders.Count > 0)
{
    trainFolder = folders[0];
    testFolder = folders.Count > 1 ? folders[1] : folders[0];
}
else
{
    // Digits 5-9 of the repository's MNIST sample: 40 training images per class, the test images of the sample.
    var sample = Path.Combine(repository, "tests", "MlNetDeep.Tests", "data", "mnist");
    var root = Path.Combine(Path.GetTempPath(), "mlnetdeep-digits-5-9");
    trainFolder = Path.Combine(root, "train");
    testFolder = Path.Combine(root, "test");
    var train = Mnist.Read(MnistSplit.Train, sample, download: false).Where(i => i.Label >= 5).GroupBy(i => i.Label).SelectMany(g => g.Take(40)).ToList();
    var test = Mnist.Read(MnistSplit.Test, sample, download: false).Where(i => i.Label >= 5).ToList();
    ImageFiles.WriteMnistFolders(train, trainFolder);
    ImageFiles.WriteMnistFolders(test, testFolder);
    Console.WriteLine($"Wrote {train.Count} training and {test.Count} test images of digits 5-9 under {root}");
}

ImageModel.ModelPath = Path.GetFullPath("ImageModel.zip");
var progress = new Progress<MlNetDeep.Training.TrainingProgress>(p => { if (p.Completed is { } m) Console.WriteLine($"epoch {m.Epoch + 1} of {p.Epochs}: {m.Describe()}"); });
var model = ImageModel.Train(ImageModel.ModelPath, trainFolder, backbone, epochs, fineTune, progress);
Console.WriteLine($"Saved {ImageModel.ModelPath} (backbone {backbone})");

var ml = new MLContext(seed: 1);
var testScan = ImageFolder.Scan(testFolder, new ImageFolderOptions { MinimumClasses = 1 });
var metrics = ml.MulticlassClassification.Evaluate(model.Transform(testScan.ToDataView(ml.Data)));
Console.WriteLine($"Accuracy on {testScan.Images.Count} images of {testScan.Root}: {metrics.MicroAccuracy:P2}");

foreach (var image in testScan.Images.Take(3))
{
    var best = ImageModel.PredictAllLabels(new ImageModel.ModelInput { ImagePath = image.Path }).Take(3);
    Console.WriteLine($"{Path.GetFileName(image.Path)} (label {image.Label}): {string.Join(", ", best.Select(l => $"{l.Key} {l.Value:P1}"))}");
}

static string FindRepository()
{
    for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        if (File.Exists(Path.Combine(folder.FullName, "MlNetDeep.sln"))) return folder.FullName;
    throw new DirectoryNotFoundException("Run the example from within the MlNetDeep repository, or give a folder and --backbone.");
}
