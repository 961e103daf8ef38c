// The consumption half of the model, in Model Builder's layout: input and output classes, one lazily created
// prediction engine shared by every thread, Predict and the labels sorted by score.
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep;

namespace ImageClassification;

public partial class ImageModel
{
    /// <summary>One image file; Label is only needed for training and evaluation.</summary>
    public class ModelInput
    {
        [ColumnName(@"ImagePath")]
        public string ImagePath { get; set; } = "";

        [ColumnName(@"Label")]
        public string Label { get; set; } = "";
    }

    /// <summary>What the model adds: the predicted label and the probability of each class.</summary>
    public class ModelOutput
    {
        [ColumnName(@"PredictedLabel")]
        public string PredictedLabel { get; set; } = "";

        [ColumnName(@"Score")]
        public float[] Score { get; set; } = [];
    }

    /// <summary>Where <see cref="Train"/> writes the model and <see cref="Predict"/> reads it.</summary>
    public static string ModelPath { get; set; } = Path.GetFullPath("ImageModel.zip");

    // PredictionEngine is not thread-safe: one engine, made on first use, and a lock around each prediction.
    private static readonly Lazy<(PredictionEngine<ModelInput, ModelOutput> Engine, string[] Labels)> Engine =
        new(CreatePredictEngine, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly object EngineLock = new();

    /// <summary>Predicts one image.</summary>
    public static ModelOutput Predict(ModelInput input)
    {
        lock (EngineLock) return Engine.Value.Engine.Predict(input);
    }

    /// <summary>Every class with its probability, the likeliest first.</summary>
    public static IOrderedEnumerable<KeyValuePair<string, float>> PredictAllLabels(ModelInput input)
    {
        var output = Predict(input);
        var labels = Engine.Value.Labels;
        return labels.Zip(output.Score, (label, score) => new KeyValuePair<string, float>(label, score)).OrderByDescending(pair => pair.Value);
    }

    private static (PredictionEngine<ModelInput, ModelOutput>, string[]) CreatePredictEngine()
    {
        var ml = new MLContext();
        var model = ml.Model.LoadDeep(ModelPath, out var schema);
        // The Score column's slot names are the classes, in the order of its values.
        var scoreColumn = model.GetOutputSchema(schema)[@"Score"];
        VBuffer<ReadOnlyMemory<char>> names = default;
        scoreColumn.GetSlotNames(ref names);
        return (ml.Model.CreatePredictionEngine<ModelInput, ModelOutput>(model, inputSchema: schema), names.DenseValues().Select(n => n.ToString()).ToArray());
    }
}
