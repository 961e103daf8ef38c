using static TorchSharp.torch;

namespace MlNetDeep.Training;

/// <summary>
/// The ready-made step for one network, one optimizer and one objective (classification, regression, autoencoders,
/// VAE): optional per-batch input transform (augmentation, corruption), forward, loss, backward, update. Reports
/// <c>loss</c> and, for classification, <c>accuracy</c>.
/// </summary>
public sealed class SupervisedStep : TrainingStep
{
    private readonly nn.Module _model;
    private readonly TrainingObjective _objective;
    private readonly optim.Optimizer? _optimizer;
    private readonly IBatchTransform? _inputTransform;
    private readonly double? _maxGradientNorm;
    private readonly AdversarialTraining? _adversarial;

    /// <param name="model">The network, called with a batch of inputs.</param>
    /// <param name="objective">The loss (and accuracy) of a batch.</param>
    /// <param name="optimizer">null for a step that only evaluates.</param>
    /// <param name="inputTransform">A change of the training inputs per batch (augmentation, corruption), or null.</param>
    /// <param name="maxGradientNorm">Rescales the gradients when their joint L2 norm exceeds this (recurrent networks); null leaves them.</param>
    /// <param name="adversarial">Replaces a share of each training batch by its adversarial version; null trains on the batch as it is.</param>
    public SupervisedStep(nn.Module model, TrainingObjective objective, OptimizerSpec? optimizer, IBatchTransform? inputTransform = null, double? maxGradientNorm = null,
        AdversarialTraining? adversarial = null)
    {
        adversarial?.Validate();
        _adversarial = adversarial;
        if (maxGradientNorm is { } norm && !(norm > 0 && double.IsFinite(norm)))
            throw new ArgumentOutOfRangeException(nameof(maxGradientNorm), norm, "The gradient norm limit must be a positive number.");
        _maxGradientNorm = maxGradientNorm;
        _model = model;
        _objective = objective;
        _optimizer = optimizer?.Create(model.parameters());
        _inputTransform = inputTransform;
        LearningRate = optimizer?.LearningRate ?? 0;
        Modules = [model];
        MetricNames = objective.HasAccuracy ? [Loss, Accuracy] : [Loss];
    }

    public override IReadOnlyCollection<string> MetricNames { get; }

    public override IReadOnlyList<nn.Module> Modules { get; }

    public override double LearningRate { get; }

    public override void ScaleLearningRates(double factor)
    {
        foreach (var group in Optimizer.ParamGroups) group.LearningRate = LearningRate * factor;
    }

    public override void CheckData(ITrainingData data)
    {
        if (data is TensorData tensors) _objective.CheckData(tensors);
    }

    public override IReadOnlyDictionary<string, Tensor> TrainBatch(Batch batch, StepContext context)
    {
        var x = _inputTransform is { } transform ? transform.Apply(batch.Inputs, context.Generator) : batch.Inputs;
        if (_adversarial is { } adversarial) x = Adversarial(x, batch.Targets, adversarial, context.Generator);
        Optimizer.zero_grad();
        var (loss, correct) = _objective.Step(_model, x, batch.Targets);
        loss.backward();
        if (_maxGradientNorm is { } norm) nn.utils.clip_grad_norm_(_model.parameters(), norm);
        Optimizer.step();
        return Metrics(loss.detach(), correct, batch.Rows);
    }

    /// <summary>The batch with its first rows replaced by their adversarial versions against the model's loss on their targets.</summary>
    private Tensor Adversarial(Tensor x, Tensor? targets, AdversarialTraining adversarial, Generator generator)
    {
        long rows = x.shape[0], k = Math.Max(1, (long)Math.Round(rows * adversarial.Fraction));
        var head = x.narrow(0, 0, k);
        var headTargets = targets?.narrow(0, 0, k);
        var attacked = adversarial.Attack.Perturb(head, images => _objective.Step(_model, images, headTargets).Loss, generator);
        return k == rows ? attacked : cat([attacked, x.narrow(0, k, rows - k)], 0);
    }

    public override IReadOnlyDictionary<string, Tensor> EvaluateBatch(Batch batch)
    {
        var (loss, correct) = _objective.Step(_model, batch.Inputs, batch.Targets);
        return Metrics(loss, correct, batch.Rows);
    }

    private Dictionary<string, Tensor> Metrics(Tensor loss, Tensor? correct, long rows)
    {
        var metrics = new Dictionary<string, Tensor> { [Loss] = loss };
        if (_objective.HasAccuracy && correct is not null) metrics[Accuracy] = correct.detach().to(float64) / rows;
        return metrics;
    }

    private optim.Optimizer Optimizer => _optimizer ?? throw new InvalidOperationException("This step was made without an optimizer: it only evaluates.");

    public override void Dispose()
    {
        _optimizer?.Dispose();
        base.Dispose();
    }
}
