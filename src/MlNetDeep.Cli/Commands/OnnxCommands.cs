using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Persistence.Onnx;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// <c>mlnetdeep onnx import model.onnx [--output model.zip] [--labels a,b,c]</c>: reads an ONNX network, prints its
/// summary (layers, the layers each reads, shapes, parameters) and, with --output, saves it as an MlNetDeep classifier
/// (SaveDeep) that <c>score</c>, <c>serve</c> and LoadDeep read.
/// </summary>
internal static class OnnxCommands
{
    public static Command Create()
    {
        var onnx = new Command("onnx", "ONNX networks a user brings: import, summary, save as an MlNetDeep model.");
        onnx.Subcommands.Add(Import());
        return onnx;
    }

    private static Command Import()
    {
        var file = new Argument<string>("file") { Description = "The ONNX file (e.g. a torchvision model exported with torch.onnx.export)." };
        var output = new Option<string?>("--output", "-o") { Description = "Save the network as an MlNetDeep classifier model (zip) here." };
        var labels = new Option<string?>("--labels") { Description = "Class names, comma-separated, in the order of the network's outputs." };
        var labelsFile = new Option<string?>("--labels-file") { Description = "A text file of class names, one per line, in the order of the network's outputs." };
        var column = new Option<string>("--feature-column") { Description = "The input column the saved model reads.", DefaultValueFactory = _ => "Features" };
        var command = new Command("import", "Import an ONNX network: print its layers, shapes and parameters; optionally save it as an MlNetDeep model.") { file, output, labels, labelsFile, column };
        command.SetAction(result =>
        {
            var path = result.GetValue(file)!;
            var clock = Stopwatch.StartNew();
            string? outputPath = result.GetValue(output);
            if (outputPath is null)
            {
                using var imported = OnnxImporter.Import(path);
                Console.WriteLine($"Imported {Path.GetFileName(path)} in {clock.Elapsed.TotalSeconds:F2} s.");
                Console.Write(imported.Network.Summary(imported.InputShape));
                return 0;
            }
            var ml = new MLContext(seed: 1);
            var names = ReadLabels(result.GetValue(labels), result.GetValue(labelsFile));
            var featureColumn = result.GetValue(column)!;
            using var classifier = ml.Model.ImportOnnxClassifier(path, featureColumn, names);
            Console.WriteLine($"Imported {Path.GetFileName(path)} in {clock.Elapsed.TotalSeconds:F2} s.");
            Console.Write(classifier.Network.Summary(classifier.InputShape));
            var schema = new DataViewSchema.Builder();
            schema.AddColumn(featureColumn, new VectorDataViewType(NumberDataViewType.Single, classifier.FeatureSize));
            ml.Model.SaveDeep(classifier, schema.ToSchema(), outputPath);
            Console.WriteLine($"Saved {outputPath}: reads '{featureColumn}' ({classifier.FeatureSize:N0} values: [{string.Join(", ", classifier.InputShape)}]), " +
                $"writes Score ({classifier.ClassCount} classes) and PredictedLabel.");
            return 0;
        });
        return command;
    }

    private static string[]? ReadLabels(string? labels, string? file)
    {
        if (labels is not null && file is not null) throw new ArgumentException("Give --labels or --labels-file, not both.");
        if (file is not null && !File.Exists(file)) throw new FileNotFoundException($"The labels file '{file}' does not exist.", file);
        if (string.IsNullOrWhiteSpace(labels) && file is null) return null;
        var names = file is not null
            ? File.ReadAllLines(file).Select(l => l.Trim()).Where(l => l.Length > 0).ToArray()
            : labels!.Split(',').Select(l => l.Trim()).ToArray();
        if (names.Length == 0) throw new ArgumentException($"The labels file '{file}' names no class.");
        if (names.Any(string.IsNullOrEmpty)) throw new ArgumentException("--labels has an empty class name.");
        if (names.Distinct().Count() != names.Length) throw new ArgumentException("--labels names a class twice.");
        return names;
    }
}
