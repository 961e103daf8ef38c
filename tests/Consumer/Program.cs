using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep;
using MlNetDeep.Models.Classification;

var ml = new MLContext(seed: 1);
var rows = Enumerable.Range(0, 200).Select(i => new Row { Features = [i % 2 == 0 ? 1f : -1f, (i % 7) / 7f], Label = i % 2 == 0 ? "even" : "odd" }).ToList();
var data = ml.Data.LoadFromEnumerable(rows);
var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
    .Append(ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions { Epochs = 3, BatchSize = 32 }))
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
var model = pipeline.Fit(data);
var metrics = ml.MulticlassClassification.Evaluate(model.Transform(data));
Console.WriteLine($"accuracy {metrics.MacroAccuracy:F3}");
var path = Path.Combine(Path.GetTempPath(), "consumer-model.zip");
ml.Model.SaveDeep(model, data.Schema, path);
var loaded = ml.Model.LoadDeep(path, out _);
var engine = ml.Model.CreatePredictionEngine<Row, Prediction>(loaded);
Console.WriteLine($"predicted {engine.Predict(rows[0]).PredictedLabel}");

// A small CNN scores through ONNX Runtime (its native library must load in this app) and agrees with TorchSharp.
var images = Enumerable.Range(0, 64).Select(i => new Image { Pixels = Enumerable.Range(0, 16).Select(p => (i * 7 + p) % 5 / 4f).ToArray(), Label = i % 2 == 0 ? "a" : "b" }).ToList();
var imageData = ml.Data.LoadFromEnumerable(images);
var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(imageData).Transform(imageData);
using var cnn = (NeuralNetworkClassificationTransformer)ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
{
    FeatureColumnName = "Pixels", InputShape = [1, 4, 4], Epochs = 1,
    Network = new MlNetDeep.Networks.NetworkSpec([new MlNetDeep.Networks.Conv2D(2, 3), new MlNetDeep.Networks.Flatten(), new MlNetDeep.Networks.Dense(MlNetDeep.Networks.Dense.TaskOutputs)]),
}).Fit(keyed);
var backend = cnn.ActiveBackend;
var fast = cnn.Transform(keyed).GetColumn<float[]>("Score").ToArray();
cnn.Backend = MlNetDeep.Models.Common.ScoringBackend.TorchSharp;
var reference = cnn.Transform(keyed).GetColumn<float[]>("Score").ToArray();
double largest = fast.Zip(reference, (x, y) => x.Zip(y, (p, q) => Math.Abs(p - q)).Max()).Max();
if (backend != MlNetDeep.Models.Common.ScoringBackend.OnnxRuntime || largest > 1e-4)
    throw new InvalidOperationException($"The CNN scored through {backend}, {largest} from TorchSharp.");
Console.WriteLine($"cnn scored through {backend}: largest difference from TorchSharp {largest:G3}");

public sealed class Row { [VectorType(2)] public float[] Features { get; set; } = []; public string Label { get; set; } = ""; }
public sealed class Prediction { public string PredictedLabel { get; set; } = ""; }
public sealed class Image { [VectorType(16)] public float[] Pixels { get; set; } = []; public string Label { get; set; } = ""; }
