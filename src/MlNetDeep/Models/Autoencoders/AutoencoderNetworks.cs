using MlNetDeep.Networks;

namespace MlNetDeep.Models.Autoencoders;

/// <summary>
/// The course's encoders and decoders for 28x28 grey images (MNIST). <c>Dense(Dense.TaskOutputs)</c> in an encoder is
/// the latent layer (sized to the latent size); in a decoder it is the output layer (sized to the input).
/// </summary>
public static class AutoencoderNetworks
{
    /// <summary>Dense encoder: Flatten - Dense(512, ReLU) - Dense(128, ReLU) - Dense(latent).</summary>
    public static NetworkSpec DenseEncoder { get; } = new NetworkSpec(
    [
        new Flatten(), new Dense(512, ActivationKind.ReLU), new Dense(128, ActivationKind.ReLU), new Dense(Dense.TaskOutputs),
    ]) { Name = "dense-encoder" };

    /// <summary>Dense decoder: Dense(128, ReLU) - Dense(512, ReLU) - Dense(input size, Sigmoid).</summary>
    public static NetworkSpec DenseDecoder { get; } = new NetworkSpec(
    [
        new Dense(128, ActivationKind.ReLU), new Dense(512, ActivationKind.ReLU), new Dense(Dense.TaskOutputs, ActivationKind.Sigmoid),
    ]) { Name = "dense-decoder" };

    /// <summary>The tiny dense autoencoder's encoder (the memorisation example): Flatten - Dense(latent).</summary>
    public static NetworkSpec TinyEncoder { get; } = new NetworkSpec([new Flatten(), new Dense(Dense.TaskOutputs, ActivationKind.ReLU)]) { Name = "tiny-encoder" };

    /// <summary>The tiny dense autoencoder's decoder: Dense(input size, Sigmoid).</summary>
    public static NetworkSpec TinyDecoder { get; } = new NetworkSpec([new Dense(Dense.TaskOutputs, ActivationKind.Sigmoid)]) { Name = "tiny-decoder" };

    /// <summary>
    /// Convolutional encoder with a dense latent layer, for [1, 28, 28]: Conv2D(32, 3x3, stride 2, same, ReLU) -
    /// Conv2D(64, 3x3, stride 2, same, ReLU) - Flatten - Dense(latent).
    /// </summary>
    public static NetworkSpec ConvolutionalEncoder { get; } = new NetworkSpec(
    [
        new Conv2D(32, 3, Stride: 2, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU),
        new Conv2D(64, 3, Stride: 2, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU),
        new Flatten(), new Dense(Dense.TaskOutputs),
    ]) { Name = "conv-encoder" };

    /// <summary>
    /// Convolutional decoder to [1, 28, 28]: Dense(64x7x7, ReLU) - Reshape([64, 7, 7]) - ConvTranspose2D(64, 3x3, stride 2, same, ReLU) -
    /// ConvTranspose2D(32, 3x3, stride 2, same, ReLU) - Conv2D(1, 3x3, same, Sigmoid).
    /// </summary>
    public static NetworkSpec ConvolutionalDecoder { get; } = new NetworkSpec(
    [
        new Dense(64 * 7 * 7, ActivationKind.ReLU), new Reshape([64, 7, 7]),
        new ConvTranspose2D(64, 3, Stride: 2, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU),
        new ConvTranspose2D(32, 3, Stride: 2, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU),
        new Conv2D(1, 3, Padding: PaddingMode.Same, Activation: ActivationKind.Sigmoid),
    ]) { Name = "conv-decoder" };

    /// <summary>
    /// The course's convolutional denoiser's encoder, for [1, 28, 28]: Conv2D(32, 3x3, same, ReLU) - MaxPool(2) -
    /// Conv2D(32, 3x3, same, ReLU) - MaxPool(2): a 32x7x7 bottleneck (the latent code has 1,568 values).
    /// </summary>
    public static NetworkSpec DenoisingEncoder { get; } = new NetworkSpec(
    [
        new Conv2D(32, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU), new MaxPool2D(2),
        new Conv2D(32, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU), new MaxPool2D(2),
    ]) { Name = "denoising-encoder" };

    /// <summary>
    /// The course's convolutional denoiser's decoder, from [32, 7, 7]: ConvTranspose2D(32, 3x3, stride 2, same, ReLU) twice -
    /// Conv2D(1, 3x3, same, Sigmoid), back to [1, 28, 28].
    /// </summary>
    public static NetworkSpec DenoisingDecoder { get; } = new NetworkSpec(
    [
        new ConvTranspose2D(32, 3, Stride: 2, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU),
        new ConvTranspose2D(32, 3, Stride: 2, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU),
        new Conv2D(1, 3, Padding: PaddingMode.Same, Activation: ActivationKind.Sigmoid),
    ]) { Name = "denoising-decoder" };

    /// <summary>The VAE's encoder body: Flatten - Dense(512, ReLU) - Dense(256, ReLU); the mean and log-variance heads follow it.</summary>
    public static NetworkSpec VaeEncoder { get; } = new NetworkSpec(
    [
        new Flatten(), new Dense(512, ActivationKind.ReLU), new Dense(256, ActivationKind.ReLU),
    ]) { Name = "vae-encoder" };

    /// <summary>The VAE's decoder: Dense(256, ReLU) - Dense(512, ReLU) - Dense(input size, Sigmoid).</summary>
    public static NetworkSpec VaeDecoder { get; } = new NetworkSpec(
    [
        new Dense(256, ActivationKind.ReLU), new Dense(512, ActivationKind.ReLU), new Dense(Dense.TaskOutputs, ActivationKind.Sigmoid),
    ]) { Name = "vae-decoder" };

    /// <summary>Options for the course's dense autoencoder on MNIST's 784 pixels with <paramref name="latentSize"/> latents.</summary>
    public static AutoencoderOptions DenseAutoencoder(int latentSize, string featureColumnName = "Pixels") => new()
    {
        FeatureColumnName = featureColumnName, Encoder = DenseEncoder, Decoder = DenseDecoder, LatentSize = latentSize,
    };

    /// <summary>Options for the convolutional autoencoder (dense latent layer) on [1, 28, 28] images.</summary>
    public static AutoencoderOptions ConvolutionalAutoencoder(int latentSize, string featureColumnName = "Pixels") => new()
    {
        FeatureColumnName = featureColumnName, InputShape = [1, 28, 28], Encoder = ConvolutionalEncoder, Decoder = ConvolutionalDecoder, LatentSize = latentSize,
        // Binary cross-entropy: with squared error through the sigmoid output this network stalls at the all-black image
        // (test MSE 0.114 after 3 epochs on 20,000 images); cross-entropy's gradient does not vanish there.
        ReconstructionLoss = ReconstructionLoss.BinaryCrossEntropy,
    };

    /// <summary>
    /// The course's convolutional denoiser (32x7x7 bottleneck) on [1, 28, 28] images, trained on inputs corrupted by
    /// Gaussian noise of <paramref name="noiseStdDev"/> clipped to [0, 1], with binary cross-entropy.
    /// </summary>
    public static AutoencoderOptions DenoisingAutoencoder(double noiseStdDev = 0.5, string featureColumnName = "Pixels") => new()
    {
        FeatureColumnName = featureColumnName, InputShape = [1, 28, 28], Encoder = DenoisingEncoder, Decoder = DenoisingDecoder,
        Corruption = new GaussianCorruption(noiseStdDev), ReconstructionLoss = ReconstructionLoss.BinaryCrossEntropy,
    };

    /// <summary>A variational autoencoder on MNIST's pixels with <paramref name="latentSize"/> latent dimensions (the course used 2 and 50).</summary>
    public static VariationalAutoencoderOptions VariationalAutoencoder(int latentSize, string featureColumnName = "Pixels") => new()
    {
        FeatureColumnName = featureColumnName, Encoder = VaeEncoder, Decoder = VaeDecoder, LatentSize = latentSize,
    };

    /// <summary>The VAE preset with 2 latent dimensions (for the latent grid and scatter).</summary>
    public static VariationalAutoencoderOptions Variational2D(string featureColumnName = "Pixels") => VariationalAutoencoder(2, featureColumnName);

    /// <summary>The VAE preset with 50 latent dimensions.</summary>
    public static VariationalAutoencoderOptions Variational50D(string featureColumnName = "Pixels") => VariationalAutoencoder(50, featureColumnName);
}
