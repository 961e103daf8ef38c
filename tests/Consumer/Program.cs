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
Console.WriteLine($"predicted {engine.Predict(rows[0]).PredictedLabel}; shim: {MlNetDeep.Native.TorchRuntime.ShimOutcome}");

public sealed class Row { [VectorType(2)] public float[] Features { get; set; } = []; public string Label { get; set; } = ""; }
public sealed class Prediction { public string PredictedLabel { get; set; } = ""; }
