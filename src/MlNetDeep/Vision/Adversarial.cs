using Microsoft.ML;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using static TorchSharp.torch;

namespace MlNetDeep.Vision;

/// <summary>One attack's effect on a data set: the accuracy on the attacked images and the largest pixel change made.</summary>
public sealed record RobustnessPoint(Attack Attack, double Accuracy, int Rows, double LargestChange);

/// <summary>What a saliency map shows.</summary>
public enum SaliencyKind
{
    /// <summary>The gradient of the class's logit with respect to each pixel.</summary>
    Gradient,
    /// <summary>The gradient times the pixel: how much each pixel's value contributed (zero where the image is zero).</summary>
    GradientTimesInput,
}

/// <summary>
/// Adversarial examples and saliency on a trained multiclass classifier (<see cref="NeuralNetworkClassificationTransformer"/>:
/// an MLP, the MNIST CNN, a classifier of the user's own images). Images are the model's feature rows, in pixel space;
/// the gradients go through the whole network, whatever normalisation it holds.
/// </summary>
public static class Adversarial
{
    private const int Chunk = 100;

    /// <summary>
    /// The adversarial version of each image: <paramref name="classes"/> are the true classes (0-based; ignored by a
    /// targeted attack except for its bookkeeping). The result stays within epsilon of the image and in the pixel range.
    /// </summary>
    public static float[][] AdversarialExamples(this NeuralNetworkClassificationTransformer model, IReadOnlyList<float[]> images, IReadOnlyList<int> classes,
        Attack attack, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(classes);
        ArgumentNullException.ThrowIfNull(attack);
        attack.Validate(model.ClassCount);
        CheckClasses(model, images, classes);
        var results = new float[images.Count][];
        using var random = new Generator((ulong)(uint)seed, CPU);
        for (int start = 0; start < images.Count; start += Chunk)
        {
            int count = Math.Min(Chunk, images.Count - start);
            model.WithModule(module =>
            {
                using var scope = NewDisposeScope();
                var x = NetworkInspection.ImageBatch(model, images, start, count);
                var y = tensor(classes.Skip(start).Take(count).Select(c => (long)c).ToArray()).to(model.Device);
                var adversarial = Perturb(model, module, attack, x, y, random).to(float32).cpu().contiguous();
                var values = adversarial.data<float>().ToArray();
                for (int i = 0; i < count; i++) results[start + i] = values.AsSpan(i * model.FeatureSize, model.FeatureSize).ToArray();
                return true;
            });
        }
        return results;
    }

    /// <summary>
    /// Accuracy under each attack (e.g. FGSM at epsilon 0, 0.05, ..., 0.3) on the rows of <paramref name="data"/>: its
    /// feature column is the model's, <paramref name="labelColumnName"/> a key column of the model's classes.
    /// <paramref name="progress"/> receives the share done.
    /// </summary>
    public static IReadOnlyList<RobustnessPoint> Robustness(this NeuralNetworkClassificationTransformer model, IDataView data, IEnumerable<Attack> attacks,
        string labelColumnName = "Label", int seed = 1, IProgress<double>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        var list = attacks?.ToList() ?? throw new ArgumentNullException(nameof(attacks));
        if (list.Count == 0) throw new ArgumentException("Give at least one attack.", nameof(attacks));
        foreach (var attack in list) attack.Validate(model.ClassCount);
        ColumnChecks.Find(data.Schema, model.FeatureColumnName, "feature");
        ColumnChecks.Find(data.Schema, labelColumnName, "label");
        var loaded = DataViewTensors.Load(data, model.FeatureColumnName, model.FeatureSize, labelColumnName, LabelKind.ClassIndex, model.ClassCount);
        var correct = new long[list.Count];
        var largest = new double[list.Count];
        using var random = new Generator((ulong)(uint)seed, CPU);
        int rows = loaded.Rows;
        long total = (long)rows * list.Count, done = 0;
        for (int start = 0; start < rows; start += Chunk)
        {
            int count = Math.Min(Chunk, rows - start);
            for (int a = 0; a < list.Count; a++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                model.WithModule(module =>
                {
                    using var scope = NewDisposeScope();
                    var x = tensor(loaded.Features.AsSpan(start * model.FeatureSize, count * model.FeatureSize).ToArray(), [count, .. model.InputShape.Select(d => (long)d)]).to(model.Device);
                    var y = tensor(loaded.ClassIndices!.AsSpan(start, count).ToArray()).to(model.Device);
                    var adversarial = Perturb(model, module, list[a], x, y, random);
                    using var noGrad = no_grad();
                    correct[a] += model.Logits(module, adversarial).argmax(1).eq(y).sum().item<long>();
                    largest[a] = Math.Max(largest[a], (adversarial - x).abs().max().item<float>());
                    return true;
                });
                done += count;
                progress?.Report(done / (double)total);
            }
        }
        return list.Select((attack, a) => new RobustnessPoint(attack, correct[a] / (double)rows, rows, largest[a])).ToList();
    }

    /// <summary>
    /// Saliency maps: for each image, the gradient of its class's logit with respect to the pixels (or that times the
    /// pixels), in the image's layout. <paramref name="classes"/> are the classes to explain (0-based); null explains
    /// the class the model predicts for each image, found in the same forward pass.
    /// </summary>
    public static float[][] Saliency(this NeuralNetworkClassificationTransformer model, IReadOnlyList<float[]> images, IReadOnlyList<int>? classes,
        SaliencyKind kind = SaliencyKind.GradientTimesInput)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        CheckClasses(model, images, classes);
        if (!Enum.IsDefined(kind)) throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown saliency kind.");
        var results = new float[images.Count][];
        for (int start = 0; start < images.Count; start += Chunk)
        {
            int count = Math.Min(Chunk, images.Count - start);
            model.WithModule(module =>
            {
                using var scope = NewDisposeScope();
                using var enableGrad = enable_grad();
                var x = NetworkInspection.ImageBatch(model, images, start, count).requires_grad_(true);
                var logits = model.Logits(module, x);
                var y = classes is null ? logits.detach().argmax(1) : tensor(classes.Skip(start).Take(count).Select(c => (long)c).ToArray()).to(model.Device);
                var chosen = logits.gather(1, y.unsqueeze(1)).sum();
                var gradient = autograd.grad([chosen], [x])[0];
                var map = (kind == SaliencyKind.Gradient ? gradient : gradient * x.detach()).reshape(count, -1).to(float32).cpu().contiguous();
                var values = map.data<float>().ToArray();
                for (int i = 0; i < count; i++) results[start + i] = values.AsSpan(i * model.FeatureSize, model.FeatureSize).ToArray();
                return true;
            });
        }
        return results;
    }

    /// <summary>The class the model predicts for each image (0-based; the lowest class on ties).</summary>
    public static int[] PredictedClasses(this NeuralNetworkClassificationTransformer model, IReadOnlyList<float[]> images)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        var scores = new float[images.Count * model.ClassCount];
        var features = new float[images.Count * model.FeatureSize];
        for (int i = 0; i < images.Count; i++)
        {
            if (images[i]?.Length != model.FeatureSize)
                throw new ArgumentException($"Image {i} has {images[i]?.Length ?? 0} values; the model reads {model.FeatureSize}.", nameof(images));
            images[i].CopyTo(features, i * model.FeatureSize);
        }
        model.Score(features, images.Count, scores);
        return Enumerable.Range(0, images.Count).Select(i => Models.Common.Vectors.ArgMax(scores.AsSpan(i * model.ClassCount, model.ClassCount))).ToArray();
    }

    /// <summary>Classes (when given) match the images one for one and lie within the model's classes.</summary>
    private static void CheckClasses(NeuralNetworkClassificationTransformer model, IReadOnlyList<float[]> images, IReadOnlyList<int>? classes)
    {
        if (classes is null) return;
        if (classes.Count != images.Count) throw new ArgumentException($"{images.Count} images but {classes.Count} classes.", nameof(classes));
        foreach (var c in classes)
            if (c < 0 || c >= model.ClassCount) throw new ArgumentOutOfRangeException(nameof(classes), c, $"A class index runs from 0 to {model.ClassCount - 1}.");
    }

    /// <summary>The attack on one batch with the model's module (under its lock): per-image cross-entropy of the true or target class.</summary>
    internal static Tensor Perturb(NeuralNetworkClassificationTransformer model, nn.Module module, Attack attack, Tensor x, Tensor y, Generator random)
    {
        var goal = attack.TargetClass is { } target ? full_like(y, target) : y;
        return attack.Perturb(x, images => nn.functional.cross_entropy(model.Logits(module, images), goal, reduction: nn.Reduction.None), random);
    }
}
