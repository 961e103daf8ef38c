using MlNetDeep.Build;
using MlNetDeep.Native;
using TorchSharp;


namespace MlNetDeep.Tests;

/// <summary>A fact about Linux's ELF shim: reported as skipped elsewhere, never passed without asserting.</summary>
public sealed class LinuxFactAttribute : FactAttribute
{
    public LinuxFactAttribute()
    {
        if (!OperatingSystem.IsLinux()) Skip = "The TorchSharp shim checked here is the Linux build (an ELF file).";
    }
}

public class TorchSharpLoadingTests
{
    [Fact]
    public void TorchSharpLoadsAndComputes()
    {
        TorchRuntime.EnsureLoaded();
        using var a = torch.ones(3, 4);
        using var b = torch.ones(4, 2);
        using var c = a.matmul(b);
        Assert.Equal(new long[] { 3, 2 }, c.shape);
        Assert.Equal(4f, c[0, 0].item<float>());
    }

    [LinuxFact]
    public void BuildOutputCarriesAPatchedShimWhereTheHostNeedsIt()
    {
        var shim = Directory.EnumerateFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories).FirstOrDefault();
        Assert.NotNull(shim);
        var bytes = File.ReadAllBytes(shim!);
        var result = ElfVersionNeedPatcher.MakeVersionNeedWeak(bytes, "GLIBCXX_3.4.32");
        if (ElfVersionNeedPatcher.HostLibStdCxxHas("GLIBCXX_3.4.32"))
            Assert.NotEqual(ElfPatchResult.NotElf64, result);
        else
            Assert.Equal(ElfPatchResult.AlreadyWeak, result);
    }

    [LinuxFact]
    public void PatcherSetsOnlyTheWeakFlagOfTheNamedVersion()
    {
        var shim = Directory.EnumerateFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories).FirstOrDefault();
        Assert.NotNull(shim);
        var bytes = File.ReadAllBytes(shim!);
        var copy = (byte[])bytes.Clone();
        var first = ElfVersionNeedPatcher.MakeVersionNeedWeak(copy, "GLIBCXX_3.4.32");
        Assert.True(first is ElfPatchResult.Patched or ElfPatchResult.AlreadyWeak);
        Assert.Equal(ElfPatchResult.AlreadyWeak, ElfVersionNeedPatcher.MakeVersionNeedWeak(copy, "GLIBCXX_3.4.32"));
        Assert.True(bytes.Zip(copy).Count(p => p.First != p.Second) <= 1, "the patch changes at most one byte");
        Assert.Equal(ElfPatchResult.VersionNotNeeded, ElfVersionNeedPatcher.MakeVersionNeedWeak((byte[])bytes.Clone(), "NO_SUCH_VERSION_1.0"));
        Assert.Equal(ElfPatchResult.NotElf64, ElfVersionNeedPatcher.MakeVersionNeedWeak(new byte[100], "GLIBCXX_3.4.32"));
    }

    [Fact]
    public void DemandingAnAbsentGpuIsAClearError()
    {
        // The first GPU index this machine lacks: 0 without CUDA, the device count with it.
        int absent = TorchRuntime.CudaAvailable ? torch.cuda.device_count() : 0;
        var ex = Assert.Throws<InvalidOperationException>(() => TorchRuntime.SelectDevice(absent, fallbackToCpu: false));
        Assert.Contains($"MLContext.GpuDeviceId = {absent}", ex.Message);
        Assert.Contains("FallbackToCpu", ex.Message);
        Assert.Equal(DeviceType.CPU, TorchRuntime.SelectDevice(absent, fallbackToCpu: true).type);
        Assert.Equal(DeviceType.CPU, TorchRuntime.SelectDevice(null, fallbackToCpu: false).type);
        if (TorchRuntime.CudaAvailable) Assert.Equal(DeviceType.CUDA, TorchRuntime.SelectDevice(0, fallbackToCpu: false).type);
    }
}

public class NativeShimLoaderTests
{
    /// <summary>TorchSharp's shim as the package ships it (unpatched), from the NuGet cache the build restored from.</summary>
    private static string OriginalShim()
    {
        var root = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var path = Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(path), $"TorchSharp's shim is not in the NuGet cache at {path}");
        return path;
    }

    [Fact]
    public void AnUnpatchedShimGetsOnePatchedCopyInTheCache()
    {
        var original = OriginalShim();
        var cache = Directory.CreateTempSubdirectory("mlnetdeep-native-").FullName;
        try
        {
            var copy = NativeShimLoader.PatchedCopy(original, cache);
            Assert.NotNull(copy);
            Assert.StartsWith(cache, copy);
            var before = File.ReadAllBytes(original);
            var after = File.ReadAllBytes(copy!);
            Assert.Equal(before.Length, after.Length);
            Assert.Equal(1, before.Zip(after).Count(p => p.First != p.Second));
            Assert.Equal(ElfPatchResult.AlreadyWeak, ElfVersionNeedPatcher.MakeVersionNeedWeak(after, "GLIBCXX_3.4.32"));
            var written = File.GetLastWriteTimeUtc(copy!);
            Assert.Equal(copy, NativeShimLoader.PatchedCopy(original, cache));
            Assert.Equal(written, File.GetLastWriteTimeUtc(copy!));
            Assert.Single(Directory.EnumerateFiles(cache, "*", SearchOption.AllDirectories));
            // A shim that is already patched (this repository's own build outputs) needs no copy.
            Assert.Null(NativeShimLoader.PatchedCopy(copy!, cache));
        }
        finally { Directory.Delete(cache, recursive: true); }
    }

    [Fact]
    public void TheLoaderFindsTheShimTorchSharpLoads()
    {
        TorchRuntime.EnsureLoaded();
        var shim = NativeShimLoader.FindShim();
        Assert.NotNull(shim);
        Assert.EndsWith("libLibTorchSharp.so", shim);
        // This repository's build patches its outputs, so the loader had nothing to do here (or the host needs no fix).
        Assert.True(TorchRuntime.ShimOutcome is NativeShimLoader.Outcome.AlreadyPatched or NativeShimLoader.Outcome.NotNeeded, TorchRuntime.ShimOutcome.ToString());
    }
}
