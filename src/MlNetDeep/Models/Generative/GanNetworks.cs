using MlNetDeep.Networks;

namespace MlNetDeep.Models.Generative;

/// <summary>The course's generator and discriminator networks for an image shape [channels, height, width].</summary>
public static class GanNetworks
{
    /// <summary>The generator preset of <paramref name="kind"/>: noise (and label embedding) to an image in [-1, 1] (Tanh).</summary>
    public static NetworkSpec Generator(GanKind kind, int[] imageShape) => kind switch
    {
        GanKind.Dense => DenseGenerator(imageShape),
        GanKind.Dcgan => DcganGenerator(imageShape),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown GAN kind."),
    };

    /// <summary>The discriminator preset of <paramref name="kind"/>: an image to one logit (real vs generated).</summary>
    public static NetworkSpec Discriminator(GanKind kind, int[] imageShape) => kind switch
    {
        GanKind.Dense => DenseDiscriminator(),
        GanKind.Dcgan => DcganDiscriminator(),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown GAN kind."),
    };

    private static Activation Leaky => new(ActivationKind.LeakyReLU, 0.2);

    /// <summary>Dense(256) - Dense(512) - Dense(1024), LeakyReLU(0.2) each, then Dense(pixels, Tanh) reshaped to the image.</summary>
    public static NetworkSpec DenseGenerator(int[] imageShape) => new(
    [
        new Dense(256), Leaky, new Dense(512), Leaky, new Dense(1024), Leaky,
        new Dense(imageShape.Aggregate(1, (a, b) => a * b), ActivationKind.Tanh), new Reshape(imageShape),
    ]) { Name = "gan-dense-generator" };

    /// <summary>Flatten - Dense(512) - Dense(256), LeakyReLU(0.2) each, then Dense(1) (a logit).</summary>
    public static NetworkSpec DenseDiscriminator() => new(
    [
        new Flatten(), new Dense(512), Leaky, new Dense(256), Leaky, new Dense(1),
    ]) { Name = "gan-dense-discriminator" };

    /// <summary>
    /// Radford et al. for small images: Dense(128 x H/4 x W/4) - BatchNorm - ReLU - Reshape - ConvTranspose2D(64, 4x4,
    /// stride 2) - BatchNorm - ReLU - ConvTranspose2D(channels, 4x4, stride 2, Tanh).
    /// </summary>
    public static NetworkSpec DcganGenerator(int[] imageShape) => new(
    [
        new Dense(128 * (imageShape[1] / 4) * (imageShape[2] / 4), UseBias: false), new BatchNorm(), new Activation(ActivationKind.ReLU),
        new Reshape([128, imageShape[1] / 4, imageShape[2] / 4]),
        new ConvTranspose2D(64, 4, Stride: 2, Padding: PaddingMode.Same, UseBias: false), new BatchNorm(), new Activation(ActivationKind.ReLU),
        new ConvTranspose2D(imageShape[0], 4, Stride: 2, Padding: PaddingMode.Same, Activation: ActivationKind.Tanh),
    ]) { Name = "dcgan-generator" };

    /// <summary>Conv2D(64, 4x4, stride 2) - LeakyReLU(0.2) - Conv2D(128, 4x4, stride 2) - BatchNorm - LeakyReLU(0.2) - Flatten - Dense(1).</summary>
    public static NetworkSpec DcganDiscriminator() => new(
    [
        new Conv2D(64, 4, Stride: 2, Padding: PaddingMode.Same), Leaky,
        new Conv2D(128, 4, Stride: 2, Padding: PaddingMode.Same, UseBias: false), new BatchNorm(), Leaky,
        new Flatten(), new Dense(1),
    ]) { Name = "dcgan-discriminator" };
}
