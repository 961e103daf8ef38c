using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Autoencoders;

/// <summary>The reconstruction terms, one place for training, evaluation and the VAE's ELBO.</summary>
internal static class Reconstruction
{
    /// <summary>
    /// Per-sample loss [n], summed over a sample's values. <paramref name="checkRange"/> checks binary cross-entropy's
    /// [0, 1] targets here (two device syncs); training checks its data once instead (<see cref="CheckData"/>).
    /// </summary>
    public static Tensor PerSample(Tensor output, Tensor target, ReconstructionLoss loss, string columnName, bool checkRange)
    {
        var t = target.view_as(output);
        if (checkRange) CheckData(t, loss, columnName);
        return Elementwise(output, t, loss).flatten(1).sum(1);
    }

    /// <summary>The loss of each value, the shape of <paramref name="output"/> (the terms <see cref="PerSample"/> sums).</summary>
    public static Tensor Elementwise(Tensor output, Tensor target, ReconstructionLoss loss) => loss == ReconstructionLoss.BinaryCrossEntropy
        ? nn.functional.binary_cross_entropy(output.clamp(1e-7, 1 - 1e-7), target.view_as(output), reduction: nn.Reduction.None)
        : (output - target.view_as(output)).square();

    /// <summary>KL(q(z|x) || N(0, I)) per sample [n] for a latent mean and log-variance [n, latent].</summary>
    public static Tensor KL(Tensor mean, Tensor logVariance) => ((logVariance.exp() + mean.square() - 1 - logVariance) * 0.5).sum(1);

    /// <summary>Binary cross-entropy needs targets in [0, 1]; squared error takes any values.</summary>
    public static void CheckData(Tensor target, ReconstructionLoss loss, string columnName)
    {
        if (loss != ReconstructionLoss.BinaryCrossEntropy) return;
        double min = target.min().item<float>(), max = target.max().item<float>();
        if (min < 0 || max > 1)
            throw new InvalidOperationException($"Binary cross-entropy needs the values of column '{columnName}' in [0, 1], but they range over [{min}, {max}]. " +
                "Scale them (e.g. mlContext.Transforms.NormalizeMinMax) or use ReconstructionLoss.MeanSquaredError.");
    }
}

/// <summary>An autoencoder's loss: the mean reconstruction loss per value (MSE or binary cross-entropy) against the clean targets.</summary>
internal sealed class ReconstructionObjective(ReconstructionLoss loss, string columnName) : TrainingObjective
{
    public override void CheckData(TensorData data) => Reconstruction.CheckData(data.Targets ?? data.Inputs, loss, columnName);

    public override (Tensor Loss, Tensor? Correct) Step(nn.Module model, Tensor inputs, Tensor? targets)
    {
        var output = ((nn.Module<Tensor, Tensor>)model).call(inputs);
        var perSample = Reconstruction.PerSample(output, targets ?? inputs, loss, columnName, checkRange: false);
        return (perSample.mean() / (output.numel() / output.shape[0]), null);
    }
}

/// <summary>
/// A VAE's loss per sample: reconstruction (summed over the values) + beta * KL(q(z|x) || N(0, I)), averaged over the
/// batch; with beta = 1 it is the negative ELBO. The noise of the reparameterisation comes from the training run's own
/// generator (<see cref="TrainingRandom"/>).
/// </summary>
internal sealed class VariationalObjective(ReconstructionLoss loss, double beta, string columnName) : TrainingObjective
{
    public override void CheckData(TensorData data) => Reconstruction.CheckData(data.Targets ?? data.Inputs, loss, columnName);

    public override (Tensor Loss, Tensor? Correct) Step(nn.Module model, Tensor inputs, Tensor? targets)
    {
        var vae = (VariationalAutoencoderModule)model;
        var (reconstruction, kl) = Terms(vae, inputs, targets ?? inputs, TrainingRandom.NormalLike, loss, columnName, checkRange: false);
        return ((reconstruction + kl * beta).mean(), null);
    }

    /// <summary>Per-sample reconstruction loss and KL divergence, [n] each; <paramref name="noise"/> draws the reparameterisation's noise for a mean tensor.</summary>
    public static (Tensor Reconstruction, Tensor KL) Terms(VariationalAutoencoderModule vae, Tensor inputs, Tensor targets,
        Func<Tensor, Tensor> noise, ReconstructionLoss loss, string columnName, bool checkRange)
    {
        var (mean, logVariance) = vae.Encode(inputs);
        var z = VariationalAutoencoderModule.Reparameterise(mean, logVariance, noise(mean));
        var output = vae.Decode(z);
        var reconstruction = Reconstruction.PerSample(output, targets, loss, columnName, checkRange);
        return (reconstruction, Reconstruction.KL(mean, logVariance));
    }
}
