// An app on the MlNetDeep package that swaps ONNX Runtime's CPU build for its GPU build (docs/transfer-learning.md,
// "Scoring on a GPU") and asks its MLContext for GPU 0: it scores a saved CNN through ONNX Runtime and prints the
// execution provider and, where CUDA cannot be used, the reason.
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep;
using MlNetDeep.Models.Common;

var ml = new MLContext(seed: 1) { GpuDeviceId = 0, FallbackToCpu = true };
ml.Log += (_, e) => { if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning) Console.WriteLine("log: " + e.Message); };
var model = (TransformerChain<ITransformer>)ml.Model.LoadDeep(args[0], out _);
var network = model.OfType<DeepTransformer>().Single();
var rows = Enumerable.Range(0, 8).Select(i => new Row { Pixels = Enumerable.Range(0, 784).Select(j => (float)((i * 31 + j) % 17) / 16).ToArray() });
var scored = model.Transform(ml.Data.LoadFromEnumerable(rows));
var scores = scored.GetColumn<float[]>("Score").ToList();
Console.WriteLine($"backend {network.ActiveBackend}, provider {network.OnnxRuntimeExecutionProvider}");
Console.WriteLine($"fallback: {network.OnnxRuntimeFallbackReason ?? "none"}");
Console.WriteLine($"scored {scores.Count} rows, first row sums to {scores[0].Sum():F4}");

internal sealed class Row
{
    [VectorType(784)]
    public float[] Pixels { get; set; } = [];
}
