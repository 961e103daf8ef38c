// An app whose first call is TorchSharp itself (torch.tensor), before any MlNetDeep type is touched: the package's
// build step must have patched the native shim in this app's output.
using static TorchSharp.torch;

using var values = tensor(new float[] { 1, 2, 3 });
Console.WriteLine($"first call ok: torch.tensor sums to {values.sum().item<float>()}");
