using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Generative;

/// <summary>
/// One GAN update on a batch of real images: a discriminator step (real images against generated ones, the generator
/// frozen), then a generator step (the discriminator's parameters are not updated). Images arrive in [0, 1] and are
/// scaled to the generator's Tanh range [-1, 1]. Reports d_loss, g_loss, d_real_acc and d_fake_acc (the share of real,
/// and of generated, images the discriminator classifies correctly).
/// </summary>
internal sealed class GanStep : TrainingStep
{
    public const string DLoss = "d_loss", GLoss = "g_loss", DRealAccuracy = "d_real_acc", DFakeAccuracy = "d_fake_acc";

    private readonly GanModule _gan;
    private readonly GanOptions _options;
    private readonly optim.Optimizer _generatorOptimizer, _discriminatorOptimizer;

    public GanStep(GanModule gan, GanOptions options)
    {
        _gan = gan;
        _options = options;
        _generatorOptimizer = options.Optimizer.Create(gan.GeneratorParameters());
        _discriminatorOptimizer = options.DiscriminatorOptimizer.Create(gan.DiscriminatorParameters());
        Modules = [gan];
        if (options.GeneratorAverage > 0) gan.StartGeneratorAverage();
    }

    public override IReadOnlyList<nn.Module> Modules { get; }

    public override IReadOnlyCollection<string> MetricNames { get; } = [DLoss, GLoss, DRealAccuracy, DFakeAccuracy];

    public override double LearningRate => _options.Optimizer.LearningRate;

    public override void ScaleLearningRates(double factor)
    {
        foreach (var group in _generatorOptimizer.ParamGroups) group.LearningRate = _options.Optimizer.LearningRate * factor;
        foreach (var group in _discriminatorOptimizer.ParamGroups) group.LearningRate = _options.DiscriminatorOptimizer.LearningRate * factor;
    }

    public override void CheckData(ITrainingData data)
    {
        if (data is not TensorData tensors) return;
        double min = tensors.Inputs.min().item<float>(), max = tensors.Inputs.max().item<float>();
        if (min < 0 || max > 1)
            throw new InvalidOperationException($"A GAN trains on images with values in [0, 1], but column '{_options.FeatureColumnName}' ranges over [{min}, {max}]. " +
                "Scale it first (e.g. mlContext.Transforms.NormalizeMinMax, or divide 0-255 pixels by 255).");
    }

    /// <summary>Noise for <paramref name="rows"/> samples, drawn on the CPU from the run's generator and moved (works on every device).</summary>
    private Tensor Noise(long rows, Generator generator, Device device) =>
        TrainingRandom.Normal([rows, _gan.LatentSize], ScalarType.Float32, generator, device);

    private Tensor WithInstanceNoise(Tensor images, StepContext context)
    {
        if (_options.InstanceNoise <= 0) return images;
        double std = _options.InstanceNoise * (1 - (double)context.Epoch / context.Epochs);
        return images + TrainingRandom.Normal(images.shape, images.dtype, context.Generator, images.device) * std;
    }

    public override IReadOnlyDictionary<string, Tensor> TrainBatch(Batch batch, StepContext context)
    {
        var real = batch.Inputs * 2 - 1;
        var labels = _gan.Classes > 0 ? batch.Targets : null;
        var fake = _gan.Generate(Noise(batch.Rows, context.Generator, context.Device), labels);
        var (dLoss, realLogits, fakeLogits, realFeatures) = TrainDiscriminator(real, fake, labels, context);
        var gLoss = TrainGenerator(fake, realFeatures, labels, context);
        return Metrics(dLoss, gLoss, realLogits, fakeLogits);
    }

    /// <summary>
    /// The discriminator's update: real images against <paramref name="fake"/> ones, detached so that no gradient reaches
    /// the generator; only the discriminator's optimizer steps.
    /// </summary>
    internal (Tensor Loss, Tensor RealLogits, Tensor FakeLogits, Tensor RealFeatures) TrainDiscriminator(Tensor real, Tensor fake, Tensor? labels, StepContext context)
    {
        _discriminatorOptimizer.zero_grad();
        var (realLogits, realFeatures) = _gan.Discriminate(WithInstanceNoise(real, context), labels, realImages: true);
        var (fakeLogits, _) = _gan.Discriminate(WithInstanceNoise(fake.detach(), context), labels);
        var loss = DiscriminatorLoss(realLogits, fakeLogits);
        loss.backward();
        _discriminatorOptimizer.step();
        return (loss, realLogits, fakeLogits, realFeatures);
    }

    /// <summary>
    /// The generator's update: gradients flow through the discriminator to the generator, but only the generator's
    /// optimizer steps (the discriminator's gradients are cleared before its next update).
    /// </summary>
    internal Tensor TrainGenerator(Tensor fake, Tensor realFeatures, Tensor? labels, StepContext context)
    {
        _generatorOptimizer.zero_grad();
        var (logits, features) = _gan.Discriminate(WithInstanceNoise(fake, context), labels);
        var loss = _options.FeatureMatching
            ? (features.mean([0]) - realFeatures.detach().mean([0])).square().mean()
            : GeneratorLoss(logits);
        loss.backward();
        _generatorOptimizer.step();
        if (_options.GeneratorAverage > 0) _gan.UpdateGeneratorAverage(_options.GeneratorAverage);
        return loss;
    }

    /// <summary>Noise and images for one batch, as the loop would make them (for tests of each half).</summary>
    internal Tensor Fake(long rows, Tensor? labels, StepContext context) => _gan.Generate(Noise(rows, context.Generator, context.Device), labels);

    public override IReadOnlyDictionary<string, Tensor> EvaluateBatch(Batch batch)
    {
        var real = batch.Inputs * 2 - 1;
        var labels = _gan.Classes > 0 ? batch.Targets : null;
        using var generator = new Generator(0);
        var fake = _gan.Generate(Noise(batch.Rows, generator, real.device), labels);
        var (realLogits, _) = _gan.Discriminate(real, labels);
        var (fakeLogits, _) = _gan.Discriminate(fake, labels);
        return Metrics(DiscriminatorLoss(realLogits, fakeLogits), GeneratorLoss(fakeLogits), realLogits, fakeLogits);
    }

    private Tensor DiscriminatorLoss(Tensor realLogits, Tensor fakeLogits) => _options.Loss switch
    {
        GanLoss.Hinge => nn.functional.relu(1 - realLogits).mean() + nn.functional.relu(1 + fakeLogits).mean(),
        _ => nn.functional.binary_cross_entropy_with_logits(realLogits, full_like(realLogits, _options.RealLabel))
             + nn.functional.binary_cross_entropy_with_logits(fakeLogits, zeros_like(fakeLogits)),
    };

    private Tensor GeneratorLoss(Tensor fakeLogits) => _options.Loss switch
    {
        GanLoss.Hinge => -fakeLogits.mean(),
        _ => nn.functional.binary_cross_entropy_with_logits(fakeLogits, ones_like(fakeLogits)),
    };

    private static Dictionary<string, Tensor> Metrics(Tensor dLoss, Tensor gLoss, Tensor realLogits, Tensor fakeLogits) => new()
    {
        [DLoss] = dLoss.detach(),
        [GLoss] = gLoss.detach(),
        [DRealAccuracy] = realLogits.detach().gt(0).to(float64).mean(),
        [DFakeAccuracy] = fakeLogits.detach().le(0).to(float64).mean(),
    };

    public override void Dispose()
    {
        _generatorOptimizer.Dispose();
        _discriminatorOptimizer.Dispose();
        base.Dispose();
    }
}
