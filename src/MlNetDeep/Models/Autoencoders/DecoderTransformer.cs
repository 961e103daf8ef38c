using MlNetDeep.Models.Common;
using MlNetDeep.Networks;
using MlNetDeep.Persistence;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Autoencoders;

/// <summary>An autoencoder's decoder on its own: reads a latent column and adds an image (reconstruction) column.</summary>
public sealed class DecoderTransformer : DeepTransformer
{
    internal const string KindName = "AutoencoderDecoder";

    internal DecoderTransformer(nn.Module module, NetworkSpec network, string latentColumnName, int[] latentShape, Device device, int scoringBatchSize,
        string outputColumnName, int outputSize)
        : base(module, network, latentColumnName, latentShape, device, scoringBatchSize)
    {
        OutputSize = outputSize;
        OutputColumns = [new VectorOutputColumn(outputColumnName, 0, outputSize)];
    }

    /// <summary>Values per decoded image.</summary>
    public int OutputSize { get; }

    internal override IReadOnlyList<OutputColumn> OutputColumns { get; }
    public override int OutputWidth => OutputSize;
    public override string Kind => KindName;

    protected override Tensor Forward(Tensor inputs) => ((nn.Module<Tensor, Tensor>)Module).call(inputs).reshape(inputs.shape[0], -1);

    /// <summary>ONNX export: the latent column in, the decoded image (flattened) out.</summary>
    private protected override Persistence.Onnx.OnnxExporter.Head? OnnxHead => Persistence.Onnx.OnnxExporter.Head.None;

    internal override TransformerRecord ToRecord() => NewRecord()
        .With("outputColumn", OutputColumns[0].Name)
        .With("outputSize", OutputSize);
}

/// <summary>How a saved <see cref="DecoderTransformer"/> is read back.</summary>
internal sealed class DecoderTransformerFormat : NetworkModelFormat
{
    public override string Kind => DecoderTransformer.KindName;

    public override nn.Module BuildModule(TransformerRecord record) =>
        record.Network.Build(record.InputShape);

    public override Microsoft.ML.ITransformer Create(TransformerRecord record, nn.Module module, Device device) =>
        new DecoderTransformer(module, record.Network, record.FeatureColumnName, record.InputShape, device,
            record.ScoringBatchSize, record.Get<string>("outputColumn"), record.Get<int>("outputSize"));
}
