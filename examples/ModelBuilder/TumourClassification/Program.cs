// A tabular classification app laid out as Model Builder lays out its code: TumourModel.training.cs builds and trains
// the pipeline, TumourModel.consumption.cs predicts. This program cross-validates the pipeline, trains and saves it,
// then predicts a few rows through the shared prediction engine.
using Microsoft.ML;
using TumourClassification;

var dataPath = args.Length > 0 ? args[0] : Path.Combine(AppContext.BaseDirectory, "wdbc.csv");
var ml = new MLContext(seed: 1);
var data = TumourModel.LoadData(ml, dataPath);

var folds = ml.BinaryClassification.CrossValidate(data, TumourModel.BuildPipeline(ml), numberOfFolds: 5, labelColumnName: TumourModel.LabelColumn, seed: 1);
Console.WriteLine($"5-fold CV: accuracy {folds.Average(f => f.Metrics.Accuracy):P2}, AUC {folds.Average(f => f.Metrics.AreaUnderRocCurve):F4}, " +
    $"F1 {folds.Average(f => f.Metrics.F1Score):F3}");

TumourModel.ModelPath = Path.GetFullPath("TumourModel.zip");
TumourModel.Train(TumourModel.ModelPath, dataPath);
Console.WriteLine($"Trained on all {data.GetRowCount() ?? ml.Data.CreateEnumerable<TumourModel.ModelInput>(data, false).Count()} rows, saved {TumourModel.ModelPath}");

foreach (var row in ml.Data.CreateEnumerable<TumourModel.ModelInput>(data, reuseRowObject: false).Take(3))
{
    var labels = TumourModel.PredictAllLabels(row);
    Console.WriteLine($"actual {(row.Malignant ? "malignant" : "benign")}: " + string.Join(", ", labels.Select(l => $"{l.Key} {l.Value:P1}")));
}
