using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Classification;

namespace MlNetDeep.Cluster.Tests;

/// <summary>
/// Writes the inputs of the failover measurement in docs/cluster.md when MLNETDEEP_CLUSTER_INPUTS names a folder
/// (otherwise does nothing): model.zip, an MLP (30 features, hidden 128, 3 classes), and rows.csv of
/// MLNETDEEP_CLUSTER_ROWS rows (default 200,000) with columns Id, Features.0 .. Features.29.
/// </summary>
public sealed class MeasurementInputs
{
    public sealed class Row
    {
        [VectorType(30)] public float[] Features { get; set; } = [];
        [KeyType(4)] public uint Class { get; set; }
    }

    [Fact]
    public void WritesTheFailoverMeasurementsInputsWhenAsked()
    {
        if (Environment.GetEnvironmentVariable("MLNETDEEP_CLUSTER_INPUTS") is not { Length: > 0 } folder) return;
        int count = int.TryParse(Environment.GetEnvironmentVariable("MLNETDEEP_CLUSTER_ROWS"), out int n) ? n : 200_000;
        Directory.CreateDirectory(folder);
        var ml = new MLContext(seed: 1);
        var rand = new Random(0);
        var rows = Enumerable.Range(0, 2000).Select(i =>
        {
            var x = Enumerable.Range(0, 30).Select(_ => (float)(rand.NextDouble() * 2 - 1)).ToArray();
            return new Row { Features = x, Class = (uint)((x[0] + x[1] > 0.5 ? 2 : x[0] + x[1] < -0.5 ? 0 : 1) + 1) };
        }).ToList();
        var train = ml.Data.LoadFromEnumerable(rows);
        var model = ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Features", LabelColumnName = "Class", Network = Networks.Networks.Mlp(128), Epochs = 2, BatchSize = 64, Seed = 1,
        }).Fit(train);
        ml.Model.SaveDeep(model, train.Schema, Path.Combine(folder, "model.zip"));

        using var writer = new StreamWriter(Path.Combine(folder, "rows.csv"));
        writer.Write("Id," + string.Join(",", Enumerable.Range(0, 30).Select(i => $"Features.{i}")) + "\n");
        var line = new System.Text.StringBuilder();
        for (int r = 0; r < count; r++)
        {
            line.Clear().Append(r);
            for (int i = 0; i < 30; i++) line.Append(',').Append(((float)Math.Round(rand.NextDouble() * 2 - 1, 4)).ToString("R", System.Globalization.CultureInfo.InvariantCulture));
            writer.Write(line.Append('\n'));
        }
    }
}
