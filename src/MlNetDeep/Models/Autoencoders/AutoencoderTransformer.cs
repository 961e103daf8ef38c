using MlNetDeep.Models.Common;
using MlNetDeep.Networks;
using MlNetDeep.Persistence;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Autoencoders;

/// <summary>A trained autoencoder: adds the Latent code (vector&lt;float&gt;[latent size]) and the Reconstruction (the input's size).</summary>
public sealed class AutoencoderTransformer : AutoencoderTransformerBase
{
    internal const string KindName = "Autoencoder";

    internal AutoencoderTransformer(nn.Module module, NetworkSpec network, NetworkSpec encoder, NetworkSpec decoder, int[] latentShape,
        string featureColumnName, int[] inputShape, Device device, int scoringBatchSize, string latentColumnName, string reconstructionColumnName)
        : base(module, network, encoder, decoder, latentShape, featureColumnName, inputShape, device, scoringBatchSize, latentColumnName, reconstructionColumnName)
    {
        OutputColumns =
        [
            new VectorOutputColumn(latentColumnName, 0, LatentSize),
            new VectorOutputColumn(reconstructionColumnName, LatentSize, FeatureSize),
        ];
    }

    internal override IReadOnlyList<OutputColumn> OutputColumns { get; }
    public override int OutputWidth => LatentSize + FeatureSize;
    public override string Kind => KindName;

    protected override Tensor Forward(Tensor inputs)
    {
        long n = inputs.shape[0];
        var latent = Parts.EncodeLatent(inputs);
        var reconstruction = Parts.Decode(latent).reshape(n, -1);
        return cat([latent.reshape(n, -1), reconstruction], 1);
    }

    internal override TransformerRecord ToRecord() => NewRecord()
        .With("encoder", Encoder)
        .With("decoder", Decoder)
        .With("latentShape", LatentShape)
        .With("latentColumn", LatentColumnName)
        .With("reconstructionColumn", ReconstructionColumnName);
}

/// <summary>How a saved <see cref="AutoencoderTransformer"/> is read back.</summary>
internal sealed class AutoencoderTransformerFormat : NetworkModelFormat
{
    public override string Kind => AutoencoderTransformer.KindName;

    public override nn.Module BuildModule(TransformerRecord record) =>
        new AutoencoderModule(record.Get<NetworkSpec>("encoder"), record.Get<NetworkSpec>("decoder"), record.InputShape);

    public override Microsoft.ML.ITransformer Create(TransformerRecord record, nn.Module module, Device device) =>
        new AutoencoderTransformer(module, record.Network, record.Get<NetworkSpec>("encoder"), record.Get<NetworkSpec>("decoder"),
            record.Get<int[]>("latentShape"), record.FeatureColumnName, record.InputShape, device, record.ScoringBatchSize,
            record.Get<string>("latentColumn"), record.Get<string>("reconstructionColumn"));
}
