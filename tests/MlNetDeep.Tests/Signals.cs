namespace MlNetDeep.Tests;

/// <summary>
/// Which signal interrupts a child process here. A process started in the background of a non-interactive shell (as a
/// CI job may start the tests) ignores SIGINT, and its children inherit that: the tool never sees a Ctrl+C there, as a
/// background job should not. Tests of Ctrl+C then send SIGTERM, which takes the same path with its own exit code.
/// </summary>
internal static class Signals
{
    /// <summary>True when this process ignores SIGINT (bit 2 of SigIgn in /proc/self/status).</summary>
    public static bool InterruptIgnored { get; } = ReadIgnored();

    /// <summary>(signal number, the tool's exit code, the tool's line) for interrupting a child.</summary>
    public static (int Signal, int ExitCode, string Line) Interrupt => InterruptIgnored
        ? (15, Cli.CliApp.Terminated, "error: terminated (SIGTERM)")
        : (2, Cli.CliApp.Interrupted, "error: interrupted (Ctrl+C)");

    private static bool ReadIgnored()
    {
        try
        {
            var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
            return line is not null && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & (1UL << 1)) != 0;
        }
        catch (IOException)
        {
            return false;
        }
    }
}
