using System.CommandLine;
using System.Reflection;
using System.Runtime.InteropServices;
using MlNetDeep.Cli.Commands;

namespace MlNetDeep.Cli;

/// <summary>
/// The mlnetdeep command tree and its one error policy, the same for every command:
/// <list type="bullet">
/// <item>a malformed command line (an unknown option, a value that does not parse, a value out of range, a file that
/// does not exist) is found while parsing, before anything runs: one line <c>error: ...</c> naming the option, exit code
/// <see cref="UsageError"/>;</item>
/// <item>a failure caused by the input or the environment (a file that is not a model, unreadable data, no permission,
/// a full disk, no GPU, a port in use): one line <c>error: ...</c>, exit code <see cref="Failed"/>;</item>
/// <item>any other exception is unexpected: one line <c>error: unexpected ...</c>, exit code <see cref="Unexpected"/>;</item>
/// <item>Ctrl+C (SIGINT) or SIGTERM: the command's cancellation token is cancelled; a command that does not stop within
/// <see cref="InterruptGrace"/> is ended; one line <c>error: interrupted ...</c>, exit code 130 (SIGTERM: 143).</item>
/// </list>
/// The global <c>--verbose</c> option adds the exception's stack trace after the line.
/// </summary>
internal static class CliApp
{
    public const int Failed = 1, UsageError = 2, Unexpected = 70, Interrupted = 130, Terminated = 143;

    /// <summary>How long a command has to stop after Ctrl+C before the process ends anyway.</summary>
    public static readonly TimeSpan InterruptGrace = TimeSpan.FromSeconds(2);

    public static Option<bool> Verbose() => new("--verbose") { Description = "On a failure, print the exception's stack trace after the error line.", Recursive = true };

    /// <summary>Every command of the tool.</summary>
    public static RootCommand Build()
    {
        var root = new RootCommand("mlnetdeep: deep learning as ML.NET pipelines (TorchSharp engine).");
        root.Options.Add(Verbose());
        var train = new Command("train", "Train a model and evaluate it.");
        train.Subcommands.Add(TrainMnistCommand.Create());
        train.Subcommands.Add(ImageFolderCommands.Train());
        train.Subcommands.Add(TransferCommands.Train());
        root.Subcommands.Add(train);
        root.Subcommands.Add(BenchmarkCommand.Create());
        root.Subcommands.Add(ExportOnnxCommand.Create());
        root.Subcommands.Add(ImageFolderCommands.Export());
        root.Subcommands.Add(ServingCommands.Serve());
        root.Subcommands.Add(ServingCommands.Score());
        root.Subcommands.Add(ClusterCommands.Create());
        foreach (var command in CourseCommands.Create()) root.Subcommands.Add(command);
        var autoencoder = new Command("autoencoder", "Autoencoders: dense, convolutional, denoising and variational.");
        autoencoder.Subcommands.Add(AutoencoderCommand.Create());
        root.Subcommands.Add(autoencoder);
        var gan = new Command("gan", "Generative adversarial networks: dense GAN, DCGAN, conditional GAN.");
        gan.Subcommands.Add(GanCommand.Create());
        root.Subcommands.Add(gan);
        root.Subcommands.Add(TextCommands.Create());
        root.Subcommands.Add(ReinforcementCommands.Create());
        root.Subcommands.Add(VisionCommands.Create());
        root.Subcommands.Add(OnnxCommands.Create());
        root.Subcommands.Add(AnomalyCommands.Create());
        var series = new Command("series", "Time series: forecasting with an LSTM next to ML.NET's regressors.");
        series.Subcommands.Add(SequenceCommands.Forecast());
        root.Subcommands.Add(series);
        return root;
    }

    /// <summary>Parses and runs <paramref name="args"/> under the error policy; the process's exit code.</summary>
    public static int Run(string[] args)
    {
        // Known before parsing, so that a failure anywhere (even on another thread) can honour it.
        bool verbose = args.Contains("--verbose");
        AppDomain.CurrentDomain.UnhandledException += (_, e) =>
        {
            // An exception on another thread would end the process with a stack trace and exit code 134.
            int code = Report(e.ExceptionObject as Exception ?? new Exception(e.ExceptionObject?.ToString()), verbose);
            Environment.Exit(code);
        };
        var root = Build();
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0) return ParseFailure(root, parsed, args);
        using var interruption = Interruption.Listen();
        try
        {
            int code = parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null }, interruption.Token)
                .GetAwaiter().GetResult();
            return interruption.Signalled ? interruption.Finish() : code;
        }
        catch (Exception) when (interruption.Signalled)
        {
            return interruption.Finish();
        }
        catch (Exception ex)
        {
            return Report(ex, verbose);
        }
    }

    /// <summary>
    /// A command line that does not parse: its errors on one line. A group command given alone (<c>mlnetdeep</c>,
    /// <c>mlnetdeep rl</c>) shows its help instead.
    /// </summary>
    private static int ParseFailure(RootCommand root, ParseResult parsed, string[] args)
    {
        var command = parsed.CommandResult.Command;
        bool bareGroup = command.Action is null && command.Subcommands.Count > 0 && parsed.UnmatchedTokens.Count == 0 && parsed.Errors.Count == 1
            && args.All(a => !a.StartsWith('-'));
        if (bareGroup)
        {
            root.Parse([.. args, "--help"]).Invoke();
            return UsageError;
        }
        Console.Error.WriteLine("error: " + string.Join(" ", parsed.Errors.Select(e => OneLine(e.Message)).Distinct()));
        return UsageError;
    }

    /// <summary>Writes the error line (and, verbose, the stack trace) for <paramref name="exception"/>; the exit code.</summary>
    internal static int Report(Exception exception, bool verbose)
    {
        var cause = Unwrap(exception);
        bool expected = IsInputOrEnvironment(cause);
        string message = OneLine(cause is ArgumentException { ParamName: { } name } ? cause.Message.Replace($" (Parameter '{name}')", "") : cause.Message);
        if (message.Length == 0) message = cause.GetType().Name;
        Console.Error.WriteLine(expected
            ? $"error: {message}"
            : $"error: unexpected {cause.GetType().Name}: {message}{(verbose ? "" : " (--verbose prints the stack trace)")}");
        if (verbose) Console.Error.WriteLine(exception);
        return expected ? Failed : Unexpected;
    }

    /// <summary>The exception that says what happened, inside the wrappers of tasks, reflection and type initialisers.</summary>
    internal static Exception Unwrap(Exception exception)
    {
        while (true)
        {
            switch (exception)
            {
                case AggregateException aggregate when aggregate.Flatten().InnerExceptions is { Count: > 0 } inner
                                                      && (inner.Count == 1 || inner.All(e => IsInputOrEnvironment(Unwrap(e)))):
                    // Parallel work that failed the same way on several threads (each writing to a folder it may not): the first says why.
                    exception = inner[0];
                    break;
                case TargetInvocationException { InnerException: { } inner }:
                    exception = inner;
                    break;
                case TypeInitializationException { InnerException: { } inner }:
                    exception = inner;
                    break;
                default:
                    return exception;
            }
        }
    }

    /// <summary>
    /// Whether an exception reports a problem with the user's input or environment rather than a fault of the tool:
    /// wrong values and data (argument, format, overflow, invalid data or JSON, unsupported input), files and the system
    /// (I/O, permission, network, a process that cannot start, a native library that cannot load, memory), and the
    /// model's own checks (invalid operation: e.g. no GPU, a column that is missing). libtorch's errors
    /// (<see cref="ExternalException"/>) count too: a CUDA device out of memory, a saved network that does not fit its input.
    /// </summary>
    internal static bool IsInputOrEnvironment(Exception exception) => exception switch
    {
        ObjectDisposedException => false,
        ArgumentException or FormatException or OverflowException or InvalidDataException or System.Text.Json.JsonException or NotSupportedException => true,
        IOException or UnauthorizedAccessException or System.Security.SecurityException or TimeoutException => true,
        System.Net.Http.HttpRequestException or System.Net.Sockets.SocketException or ExternalException => true,
        DllNotFoundException or BadImageFormatException or OutOfMemoryException or InsufficientMemoryException => true,
        OperationCanceledException or InvalidOperationException => true,
        _ => false,
    };

    /// <summary>The first line of a message (libtorch's errors go on with a C++ backtrace), trimmed.</summary>
    internal static string OneLine(string message) =>
        message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "";

    /// <summary>
    /// SIGINT (Ctrl+C) and SIGTERM: cancel the command's token, give it <see cref="InterruptGrace"/> to stop, then end the
    /// process; a second signal ends it at once. Either way one line says so and the exit code is 130 (SIGTERM: 143).
    /// </summary>
    private sealed class Interruption : IDisposable
    {
        private readonly CancellationTokenSource _cancellation = new();
        private readonly List<IDisposable> _registrations = [];
        private int _signals, _reported;
        private int _exitCode = Interrupted;

        public CancellationToken Token => _cancellation.Token;
        public bool Signalled => Volatile.Read(ref _signals) > 0;

        public static Interruption Listen()
        {
            var interruption = new Interruption();
            foreach (var signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM })
            {
                try { interruption._registrations.Add(PosixSignalRegistration.Create(signal, interruption.OnSignal)); }
                catch (PlatformNotSupportedException) { }
            }
            return interruption;
        }

        private void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true; // the process goes on until the command stops or the grace time ends
            if (Interlocked.Increment(ref _signals) > 1)
            {
                Environment.Exit(Finish());
                return;
            }
            _exitCode = context.Signal == PosixSignal.SIGTERM ? Terminated : Interrupted;
            _cancellation.Cancel();
            _ = Task.Delay(InterruptGrace).ContinueWith(_ => Environment.Exit(Finish()), TaskScheduler.Default);
        }

        /// <summary>Writes the one line (once) and returns the exit code.</summary>
        public int Finish()
        {
            if (Interlocked.Exchange(ref _reported, 1) == 0)
            {
                if (!Console.IsOutputRedirected) Console.Out.Write("\u001b[?25h"); // a live progress display hides the cursor
                Console.Error.WriteLine(_exitCode == Terminated ? "error: terminated (SIGTERM)" : "error: interrupted (Ctrl+C)");
            }
            return _exitCode;
        }

        public void Dispose()
        {
            foreach (var registration in _registrations) registration.Dispose();
            _cancellation.Dispose();
        }
    }
}
