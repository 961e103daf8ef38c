using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Models.Regression;
using MlNetDeep.Networks;
using MlNetDeep.Training;

namespace MlNetDeep.Tests;

/// <summary>Series for forecasting: the generated seasonal series, CSV columns, lag windows, and an LSTM that beats the mean.</summary>
public class TimeSeriesTests
{
    [Fact]
    public void WindowsHoldTheLagsBeforeEachLabelAndSplitByTime()
    {
        var ml = new MLContext(seed: 1);
        float[] series = Enumerable.Range(0, 12).Select(i => (float)i).ToArray();
        var early = ml.Data.LoadSeriesWindows(series, window: 3, endLabel: 8);
        var late = ml.Data.LoadSeriesWindows(series, window: 3, firstLabel: 8);
        Assert.Equal([3f, 4, 5, 6, 7], early.GetColumn<float>("Label"));
        Assert.Equal([8f, 9, 10, 11], late.GetColumn<float>("Label"));
        Assert.Equal([5f, 6, 7], late.GetColumn<float[]>(TimeSeries.LagsColumn).First());
        Assert.Equal(3, ((VectorDataViewType)late.Schema[TimeSeries.LagsColumn].Type).Size);
        var ahead = ml.Data.LoadSeriesWindows(series, window: 3, horizon: 2);
        Assert.Equal(4f, ahead.GetColumn<float>("Label").First());
        Assert.Equal([0f, 1, 2], ahead.GetColumn<float[]>(TimeSeries.LagsColumn).First());
        var relative = ml.Data.LoadSeriesWindows(series, window: 3, firstLabel: 8, relativeToLast: true);
        Assert.Equal([-2f, -1, 0], relative.GetColumn<float[]>(TimeSeries.LagsColumn).First());
        Assert.Equal([1f, 1, 1, 1], relative.GetColumn<float>("Label"));
        Assert.Equal([7f, 8, 9, 10], relative.GetColumn<float>("Last"));
        Assert.Throws<ArgumentException>(() => ml.Data.LoadSeriesWindows(series, window: 12));
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.Data.LoadSeriesWindows(series, window: 0));
    }

    [Fact]
    public void TheSeasonalSeriesIsSeededAndSeasonal()
    {
        var a = TimeSeries.Seasonal(480, period: 24, noise: 0.1, seed: 3);
        Assert.Equal(a, TimeSeries.Seasonal(480, period: 24, noise: 0.1, seed: 3));
        Assert.NotEqual(a, TimeSeries.Seasonal(480, period: 24, noise: 0.1, seed: 4));
        // One season apart the values differ by the trend and the noise only.
        double seasonal = Enumerable.Range(24, 400).Average(t => Math.Abs(a[t] - a[t - 24]));
        double neighbour = Enumerable.Range(24, 400).Average(t => Math.Abs(a[t] - a[t - 6]));
        Assert.True(seasonal < 0.5 && neighbour > 5, $"seasonal {seasonal}, quarter-season {neighbour}");
    }

    [Fact]
    public void CsvColumnsAreReadByNameAndBadValuesNamed()
    {
        var ml = new MLContext(seed: 1);
        var path = TestData.TempFile(".csv");
        try
        {
            File.WriteAllText(path, "date,\"sales, units\",price\n2024-01-01,10,1.5\n2024-01-02,12.5,1.6\n2024-01-03,9,1.4\n");
            Assert.Equal([10f, 12.5f, 9f], TimeSeries.ReadCsvColumn(ml, path, "sales, units"));
            Assert.Equal([1.5f, 1.6f, 1.4f], TimeSeries.ReadCsvColumn(ml, path, "price"));
            var missing = Assert.Throws<ArgumentException>(() => TimeSeries.ReadCsvColumn(ml, path, "volume"));
            Assert.Contains("date", missing.Message);
            File.WriteAllText(path, "value\n1\n2\nabc\n4\n");
            var bad = Assert.Throws<InvalidDataException>(() => TimeSeries.ReadCsvColumn(ml, path, "value"));
            Assert.Contains("row 3", bad.Message);
            File.WriteAllText(path, "");
            Assert.Throws<InvalidDataException>(() => TimeSeries.ReadCsvColumn(ml, path, "value"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void AnLstmOnTheLagsForecastsTheSeason()
    {
        var ml = new MLContext(seed: 1);
        var series = TimeSeries.Seasonal(600, period: 12, level: 0, amplitude: 1, trend: 0, noise: 0.05, seed: 2);
        var train = ml.Data.LoadSeriesWindows(series, window: 12, endLabel: 500);
        var test = ml.Data.LoadSeriesWindows(series, window: 12, firstLabel: 500);
        var model = ml.Regression.Trainers.NeuralNetwork(new NeuralNetworkRegressorOptions
        {
            FeatureColumnName = TimeSeries.LagsColumn, InputShape = [12, 1], Network = new NetworkSpec([new LSTM(16), new Dense(Dense.TaskOutputs)]),
            Epochs = 15, BatchSize = 16, Optimizer = new Adam(1e-2), Seed = 1,
        }).Fit(train);
        var metrics = ml.Regression.Evaluate(model.Transform(test));
        double spread = Math.Sqrt(series.Skip(500).Select(v => v * v).Average());
        Assert.True(metrics.RootMeanSquaredError < spread / 4, $"RMSE {metrics.RootMeanSquaredError} against the series' spread {spread}");
    }
}
