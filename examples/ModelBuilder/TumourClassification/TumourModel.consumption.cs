// The consumption half of the model, in Model Builder's layout: input and output classes, one lazily created
// prediction engine shared by every thread, and Predict / PredictAllLabels.
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep;

namespace TumourClassification;

public partial class TumourModel
{
    /// <summary>One row of wdbc.csv: 30 measurements of a tumour's cell nuclei, and the diagnosis.</summary>
    public class ModelInput
    {
        [LoadColumn(0), ColumnName(@"radius_mean")]
        public float RadiusMean { get; set; }

        [LoadColumn(1), ColumnName(@"texture_mean")]
        public float TextureMean { get; set; }

        [LoadColumn(2), ColumnName(@"perimeter_mean")]
        public float PerimeterMean { get; set; }

        [LoadColumn(3), ColumnName(@"area_mean")]
        public float AreaMean { get; set; }

        [LoadColumn(4), ColumnName(@"smoothness_mean")]
        public float SmoothnessMean { get; set; }

        [LoadColumn(5), ColumnName(@"compactness_mean")]
        public float CompactnessMean { get; set; }

        [LoadColumn(6), ColumnName(@"concavity_mean")]
        public float ConcavityMean { get; set; }

        [LoadColumn(7), ColumnName(@"concave_points_mean")]
        public float ConcavePointsMean { get; set; }

        [LoadColumn(8), ColumnName(@"symmetry_mean")]
        public float SymmetryMean { get; set; }

        [LoadColumn(9), ColumnName(@"fractal_dimension_mean")]
        public float FractalDimensionMean { get; set; }

        [LoadColumn(10), ColumnName(@"radius_se")]
        public float RadiusSe { get; set; }

        [LoadColumn(11), ColumnName(@"texture_se")]
        public float TextureSe { get; set; }

        [LoadColumn(12), ColumnName(@"perimeter_se")]
        public float PerimeterSe { get; set; }

        [LoadColumn(13), ColumnName(@"area_se")]
        public float AreaSe { get; set; }

        [LoadColumn(14), ColumnName(@"smoothness_se")]
        public float SmoothnessSe { get; set; }

        [LoadColumn(15), ColumnName(@"compactness_se")]
        public float CompactnessSe { get; set; }

        [LoadColumn(16), ColumnName(@"concavity_se")]
        public float ConcavitySe { get; set; }

        [LoadColumn(17), ColumnName(@"concave_points_se")]
        public float ConcavePointsSe { get; set; }

        [LoadColumn(18), ColumnName(@"symmetry_se")]
        public float SymmetrySe { get; set; }

        [LoadColumn(19), ColumnName(@"fractal_dimension_se")]
        public float FractalDimensionSe { get; set; }

        [LoadColumn(20), ColumnName(@"radius_worst")]
        public float RadiusWorst { get; set; }

        [LoadColumn(21), ColumnName(@"texture_worst")]
        public float TextureWorst { get; set; }

        [LoadColumn(22), ColumnName(@"perimeter_worst")]
        public float PerimeterWorst { get; set; }

        [LoadColumn(23), ColumnName(@"area_worst")]
        public float AreaWorst { get; set; }

        [LoadColumn(24), ColumnName(@"smoothness_worst")]
        public float SmoothnessWorst { get; set; }

        [LoadColumn(25), ColumnName(@"compactness_worst")]
        public float CompactnessWorst { get; set; }

        [LoadColumn(26), ColumnName(@"concavity_worst")]
        public float ConcavityWorst { get; set; }

        [LoadColumn(27), ColumnName(@"concave_points_worst")]
        public float ConcavePointsWorst { get; set; }

        [LoadColumn(28), ColumnName(@"symmetry_worst")]
        public float SymmetryWorst { get; set; }

        [LoadColumn(29), ColumnName(@"fractal_dimension_worst")]
        public float FractalDimensionWorst { get; set; }

        [LoadColumn(30), ColumnName(@"Malignant")]
        public bool Malignant { get; set; }
    }

    /// <summary>What the model adds: ML.NET's binary columns.</summary>
    public class ModelOutput
    {
        [ColumnName(@"PredictedLabel")]
        public bool PredictedLabel { get; set; }

        [ColumnName(@"Score")]
        public float Score { get; set; }

        [ColumnName(@"Probability")]
        public float Probability { get; set; }
    }

    /// <summary>Where <see cref="Train"/> writes the model and <see cref="Predict"/> reads it.</summary>
    public static string ModelPath { get; set; } = Path.GetFullPath("TumourModel.zip");

    // PredictionEngine is not thread-safe: one engine, made on first use, and a lock around each prediction.
    private static readonly Lazy<PredictionEngine<ModelInput, ModelOutput>> Engine = new(CreatePredictEngine, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly object EngineLock = new();

    /// <summary>Predicts one tumour.</summary>
    public static ModelOutput Predict(ModelInput input)
    {
        lock (EngineLock) return Engine.Value.Predict(input);
    }

    /// <summary>Both labels with their probabilities, the likelier first.</summary>
    public static IOrderedEnumerable<KeyValuePair<string, float>> PredictAllLabels(ModelInput input)
    {
        var output = Predict(input);
        return new[]
        {
            new KeyValuePair<string, float>("malignant", output.Probability),
            new KeyValuePair<string, float>("benign", 1 - output.Probability),
        }.OrderByDescending(pair => pair.Value);
    }

    private static PredictionEngine<ModelInput, ModelOutput> CreatePredictEngine()
    {
        var ml = new MLContext();
        var model = ml.Model.LoadDeep(ModelPath, out var schema);
        return ml.Model.CreatePredictionEngine<ModelInput, ModelOutput>(model, inputSchema: schema);
    }
}
