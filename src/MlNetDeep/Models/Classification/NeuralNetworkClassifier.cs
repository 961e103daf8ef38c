using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MlNetDeep.Data;
using MlNetDeep.Models.Common;
using MlNetDeep.Networks;
using MlNetDeep.Persistence;
using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Classification;

/// <summary>Options of the multiclass neural-network trainer (MLP or CNN). The label must be a key (use MapValueToKey);
/// Score holds the class probabilities, PredictedLabel the class (a key with the label's key values). An MLP(128) by default.</summary>
public class NeuralNetworkClassifierOptions() : SupervisedNetworkOptions(Networks.Networks.Mlp())
{
    /// <summary>Output column of the predicted class (a key with the label's key values).</summary>
    public string PredictedLabelColumnName { get; set; } = "PredictedLabel";

    internal override void Validate()
    {
        base.Validate();
        if (string.IsNullOrWhiteSpace(PredictedLabelColumnName)) throw new ArgumentException("PredictedLabelColumnName must name a column.", nameof(PredictedLabelColumnName));
    }

    private protected override IEnumerable<(string Option, string? Name)> OutputColumnNames =>
        [(nameof(ScoreColumnName), ScoreColumnName), (nameof(PredictedLabelColumnName), PredictedLabelColumnName)];
}

/// <summary>Trains a neural network to classify rows into the label's classes, with cross-entropy.</summary>
public sealed class NeuralNetworkClassifier : DeepEstimator<NeuralNetworkClassifierOptions, NeuralNetworkClassificationTransformer>
{
    public NeuralNetworkClassifier(IHostEnvironment env, NeuralNetworkClassifierOptions options) : base(env, options) { }

    private protected override string Name => "NeuralNetworkClassifier";

    private protected override NetworkSpec NetworkFor(TaskSetup task) => Options.Network.WithTaskOutputs(task.Outputs);

    private protected override TaskSetup Setup(DataViewSchema schema) => ClassificationTask.Setup(schema, Options);

    private protected override IEnumerable<SchemaShape.Column> OutputShapes(SchemaShape inputSchema) => ClassificationTask.OutputShapes(inputSchema, Options);

    private protected override NeuralNetworkClassificationTransformer CreateTransformer(nn.Module module, NetworkSpec network, int[] inputShape, Device device,
        TaskSetup task, DataViewSchema schema, TrainingHistory history) => ClassificationTask.Transformer(module, network, inputShape, device, task, schema, history, Options);
}

/// <summary>The multiclass task as every network classifier sees it: a key label, Score and PredictedLabel, the transformer.</summary>
internal static class ClassificationTask
{
    public static TaskSetup Setup(DataViewSchema schema, SupervisedNetworkOptions options)
    {
        options.CheckColumnNames();
        var label = ColumnChecks.Find(schema, options.LabelColumnName, "label");
        ColumnChecks.RequireKeyLabel(label);
        int classes = ColumnChecks.KeyCount(schema[options.LabelColumnName]);
        if (classes < 2) throw new ArgumentOutOfRangeException(nameof(options.LabelColumnName), $"The label column '{options.LabelColumnName}' has {classes} class(es); classification needs at least 2.");
        return new TaskSetup(options.LabelColumnName, LabelKind.ClassIndex, classes, classes, new CrossEntropyObjective(options.Network.EndsWithSoftmax));
    }

    public static IEnumerable<SchemaShape.Column> OutputShapes(SchemaShape inputSchema, NeuralNetworkClassifierOptions options)
    {
        options.CheckColumnNames();
        var label = ColumnChecks.Find(inputSchema, options.LabelColumnName, "label");
        ColumnChecks.RequireKeyLabel(label);
        var labelColumn = inputSchema.Last(c => c.Name == options.LabelColumnName);
        var keyAnnotations = new SchemaShape(labelColumn.Annotations.Where(a => a.Name == "KeyValues"));
        var slotAnnotations = new SchemaShape(keyAnnotations.Select(a => SchemaShapes.Column("SlotNames", a.Kind, TextDataViewType.Instance, false)));
        yield return SchemaShapes.Column(options.ScoreColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false, slotAnnotations);
        yield return SchemaShapes.Column(options.PredictedLabelColumnName, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.UInt32, true, keyAnnotations);
    }

    public static NeuralNetworkClassificationTransformer Transformer(nn.Module module, NetworkSpec network, int[] inputShape, Device device,
        TaskSetup task, DataViewSchema schema, TrainingHistory history, NeuralNetworkClassifierOptions options) =>
        new(module, network, options.FeatureColumnName, inputShape, device, options.ScoringBatchSize, task.ClassCount,
            KeyValues.From(schema[options.LabelColumnName]), options.ScoreColumnName, options.PredictedLabelColumnName) { History = history };
}

public sealed class NeuralNetworkClassificationTransformer : DeepTransformer
{
    internal const string KindName = "MulticlassNeuralNetwork";

    private readonly KeyValues? _keyValues;
    private readonly bool _outputsProbabilities;

    internal NeuralNetworkClassificationTransformer(nn.Module module, NetworkSpec network, string featureColumnName, int[] inputShape, Device device,
        int scoringBatchSize, int classes, KeyValues? keyValues, string scoreColumn, string predictedLabelColumn)
        : base(module, network, featureColumnName, inputShape, device, scoringBatchSize)
    {
        ClassCount = classes;
        _keyValues = keyValues;
        _outputsProbabilities = network.EndsWithSoftmax;
        OutputColumns =
        [
            new VectorOutputColumn(scoreColumn, 0, classes, keyValues),
            new ArgMaxKeyOutputColumn(predictedLabelColumn, 0, classes, keyValues),
        ];
    }

    public int ClassCount { get; }

    internal override IReadOnlyList<OutputColumn> OutputColumns { get; }
    public override int OutputWidth => ClassCount;
    public override string Kind => KindName;

    protected override Tensor Forward(Tensor inputs)
    {
        var output = ((nn.Module<Tensor, Tensor>)Module).call(inputs);
        return _outputsProbabilities ? output : nn.functional.softmax(output, 1);
    }

    /// <summary>The network's logits for <paramref name="inputs"/> (the log of its probabilities when it ends in a softmax), with gradients if enabled.</summary>
    internal Tensor Logits(nn.Module module, Tensor inputs)
    {
        var output = ((nn.Module<Tensor, Tensor>)module).call(inputs);
        return _outputsProbabilities ? output.clamp_min(1e-12).log() : output;
    }

    /// <summary>The ONNX export computes exactly <see cref="Forward"/>: the network and its head.</summary>
    private protected override bool OnnxScoringMatchesForward => true;

    private protected override Persistence.Onnx.OnnxExporter.Head? OnnxHead =>
        _outputsProbabilities ? Persistence.Onnx.OnnxExporter.Head.None : Persistence.Onnx.OnnxExporter.Head.Softmax;

    internal override TransformerRecord ToRecord() => NewRecord()
        .With("classes", ClassCount)
        .With("keyValuesType", _keyValues?.TypeName)
        .With("keyValues", _keyValues?.Values.ToArray())
        .With("scoreColumn", OutputColumns[0].Name)
        .With("predictedLabelColumn", OutputColumns[1].Name);
}

/// <summary>How a saved <see cref="NeuralNetworkClassificationTransformer"/> is read back.</summary>
internal sealed class NeuralNetworkClassificationTransformerFormat : NetworkModelFormat
{
    public override string Kind => NeuralNetworkClassificationTransformer.KindName;

    public override nn.Module BuildModule(TransformerRecord record) =>
        record.Network.Build(record.InputShape);

    public override Microsoft.ML.ITransformer Create(TransformerRecord record, nn.Module module, Device device) =>
        new NeuralNetworkClassificationTransformer(module, record.Network, record.FeatureColumnName, record.InputShape, device,
            record.ScoringBatchSize, record.Get<int>("classes"),
            record.GetOrDefault<string>("keyValuesType") is { } type ? new KeyValues(type, record.Get<string[]>("keyValues")) : null,
            record.Get<string>("scoreColumn"), record.Get<string>("predictedLabelColumn"));
}
