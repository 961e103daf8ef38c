using System.CommandLine;
using Microsoft.ML;

namespace MlNetDeep.Cli.Commands;

/// <summary>Options shared by the commands: device, seed, output folder.</summary>
internal sealed class CommonOptions
{
    public Option<int?> Gpu { get; } = new Option<int?>("--gpu") { Description = "CUDA device index to train on (default: CPU)." }.AtLeast(0);
    public Option<bool> NoFallback { get; } = new("--no-fallback") { Description = "Fail instead of using the CPU when the GPU is not available." };
    public Option<int> Seed { get; } = new("--seed") { Description = "Random seed (MLContext seed).", DefaultValueFactory = _ => 1 };
    public Option<string> Output { get; } = new("--output", "-o") { Description = "Folder for models, plots and logs.", DefaultValueFactory = _ => "out" };

    public void AddTo(Command command)
    {
        command.Options.Add(Gpu);
        command.Options.Add(NoFallback);
        command.Options.Add(Seed);
        command.Options.Add(Output);
    }

    public MLContext CreateContext(ParseResult result) => new(seed: result.GetValue(Seed))
    {
        GpuDeviceId = result.GetValue(Gpu),
        FallbackToCpu = !result.GetValue(NoFallback),
    };

    public string OutputFolder(ParseResult result)
    {
        var folder = result.GetValue(Output)!;
        Directory.CreateDirectory(folder);
        return folder;
    }
}
