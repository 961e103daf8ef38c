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

/// <summary>
/// Options of the binary neural-network trainer. The label is a Boolean; the outputs are ML.NET's binary columns:
/// Score (the logit, positive for true), Probability (its sigmoid) and PredictedLabel (Score &gt; 0). An MLP(32) by default.
/// Standardise the features first (<c>NormalizeMeanVariance(..., fixZero: false)</c>, see docs/binary-classification.md).
/// </summary>
public class NeuralNetworkBinaryClassifierOptions() : SupervisedNetworkOptions(Networks.Networks.Mlp(32))
{
    /// <summary>Output column of the probability of true.</summary>
    public string ProbabilityColumnName { get; set; } = "Probability";

    /// <summary>Output column of the predicted label (Boolean).</summary>
    public string PredictedLabelColumnName { get; set; } = "PredictedLabel";

    internal override void Validate()
    {
        base.Validate();
        if (string.IsNullOrWhiteSpace(ProbabilityColumnName)) throw new ArgumentException("ProbabilityColumnName must name a column.", nameof(ProbabilityColumnName));
        if (string.IsNullOrWhiteSpace(PredictedLabelColumnName)) throw new ArgumentException("PredictedLabelColumnName must name a column.", nameof(PredictedLabelColumnName));
    }

    private protected override IEnumerable<(string Option, string? Name)> OutputColumnNames =>
        [(nameof(ScoreColumnName), ScoreColumnName), (nameof(ProbabilityColumnName), ProbabilityColumnName), (nameof(PredictedLabelColumnName), PredictedLabelColumnName)];
}

/// <summary>Trains a neural network to predict a Boolean label, with binary cross-entropy on one logit.</summary>
public sealed class NeuralNetworkBinaryClassifier : DeepEstimator<NeuralNetworkBinaryClassifierOptions, NeuralNetworkBinaryClassificationTransformer>
{
    public NeuralNetworkBinaryClassifier(IHostEnvironment env, NeuralNetworkBinaryClassifierOptions options) : base(env, options) { }

    private protected override string Name => "NeuralNetworkBinaryClassifier";

    private protected override NetworkSpec NetworkFor(TaskSetup task) => Options.Network.WithTaskOutputs(1);

    private protected override TaskSetup Setup(DataViewSchema schema) => BinaryClassificationTask.Setup(schema, Options);

    private protected override IEnumerable<SchemaShape.Column> OutputShapes(SchemaShape inputSchema) => BinaryClassificationTask.OutputShapes(inputSchema, Options);

    private protected override NeuralNetworkBinaryClassificationTransformer CreateTransformer(nn.Module module, NetworkSpec network, int[] inputShape, Device device,
        TaskSetup task, DataViewSchema schema, TrainingHistory history) => BinaryClassificationTask.Transformer(module, network, inputShape, device, history, Options);
}

/// <summary>The binary task as every network classifier sees it: a Boolean label, one logit, Score, Probability and PredictedLabel.</summary>
internal static class BinaryClassificationTask
{
    public static TaskSetup Setup(DataViewSchema schema, NeuralNetworkBinaryClassifierOptions options)
    {
        options.CheckColumnNames();
        ColumnChecks.RequireBooleanLabel(ColumnChecks.Find(schema, options.LabelColumnName, "label"));
        return new TaskSetup(options.LabelColumnName, LabelKind.Boolean, 1, 0, new BinaryCrossEntropyObjective());
    }

    public static IEnumerable<SchemaShape.Column> OutputShapes(SchemaShape inputSchema, NeuralNetworkBinaryClassifierOptions options)
    {
        options.CheckColumnNames();
        ColumnChecks.RequireBooleanLabel(ColumnChecks.Find(inputSchema, options.LabelColumnName, "label"));
        return NeuralNetworkBinaryClassificationTransformer.Columns(options.ScoreColumnName, options.ProbabilityColumnName, options.PredictedLabelColumnName)
            .Select(c => c.ToShape());
    }

    public static NeuralNetworkBinaryClassificationTransformer Transformer(nn.Module module, NetworkSpec network, int[] inputShape, Device device,
        TrainingHistory history, NeuralNetworkBinaryClassifierOptions options) =>
        new(module, network, options.FeatureColumnName, inputShape, device, options.ScoringBatchSize,
            options.ScoreColumnName, options.ProbabilityColumnName, options.PredictedLabelColumnName) { History = history };
}

public sealed class NeuralNetworkBinaryClassificationTransformer : DeepTransformer
{
    internal const string KindName = "BinaryNeuralNetwork";

    internal NeuralNetworkBinaryClassificationTransformer(nn.Module module, NetworkSpec network, string featureColumnName, int[] inputShape, Device device,
        int scoringBatchSize, string scoreColumn, string probabilityColumn, string predictedLabelColumn)
        : base(module, network, featureColumnName, inputShape, device, scoringBatchSize)
    {
        OutputColumns = Columns(scoreColumn, probabilityColumn, predictedLabelColumn);
    }

    internal static OutputColumn[] Columns(string score, string probability, string predictedLabel) =>
    [
        new ScalarOutputColumn(score, 0),
        new ScalarOutputColumn(probability, 1),
        new PositiveOutputColumn(predictedLabel, 0),
    ];

    internal override IReadOnlyList<OutputColumn> OutputColumns { get; }
    public override int OutputWidth => 2;
    public override string Kind => KindName;

    protected override Tensor Forward(Tensor inputs)
    {
        var logit = ((nn.Module<Tensor, Tensor>)Module).call(inputs).reshape(-1, 1);
        return cat([logit, logit.sigmoid()], 1);
    }

    /// <summary>ONNX export writes the logit (the Score column); the probability is its sigmoid.</summary>
    private protected override Persistence.Onnx.OnnxExporter.Head? OnnxHead => Persistence.Onnx.OnnxExporter.Head.None;

    /// <summary>In-process ONNX Runtime scoring computes <see cref="Forward"/>: the logit beside its sigmoid.</summary>
    private protected override bool OnnxScoringMatchesForward => true;

    private protected override Persistence.Onnx.OnnxExporter.Head? OnnxScoringHead => Persistence.Onnx.OnnxExporter.Head.LogitAndProbability;

    internal override TransformerRecord ToRecord() => NewRecord()
        .With("scoreColumn", OutputColumns[0].Name)
        .With("probabilityColumn", OutputColumns[1].Name)
        .With("predictedLabelColumn", OutputColumns[2].Name);
}

/// <summary>How a saved <see cref="NeuralNetworkBinaryClassificationTransformer"/> is read back.</summary>
internal sealed class NeuralNetworkBinaryClassificationTransformerFormat : NetworkModelFormat
{
    public override string Kind => NeuralNetworkBinaryClassificationTransformer.KindName;

    public override nn.Module BuildModule(TransformerRecord record) => record.Network.Build(record.InputShape);

    public override Microsoft.ML.ITransformer Create(TransformerRecord record, nn.Module module, Device device) =>
        new NeuralNetworkBinaryClassificationTransformer(module, record.Network, record.FeatureColumnName, record.InputShape, device,
            record.ScoringBatchSize, record.Get<string>("scoreColumn"), record.Get<string>("probabilityColumn"), record.Get<string>("predictedLabelColumn"));
}
