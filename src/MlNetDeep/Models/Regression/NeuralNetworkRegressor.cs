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

namespace MlNetDeep.Models.Regression;

/// <summary>Options of the neural-network regression trainer: a Single label, a Single Score. An MLP(64) by default.</summary>
public sealed class NeuralNetworkRegressorOptions() : SupervisedNetworkOptions(Networks.Networks.Mlp(64));

/// <summary>Trains a neural network to predict a float label, with mean squared error.</summary>
public sealed class NeuralNetworkRegressor : DeepEstimator<NeuralNetworkRegressorOptions, NeuralNetworkRegressionTransformer>
{
    public NeuralNetworkRegressor(IHostEnvironment env, NeuralNetworkRegressorOptions options) : base(env, options) { }

    private protected override string Name => "NeuralNetworkRegressor";

    private protected override NetworkSpec NetworkFor(TaskSetup task) => Options.Network.WithTaskOutputs(1);

    private protected override TaskSetup Setup(DataViewSchema schema)
    {
        Options.CheckColumnNames();
        ColumnChecks.RequireFloatLabel(ColumnChecks.Find(schema, Options.LabelColumnName, "label"));
        return new TaskSetup(Options.LabelColumnName, LabelKind.Float, 1, 0, new MeanSquaredErrorObjective());
    }

    private protected override IEnumerable<SchemaShape.Column> OutputShapes(SchemaShape inputSchema)
    {
        Options.CheckColumnNames();
        ColumnChecks.RequireFloatLabel(ColumnChecks.Find(inputSchema, Options.LabelColumnName, "label"));
        yield return SchemaShapes.Column(Options.ScoreColumnName, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single, false);
    }

    private protected override NeuralNetworkRegressionTransformer CreateTransformer(nn.Module module, NetworkSpec network, int[] inputShape, Device device,
        TaskSetup task, DataViewSchema schema, TrainingHistory history) =>
        new(module, network, Options.FeatureColumnName, inputShape, device, Options.ScoringBatchSize, Options.ScoreColumnName) { History = history };
}

/// <summary>A trained regressor: adds the Score column.</summary>
public sealed class NeuralNetworkRegressionTransformer : DeepTransformer
{
    internal const string KindName = "NeuralNetworkRegression";

    internal NeuralNetworkRegressionTransformer(nn.Module module, NetworkSpec network, string featureColumnName, int[] inputShape, Device device,
        int scoringBatchSize, string scoreColumn)
        : base(module, network, featureColumnName, inputShape, device, scoringBatchSize)
    {
        OutputColumns = [new ScalarOutputColumn(scoreColumn, 0)];
    }

    internal override IReadOnlyList<OutputColumn> OutputColumns { get; }
    public override int OutputWidth => 1;
    public override string Kind => KindName;

    protected override Tensor Forward(Tensor inputs) => ((nn.Module<Tensor, Tensor>)Module).call(inputs).reshape(-1, 1);

    /// <summary>The ONNX export computes exactly <see cref="Forward"/>: the network and its head.</summary>
    private protected override bool OnnxScoringMatchesForward => true;

    private protected override Persistence.Onnx.OnnxExporter.Head? OnnxHead => Persistence.Onnx.OnnxExporter.Head.None;

    internal override TransformerRecord ToRecord() => NewRecord().With("scoreColumn", OutputColumns[0].Name);
}

/// <summary>How a saved <see cref="NeuralNetworkRegressionTransformer"/> is read back.</summary>
internal sealed class NeuralNetworkRegressionTransformerFormat : NetworkModelFormat
{
    public override string Kind => NeuralNetworkRegressionTransformer.KindName;

    public override nn.Module BuildModule(TransformerRecord record) =>
        record.Network.Build(record.InputShape);

    public override Microsoft.ML.ITransformer Create(TransformerRecord record, nn.Module module, Device device) =>
        new NeuralNetworkRegressionTransformer(module, record.Network, record.FeatureColumnName, record.InputShape, device,
            record.ScoringBatchSize, record.Get<string>("scoreColumn"));
}
