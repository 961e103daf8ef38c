using MlNetDeep.Build;
using MlNetDeep.Native;
using TorchSharp;

namespace MlNetDeep.Tests;

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

    [Fact]
    public void BuildOutputCarriesAPatchedShimWhereTheHostNeedsIt()
    {
        var shim = Directory.EnumerateFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories).FirstOrDefault();
        if (!OperatingSystem.IsLinux()) return;
        Assert.NotNull(shim);
        var bytes = File.ReadAllBytes(shim!);
        var result = ElfVersionNeedPatcher.MakeVersionNeedWeak(bytes, "GLIBCXX_3.4.32");
        if (ElfVersionNeedPatcher.HostLibStdCxxHas("GLIBCXX_3.4.32"))
            Assert.NotEqual(ElfPatchResult.NotElf64, result);
        else
            Assert.Equal(ElfPatchResult.AlreadyWeak, result);
    }

    [Fact]
    public void PatcherSetsOnlyTheWeakFlagOfTheNamedVersion()
    {
        var shim = Directory.EnumerateFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories).FirstOrDefault();
        if (shim is null) return;
        var bytes = File.ReadAllBytes(shim);
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
        if (TorchRuntime.CudaAvailable) return;
        var ex = Assert.Throws<InvalidOperationException>(() => TorchRuntime.SelectDevice(0, fallbackToCpu: false));
        Assert.Contains("FallbackToCpu", ex.Message);
        Assert.Equal(DeviceType.CPU, TorchRuntime.SelectDevice(0, fallbackToCpu: true).type);
        Assert.Equal(DeviceType.CPU, TorchRuntime.SelectDevice(null, fallbackToCpu: false).type);
    }
}
