using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MlNetDeep.Data;
using MlNetDeep.Models.Common;
using MlNetDeep.Native;
using MlNetDeep.Training;
using TorchSharp;

namespace MlNetDeep.Models.Generative;

/// <summary>
/// Trains a generative adversarial network on an image column (values in [0, 1], shape <see cref="DeepTrainerOptions.InputShape"/>);
/// conditional when <see cref="GanOptions.LabelColumnName"/> names a key label. The fitted transformer is the
/// generator (<see cref="GeneratorTransformer"/>): noise rows in, an image column out, and <c>Generate(count, seed)</c>.
/// Fit it on the image data itself (after any preprocessing): its transformer reads noise, not images.
/// </summary>
public sealed class GanEstimator : IEstimator<GeneratorTransformer>
{
    private readonly IHostEnvironment _env;

    public GanEstimator(IHostEnvironment env, GanOptions options)
    {
        _env = env ?? throw new ArgumentNullException(nameof(env));
        Options = options ?? throw new ArgumentNullException(nameof(options));
        options.Validate();
    }

    public GanOptions Options { get; }

    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        Options.CheckColumnNames();
        var features = ColumnChecks.Find(inputSchema, Options.FeatureColumnName, "image");
        ColumnChecks.RequireFloatFeatures(features, "image");
        if (Options.LabelColumnName is { } label) ColumnChecks.RequireKeyLabel(ColumnChecks.Find(inputSchema, label, "label"));
        return SchemaShapes.Extend(inputSchema, [SchemaShapes.Column(Options.OutputColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false)]);
    }

    public GeneratorTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        Options.Validate();
        TorchRuntime.EnsureLoaded();
        int[] imageShape = Options.InputShape!;
        var featureColumn = ColumnChecks.Find(input.Schema, Options.FeatureColumnName, "image");
        int size = ColumnChecks.RequireFloatFeatures(featureColumn, "image");
        ColumnChecks.RequireShape(featureColumn, size, imageShape);
        int classes = 0;
        if (Options.LabelColumnName is { } labelName)
        {
            ColumnChecks.RequireKeyLabel(ColumnChecks.Find(input.Schema, labelName, "label"));
            classes = ColumnChecks.KeyCount(input.Schema[labelName]);
            if (classes < 2) throw new ArgumentException($"A conditional GAN needs a label with at least 2 classes; '{labelName}' has {classes}.", nameof(input));
        }
        var (generatorSpec, discriminatorSpec) = Options.Resolve(imageShape);
        int seed = Options.Seed ?? HostEnvironments.NextSeed(_env, "GenerativeAdversarialNetwork");
        var device = HostEnvironments.Device(_env);

        double[]? shares = null;
        float[]? centres = null;
        string? labelColumn = Options.LabelColumnName;
        if (Options.SelfConditioning > 0)
        {
            classes = Options.SelfConditioning;
            (input, labelColumn, centres) = Clusters(input, classes, seed);
        }
        var loaded = DataViewTensors.Load(input, Options.FeatureColumnName, size, labelColumn,
            classes > 0 ? LabelKind.ClassIndex : LabelKind.None, classes);
        DataViewTensors.ReportSkipped(_env, "GenerativeAdversarialNetwork", loaded, "training data");
        if (Options.SelfConditioning > 0)
        {
            shares = new double[classes];
            foreach (long c in loaded.ClassIndices!) shares[c]++;
            for (int c = 0; c < classes; c++) shares[c] /= loaded.Rows;
            using var channel = _env.Register("GenerativeAdversarialNetwork").Start("Self-conditioning");
            channel.Info(MessageSensitivity.None, $"Self-conditioning: {classes} k-means clusters of {loaded.Rows:N0} images, shares " +
                string.Join(" ", shares.Select((v, c) => FormattableString.Invariant($"{c}:{v:P1}"))));
        }
        using var data = loaded.ToTensorData(imageShape);
        var (module, random) = TorchRuntime.SeededWithRandom(seed, () =>
        {
            var gan = new GanModule(generatorSpec, discriminatorSpec, imageShape, Options.LatentSize, classes, Options.LabelEmbeddingSize, Options.MinibatchStdDev, shares);
            if (Options.DcganInitialisation ?? Options.Kind == GanKind.Dcgan) gan.InitialiseAsDcgan();
            if (centres is not null) gan.SetClusterCentres(centres);
            return gan;
        });
        using var randomScope = random;
        try
        {
            module.to(device);
            TrainingHistory history;
            using (var step = new GanStep(module, Options))
                history = TrainingLoop.Run(step, data, null, LoopSettings.From(Options), device, seed, random);
            module.KeepGeneratorAverage();
            return new GeneratorTransformer(module, generatorSpec, discriminatorSpec, Options.NoiseColumnName, Options.OutputColumnName,
                Options.LabelEmbeddingSize, device, Options.ScoringBatchSize) { History = history };
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The training images with a key column of their k-means cluster (ML.NET's k-means++ on the image column, seeded, one
    /// thread so that a seed gives the same clusters): the labels of a self-conditioned GAN.
    /// </summary>
    private (IDataView Data, string ClusterColumn, float[] Centres) Clusters(IDataView input, int clusters, int seed)
    {
        const string column = "GanCluster";
        var ml = new MLContext(seed);
        var kmeans = ml.Clustering.Trainers.KMeans(new Microsoft.ML.Trainers.KMeansTrainer.Options
        {
            FeatureColumnName = Options.FeatureColumnName, NumberOfClusters = clusters, NumberOfThreads = 1,
            InitializationAlgorithm = Microsoft.ML.Trainers.KMeansTrainer.InitializationAlgorithm.KMeansPlusPlus,
        });
        var model = kmeans.Fit(input);
        var scored = model.Transform(input);
        VBuffer<float>[] centroids = [];
        model.Model.GetClusterCentroids(ref centroids, out int found);
        if (found != clusters) throw new InvalidOperationException($"k-means found {found} clusters where {clusters} were asked for.");
        var centres = centroids.SelectMany(c => c.DenseValues()).ToArray();
        return (ml.Transforms.CopyColumns(column, "PredictedLabel").Fit(scored).Transform(scored), column, centres);
    }
}
