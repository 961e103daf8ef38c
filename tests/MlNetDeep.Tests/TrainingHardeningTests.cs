using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MlNetDeep.Cli.Commands;
using MlNetDeep.Data;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Generative;
using MlNetDeep.Models.Regression;
using MlNetDeep.Networks;
using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

/// <summary>
/// The training side's bad inputs and guarantees: validation data through the upstream pipeline, random draws owned by
/// each fit, every key type and missing labels, options checked at Fit, early stopping, divergence and cancellation.
/// </summary>
public class TrainingHardeningTests : IDisposable
{
    // ---------- Data ----------

    public sealed class Point
    {
        [VectorType(3)] public float[] Features { get; set; } = [];
        public float Label { get; set; }
    }

    /// <summary>Regression rows whose three features have very different scales (0-100, -50-50, 1000-2000).</summary>
    private static List<Point> Points(int n, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, n).Select(_ =>
        {
            float a = (float)random.NextDouble(), b = (float)random.NextDouble(), c = (float)random.NextDouble();
            return new Point { Features = [a * 100, b * 100 - 50, 1000 + c * 1000], Label = a - 2 * b + 0.5f * c };
        }).ToList();
    }

    private static NeuralNetworkRegressorOptions RegressorOptions(string featureColumn = "Features") => new()
    {
        FeatureColumnName = featureColumn, Network = Networks.Networks.Mlp(8), Epochs = 3, BatchSize = 16, Seed = 11,
    };

    private readonly List<string> _files = [];

    /// <summary>Deletes the files a test wrote (xUnit disposes the test class after each test).</summary>
    public void Dispose()
    {
        foreach (var file in _files) File.Delete(file);
    }

    /// <summary>
    /// Three blobs read by ML.NET's TextLoader with a key label of <paramref name="type"/> (Byte, UInt16, UInt32 or
    /// UInt64 values) and 3 classes; the rows in <paramref name="missing"/> have no label ("?", read as key 0).
    /// </summary>
    private IDataView BlobsOf(MLContext ml, string type, ISet<int>? missing = null, int n = 30)
    {
        var path = TestData.TempFile(".csv");
        _files.Add(path);
        File.WriteAllLines(path, Enumerable.Range(0, n).Select(i => FormattableString.Invariant(
            $"{i % 3 * 2 + 0.1f * (i % 5)},{(i % 3 == 1 ? 1 : -1) + 0.05f * (i % 7)},{(missing?.Contains(i) == true ? "?" : (i % 3).ToString())}")));
        var loader = ml.Data.CreateTextLoader(
            [new TextLoader.Column("Features", DataKind.Single, 0, 1), new TextLoader.Column("Label", Enum.Parse<DataKind>(type), 2) { KeyCount = new KeyCount(3) }],
            separatorChar: ',');
        return loader.Load(path);
    }

    private static NeuralNetworkClassifierOptions BlobOptions() => new()
    {
        FeatureColumnName = "Features", Network = Networks.Networks.Mlp(8), Epochs = 3, BatchSize = 8, Seed = 5,
    };

    private static float[][] Scores(ITransformer model, IDataView data, string column = "Score") => TestData.Column(model.Transform(data), column);

    private static List<string> Warnings(MLContext ml)
    {
        var warnings = new List<string>();
        ml.Log += (_, e) => { if (e.Kind == ChannelMessageKind.Warning) lock (warnings) warnings.Add(e.Message); };
        return warnings;
    }

    // ---------- Validation data through the upstream pipeline ----------

    private static IReadOnlyList<double> ValidationLosses(IEstimator<ITransformer> upstream, string featureColumn, Func<MLContext, IDataView, IDataView, IDataView> validation)
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Points(96, 1));
        var raw = ml.Data.LoadFromEnumerable(Points(40, 2));
        var options = RegressorOptions(featureColumn);
        options.ValidationData = validation(ml, train, raw);
        var model = upstream.Append(ml.Regression.Trainers.NeuralNetwork(options)).Fit(train);
        return model.LastTransformer.History!.Values("val_loss");
    }

    [Theory]
    [InlineData("in place")]
    [InlineData("new column")]
    [InlineData("cache checkpoint")]
    public void RawValidationRowsGoThroughTheFittedUpstreamTransforms(string variant)
    {
        var ml = new MLContext(seed: 1);
        string feature = variant == "new column" ? "Normalized" : "Features";
        IEstimator<ITransformer> upstream = variant == "new column"
            ? ml.Transforms.NormalizeMinMax("Normalized", "Features")
            : ml.Transforms.NormalizeMinMax("Features");
        if (variant == "cache checkpoint") upstream = upstream.AppendCacheCheckpoint(ml);

        var fromRaw = ValidationLosses(upstream, feature, (_, _, raw) => raw);
        var fromNormalised = ValidationLosses(upstream, feature, (_, train, raw) => upstream.Fit(train).Transform(raw));
        Assert.Equal(3, fromRaw.Count);
        Assert.Equal(fromNormalised, fromRaw);
    }

    [Fact]
    public void ValidationDataWithoutTheFeaturesOrThePipelinesInputIsAClearError()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromEnumerable(Points(32, 1));
        var options = RegressorOptions("Normalized");
        options.ValidationData = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 5).Select(i => new TestData.XY { Features = [i], Label = i }).ToList());
        var pipeline = ml.Transforms.NormalizeMinMax("Normalized", "Features").Append(ml.Regression.Trainers.NeuralNetwork(options));
        var ex = Assert.Throws<ArgumentException>(() => pipeline.Fit(train));
        Assert.Equal("ValidationData", ex.ParamName);
        Assert.Contains("ValidationData has no feature column 'Normalized'", ex.Message);
        Assert.Contains("do not match those of the pipeline's input", ex.Message);
    }

    [Fact]
    public void TheUpstreamChainIsReachableInThisMlNetVersion()
    {
        Assert.True(UpstreamTransforms.Available, "ML.NET's IDataTransform.Source and ApplyTransformUtils.ApplyTransformToData are found by reflection");
        var ml = new MLContext(seed: 1);
        var raw = ml.Data.LoadFromEnumerable(Points(8, 1));
        var transformed = ml.Transforms.NormalizeMinMax("Features").Append(ml.Transforms.CopyColumns("Copy", "Label")).Fit(raw).Transform(raw);
        Assert.Equal(2, UpstreamTransforms.Chain(transformed, out var source).Count);
        Assert.Same(raw, source);
    }

    // ---------- Random draws: on the CPU, from the fit's own generator ----------

    public static TheoryData<string> Corruptions => new() { "gaussian", "salt-and-pepper", "masking" };

    private static InputCorruption Corruption(string name) => name switch
    {
        "gaussian" => new GaussianCorruption(0.3),
        "salt-and-pepper" => new SaltAndPepperCorruption(0.3),
        _ => new MaskingCorruption(0.3),
    };

    [Theory]
    [MemberData(nameof(Corruptions))]
    public void CorruptionDrawsAreAFunctionOfTheSeedOnly(string name)
    {
        var corruption = Corruption(name);
        var rows = Enumerable.Range(0, 6).Select(i => Enumerable.Range(0, 20).Select(j => (i + j) % 10 / 10f).ToArray()).ToList();
        Native.TorchRuntime.Seed(1);
        var first = corruption.Corrupt(rows, seed: 42);
        Native.TorchRuntime.Seed(999);
        using (var unrelated = rand(1000)) { }
        Assert.Equal(first, corruption.Corrupt(rows, seed: 42));
        Assert.NotEqual(first, corruption.Corrupt(rows, seed: 43));
    }

    [Theory]
    [MemberData(nameof(Corruptions))]
    public void CorruptionDrawsOnTheGeneratorsDeviceAndMovesTheNumbers(string name)
    {
        // A batch on another device than the (CPU) generator: the meta device stands in for a GPU here.
        Native.TorchRuntime.EnsureLoaded();
        using var generator = new Generator(7, CPU);
        using var batch = zeros([4, 5], device: new Device(DeviceType.META));
        using var corrupted = Corruption(name).Apply(batch, generator);
        Assert.Equal(DeviceType.META, corrupted.device_type);
        Assert.Equal(batch.shape, corrupted.shape);
    }

    [Fact]
    public void DropoutAndNoiseDrawWhatTorchsGlobalGeneratorWouldHaveDrawn()
    {
        // The fit's generator continues the global stream from the state weight initialisation left, so a single
        // training draws the masks and noise it drew from the global generator: single-thread results are unchanged.
        Native.TorchRuntime.EnsureLoaded();
        using var input = ones([64, 50]);
        var (_, generator) = Native.TorchRuntime.SeededWithRandom(3, () => 0);
        using (generator)
        {
            Native.TorchRuntime.Seed(3);
            using var expectedMask = nn.functional.dropout(input, 0.4, training: true);
            using var expectedNoise = randn_like(input);
            using (TrainingRandom.Use(generator))
            {
                Native.TorchRuntime.Seed(12345);
                using var mask = TrainingRandom.Dropout(input, 0.4);
                using var noise = TrainingRandom.NormalLike(input);
                Assert.True(mask.eq(expectedMask).all().item<bool>(), "the dropout mask is torch's, from the same state");
                Assert.True(noise.eq(expectedNoise).all().item<bool>(), "the noise is torch's, from the same state");
            }
        }
        Assert.Null(TrainingRandom.Current);
    }

    private static float[][] ClassifierScores(int seed, int skip, Action? epochEnd)
    {
        var ml = new MLContext(seed: 1);
        var options = ClassifierTests.MlpOptions(3);
        options.Network = Networks.Networks.Mlp([32], dropout: 0.5);
        options.Seed = seed;
        if (epochEnd is not null) options.Callbacks.Add(new EpochCallback(_ => epochEnd()));
        var rows = TestData.MnistTrain(ml, skip + 200);
        var train = skip > 0 ? ml.Data.SkipRows(rows, skip) : rows;
        using var model = ml.MulticlassClassification.Trainers.NeuralNetwork(options).Fit(train);
        return Scores(model, TestData.MnistTest(ml, 10));
    }

    private static float[][] VaeReconstructions(Action? epochEnd)
    {
        var ml = new MLContext(seed: 1);
        var options = new VariationalAutoencoderOptions
        {
            FeatureColumnName = "Pixels", LatentSize = 2, Epochs = 3, BatchSize = 32, Seed = 8,
            Encoder = new NetworkSpec([new Flatten(), new Dense(32, ActivationKind.ReLU), new Dropout(0.3)]),
            Decoder = new NetworkSpec([new Dense(32, ActivationKind.ReLU), new Dense(Dense.TaskOutputs, ActivationKind.Sigmoid)]),
        };
        if (epochEnd is not null) options.Callbacks.Add(new EpochCallback(_ => epochEnd()));
        using var model = ml.Transforms.VariationalAutoencoder(options).Fit(TestData.MnistTrain(ml, 200));
        return Scores(model, TestData.MnistTest(ml, 5), "Reconstruction");
    }

    [Fact]
    public void TrainingsRunningAtOnceGetTheirSingleThreadResults()
    {
        Func<Action?, float[][]>[] fits =
        [
            sync => ClassifierScores(seed: 3, skip: 0, sync),
            sync => ClassifierScores(seed: 4, skip: 200, sync),
            VaeReconstructions,
        ];
        var alone = fits.Select(fit => fit(null)).ToArray();

        // The same fits on three threads, in step at every epoch's end so that their epochs overlap.
        using var barrier = new Barrier(fits.Length);
        var together = new float[fits.Length][][];
        var errors = new Exception?[fits.Length];
        var threads = fits.Select((fit, i) => new Thread(() =>
        {
            try { together[i] = fit(() => barrier.SignalAndWait(TimeSpan.FromMinutes(2))); }
            catch (Exception ex) { errors[i] = ex; barrier.RemoveParticipant(); }
        })).ToArray();
        foreach (var thread in threads) thread.Start();
        foreach (var thread in threads) Assert.True(thread.Join(TimeSpan.FromMinutes(5)), "a training thread hung");
        Assert.All(errors, Assert.Null);
        for (int i = 0; i < fits.Length; i++) Assert.Equal(alone[i], together[i]);
    }

    // ---------- Key labels of every key type; missing labels ----------

    public static TheoryData<string> KeyTypes => new() { "Byte", "UInt16", "UInt32", "UInt64" };

    [Theory]
    [MemberData(nameof(KeyTypes))]
    public void KeyLabelsOfEveryKeyTypeTrainAlike(string type)
    {
        var ml = new MLContext(seed: 1);
        var data = BlobsOf(ml, type);
        Assert.Equal(type, ((KeyDataViewType)data.Schema["Label"].Type).RawType.Name);
        using var model = ml.MulticlassClassification.Trainers.NeuralNetwork(BlobOptions()).Fit(data);
        using var reference = ml.MulticlassClassification.Trainers.NeuralNetwork(BlobOptions()).Fit(BlobsOf(ml, "UInt32"));
        Assert.Equal(Scores(reference, data), Scores(model, data));
        Assert.All(Scores(model, data), row => Assert.Equal(3, row.Length));
    }

    [Theory]
    [MemberData(nameof(KeyTypes))]
    public void RowsWithAMissingKeyLabelAreSkippedAndCountedInTheLog(string type)
    {
        var ml = new MLContext(seed: 1);
        var warnings = Warnings(ml);
        var missing = new HashSet<int> { 2, 9, 17, 25 };
        using var model = ml.MulticlassClassification.Trainers.NeuralNetwork(BlobOptions()).Fit(BlobsOf(ml, type, missing));
        var message = Assert.Single(warnings);
        Assert.Contains("Skipped 4 of 30 rows of the training data whose label 'Label' is missing (key 0", message);
        Assert.Contains("trained on the other 26", message);

        // The same model as one trained on the 26 labelled rows alone.
        var labelled = ml.Data.FilterRowsByMissingValues(BlobsOf(ml, "UInt32", missing), "Label");
        Assert.Equal(26, labelled.GetColumn<uint>("Label").Count());
        using var reference = ml.MulticlassClassification.Trainers.NeuralNetwork(BlobOptions()).Fit(labelled);
        Assert.Equal(Scores(reference, labelled), Scores(model, labelled));
    }

    [Fact]
    public void MissingLabelsInTheValidationDataAreSkippedAndCountedToo()
    {
        var ml = new MLContext(seed: 1);
        var warnings = Warnings(ml);
        var options = BlobOptions();
        options.ValidationData = BlobsOf(ml, "UInt64", new HashSet<int> { 0, 1, 2 });
        using var model = ml.MulticlassClassification.Trainers.NeuralNetwork(options).Fit(BlobsOf(ml, "UInt64"));
        Assert.Contains(warnings, w => w.Contains("Skipped 3 of 30 rows of the validation data whose label 'Label' is missing"));
        Assert.All(model.History!.Epochs, e => Assert.NotNull(e.ValidationLoss));
    }

    [Fact]
    public void NaNAndInfiniteRegressionLabelsAreSkippedAndCounted()
    {
        var ml = new MLContext(seed: 1);
        var warnings = Warnings(ml);
        var points = Points(40, 3);
        var clean = ml.Data.LoadFromEnumerable(points);
        points[3].Label = float.NaN;
        points[10].Label = float.PositiveInfinity;
        points[11].Label = float.NaN;
        var withMissing = ml.Data.LoadFromEnumerable(points);
        var labelled = ml.Data.LoadFromEnumerable(points.Where(p => float.IsFinite(p.Label)).ToList());
        using var model = ml.Regression.Trainers.NeuralNetwork(RegressorOptions()).Fit(withMissing);
        Assert.Contains("Skipped 3 of 40 rows of the training data whose label 'Label' is missing", Assert.Single(warnings));
        using var reference = ml.Regression.Trainers.NeuralNetwork(RegressorOptions()).Fit(labelled);
        Assert.Equal(reference.Transform(clean).GetColumn<float>("Score"), model.Transform(clean).GetColumn<float>("Score"));
    }

    [Fact]
    public void EveryLabelMissingIsAClearError()
    {
        var ml = new MLContext(seed: 1);
        var all = Enumerable.Range(0, 30).ToHashSet();
        var ex = Assert.Throws<InvalidOperationException>(() => ml.MulticlassClassification.Trainers.NeuralNetwork(BlobOptions()).Fit(BlobsOf(ml, "Byte", all)));
        Assert.Contains("Every row's label is missing: all 30 rows of label column 'Label' hold key 0", ex.Message);

        var points = Points(12, 4);
        foreach (var p in points) p.Label = float.NaN;
        var nan = Assert.Throws<InvalidOperationException>(() => ml.Regression.Trainers.NeuralNetwork(RegressorOptions()).Fit(ml.Data.LoadFromEnumerable(points)));
        Assert.Contains("all 12 rows of label column 'Label' hold NaN or an infinite value", nan.Message);
    }

    public sealed class HugeKeyRow
    {
        [VectorType(2)] public float[] Features { get; set; } = [];
        [KeyType(1UL << 40)] public ulong Label { get; set; }
    }

    [Fact]
    public void AUInt64KeyWithMoreClassesThanAnIntHoldsIsAClearError()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 4).Select(i => new HugeKeyRow { Features = [i, 1], Label = (ulong)i + 1 }).ToList());
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.NeuralNetwork(BlobOptions()).Fit(data));
        Assert.Equal("LabelColumnName", ex.ParamName);
        Assert.Contains("is a key of 1,099,511,627,776 values (UInt64)", ex.Message);
        Assert.Contains("at most 2,147,483,647 classes", ex.Message);
    }

    // ---------- Options: checked at Fit, schedules and early stopping checked, never mutated ----------

    /// <summary>A data view that fails when read: options errors must come before any row is read.</summary>
    private sealed class UnreadableData(DataViewSchema schema) : IDataView
    {
        public bool CanShuffle => false;
        public DataViewSchema Schema => schema;
        public long? GetRowCount() => null;
        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
            throw new InvalidOperationException("the data was read");
        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
            throw new InvalidOperationException("the data was read");
    }

    public static TheoryData<string, string, string> OptionChanges => new()
    {
        { "BatchSize = 0", "BatchSize", "BatchSize must be at least 1" },
        { "Epochs = 0", "Epochs", "Epochs must be at least 1" },
        { "ScoringBatchSize = -1", "ScoringBatchSize", "ScoringBatchSize must be at least 1" },
        { "ValidationFraction = 1.5", "ValidationFraction", "ValidationFraction must be in [0, 1)" },
        { "Optimizer = Adam(-1)", "LearningRate", "the learning rate must be a positive number" },
        { "EarlyStopping.Patience = -1", "Patience", "EarlyStopping.Patience must be >= 0" },
        { "EarlyStopping.MinDelta = NaN", "MinDelta", "EarlyStopping.MinDelta must be a finite number >= 0" },
        { "LearningRateSchedule = ExponentialDecay(0)", "Gamma", "ExponentialDecay.Gamma must be a finite number > 0" },
        { "MaxStagedBytes = -1", "MaxStagedBytes", "MaxStagedBytes must be >= 0" },
    };

    private static void Change(DeepTrainerOptions options, string change)
    {
        switch (change)
        {
            case "BatchSize = 0": options.BatchSize = 0; break;
            case "Epochs = 0": options.Epochs = 0; break;
            case "ScoringBatchSize = -1": options.ScoringBatchSize = -1; break;
            case "ValidationFraction = 1.5": options.ValidationFraction = 1.5; break;
            case "Optimizer = Adam(-1)": options.Optimizer = new Adam(-1); break;
            case "EarlyStopping.Patience = -1": options.EarlyStopping = new EarlyStopping(Patience: -1); break;
            case "EarlyStopping.MinDelta = NaN": options.EarlyStopping = new EarlyStopping(MinDelta: double.NaN); break;
            case "LearningRateSchedule = ExponentialDecay(0)": options.LearningRateSchedule = new ExponentialDecay(0); break;
            case "MaxStagedBytes = -1": options.MaxStagedBytes = -1; break;
            default: throw new ArgumentException(change);
        }
    }

    [Theory]
    [MemberData(nameof(OptionChanges))]
    public void OptionsChangedAfterConstructionAreCheckedAtFitBeforeReading(string change, string parameter, string message)
    {
        var ml = new MLContext(seed: 1);
        var data = new UnreadableData(ml.Data.LoadFromEnumerable(Points(4, 1)).Schema);
        var trainer = ml.Regression.Trainers.NeuralNetwork(RegressorOptions());
        Change(trainer.Options, change);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => trainer.Fit(data));
        Assert.Equal(parameter, ex.ParamName);
        Assert.Contains(message, ex.Message);
    }

    [Fact]
    public void AutoencoderAndGanOptionsChangedAfterConstructionAreCheckedAtFit()
    {
        var ml = new MLContext(seed: 1);
        var pixels = new UnreadableData(TestData.MnistTrain(ml, 1).Schema);

        var vae = ml.Transforms.VariationalAutoencoder(new VariationalAutoencoderOptions { FeatureColumnName = "Pixels" });
        vae.Options.Beta = -1;
        var beta = Assert.Throws<ArgumentOutOfRangeException>(() => vae.Fit(pixels));
        Assert.Equal("Beta", beta.ParamName);
        Assert.Contains("Beta must be a finite number >= 0", beta.Message);

        var autoencoder = ml.Transforms.Autoencoder(new AutoencoderOptions { FeatureColumnName = "Pixels" });
        autoencoder.Options.LatentSize = 0;
        var latent = Assert.Throws<ArgumentOutOfRangeException>(() => autoencoder.Fit(pixels));
        Assert.Equal("LatentSize", latent.ParamName);

        var gan = ml.Transforms.GenerativeAdversarialNetwork(new GanOptions());
        gan.Options.BatchSize = 0;
        var batch = Assert.Throws<ArgumentOutOfRangeException>(() => gan.Fit(pixels));
        Assert.Equal("BatchSize", batch.ParamName);
    }

    public static TheoryData<LearningRateSchedule, string, string> BadSchedules => new()
    {
        { new StepDecay(0), "StepSize", "StepDecay.StepSize must be positive" },
        { new StepDecay(2, -0.5), "Gamma", "StepDecay.Gamma must be a finite number > 0, got -0.5" },
        { new ExponentialDecay(double.NaN), "Gamma", "ExponentialDecay.Gamma must be a finite number > 0, got NaN" },
        { new CosineAnnealing(-1), "Epochs", "CosineAnnealing.Epochs must be >= 0" },
        { new CosineAnnealing(0, -0.001), "MinRate", "CosineAnnealing.MinRate must be a finite number >= 0" },
        { new ReduceOnPlateau(Factor: 1), "Factor", "ReduceOnPlateau.Factor must be in (0, 1), got 1" },
        { new ReduceOnPlateau(Patience: -1), "Patience", "ReduceOnPlateau.Patience must be >= 0" },
        { new ReduceOnPlateau(MinDelta: -1), "MinDelta", "ReduceOnPlateau.MinDelta must be a finite number >= 0" },
        { new ReduceOnPlateau(MinRate: double.PositiveInfinity), "MinRate", "ReduceOnPlateau.MinRate must be a finite number >= 0" },
    };

    [Theory]
    [MemberData(nameof(BadSchedules))]
    public void ScheduleParametersAreCheckedWithTheOptions(LearningRateSchedule schedule, string parameter, string message)
    {
        var ml = new MLContext(seed: 1);
        var options = RegressorOptions();
        options.LearningRateSchedule = schedule;
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Regression.Trainers.NeuralNetwork(options));
        Assert.Equal(parameter, ex.ParamName);
        Assert.Contains(message, ex.Message);
    }

    [Fact]
    public void EarlyStoppingParametersAreCheckedWithTheOptions()
    {
        var ml = new MLContext(seed: 1);
        var options = RegressorOptions();
        options.EarlyStopping = new EarlyStopping(MinDelta: -0.1);
        var delta = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Regression.Trainers.NeuralNetwork(options));
        Assert.Equal("MinDelta", delta.ParamName);
        Assert.Contains("EarlyStopping.MinDelta must be a finite number >= 0", delta.Message);

        options.EarlyStopping = new EarlyStopping();
        options.Monitor = new MonitoredMetric(" ");
        var monitor = Assert.Throws<ArgumentException>(() => ml.Regression.Trainers.NeuralNetwork(options));
        Assert.Equal("Name", monitor.ParamName);
        Assert.Contains("MonitoredMetric.Name must name a metric", monitor.Message);

        var loop = Assert.Throws<ArgumentOutOfRangeException>(() => new LoopSettings { EarlyStopping = new EarlyStopping(MinDelta: double.PositiveInfinity) }.Validate());
        Assert.Equal("MinDelta", loop.ParamName);
    }

    [Fact]
    public void ConvolutionalNetworkLeavesTheCallersOptionsAsTheyWere()
    {
        var ml = new MLContext(seed: 1);
        var options = new NeuralNetworkClassifierOptions { FeatureColumnName = "Pixels", InputShape = [1, 28, 28] };
        var network = options.Network;
        var trainer = ml.MulticlassClassification.Trainers.ConvolutionalNetwork(options);
        Assert.Same(network, options.Network);
        Assert.Equal(Networks.Networks.KerasMnistCnn, trainer.Options.Network);
        Assert.NotSame(options, trainer.Options);
        Assert.Equal(options.InputShape, trainer.Options.InputShape);
    }

    [Fact]
    public void CloneIsAShallowCopyWithItsOwnListAndShape()
    {
        var callback = new EpochCallback(_ => { });
        var options = new NeuralNetworkClassifierOptions { InputShape = [1, 4, 4], Epochs = 7, Callbacks = { callback } };
        var copy = Assert.IsType<NeuralNetworkClassifierOptions>(options.Clone());
        Assert.Equal(7, copy.Epochs);
        Assert.Same(options.Network, copy.Network);
        Assert.Same(callback, Assert.Single(copy.Callbacks));
        copy.Callbacks.Add(new EpochCallback(_ => { }));
        copy.InputShape![0] = 3;
        copy.Epochs = 1;
        Assert.Single(options.Callbacks);
        Assert.Equal(new[] { 1, 4, 4 }, options.InputShape);
        Assert.Equal(7, options.Epochs);
    }

    public static TheoryData<string, string, string> BadCliValues => new()
    {
        { "train mnist", "--batch-size", "0" },
        { "train mnist", "--learning-rate", "0" },
        { "train mnist", "--train-rows", "0" },
        { "autoencoder mnist", "--epochs", "0" },
        { "autoencoder mnist", "--noise", "-1" },
        { "autoencoder mnist", "--latent", "0" },
        { "gan mnist", "--train-rows", "-5" },
        { "gan mnist", "--batch-size", "0" },
        { "benchmark", "--rows", "0" },
    };

    [Theory]
    [MemberData(nameof(BadCliValues))]
    public void TheCliChecksItsOptionsWhileParsing(string command, string option, string value)
    {
        // A wrong value is a parse error naming the option: the command's action (which would load MNIST) never runs.
        Command cli = command switch
        {
            "train mnist" => TrainMnistCommand.Create(),
            "autoencoder mnist" => AutoencoderCommand.Create(),
            "gan mnist" => GanCommand.Create(),
            _ => BenchmarkCommand.Create(),
        };
        var parsed = cli.Parse([$"{option}={value}", "--output", Path.Combine(Path.GetTempPath(), "never-written")]);
        var error = Assert.Single(parsed.Errors);
        Assert.StartsWith($"{option} must be", error.Message);
        Assert.Contains(value, error.Message);
    }

    // ---------- Early stopping, divergence, cancellation ----------

    /// <summary>
    /// A step that reports scripted losses, one per epoch, and sets its one weight to the epoch's index, so that the
    /// weight says which epoch's weights the model holds.
    /// </summary>
    private sealed class ScriptedStep(double[] losses) : TrainingStep
    {
        public readonly nn.Module<Tensor, Tensor> Model = nn.Linear(1, 1, hasBias: false);
        public int Evaluations;
        public Action? OnEvaluate;

        public override IReadOnlyList<nn.Module> Modules => [Model];
        public override IReadOnlyCollection<string> MetricNames => [Loss];
        public override double LearningRate => 0.1;
        public override void ScaleLearningRates(double factor) { }

        public override IReadOnlyDictionary<string, Tensor> TrainBatch(Batch batch, StepContext context)
        {
            using (no_grad()) Model.parameters().Single().fill_(context.Epoch);
            return new Dictionary<string, Tensor> { ["loss"] = tensor(losses[context.Epoch], float64) };
        }

        public override IReadOnlyDictionary<string, Tensor> EvaluateBatch(Batch batch)
        {
            Evaluations++;
            OnEvaluate?.Invoke();
            return new Dictionary<string, Tensor> { ["loss"] = tensor(0.0, float64) };
        }

        public float Weight => Model.parameters().Single().item<float>();
    }

    private static TensorData Rows(int n) => new(arange(n, float32).reshape(n, 1), zeros(n));

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(0)]
    public void EarlyStoppingStopsAfterExactlyPatienceEpochsWithoutImprovement(int patience)
    {
        Native.TorchRuntime.EnsureLoaded();
        using var data = Rows(8);
        using var step = new ScriptedStep([5, 4, 4.5, 4.6, 4.7, 4.8, 4.9, 5.0]);
        var settings = new LoopSettings { Epochs = 8, BatchSize = 8, EarlyStopping = new EarlyStopping(Patience: patience) };
        var history = TrainingLoop.Run(step, data, null, settings, CPU, seed: 1);
        int withoutImprovement = Math.Max(patience, 1);
        Assert.Equal(2 + withoutImprovement, history.Epochs.Count);
        Assert.True(history.StoppedEarly);
        Assert.Equal($"early stopping: loss did not improve for {withoutImprovement} epoch{(withoutImprovement == 1 ? "" : "s")} after its best, 4 in epoch 2", history.StopReason);
        Assert.Equal(1, history.BestEpoch);
        Assert.Equal(1, history.WeightsEpoch);
        Assert.True(history.RestoredBestWeights);
        Assert.Equal(1f, step.Weight);
    }

    [Fact]
    public void WithoutRestoringTheModelHoldsTheLastEpochsWeightsAndSaysSo()
    {
        Native.TorchRuntime.EnsureLoaded();
        using var data = Rows(8);
        using var step = new ScriptedStep([5, 4, 4.5, 4.6, 4.7]);
        var settings = new LoopSettings { Epochs = 5, BatchSize = 8, EarlyStopping = new EarlyStopping(Patience: 2, RestoreBestWeights: false) };
        var history = TrainingLoop.Run(step, data, null, settings, CPU, seed: 1);
        Assert.Equal(4, history.Epochs.Count);
        Assert.Equal(1, history.BestEpoch);
        Assert.Equal(3, history.WeightsEpoch);
        Assert.False(history.RestoredBestWeights);
        Assert.Equal(3f, step.Weight);
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void DivergenceStopsWithTheBestWeightsRestored(double diverged)
    {
        Native.TorchRuntime.EnsureLoaded();
        using var data = Rows(8);
        using var step = new ScriptedStep([3, 2, 2.5, diverged, 1]);
        var settings = new LoopSettings { Epochs = 5, BatchSize = 8, EarlyStopping = new EarlyStopping(Patience: 5) };
        var history = TrainingLoop.Run(step, data, null, settings, CPU, seed: 1);
        Assert.True(history.Diverged);
        Assert.True(history.StoppedEarly);
        Assert.Equal(4, history.Epochs.Count);
        Assert.Equal(diverged, history.Epochs[^1].TrainLoss);
        Assert.Equal(1, history.WeightsEpoch);
        Assert.True(history.RestoredBestWeights);
        Assert.Equal(1f, step.Weight);
        Assert.Equal($"Training diverged: the loss became {diverged} in epoch 4. The weights of epoch 2 (loss 2) were restored.", history.StopReason);
    }

    [Fact]
    public void DivergenceWithNothingToRestoreIsAnError()
    {
        Native.TorchRuntime.EnsureLoaded();
        using var data = Rows(8);
        using var step = new ScriptedStep([3, double.NaN]);
        var ex = Assert.Throws<InvalidOperationException>(() => TrainingLoop.Run(step, data, null, new LoopSettings { Epochs = 2, BatchSize = 8 }, CPU, seed: 1));
        Assert.StartsWith("Training diverged: the loss became NaN in epoch 2. Lower the learning rate", ex.Message);
    }

    [Fact]
    public void CancellationIsCheckedInsideTheValidationPass()
    {
        Native.TorchRuntime.EnsureLoaded();
        using var data = Rows(8);
        using var validation = Rows(10);
        using var cancellation = new CancellationTokenSource();
        using var step = new ScriptedStep([1]) { OnEvaluate = cancellation.Cancel };
        var settings = new LoopSettings { Epochs = 1, BatchSize = 8, ValidationBatchSize = 1, CancellationToken = cancellation.Token };
        Assert.Throws<OperationCanceledException>(() => TrainingLoop.Run(step, data, validation, settings, CPU, seed: 1));
        Assert.Equal(1, step.Evaluations);
    }

    private sealed class Handler(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }

    [Fact]
    public void CancellingFromAProgressHandlerBeforeTheLastValidationEndsTheFit()
    {
        var ml = new MLContext(seed: 1);
        using var cancellation = new CancellationTokenSource();
        var options = RegressorOptions();
        options.Epochs = 2;
        options.ValidationFraction = 0.5;
        options.CancellationToken = cancellation.Token;
        // The last training batch of the last epoch: only its validation pass is left.
        options.Progress = new Handler(p => { if (p.Epoch == 1 && p.Completed is null && p.Batch == p.Batches) cancellation.Cancel(); });
        var trainer = ml.Regression.Trainers.NeuralNetwork(options);
        Assert.Throws<OperationCanceledException>(() => trainer.Fit(ml.Data.LoadFromEnumerable(Points(64, 1))));
    }
}
