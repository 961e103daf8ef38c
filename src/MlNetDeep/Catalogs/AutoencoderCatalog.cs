using Microsoft.ML;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Native;

namespace MlNetDeep;

/// <summary>The autoencoder families on ML.NET's transforms catalog (they add columns, like ML.NET's PCA projection).</summary>
public static class AutoencoderCatalog
{
    /// <summary>
    /// An autoencoder (dense by default; convolutional or denoising with the options' networks and corruption). Adds the
    /// <c>Latent</c> and <c>Reconstruction</c> columns; see <see cref="AutoencoderNetworks"/> for the course's presets.
    /// </summary>
    public static AutoencoderEstimator Autoencoder(this TransformsCatalog catalog, AutoencoderOptions options) =>
        new(HostEnvironments.Of(catalog), options);

    /// <summary>A dense autoencoder with the common settings as arguments.</summary>
    public static AutoencoderEstimator Autoencoder(this TransformsCatalog catalog, string featureColumnName = "Features", int latentSize = 32,
        int epochs = 10, int batchSize = 128, string latentColumnName = "Latent", string reconstructionColumnName = "Reconstruction") =>
        catalog.Autoencoder(new AutoencoderOptions
        {
            FeatureColumnName = featureColumnName, LatentSize = latentSize, Epochs = epochs, BatchSize = batchSize,
            LatentColumnName = latentColumnName, ReconstructionColumnName = reconstructionColumnName,
        });

    /// <summary>A variational autoencoder: adds the latent mean (<c>Latent</c>), the <c>Reconstruction</c> and optionally a sampled latent column.</summary>
    public static VariationalAutoencoderEstimator VariationalAutoencoder(this TransformsCatalog catalog, VariationalAutoencoderOptions options) =>
        new(HostEnvironments.Of(catalog), options);
}
