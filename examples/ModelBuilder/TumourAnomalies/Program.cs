// An anomaly-detection app laid out as Model Builder lays out its code: TumourAnomalyModel.training.cs builds and
// trains the pipeline (an autoencoder that learns benign tumours), TumourAnomalyModel.consumption.cs scores rows.
// This program holds out half of the benign rows, trains on the rest, evaluates with ML.NET's anomaly evaluator
// (malignant = anomaly), then trains on all the benign rows, saves the model and explains a few predictions.
using Microsoft.ML;
using Microsoft.ML.Data;
using TumourAnomalies;

var dataPath = args.Length > 0 ? args[0] : Path.Combine(AppContext.BaseDirectory, "wdbc.csv");
var ml = new MLContext(seed: 1);
var data = TumourAnomalyModel.LoadData(ml, dataPath);
var rows = ml.Data.CreateEnumerable<TumourAnomalyModel.ModelInput>(data, reuseRowObject: false).ToList();
var benign = rows.Where(r => !r.Malignant).ToList();
var train = ml.Data.LoadFromEnumerable(benign.Where((_, i) => i % 2 == 0));
var test = ml.Data.LoadFromEnumerable(benign.Where((_, i) => i % 2 == 1).Concat(rows.Where(r => r.Malignant)));

// ML.NET's anomaly evaluator reads a Single label, 1 = anomaly.
var held = TumourAnomalyModel.BuildPipeline(ml).Fit(train);
var scored = ml.Transforms.Conversion.ConvertType("Label", "Malignant", DataKind.Single).Fit(test).Transform(held.Transform(test));
var metrics = ml.AnomalyDetection.Evaluate(scored, falsePositiveCount: 5);
Console.WriteLine($"held-out benign rows and every malignant row: AUC {metrics.AreaUnderRocCurve:F4}, detection rate at 5 false positives {metrics.DetectionRateAtFalsePositiveCount:P1}");

TumourAnomalyModel.ModelPath = Path.GetFullPath("TumourAnomalyModel.zip");
TumourAnomalyModel.Train(TumourAnomalyModel.ModelPath, dataPath);
Console.WriteLine($"Trained on all {benign.Count} benign rows, saved {TumourAnomalyModel.ModelPath}");

string[] names = File.ReadLines(dataPath).First().Split(',');
foreach (var row in rows.Where(r => r.Malignant).Take(2).Concat(benign.Take(2)))
{
    var prediction = TumourAnomalyModel.Predict(row);
    var worst = prediction.FeatureErrors.Select((e, i) => (e, i)).OrderByDescending(p => p.e).Take(3).Select(p => $"{names[p.i]} {p.e:F2}");
    Console.WriteLine($"actual {(row.Malignant ? "malignant" : "benign")}: score {prediction.Score:F3}, anomalous {prediction.PredictedLabel}; largest errors: {string.Join(", ", worst)}");
}
