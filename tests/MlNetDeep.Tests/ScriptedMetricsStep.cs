using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

/// <summary>
/// A training step that reports scripted metrics (one value per name and epoch) and declares exactly those names. Its
/// module holds a BatchNorm layer; it counts its training batches and records, for each, whether the module was in
/// train mode and gradients were on, and the first input value of every row it was given, per epoch.
/// <paramref name="declared"/> makes it declare other names than it reports (a step that breaks its word).
/// </summary>
internal sealed class ScriptedMetricsStep(Dictionary<string, double[]> metrics, IReadOnlyCollection<string>? declared = null) : TrainingStep
{
    public readonly nn.Module<Tensor, Tensor> Model = nn.Sequential(nn.Linear(1, 2), nn.BatchNorm1d(2));
    public int TrainedBatches;
    public readonly List<(bool Training, bool Gradients)> ModesWhileTraining = [];

    /// <summary>Per epoch, the first input value of each row in the order the batches brought them.</summary>
    public readonly List<List<float>> RowsSeen = [];

    public override IReadOnlyList<nn.Module> Modules => [Model];
    public override IReadOnlyCollection<string> MetricNames => declared ?? metrics.Keys;
    public override double LearningRate => 0.1;
    public override void ScaleLearningRates(double factor) { }

    public override IReadOnlyDictionary<string, Tensor> TrainBatch(Batch batch, StepContext context)
    {
        TrainedBatches++;
        ModesWhileTraining.Add((Model.training, is_grad_enabled()));
        while (RowsSeen.Count <= context.Epoch) RowsSeen.Add([]);
        RowsSeen[context.Epoch].AddRange(batch.Inputs.reshape(batch.Rows, -1)[.., 0].cpu().data<float>().ToArray());
        return metrics.ToDictionary(kv => kv.Key, kv => tensor(kv.Value[Math.Min(context.Epoch, kv.Value.Length - 1)], float64));
    }

    public override IReadOnlyDictionary<string, Tensor> EvaluateBatch(Batch batch) =>
        metrics.ToDictionary(kv => kv.Key, _ => tensor(0.0, float64));

    /// <summary>Rows 0 to n - 1, each holding its own index as its one input value.</summary>
    public static TensorData Rows(int n) => new(arange(n, float32).reshape(n, 1), zeros(n));
}
