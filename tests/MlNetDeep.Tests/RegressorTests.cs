using Microsoft.ML.Data;
using Microsoft.ML;
using MlNetDeep.Models.Regression;
using MlNetDeep.Networks;
using MlNetDeep.Training;

namespace MlNetDeep.Tests;

public class RegressorTests
{
    [Fact]
    public void FitsASineAndRegressionEvaluateWorks()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.Sine(ml, 512);
        var trainer = ml.Regression.Trainers.NeuralNetwork(new NeuralNetworkRegressorOptions
        {
            Network = Networks.Networks.Mlp([32, 32], ActivationKind.Tanh), Epochs = 60, BatchSize = 32, Optimizer = new Adam(1e-2),
        });
        var model = trainer.Fit(data);
        var metrics = ml.Regression.Evaluate(model.Transform(TestData.Sine(ml, 200, seed: 5)));
        Assert.True(metrics.RSquared > 0.95, $"R² {metrics.RSquared}");
    }

    [Fact]
    public void CrossValidateAndSaveLoadWork()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.Sine(ml, 200);
        var trainer = ml.Regression.Trainers.NeuralNetwork(epochs: 20);
        var folds = ml.Regression.CrossValidate(data, trainer, numberOfFolds: 5);
        Assert.Equal(5, folds.Count);
        // Every row is held out once, and each fold's model fits the sine on the rows it did not see (y spans [-1, 1]).
        Assert.Equal(200, folds.Sum(f => f.ScoredHoldOutSet.GetColumn<float>("Score").Count()));
        Assert.All(folds, f =>
        {
            Assert.True(f.Metrics.RSquared > 0.9, $"fold {f.Fold}: R² {f.Metrics.RSquared}");
            Assert.True(f.Metrics.RootMeanSquaredError < 0.25, $"fold {f.Fold}: RMSE {f.Metrics.RootMeanSquaredError}");
            Assert.True(f.Metrics.MeanAbsoluteError <= f.Metrics.RootMeanSquaredError, $"fold {f.Fold}: MAE {f.Metrics.MeanAbsoluteError}");
        });
        var model = trainer.Fit(data);
        var path = TestData.TempFile();
        ml.Model.SaveDeep(model, data.Schema, path);
        var loaded = ml.Model.LoadDeep(path, out _);
        Assert.Equal(model.Transform(data).GetColumn<float>("Score"), loaded.Transform(data).GetColumn<float>("Score"));
        File.Delete(path);
    }
}
