using static TorchSharp.torch;

namespace MlNetDeep.Training;

/// <summary>
/// The ready-made path for one network trained on one objective: a <see cref="SupervisedStep"/> driven by the
/// <see cref="TrainingLoop"/>. Every single-network family (classifier, regressor, autoencoders, VAE) trains through it.
/// </summary>
internal static class TrainingEngine
{
    /// <param name="random">The generator the model draws from while it trains (dropout, a VAE's noise); see <see cref="TrainingLoop.Run"/>.</param>
    public static TrainingHistory Fit(nn.Module model, TrainingObjective objective, TensorData train, TensorData? validation,
        DeepTrainerOptions options, Device device, int seed, Generator? random = null)
    {
        using var step = new SupervisedStep(model, objective, options.Optimizer, options.TrainingInputTransform, adversarial: options.AdversarialTraining);
        return TrainingLoop.Run(step, train, validation, LoopSettings.From(options), device, seed, random);
    }

    /// <summary>Mean loss (and accuracy, for classification) of a model on data, in eval mode without gradients.</summary>
    public static (double Loss, double? Accuracy) Evaluate(nn.Module model, TrainingObjective objective, TensorData data, int batchSize,
        CancellationToken cancellationToken = default)
    {
        using var step = new SupervisedStep(model, objective, optimizer: null);
        var metrics = TrainingLoop.Evaluate(step, data, batchSize, cancellationToken);
        return (metrics[TrainingStep.Loss], metrics.TryGetValue(TrainingStep.Accuracy, out var accuracy) ? accuracy : null);
    }
}
