using System.CommandLine;

namespace MlNetDeep.Cli.Commands;

internal static class BenchmarkCommand
{
    public static Command Create()
    {
        var command = new Command("benchmark", "Throughput of the MlNetDeep trainer against a plain TorchSharp loop (and PyTorch where python3 has torch).");
        command.SetAction(_ => { Console.Error.WriteLine("benchmark: not built yet"); return 2; });
        return command;
    }
}
