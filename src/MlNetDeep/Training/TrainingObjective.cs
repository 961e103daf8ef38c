using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Training;

/// <summary>
/// What a training step computes for one family (the module stays plain TorchSharp; the objective knows how to
/// call it and what the loss is): e.g. cross-entropy for classification, squared error for regression.
/// </summary>
public abstract class TrainingObjective
{
    /// <summary>True when <see cref="Step"/> returns a count of correct predictions (classification).</summary>
    public virtual bool HasAccuracy => false;

    /// <summary>
    /// Checks a whole data set once before training (e.g. that values lie in the range the loss needs), so that
    /// <see cref="Step"/> does not have to on every batch. Throws with a message naming what is wrong.
    /// </summary>
    public virtual void CheckData(TensorData data) { }

    /// <summary>
    /// The mean loss of a batch (a scalar that backward() can run on) and, for classification, the number of
    /// correct predictions (a scalar tensor), or null.
    /// </summary>
    public abstract (Tensor Loss, Tensor? Correct) Step(nn.Module model, Tensor inputs, Tensor? targets);
}

/// <summary>Cross-entropy over class indices; the network outputs logits, or probabilities when it ends in a softmax.</summary>
public sealed class CrossEntropyObjective(bool outputsProbabilities) : TrainingObjective
{
    public override bool HasAccuracy => true;

    public override (Tensor Loss, Tensor? Correct) Step(nn.Module model, Tensor inputs, Tensor? targets)
    {
        var output = ((nn.Module<Tensor, Tensor>)model).call(inputs);
        var loss = outputsProbabilities
            ? nn.functional.nll_loss(output.clamp_min(1e-12).log(), targets!)
            : nn.functional.cross_entropy(output, targets!);
        var correct = output.argmax(1).eq(targets!).sum();
        return (loss, correct);
    }
}

/// <summary>Mean squared error against float targets of the network's output shape.</summary>
public sealed class MeanSquaredErrorObjective : TrainingObjective
{
    public override (Tensor Loss, Tensor? Correct) Step(nn.Module model, Tensor inputs, Tensor? targets)
    {
        var output = ((nn.Module<Tensor, Tensor>)model).call(inputs);
        return (nn.functional.mse_loss(output, targets!.view_as(output)), null);
    }
}

/// <summary>
/// Binary cross-entropy on one logit per row against 0/1 targets (the sigmoid is applied inside the loss, which is
/// stable for large logits); a row counts as correct when the logit's sign matches the target.
/// </summary>
public sealed class BinaryCrossEntropyObjective : TrainingObjective
{
    public override bool HasAccuracy => true;

    public override (Tensor Loss, Tensor? Correct) Step(nn.Module model, Tensor inputs, Tensor? targets)
    {
        var logits = ((nn.Module<Tensor, Tensor>)model).call(inputs).reshape(-1);
        var loss = nn.functional.binary_cross_entropy_with_logits(logits, targets!);
        var correct = logits.gt(0).eq(targets!.gt(0.5)).sum();
        return (loss, correct);
    }
}
