using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MlNetDeep.Models.Common;
using MlNetDeep.Networks;
using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Autoencoders;

/// <summary>
/// Trains a variational autoencoder: the encoder gives a latent mean and log-variance, z is sampled with the
/// reparameterisation trick, the decoder reconstructs; loss = reconstruction + beta * KL. The transformer adds the
/// latent mean (<c>Latent</c>), the reconstruction of the mean and, optionally, a seeded sample.
/// </summary>
public sealed class VariationalAutoencoderEstimator : AutoencoderEstimatorBase<VariationalAutoencoderOptions, VariationalAutoencoderTransformer>
{
    /// <summary>Creates the estimator; prefer <c>mlContext.Transforms.VariationalAutoencoder(options)</c>.</summary>
    public VariationalAutoencoderEstimator(IHostEnvironment env, VariationalAutoencoderOptions options) : base(env, options) { }

    private protected override string Name => "VariationalAutoencoder";

    private protected override TrainingObjective Objective => new VariationalObjective(Options.ReconstructionLoss, Options.Beta, Options.FeatureColumnName);

    private protected override IEnumerable<Layer> Bottleneck(VariationalAutoencoderOptions options) => [new Flatten(), new Dense(options.LatentSize)];

    private protected override IEnumerable<SchemaShape.Column> ExtraOutputShapes() => Options.SampleColumnName is { } sample
        ? [SchemaShapes.Column(sample, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false)]
        : [];

    private protected override nn.Module BuildModule(NetworkSpec network, int[] inputShape)
    {
        var (encoder, decoder, _) = Options.Resolve(inputShape);
        return new VariationalAutoencoderModule(encoder, decoder, inputShape, Options.LatentSize);
    }

    private protected override VariationalAutoencoderTransformer CreateTransformer(nn.Module module, NetworkSpec network, int[] inputShape, Device device,
        TaskSetup task, DataViewSchema schema, TrainingHistory history)
    {
        var (encoder, decoder, _) = Options.Resolve(inputShape);
        return new VariationalAutoencoderTransformer(module, network, encoder, decoder, Options.LatentSize, Options.FeatureColumnName, inputShape, device,
            Options.ScoringBatchSize, Options.LatentColumnName, Options.ReconstructionColumnName, Options.SampleColumnName, Options.SampleSeed,
            Options.ReconstructionLoss) { History = history };
    }
}
