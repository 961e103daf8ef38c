using System.Diagnostics;
using MlNetDeep.Data;

namespace MlNetDeep.Tests;

/// <summary>
/// <c>train transfer</c> as a user runs it: a folder of digit PNGs on the project's own backbone (a small ResNet on digits
/// 0-4, models/small-resnet-digits-0-4), the model, curves and misclassified grid written; a class of one image refused.
/// </summary>
public sealed class TransferCliTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "mlnetdeep-transfer-cli-" + Guid.NewGuid().ToString("N"));

    private static string Repository()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
            if (File.Exists(Path.Combine(folder.FullName, "MlNetDeep.sln"))) return folder.FullName;
        throw new DirectoryNotFoundException("The repository root (MlNetDeep.sln) is not above the test binaries.");
    }

    private static string Backbone => Path.Combine(Repository(), "models", "small-resnet-digits-0-4", "backbone.onnx");

    private (int ExitCode, string Output, string Errors) Run(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = _folder };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "MlNetDeep.Cli.dll"));
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var errors = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(240_000), "train transfer did not finish in 4 minutes");
        return (process.ExitCode, output, errors.Result);
    }

    private string Digits(string name, int perClass, int? lonely = null)
    {
        var root = Path.Combine(_folder, name);
        var images = Mnist.Read(MnistSplit.Train, TestData.MnistFolder, download: false).Where(i => i.Label >= 5)
            .GroupBy(i => i.Label).SelectMany(g => g.Take(g.Key == lonely ? 1 : perClass)).ToList();
        ImageFiles.WriteMnistFolders(images, root);
        return root;
    }

    [Fact]
    public void TrainTransferLearnsAFolderOnTheProjectsBackboneAndWritesItsFiles()
    {
        Directory.CreateDirectory(_folder);
        var (exit, output, errors) = Run("train", "transfer", Digits("digits", 16), "--backbone", Backbone, "--epochs", "6", "--fine-tune-epochs", "2",
            "--test-fraction", "0.25", "-o", Path.Combine(_folder, "out"));
        Assert.True(exit == 0, $"exit {exit}\n{output}\n{errors}");
        Assert.Contains("cut after activation_13 ([32, 14, 14])", output);
        Assert.Contains("bottleneck features of every image computed", output);
        Assert.Contains("Test accuracy:", output);
        foreach (var file in new[] { "transfer.zip", "transfer-curves.png" }) Assert.True(File.Exists(Path.Combine(_folder, "out", file)), file);
    }

    [Fact]
    public void AClassWithOneImageAndAWrongNormalisationAreRefusedBeforeTraining()
    {
        Directory.CreateDirectory(_folder);
        var (exit, output, errors) = Run("train", "transfer", Digits("lonely", 6, lonely: 7), "--backbone", Backbone, "-o", Path.Combine(_folder, "out"));
        Assert.Equal(1, exit);
        Assert.Contains("'7': 1", errors);
        Assert.DoesNotContain("epoch", output);
        (exit, _, errors) = Run("train", "transfer", Digits("grey", 3), "--backbone", Backbone, "--normalize", "imagenet");
        Assert.Equal(1, exit);
        Assert.Contains("needs a colour backbone", errors);
    }

    public void Dispose()
    {
        if (Directory.Exists(_folder)) Directory.Delete(_folder, recursive: true);
    }
}
