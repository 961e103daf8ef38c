// An app whose first call into MlNetDeep is the ONNX importer (no trainer has run): TorchSharp's native shim must load.
using MlNetDeep.Persistence.Onnx;

using var imported = OnnxImporter.Import(args[0]);
Console.WriteLine($"first call ok: imported {imported.Network.Layers.Count} layers, input [{string.Join(", ", imported.InputShape)}]");
