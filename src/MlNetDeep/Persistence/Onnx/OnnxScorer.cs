using Microsoft.ML.OnnxRuntime;

namespace MlNetDeep.Persistence.Onnx;

/// <summary>
/// Scores a network exported by <see cref="OnnxExporter"/> with ONNX Runtime, reading the caller's feature rows in place
/// and writing into the caller's output array (no copy of the inputs, no per-row work). Used by
/// <see cref="Models.Common.DeepTransformer"/> when its scoring backend is ONNX Runtime. On the CPU by default; on a
/// CUDA device when one is asked for and this process's ONNX Runtime can use it (the GPU build,
/// Microsoft.ML.OnnxRuntime.Gpu, with CUDA present), otherwise on the CPU with <see cref="FallbackReason"/> saying why.
/// </summary>
internal sealed class OnnxScorer : IDisposable
{
    internal const string CpuProvider = "CPUExecutionProvider", CudaProvider = "CUDAExecutionProvider";

    private readonly InferenceSession _session;
    private readonly RunOptions _run = new();
    private readonly string[] _inputNames, _outputNames;
    private readonly int _features, _outputs;

    public OnnxScorer(byte[] model, string inputName, string outputName, int features, int outputs, int threads, int? gpuDeviceId = null, bool fallbackToCpu = true)
    {
        if (gpuDeviceId is { } device)
        {
            var (session, reason) = TryCuda(model, threads, device);
            if (session is not null)
            {
                _session = session;
                ExecutionProvider = CudaProvider;
            }
            else if (!fallbackToCpu)
                throw new InvalidOperationException($"ONNX Runtime cannot score on CUDA device {device}: {reason} Set FallbackToCpu (MLContext.FallbackToCpu or DeepTransformer.OnnxRuntimeFallbackToCpu) to score on the CPU instead.");
            else FallbackReason = reason;
        }
        if (_session is null)
        {
            using var options = CpuOptions(threads);
            _session = new InferenceSession(model, options);
            ExecutionProvider = CpuProvider;
        }
        _inputNames = [inputName];
        _outputNames = [outputName];
        _features = features;
        _outputs = outputs;
    }

    /// <summary>The provider the session runs on: <c>CUDAExecutionProvider</c> or <c>CPUExecutionProvider</c>.</summary>
    public string ExecutionProvider { get; } = CpuProvider;

    /// <summary>Why a CUDA device that was asked for is not used (null when none was asked for, or it is used).</summary>
    public string? FallbackReason { get; }

    private static SessionOptions CpuOptions(int threads) => new()
    {
        IntraOpNumThreads = Math.Max(1, threads),
        InterOpNumThreads = 1,
        GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
    };

    /// <summary>A session on CUDA device <paramref name="device"/>, or the reason there is none.</summary>
    internal static (InferenceSession? Session, string? Reason) TryCuda(byte[] model, int threads, int device)
    {
        string[] available;
        try { available = OrtEnv.Instance().GetAvailableProviders(); }
        catch (OnnxRuntimeException ex) { return (null, $"ONNX Runtime could not list its execution providers ({ex.Message})."); }
        if (!available.Contains(CudaProvider))
            return (null, $"this process's ONNX Runtime has no CUDA provider (it has {string.Join(", ", available)}): it is the CPU build, " +
                "Microsoft.ML.OnnxRuntime; the GPU build is Microsoft.ML.OnnxRuntime.Gpu (docs/transfer-learning.md, 'Scoring on a GPU').");
        var options = CpuOptions(threads);
        try
        {
            options.AppendExecutionProvider_CUDA(device);
            return (new InferenceSession(model, options), null);
        }
        catch (Exception ex) when (ex is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException)
        {
            // E.g. "libcublasLt.so.13: cannot open shared object file" when the CUDA libraries are absent, or no such device.
            return (null, $"its CUDA provider did not start: {ex.Message.Trim()} (the provider needs the CUDA and cuDNN libraries of its " +
                "release on the library path; ONNX Runtime's own log line names the one it could not load).");
        }
        finally
        {
            options.Dispose();
        }
    }

    /// <summary>Scores rows <paramref name="start"/> to <paramref name="start"/> + <paramref name="rows"/> of <paramref name="features"/> into the same rows of <paramref name="outputs"/>.</summary>
    public void Score(float[] features, int start, int rows, float[] outputs)
    {
        using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, features.AsMemory(start * _features, rows * _features), [rows, _features]);
        using var results = _session.Run(_run, _inputNames, [input], _outputNames);
        var values = results[0].GetTensorDataAsSpan<float>();
        if (values.Length != rows * _outputs)
            throw new InvalidOperationException($"ONNX Runtime produced {values.Length} values for {rows} rows of {_outputs}.");
        values.CopyTo(outputs.AsSpan(start * _outputs, rows * _outputs));
    }

    public void Dispose()
    {
        _run.Dispose();
        _session.Dispose();
    }
}
