using System.CommandLine;
using Microsoft.ML;
using MlNetDeep.Models.Common;

namespace MlNetDeep.Cli.Commands;

/// <summary><c>mlnetdeep export-onnx model.zip out.onnx</c>: writes the deep stage of a saved pipeline as an ONNX model.</summary>
internal static class ExportOnnxCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "A model saved by MlNetDeep (SaveDeep / train)." }.ExistingFile(OptionChecks.ModelHelpName);
        var output = new Argument<string>("output") { Description = "The ONNX file to write." };
        var command = new Command("export-onnx", "Export the network of a saved MlNetDeep pipeline to ONNX (for ML.NET's ApplyOnnxModel or any ONNX runtime).") { model, output };
        command.SetAction(result =>
        {
            var ml = new MLContext(seed: 1);
            var pipeline = ml.Model.LoadDeep(result.GetValue(model)!, out _);
            var stages = ((IEnumerable<ITransformer>)pipeline).ToList();
            if (stages.OfType<Models.Recurrent.TextGeneratorTransformer>().ToList() is [var generator])
            {
                generator.SaveAsOnnx(result.GetValue(output)!);
                Console.WriteLine($"Wrote {result.GetValue(output)}: input 'TokenIds' [N, {generator.WindowLength}] (token ids of the last window), " +
                    $"output '{generator.ProbabilitiesColumnName}' [N, {generator.Vocabulary.Size}] (next-token probabilities in the vocabulary's order).");
                return 0;
            }
            var deep = stages.OfType<DeepTransformer>().ToList();
            if (deep.Count != 1) throw new InvalidDataException($"The pipeline has {deep.Count} deep stages; export-onnx needs exactly one.");
            deep[0].SaveAsOnnx(result.GetValue(output)!);
            Console.WriteLine($"Wrote {result.GetValue(output)}: input '{deep[0].FeatureColumnName}' [N, {deep[0].FeatureSize}], output '{deep[0].OutputColumns[0].Name}' [N, {deep[0].OutputWidth}].");
            return 0;
        });
        return command;
    }
}
