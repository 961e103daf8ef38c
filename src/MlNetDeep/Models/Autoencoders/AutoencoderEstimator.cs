using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MlNetDeep.Data;
using MlNetDeep.Models.Common;
using MlNetDeep.Networks;
using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Autoencoders;

/// <summary>
/// The shared estimator of the autoencoder families: the features are their own target (a clean copy, so that a
/// <see cref="AutoencoderOptionsBase.Corruption"/> trains a denoiser), the network is the encoder followed by the decoder.
/// </summary>
public abstract class AutoencoderEstimatorBase<TOptions, TTransformer> : DeepEstimator<TOptions, TTransformer>
    where TOptions : AutoencoderOptionsBase
    where TTransformer : AutoencoderTransformerBase
{
    private protected AutoencoderEstimatorBase(IHostEnvironment env, TOptions options) : base(env, options) { }

    private protected abstract TrainingObjective Objective { get; }

    /// <summary>Extra output columns after Latent and Reconstruction.</summary>
    private protected virtual IEnumerable<SchemaShape.Column> ExtraOutputShapes() => [];

    /// <summary>The layers between the encoder and the decoder in the combined spec (a VAE's mean head).</summary>
    private protected virtual IEnumerable<Layer> Bottleneck(TOptions options) => [];

    private protected override TaskSetup Setup(DataViewSchema schema)
    {
        Options.CheckColumnNames();
        var features = ColumnChecks.Find(schema, Options.FeatureColumnName, "feature");
        int size = ColumnChecks.RequireFloatFeatures(features);
        return new TaskSetup(null, LabelKind.Inputs, size, 0, Objective);
    }

    /// <summary>The encoder, (bottleneck,) decoder as one spec: its shapes are the model's path from input to reconstruction.</summary>
    private protected override NetworkSpec NetworkFor(TaskSetup task)
    {
        int[] inputShape = Options.InputShape ?? [task.Outputs];
        var (encoder, decoder, _) = Options.Resolve(inputShape);
        return encoder.Then(new NetworkSpec(Bottleneck(Options))).Then(decoder, $"{Options.Encoder.Name}+{Options.Decoder.Name}");
    }

    private protected override IEnumerable<SchemaShape.Column> OutputShapes(SchemaShape inputSchema)
    {
        Options.CheckColumnNames();
        yield return SchemaShapes.Column(Options.LatentColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false);
        yield return SchemaShapes.Column(Options.ReconstructionColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false);
        foreach (var column in ExtraOutputShapes()) yield return column;
    }
}

/// <summary>
/// Trains an autoencoder (dense or convolutional; denoising with a corruption) to reconstruct its feature column.
/// The transformer adds <c>Latent</c> (the code) and <c>Reconstruction</c> columns.
/// </summary>
public sealed class AutoencoderEstimator : AutoencoderEstimatorBase<AutoencoderOptions, AutoencoderTransformer>
{
    /// <summary>Creates the estimator; prefer <c>mlContext.Transforms.Autoencoder(options)</c>.</summary>
    public AutoencoderEstimator(IHostEnvironment env, AutoencoderOptions options) : base(env, options) { }

    private protected override string Name => "Autoencoder";

    private protected override TrainingObjective Objective => new ReconstructionObjective(Options.ReconstructionLoss, Options.FeatureColumnName);

    private protected override nn.Module BuildModule(NetworkSpec network, int[] inputShape)
    {
        var (encoder, decoder, _) = Options.Resolve(inputShape);
        return new AutoencoderModule(encoder, decoder, inputShape);
    }

    private protected override AutoencoderTransformer CreateTransformer(nn.Module module, NetworkSpec network, int[] inputShape, Device device,
        TaskSetup task, DataViewSchema schema, TrainingHistory history)
    {
        var (encoder, decoder, latentShape) = Options.Resolve(inputShape);
        return new AutoencoderTransformer(module, network, encoder, decoder, latentShape, Options.FeatureColumnName, inputShape, device,
            Options.ScoringBatchSize, Options.LatentColumnName, Options.ReconstructionColumnName) { History = history };
    }
}
