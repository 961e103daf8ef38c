using Microsoft.ML;
using TorchSharp;

namespace MlNetDeep.Native;

/// <summary>
/// Makes sure TorchSharp's native libraries are loaded and picks the device a model trains on.
/// </summary>
public static class TorchRuntime
{
    private static readonly object Gate = new();
    private static bool _loaded;

    /// <summary>Loads libtorch (CPU, or CUDA where a CUDA libtorch is present); throws a clear error if it cannot.</summary>
    public static void EnsureLoaded()
    {
        if (_loaded) return;
        lock (Gate)
        {
            if (_loaded) return;
            NativeShimLoader.Outcome outcome = NativeShimLoader.Outcome.NotNeeded;
            try
            {
                outcome = NativeShimLoader.Prepare();
                // Any call into the native shim loads it; this one is cheap and has no side effects.
                using var probe = torch.zeros(1);
                _loaded = true;
                ShimOutcome = outcome;
            }
            catch (Exception ex) when (ex is DllNotFoundException or TypeInitializationException or NotSupportedException or BadImageFormatException
                                           or IOException or UnauthorizedAccessException)
            {
                throw new InvalidOperationException(
                    "TorchSharp's native library (libLibTorchSharp / libtorch) could not be loaded " +
                    $"(shim preparation: {outcome}). Reference the TorchSharp-cpu package (MlNetDeep does by default) so that libtorch " +
                    "is copied next to your app, or, for the GPU variant, put a libtorch 2.10 with CUDA on LD_LIBRARY_PATH. " +
                    $"On Linux the folder in ${NativeShimLoader.CacheVariable} (default ~/.cache/MlNetDeep/native) must be writable. " +
                    "Inner error: " + (ex.InnerException?.Message ?? ex.Message), ex);
            }
        }
    }

    /// <summary>What the loader did to make TorchSharp's shim load in this process (see <see cref="NativeShimLoader"/>).</summary>
    internal static NativeShimLoader.Outcome ShimOutcome { get; private set; }

    /// <summary>True when CUDA is usable by this process.</summary>
    public static bool CudaAvailable
    {
        get { EnsureLoaded(); return torch.cuda.is_available(); }
    }

    /// <summary>
    /// The device chosen the ML.NET way: <see cref="MLContext.GpuDeviceId"/> asks for a GPU;
    /// <see cref="MLContext.FallbackToCpu"/> says whether a missing GPU falls back to the CPU or is an error.
    /// </summary>
    public static torch.Device SelectDevice(MLContext mlContext) =>
        SelectDevice(mlContext.GpuDeviceId, mlContext.FallbackToCpu);

    public static torch.Device SelectDevice(int? gpuDeviceId, bool fallbackToCpu)
    {
        EnsureLoaded();
        if (gpuDeviceId is not int id) return torch.CPU;
        if (id < 0) throw new ArgumentOutOfRangeException(nameof(gpuDeviceId), id, "MLContext.GpuDeviceId must be null (CPU) or a CUDA device index >= 0.");
        if (torch.cuda.is_available() && id < torch.cuda.device_count()) return torch.device(DeviceType.CUDA, id);
        if (fallbackToCpu) return torch.CPU;
        throw new InvalidOperationException(torch.cuda.is_available()
            ? $"MLContext.GpuDeviceId = {id}, but this machine has only {torch.cuda.device_count()} CUDA device(s). Set FallbackToCpu = true to train on the CPU instead."
            : $"MLContext.GpuDeviceId = {id} asks for a GPU, but no CUDA device is usable here (TorchSharp-cpu, no CUDA libtorch, or no driver). Set FallbackToCpu = true to train on the CPU instead.");
    }

    private static readonly object SeedGate = new();

    /// <summary>
    /// Seeds the generators and runs <paramref name="create"/> (e.g. building a network, whose initial weights draw from
    /// them) with no other seeded creation in between. Torch's global generators are process-wide, so only creation
    /// happens under this lock; what a model draws while it trains comes from its run's own generator
    /// (<see cref="SeededWithRandom{T}"/>, <see cref="Training.TrainingRandom"/>).
    /// </summary>
    public static T Seeded<T>(int seed, Func<T> create)
    {
        lock (SeedGate)
        {
            Seed(seed);
            return create();
        }
    }

    /// <summary>
    /// <see cref="Seeded{T}"/>, and a CPU generator that continues the global CPU stream from where
    /// <paramref name="create"/> left it: the stream the model's training draws (dropout, a VAE's noise) take, as they
    /// would from the global generator if nothing else ran, but owned by this training alone.
    /// </summary>
    public static (T Value, torch.Generator Random) SeededWithRandom<T>(int seed, Func<T> create)
    {
        lock (SeedGate)
        {
            Seed(seed);
            var value = create();
            var random = new torch.Generator(0, torch.CPU);
            using var state = torch.get_rng_state();
            random.set_state(state);
            return (value, random);
        }
    }

    /// <summary>Seeds every torch generator (CPU, and CUDA when present) from one integer.</summary>
    public static void Seed(int seed)
    {
        EnsureLoaded();
        torch.manual_seed(seed);
        if (torch.cuda.is_available()) torch.cuda.manual_seed_all(seed);
    }
}
