using Microsoft.ML;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Generative;

/// <summary>How generated images spread over the classes a judge sees in them.</summary>
/// <param name="Shares">Each class's share of the images.</param>
/// <param name="Entropy">Entropy of the shares in bits (log2 of the class count when uniform).</param>
/// <param name="ClassesCovering90">Fewest classes that together hold 90 % of the images (a collapsed GAN has 1-3).</param>
public sealed record ClassHistogram(double[] Shares, double Entropy, int ClassesCovering90)
{
    /// <summary>Classes with at least 1 % of the images.</summary>
    public int ClassesPresent => Shares.Count(s => s >= 0.01);

    public string Describe() =>
        $"classes present (>= 1 %) {ClassesPresent}, 90 % covered by {ClassesCovering90}, entropy {Entropy:F3} bits, shares " +
        string.Join(" ", Shares.Select((s, i) => $"{i}:{s:P1}"));
}

/// <summary>The measures of generated images: class histogram, Fréchet distance between feature sets.</summary>
public static class GenerationQuality
{
    /// <summary>The histogram of <paramref name="predictions"/> (class indices 0 to classes-1).</summary>
    public static ClassHistogram Histogram(IReadOnlyList<int> predictions, int classes)
    {
        if (predictions.Count == 0) throw new ArgumentException("No predictions.", nameof(predictions));
        var counts = new double[classes];
        foreach (var p in predictions)
        {
            if (p < 0 || p >= classes) throw new ArgumentOutOfRangeException(nameof(predictions), p, $"A prediction is not one of the {classes} classes.");
            counts[p]++;
        }
        var shares = counts.Select(c => c / predictions.Count).ToArray();
        double entropy = Math.Max(0, -shares.Where(s => s > 0).Sum(s => s * Math.Log2(s)));
        int covering = 0;
        double covered = 0;
        foreach (var s in shares.OrderDescending())
        {
            covering++;
            covered += s;
            if (covered >= 0.9 - 1e-12) break;
        }
        return new ClassHistogram(shares, entropy, covering);
    }

    /// <summary>
    /// The Fréchet distance between Gaussians fitted to two feature sets (rows of equal width):
    /// |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), as FID computes it on Inception features.
    /// </summary>
    public static double FrechetDistance(IReadOnlyList<float[]> a, IReadOnlyList<float[]> b)
    {
        if (a.Count < 2 || b.Count < 2) throw new ArgumentException("Each feature set needs at least 2 rows.");
        int width = a[0].Length;
        if (a.Concat(b).Any(r => r.Length != width)) throw new ArgumentException("Every feature row must have the same width.");
        Native.TorchRuntime.EnsureLoaded();
        using var scope = NewDisposeScope();
        var (muA, covA) = Moments(a, width);
        var (muB, covB) = Moments(b, width);
        // Tr((S_a S_b)^(1/2)) = Tr((R S_b R)^(1/2)) with R = S_a^(1/2): a symmetric matrix, so eigh applies.
        var (valuesA, vectorsA) = linalg.eigh(covA);
        var rootA = vectorsA.matmul(diag(valuesA.clamp_min(0).sqrt())).matmul(vectorsA.T);
        var inner = rootA.matmul(covB).matmul(rootA);
        inner = (inner + inner.T) / 2;
        double traceRoot = linalg.eigvalsh(inner).clamp_min(0).sqrt().sum().item<double>();
        double meanTerm = (muA - muB).square().sum().item<double>();
        return Math.Max(0, meanTerm + covA.trace().item<double>() + covB.trace().item<double>() - 2 * traceRoot);
    }

    private static (Tensor Mean, Tensor Covariance) Moments(IReadOnlyList<float[]> rows, int width)
    {
        var x = tensor(rows.SelectMany(r => r).ToArray(), [rows.Count, width]).to(float64);
        var mean = x.mean([0]);
        var centred = x - mean;
        return (mean, centred.T.matmul(centred) / (rows.Count - 1));
    }
}

/// <summary>
/// A fixed MNIST classifier that judges generated digits: which digit each image shows, and its penultimate-layer
/// features for a Fréchet distance (an MNIST analogue of FID). Trained once (Keras' CNN, 3 epochs, seed 1) and cached
/// under the data folder, so every run is judged by the same network.
/// </summary>
public sealed class MnistJudge : IDisposable
{
    private readonly NeuralNetworkClassificationTransformer _model;

    private MnistJudge(NeuralNetworkClassificationTransformer model) => _model = model;

    /// <summary>The cached judge's file.</summary>
    public static string CachePath => Path.Combine(Path.GetDirectoryName(Mnist.DefaultFolder)!, "judge", "mnist-judge-cnn-v1.zip");

    /// <summary>The cached judge, trained (on MNIST's training set) and cached first when absent.</summary>
    public static MnistJudge LoadOrTrain(MLContext mlContext, IProgress<TrainingProgress>? progress = null, string? path = null)
    {
        path ??= CachePath;
        if (!File.Exists(path))
        {
            var ml = new MLContext(seed: 1);
            var train = ml.Data.LoadMnist(MnistSplit.Train);
            var model = ml.MulticlassClassification.Trainers.ConvolutionalNetwork(new NeuralNetworkClassifierOptions
            {
                FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Network = Networks.Networks.KerasMnistCnn, Epochs = 3, BatchSize = 128, Progress = progress,
            }).Fit(train);
            ml.Model.SaveDeep(model, train.Schema, path);
            model.Dispose();
        }
        var loaded = mlContext.Model.LoadDeep(path, out _);
        var classifier = ((IEnumerable<ITransformer>)loaded).OfType<NeuralNetworkClassificationTransformer>().SingleOrDefault()
            ?? throw new InvalidDataException($"{path} does not hold an MNIST classifier.");
        return new MnistJudge(classifier);
    }

    /// <summary>The judge itself (e.g. to evaluate it on the test set).</summary>
    public NeuralNetworkClassificationTransformer Model => _model;

    /// <summary>The digit (0-9) each image shows, and its penultimate-layer features.</summary>
    public (int[] Digits, float[][] Features) Judge(IReadOnlyList<float[]> images, int batchSize = 1000)
    {
        var digits = new int[images.Count];
        var features = new float[images.Count][];
        return _model.WithModule(module =>
        {
            var children = module.children().Cast<nn.Module<Tensor, Tensor>>().ToList();
            for (int start = 0; start < images.Count; start += batchSize)
            {
                using var scope = NewDisposeScope();
                using var noGrad = no_grad();
                int rows = Math.Min(batchSize, images.Count - start);
                var x = tensor(images.Skip(start).Take(rows).SelectMany(i => i).ToArray(), [rows, 1, 28, 28]).to(_model.Device);
                for (int i = 0; i < children.Count - 1; i++) x = children[i].call(x);
                var hidden = x.flatten(1).to(CPU).contiguous();
                var logits = children[^1].call(x).argmax(1).to(CPU).data<long>().ToArray();
                int width = (int)hidden.shape[1];
                var values = hidden.data<float>().ToArray();
                for (int r = 0; r < rows; r++)
                {
                    digits[start + r] = (int)logits[r];
                    features[start + r] = values.AsSpan(r * width, width).ToArray();
                }
            }
            return (digits, features);
        });
    }

    public void Dispose() => _model.Dispose();
}
