using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Loader;

namespace MlNetDeep.Plotting;

/// <summary>
/// Runs ScottPlot on the SkiaSharp it is built on (3.119) beside the application's SkiaSharp 2.88, which ML.NET's image
/// transforms need. SkiaSharp 3 changed the signature of an <c>SKBitmap</c> method that ML.NET's ImageAnalytics calls
/// (<c>GetPixelSpan</c>), and ScottPlot uses types that SkiaSharp 2.88 lacks, so neither runs on the other's version.
/// </summary>
/// <remarks>
/// <para>
/// The application keeps SkiaSharp 2.88 and its native libSkiaSharp in the default load context. ScottPlot,
/// SkiaSharp 3.119 and SkiaSharp.HarfBuzz 3.119 are not among the application's assemblies: the build of every project
/// that references MlNetDeep.Plotting copies them, with the native libSkiaSharp 3.119 of each platform, into the
/// <c>scottplot/</c> folder of its output (see MlNetDeep.Plotting.csproj). When code in the default context first asks for
/// ScottPlot, this class loads it from that folder into a load context of its own, in which ScottPlot's requests for
/// SkiaSharp get 3.119 from the same folder and SkiaSharp's native library is the 3.119 one, loaded by full path; anything
/// else (HarfBuzzSharp, the framework) comes from the default context. Because ScottPlot's own references are bound
/// inside that context, no other assembly resolver of the host (a test runner's, for instance) can hand it SkiaSharp 2.88.
/// </para>
/// <para>
/// The two SkiaSharps never exchange objects: the code that mixes them (<see cref="PlotGrid"/>) passes PNG bytes.
/// <see cref="Register"/> runs when MlNetDeep.Plotting is first used. The JIT loads ScottPlot as soon as it compiles a method
/// that uses ScottPlot's types, which can be before that: code that holds ScottPlot objects itself (a <c>Plot</c> from
/// <see cref="PointCharts"/>, its own <c>new Plot()</c>) calls <see cref="Register"/> first, from a method that runs earlier.
/// </para>
/// </remarks>
public static class ScottPlotContext
{
    /// <summary>The folder, next to MlNetDeep.Plotting.dll, that holds ScottPlot, SkiaSharp 3 and its native libraries.</summary>
    public const string FolderName = "scottplot";

    // The assemblies that live in the private context; every other request falls through to the default context.
    private static readonly string[] PrivateAssemblies = ["ScottPlot", "SkiaSharp", "SkiaSharp.HarfBuzz"];

    private static readonly Lazy<PrivateContext> Context = new(() => new PrivateContext(Folder), LazyThreadSafetyMode.ExecutionAndPublication);
    private static int _registered;

#pragma warning disable CA2255 // A library's module initializer: the hook must be in place before ScottPlot is first asked for.
    [ModuleInitializer]
    internal static void OnModuleLoad() => Register();
#pragma warning restore CA2255

    /// <summary>Makes the default load context find ScottPlot (and SkiaSharp 3) in <see cref="Folder"/>; calling it again does nothing.</summary>
    public static void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 0) AssemblyLoadContext.Default.Resolving += Resolve;
    }

    /// <summary>The full path of the folder that ScottPlot and SkiaSharp 3 are loaded from.</summary>
    public static string Folder
    {
        get
        {
            var location = typeof(ScottPlotContext).Assembly.Location;
            var baseFolder = string.IsNullOrEmpty(location) ? AppContext.BaseDirectory : Path.GetDirectoryName(location)!;
            return Path.Combine(baseFolder, FolderName);
        }
    }

    /// <summary>The native libSkiaSharp 3 for the platform this process runs on, in <see cref="Folder"/> (the file may be missing).</summary>
    public static string NativeLibraryPath => Path.Combine(Folder, "runtimes", NativeRuntimeFolder(), "native", NativeFileName());

    /// <summary>The load context ScottPlot runs in (created on first use).</summary>
    public static AssemblyLoadContext LoadContext => Context.Value;

    private static bool IsPrivate(AssemblyName name) =>
        PrivateAssemblies.Contains(name.Name, StringComparer.OrdinalIgnoreCase)
        // SkiaSharp 2.x is the application's own, in the default context.
        && !(string.Equals(name.Name, "SkiaSharp", StringComparison.OrdinalIgnoreCase) && name.Version is { Major: < 3 });

    private static Assembly? Resolve(AssemblyLoadContext context, AssemblyName name) =>
        IsPrivate(name) ? Context.Value.LoadPrivate(name) : null;

    /// <summary>The NuGet runtime folder of the native library for this process: linux-x64, linux-musl-arm64, win-x64, osx...</summary>
    private static string NativeRuntimeFolder()
    {
        var arch = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => "x64",
            Architecture.Arm64 => "arm64",
            Architecture.X86 => "x86",
            Architecture.Arm => "arm",
            var other => other.ToString().ToLowerInvariant(),
        };
        if (OperatingSystem.IsWindows()) return $"win-{arch}";
        if (OperatingSystem.IsMacOS()) return "osx";
        bool musl = RuntimeInformation.RuntimeIdentifier.Contains("musl", StringComparison.OrdinalIgnoreCase)
            || Directory.Exists("/lib") && Directory.EnumerateFiles("/lib", "ld-musl-*").Any();
        return musl ? $"linux-musl-{arch}" : $"linux-{arch}";
    }

    private static string NativeFileName() =>
        OperatingSystem.IsWindows() ? "libSkiaSharp.dll" : OperatingSystem.IsMacOS() ? "libSkiaSharp.dylib" : "libSkiaSharp.so";

    /// <summary>ScottPlot, SkiaSharp 3 and SkiaSharp 3's native library; everything else comes from the default context.</summary>
    private sealed class PrivateContext(string folder) : AssemblyLoadContext("MlNetDeep.Plotting.ScottPlot")
    {
        private readonly object _gate = new();
        private IntPtr _native;

        public Assembly LoadPrivate(AssemblyName name)
        {
            var path = Path.Combine(folder, name.Name + ".dll");
            if (!File.Exists(path))
                throw new FileNotFoundException(
                    $"MlNetDeep.Plotting loads {name.Name} from '{path}', and the file is missing. The build of a project that references " +
                    $"MlNetDeep.Plotting copies ScottPlot and its SkiaSharp 3 into '{FolderName}/' of its output: rebuild it " +
                    "(the application itself keeps SkiaSharp 2.88 for ML.NET's image transforms).", path);
            return LoadFromAssemblyName(name);
        }

        protected override Assembly? Load(AssemblyName name)
        {
            if (!IsPrivate(name)) return null;
            var path = Path.Combine(folder, name.Name + ".dll");
            return File.Exists(path) ? LoadFromAssemblyPath(path) : null;
        }

        protected override IntPtr LoadUnmanagedDll(string unmanagedDllName)
        {
            var file = Path.GetFileNameWithoutExtension(unmanagedDllName);
            if (!file.Equals("libSkiaSharp", StringComparison.OrdinalIgnoreCase) && !file.Equals("SkiaSharp", StringComparison.OrdinalIgnoreCase))
                return IntPtr.Zero;
            lock (_gate)
            {
                if (_native != IntPtr.Zero) return _native;
                var path = NativeLibraryPath;
                // Never fall back to the default search: it would find the application's libSkiaSharp 2.88.
                if (!File.Exists(path))
                    throw new DllNotFoundException(
                        $"ScottPlot's SkiaSharp 3 needs its native library '{path}', which is missing: the build of the project that references " +
                        $"MlNetDeep.Plotting copies libSkiaSharp 3.119 into '{FolderName}/' for the platforms in its SkiaSharp3Runtimes property.");
                _native = LoadUnmanagedDllFromPath(path);
                return _native;
            }
        }
    }
}
