using System.Runtime.InteropServices;
using System.Security.Cryptography;
using MlNetDeep.Build;
using TorchSharp;

namespace MlNetDeep.Native;

/// <summary>
/// Makes TorchSharp's native shim (libLibTorchSharp.so) load in any app that references MlNetDeep, not only in this
/// repository's builds. On Linux hosts whose libstdc++ lacks GLIBCXX_3.4.32 (Debian 12), the shim shipped by TorchSharp
/// 0.107.0 is refused by the loader although it never uses that version. When the shim found next to TorchSharp is
/// unpatched, a patched copy (one bit in <c>.gnu.version_r</c>) is written once into a cache folder and loaded before
/// TorchSharp looks for it; TorchSharp's own load then finds it by its soname. Hosts that do not need the fix, and
/// outputs already patched at build time, are left untouched.
/// </summary>
internal static class NativeShimLoader
{
    internal const string ShimFileName = "libLibTorchSharp.so";
    internal const string MissingVersion = "GLIBCXX_3.4.32";

    /// <summary>What <see cref="Prepare"/> did, for logs and tests.</summary>
    public enum Outcome { NotNeeded, AlreadyPatched, PreloadedPatchedCopy, ShimNotFound }

    /// <summary>Environment variable naming the folder that holds patched copies (default: the user's cache folder).</summary>
    public const string CacheVariable = "MLNETDEEP_NATIVE_CACHE";

    /// <summary>
    /// Prepares the shim for loading: on a host that needs the fix, finds the shim TorchSharp will load and, when it is
    /// unpatched, loads a patched copy from the cache. Call before the first TorchSharp call (TorchRuntime does).
    /// </summary>
    public static Outcome Prepare()
    {
        if (!OperatingSystem.IsLinux() || ElfVersionNeedPatcher.HostLibStdCxxHas(MissingVersion)) return Outcome.NotNeeded;
        var shim = FindShim();
        if (shim is null) return Outcome.ShimNotFound;
        var copy = PatchedCopy(shim, CacheFolder());
        if (copy is null) return Outcome.AlreadyPatched;
        PreloadDependencies(Path.GetDirectoryName(shim)!);
        NativeLibrary.Load(copy);
        return Outcome.PreloadedPatchedCopy;
    }

    /// <summary>The shim TorchSharp loads first: next to TorchSharp.dll (publish with a runtime) or under runtimes/&lt;rid&gt;/native.</summary>
    internal static string? FindShim()
    {
        var folders = new[] { Path.GetDirectoryName(typeof(torch).Assembly.Location), AppContext.BaseDirectory }
            .Where(f => !string.IsNullOrEmpty(f)).Distinct();
        foreach (var folder in folders)
        {
            foreach (var candidate in new[]
                     {
                         Path.Combine(folder!, "runtimes", RuntimeInformation.RuntimeIdentifier, "native", ShimFileName),
                         Path.Combine(folder!, "runtimes", "linux-" + RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant(), "native", ShimFileName),
                         Path.Combine(folder!, ShimFileName),
                     })
                if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    /// <summary>
    /// The path of a patched copy of <paramref name="shim"/> under <paramref name="cacheFolder"/> (written once, keyed by
    /// the original's hash, atomically), or null when <paramref name="shim"/> needs no patch.
    /// </summary>
    internal static string? PatchedCopy(string shim, string cacheFolder)
    {
        var bytes = File.ReadAllBytes(shim);
        var result = ElfVersionNeedPatcher.MakeVersionNeedWeak(bytes, MissingVersion);
        if (result != ElfPatchResult.Patched) return null;
        var folder = Path.Combine(cacheFolder, Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(shim)))[..16].ToLowerInvariant());
        var target = Path.Combine(folder, ShimFileName);
        if (File.Exists(target) && File.ReadAllBytes(target).AsSpan().SequenceEqual(bytes)) return target;
        Directory.CreateDirectory(folder);
        var temp = Path.Combine(folder, $"{ShimFileName}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        File.WriteAllBytes(temp, bytes);
        File.Move(temp, target, overwrite: true);
        return target;
    }

    /// <summary>
    /// The copy lives apart from libtorch, so its $ORIGIN run path no longer finds libtorch: load libtorch from the
    /// shim's own folder first when it is there (TorchSharp-cpu); otherwise the system's search (LD_LIBRARY_PATH) finds it.
    /// </summary>
    private static void PreloadDependencies(string shimFolder)
    {
        foreach (var name in new[] { "libc10.so", "libtorch_cpu.so", "libtorch.so" })
        {
            var path = Path.Combine(shimFolder, name);
            if (File.Exists(path)) NativeLibrary.Load(path);
        }
    }

    internal static string CacheFolder()
    {
        if (Environment.GetEnvironmentVariable(CacheVariable) is { Length: > 0 } configured) return configured;
        var root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        if (string.IsNullOrEmpty(root) || root == ".cache") root = Path.GetTempPath();
        return Path.Combine(root, "MlNetDeep", "native");
    }
}
