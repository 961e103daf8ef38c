// A regression app laid out as Model Builder lays out its code: DiabetesModel.training.cs builds and trains the
// pipeline, DiabetesModel.consumption.cs predicts. This program compares the network with ML.NET's SDCA on the same
// 5 folds, trains and saves the network's pipeline, then predicts a few patients.
using Microsoft.ML;
using DiabetesRegression;

var dataPath = args.Length > 0 ? args[0] : Path.Combine(AppContext.BaseDirectory, "diabetes.csv");
var ml = new MLContext(seed: 1);
var data = DiabetesModel.LoadData(ml, dataPath);

var network = ml.Regression.CrossValidate(data, DiabetesModel.BuildPipeline(ml), numberOfFolds: 5, labelColumnName: DiabetesModel.LabelColumn, seed: 1);
var linear = ml.Regression.CrossValidate(data,
    ml.Transforms.Concatenate("Features", "Age", "Sex", "Bmi", "BloodPressure", "TotalCholesterol", "Ldl", "Hdl", "CholesterolRatio", "Triglycerides", "BloodSugar")
        .Append(ml.Transforms.NormalizeMeanVariance("Features"))
        .Append(ml.Regression.Trainers.Sdca(DiabetesModel.LabelColumn)),
    numberOfFolds: 5, labelColumnName: DiabetesModel.LabelColumn, seed: 1);
Console.WriteLine($"5-fold CV, network: R² {network.Average(f => f.Metrics.RSquared):F3}, RMSE {network.Average(f => f.Metrics.RootMeanSquaredError):F1}");
Console.WriteLine($"5-fold CV, ML.NET SDCA (linear): R² {linear.Average(f => f.Metrics.RSquared):F3}, RMSE {linear.Average(f => f.Metrics.RootMeanSquaredError):F1}");

DiabetesModel.ModelPath = Path.GetFullPath("DiabetesModel.zip");
DiabetesModel.Train(DiabetesModel.ModelPath, dataPath);
Console.WriteLine($"Trained on all rows, saved {DiabetesModel.ModelPath}");
foreach (var patient in ml.Data.CreateEnumerable<DiabetesModel.ModelInput>(data, reuseRowObject: false).Take(3))
    Console.WriteLine($"progression {patient.Progression}, predicted {DiabetesModel.Predict(patient).Score:F0}");
