// The consumption half of the model, in Model Builder's layout: input and output classes, one lazily created
// prediction engine shared by every thread, and Predict.
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep;

namespace DiabetesRegression;

public partial class DiabetesModel
{
    /// <summary>One row of diabetes.csv: ten baseline measurements of a patient and the disease's progression a year later.</summary>
    public class ModelInput
    {
        [LoadColumn(0), ColumnName(@"Age")]
        public float Age { get; set; }

        [LoadColumn(1), ColumnName(@"Sex")]
        public float Sex { get; set; }

        [LoadColumn(2), ColumnName(@"Bmi")]
        public float Bmi { get; set; }

        [LoadColumn(3), ColumnName(@"BloodPressure")]
        public float BloodPressure { get; set; }

        [LoadColumn(4), ColumnName(@"TotalCholesterol")]
        public float TotalCholesterol { get; set; }

        [LoadColumn(5), ColumnName(@"Ldl")]
        public float Ldl { get; set; }

        [LoadColumn(6), ColumnName(@"Hdl")]
        public float Hdl { get; set; }

        [LoadColumn(7), ColumnName(@"CholesterolRatio")]
        public float CholesterolRatio { get; set; }

        [LoadColumn(8), ColumnName(@"Triglycerides")]
        public float Triglycerides { get; set; }

        [LoadColumn(9), ColumnName(@"BloodSugar")]
        public float BloodSugar { get; set; }

        [LoadColumn(10), ColumnName(@"Progression")]
        public float Progression { get; set; }
    }

    /// <summary>What the model adds: the predicted progression.</summary>
    public class ModelOutput
    {
        [ColumnName(@"Score")]
        public float Score { get; set; }
    }

    /// <summary>Where <see cref="Train"/> writes the model and <see cref="Predict"/> reads it.</summary>
    public static string ModelPath { get; set; } = Path.GetFullPath("DiabetesModel.zip");

    // PredictionEngine is not thread-safe: one engine, made on first use, and a lock around each prediction.
    private static readonly Lazy<PredictionEngine<ModelInput, ModelOutput>> Engine = new(CreatePredictEngine, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly object EngineLock = new();

    /// <summary>Predicts one patient's progression.</summary>
    public static ModelOutput Predict(ModelInput input)
    {
        lock (EngineLock) return Engine.Value.Predict(input);
    }

    private static PredictionEngine<ModelInput, ModelOutput> CreatePredictEngine()
    {
        var ml = new MLContext();
        var model = ml.Model.LoadDeep(ModelPath, out var schema);
        return ml.Model.CreatePredictionEngine<ModelInput, ModelOutput>(model, inputSchema: schema);
    }
}
