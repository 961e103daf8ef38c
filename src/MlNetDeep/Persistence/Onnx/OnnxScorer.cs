using Microsoft.ML.OnnxRuntime;

namespace MlNetDeep.Persistence.Onnx;

/// <summary>
/// Scores a network exported by <see cref="OnnxExporter"/> with ONNX Runtime on the CPU, reading the caller's feature
/// rows in place and writing into the caller's output array (no copy of the inputs, no per-row work). Used by
/// <see cref="Models.Common.DeepTransformer"/> when its scoring backend is ONNX Runtime.
/// </summary>
internal sealed class OnnxScorer : IDisposable
{
    private readonly InferenceSession _session;
    private readonly RunOptions _run = new();
    private readonly string[] _inputNames, _outputNames;
    private readonly int _features, _outputs;

    public OnnxScorer(byte[] model, string inputName, string outputName, int features, int outputs, int threads)
    {
        using var options = new SessionOptions
        {
            IntraOpNumThreads = Math.Max(1, threads),
            InterOpNumThreads = 1,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        };
        _session = new InferenceSession(model, options);
        _inputNames = [inputName];
        _outputNames = [outputName];
        _features = features;
        _outputs = outputs;
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
