using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Common;
using MlNetDeep.Models.Generative;
using MlNetDeep.Models.Regression;
using MlNetDeep.Networks;

namespace MlNetDeep.Tests;

/// <summary>
/// One tiny model of every family (multiclass and binary classifier, regressor, autoencoder, VAE, GAN) on one small
/// synthetic data set, one epoch each: fast enough to fit many times in the concurrency and scoring tests.
/// </summary>
public static class TinyFamilies
{
    public sealed class Row
    {
        [VectorType(4)] public float[] Features { get; set; } = [];
        /// <summary>Keys 1 to 3 (ML.NET's KeyType count is one more than the largest value it loads).</summary>
        [KeyType(4)] public uint Class { get; set; }
        public bool Flag { get; set; }
        public float Target { get; set; }
        [VectorType(16)] public float[] Pixels { get; set; } = [];
    }

    public static List<Row> Rows(int count = 48, int seed = 0)
    {
        var rand = new Random(seed);
        return Enumerable.Range(0, count).Select(i =>
        {
            var x = Enumerable.Range(0, 4).Select(_ => (float)(rand.NextDouble() * 2 - 1)).ToArray();
            return new Row
            {
                Features = x, Class = (uint)(i % 3 + 1), Flag = x[0] > 0, Target = x[0] - x[1],
                Pixels = Enumerable.Range(0, 16).Select(_ => (float)rand.NextDouble()).ToArray(),
            };
        }).ToList();
    }

    public static IDataView Data(MLContext ml, int count = 48, int seed = 0) => ml.Data.LoadFromEnumerable(Rows(count, seed));

    private static readonly NetworkSpec TinyGenerator = new([new Dense(16, ActivationKind.Tanh), new Reshape([1, 4, 4])]) { Name = "tiny-generator" };
    private static readonly NetworkSpec TinyDiscriminator = new([new Flatten(), new Dense(1)]) { Name = "tiny-discriminator" };

    public static NeuralNetworkClassifierOptions Classifier() => new()
    {
        FeatureColumnName = "Features", LabelColumnName = "Class", Network = Networks.Networks.Mlp(4), Epochs = 1, BatchSize = 16, Seed = 1,
    };

    public static NeuralNetworkBinaryClassifierOptions Binary() => new()
    {
        FeatureColumnName = "Features", LabelColumnName = "Flag", Network = Networks.Networks.Mlp(4), Epochs = 1, BatchSize = 16, Seed = 1,
    };

    public static NeuralNetworkRegressorOptions Regressor() => new()
    {
        FeatureColumnName = "Features", LabelColumnName = "Target", Network = Networks.Networks.Mlp(4), Epochs = 1, BatchSize = 16, Seed = 1,
    };

    public static AutoencoderOptions Autoencoder(string features = "Pixels", string suffix = "") => new()
    {
        FeatureColumnName = features, Encoder = AutoencoderNetworks.TinyEncoder, Decoder = AutoencoderNetworks.TinyDecoder, LatentSize = 2,
        LatentColumnName = "Latent" + suffix, ReconstructionColumnName = "Reconstruction" + suffix, Epochs = 1, BatchSize = 16, Seed = 1,
    };

    public static VariationalAutoencoderOptions Vae() => new()
    {
        FeatureColumnName = "Pixels", Encoder = AutoencoderNetworks.TinyEncoder, Decoder = AutoencoderNetworks.TinyDecoder, LatentSize = 2,
        Epochs = 1, BatchSize = 16, Seed = 1,
    };

    public static GanOptions Gan() => new()
    {
        FeatureColumnName = "Pixels", InputShape = [1, 4, 4], Kind = GanKind.Dense, Generator = TinyGenerator, Discriminator = TinyDiscriminator,
        LatentSize = 4, Epochs = 1, BatchSize = 16, Seed = 1,
    };

    /// <summary>Each family's estimator on <see cref="Data"/>.</summary>
    public static IReadOnlyList<(string Family, Func<MLContext, IEstimator<ITransformer>> Create)> Estimators { get; } =
    [
        ("classifier", ml => ml.MulticlassClassification.Trainers.NeuralNetwork(Classifier())),
        ("binary classifier", ml => ml.BinaryClassification.Trainers.NeuralNetwork(Binary())),
        ("regressor", ml => ml.Regression.Trainers.NeuralNetwork(Regressor())),
        ("autoencoder", ml => ml.Transforms.Autoencoder(Autoencoder())),
        ("variational autoencoder", ml => ml.Transforms.VariationalAutoencoder(Vae())),
        ("GAN", ml => ml.Transforms.GenerativeAdversarialNetwork(Gan())),
        ("anomaly detector", ml => ml.AnomalyDetection.Trainers.Autoencoder(new Models.Anomaly.AutoencoderAnomalyOptions { Autoencoder = Autoencoder() })),
    ];

    /// <summary>The deep stages of a (possibly chained) model.</summary>
    public static IEnumerable<DeepTransformer> DeepStages(ITransformer model) => model switch
    {
        DeepTransformer deep => [deep],
        IEnumerable<ITransformer> chain => chain.SelectMany(DeepStages),
        _ => [],
    };

    /// <summary>Uses a model as a user would: a GAN draws images; every other family scores the data through a cursor.</summary>
    public static void Use(MLContext ml, ITransformer model, IDataView data)
    {
        if (DeepStages(model).OfType<GeneratorTransformer>().FirstOrDefault() is { } generator)
        {
            if (generator.Generate(4, seed: 1).Length != 4) throw new InvalidOperationException("The GAN drew the wrong number of images.");
            return;
        }
        var scored = model.Transform(data);
        using var cursor = scored.GetRowCursor(scored.Schema);
        while (cursor.MoveNext()) { }
    }

    /// <summary>
    /// Fits every family and loads every model in <paramref name="files"/>, all at once on threads of their own, each then
    /// used once; false when they do not all finish within <paramref name="timeout"/> (a hang). Errors are rethrown.
    /// </summary>
    public static bool LoadAndFitAtOnce(IReadOnlyList<string> files, TimeSpan timeout)
    {
        using var go = new ManualResetEventSlim();
        var work = Estimators.Select(e => (Action)(() =>
        {
            var ml = new MLContext(seed: 1);
            var data = Data(ml);
            var model = e.Create(ml).Fit(data);
            Use(ml, model, data);
            foreach (var stage in DeepStages(model)) stage.Dispose();
        })).Concat(files.Select(file => (Action)(() =>
        {
            var ml = new MLContext(seed: 1);
            var model = ml.Model.LoadDeep(file, out _);
            Use(ml, model, Data(ml));
            foreach (var stage in DeepStages(model)) stage.Dispose();
        })));
        var tasks = work.Select(w => Task.Factory.StartNew(() => { go.Wait(); w(); }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
        go.Set();
        return Task.WhenAll(tasks).Wait(timeout);
    }
}
