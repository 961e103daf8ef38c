// The consumption half of the model, in Model Builder's layout: input and output classes, one lazily created
// prediction engine shared by every thread, and Predict.
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep;

namespace TumourAnomalies;

public partial class TumourAnomalyModel
{
    /// <summary>One row of wdbc.csv: 30 measurements of a tumour's cell nuclei, and the diagnosis.</summary>
    public class ModelInput
    {
        [LoadColumn(0, 29), VectorType(30), ColumnName(@"Measurements")]
        public float[] Measurements { get; set; } = [];

        [LoadColumn(30), ColumnName(@"Malignant")]
        public bool Malignant { get; set; }
    }

    /// <summary>What the model adds: how unusual the row is, whether that is above the threshold, and which measurements made it so.</summary>
    public class ModelOutput
    {
        [ColumnName(@"Score")]
        public float Score { get; set; }

        [ColumnName(@"PredictedLabel")]
        public bool PredictedLabel { get; set; }

        [ColumnName(@"FeatureErrors")]
        public float[] FeatureErrors { get; set; } = [];
    }

    public static string ModelPath { get; set; } = Path.GetFullPath("TumourAnomalyModel.zip");

    private static readonly Lazy<PredictionEngine<ModelInput, ModelOutput>> Engine = new(() =>
    {
        var ml = new MLContext();
        var model = ml.Model.LoadDeep(ModelPath, out _);
        return ml.Model.CreatePredictionEngine<ModelInput, ModelOutput>(model);
    }, isThreadSafe: true);

    private static readonly object Gate = new();

    /// <summary>Scores one row (a PredictionEngine serves one thread at a time: calls are serialised).</summary>
    public static ModelOutput Predict(ModelInput input)
    {
        lock (Gate) return Engine.Value.Predict(input);
    }
}
