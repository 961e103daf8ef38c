using Microsoft.ML;
using Microsoft.ML.Runtime;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Common;
using MlNetDeep.Networks;
using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Transfer;

/// <summary>
/// Options of the transfer-learning classifier: a pretrained <see cref="Backbone"/>, cut after a layer, with a new
/// head (<see cref="SupervisedNetworkOptions.Network"/>: by default a global average pool and a Dense layer sized to
/// the classes). <see cref="DeepTrainerOptions.Epochs"/> train the head with the backbone frozen; then
/// <see cref="FineTuneEpochs"/> train the head and the backbone's top <see cref="FineTuneLayers"/> layers at
/// <see cref="FineTuneLearningRate"/> (Keras' recipe: a low rate once the head has learned). Everything else (batch
/// size, optimiser, schedules, early stopping, validation, augmentation) is the supervised trainers'.
/// </summary>
public sealed class TransferLearningOptions : NeuralNetworkClassifierOptions, ITransferLearningOptions
{
    public TransferLearningOptions() { Network = DefaultHead; }

    /// <summary>The head for an image-shaped cut: a global average pool, then Dense(classes).</summary>
    public static NetworkSpec DefaultHead { get; } = new([new GlobalAvgPool2D(), new Flatten(), new Dense(Dense.TaskOutputs)]) { Name = "head" };

    /// <summary>The pretrained network (required).</summary>
    public TransferBackbone? Backbone { get; set; }

    /// <summary>The backbone layer whose output the head reads, by name (<c>conv2d_12</c>) or position; null: the last image-shaped layer.</summary>
    public string? CutAfter { get; set; }

    /// <summary>The input normalisation the backbone expects (e.g. <see cref="ImageNormalization.ImageNet"/>), applied to the pixels as they come; null: none.</summary>
    public NormalizeChannels? Normalization { get; set; }

    /// <summary>Epochs of fine-tuning after the frozen phase (0: the backbone stays frozen).</summary>
    public int FineTuneEpochs { get; set; }

    /// <summary>How many of the backbone's last layers (up to the cut) fine-tuning trains; null: all of them.</summary>
    public int? FineTuneLayers { get; set; }

    /// <summary>The learning rate of the fine-tuning phase; null: a tenth of the optimiser's.</summary>
    public double? FineTuneLearningRate { get; set; }

    /// <summary>
    /// Whether the frozen phase computes the backbone's features once per image and trains the head on them (as
    /// ML.NET's ImageClassificationTrainer caches its bottleneck). Null (the default): cache unless a
    /// <see cref="DeepTrainerOptions.TrainingInputTransform"/> (augmentation) is set, since an augmented image has new
    /// features every epoch; true with augmentation is an error.
    /// </summary>
    public bool? CacheBottleneck { get; set; }

    /// <summary>Reports the share of images whose bottleneck features are computed (0 to 1), before the head's epochs.</summary>
    public IProgress<double>? BottleneckProgress { get; set; }

    internal override void Validate()
    {
        base.Validate();
        TransferTraining.Validate(this, this);
    }
}

/// <summary>
/// Options of the binary transfer-learning classifier (a Boolean label): as <see cref="TransferLearningOptions"/>,
/// with the binary classifier's Score, Probability and PredictedLabel.
/// </summary>
public sealed class BinaryTransferLearningOptions : NeuralNetworkBinaryClassifierOptions, ITransferLearningOptions
{
    public BinaryTransferLearningOptions() { Network = TransferLearningOptions.DefaultHead; }

    /// <summary>The pretrained network (required).</summary>
    public TransferBackbone? Backbone { get; set; }

    /// <summary>The backbone layer whose output the head reads, by name (<c>conv2d_12</c>) or position; null: the last image-shaped layer.</summary>
    public string? CutAfter { get; set; }

    /// <summary>The input normalisation the backbone expects (e.g. <see cref="ImageNormalization.ImageNet"/>), applied to the pixels as they come; null: none.</summary>
    public NormalizeChannels? Normalization { get; set; }

    /// <summary>Epochs of fine-tuning after the frozen phase (0: the backbone stays frozen).</summary>
    public int FineTuneEpochs { get; set; }

    /// <summary>How many of the backbone's last layers (up to the cut) fine-tuning trains; null: all of them.</summary>
    public int? FineTuneLayers { get; set; }

    /// <summary>The learning rate of the fine-tuning phase; null: a tenth of the optimiser's.</summary>
    public double? FineTuneLearningRate { get; set; }

    /// <summary>
    /// Whether the frozen phase computes the backbone's features once per image and trains the head on them (as
    /// ML.NET's ImageClassificationTrainer caches its bottleneck). Null (the default): cache unless a
    /// <see cref="DeepTrainerOptions.TrainingInputTransform"/> (augmentation) is set, since an augmented image has new
    /// features every epoch; true with augmentation is an error.
    /// </summary>
    public bool? CacheBottleneck { get; set; }

    /// <summary>Reports the share of images whose bottleneck features are computed (0 to 1), before the head's epochs.</summary>
    public IProgress<double>? BottleneckProgress { get; set; }

    internal override void Validate()
    {
        base.Validate();
        TransferTraining.Validate(this, this);
    }
}

/// <summary>The transfer settings both classifiers' options carry.</summary>
internal interface ITransferLearningOptions
{
    TransferBackbone? Backbone { get; }
    string? CutAfter { get; }
    NormalizeChannels? Normalization { get; }
    int FineTuneEpochs { get; }
    int? FineTuneLayers { get; }
    double? FineTuneLearningRate { get; }
    bool? CacheBottleneck { get; }
    IProgress<double>? BottleneckProgress { get; }
}

/// <summary>
/// Image classification from a pretrained backbone (ML.NET's image-classification scenario): the backbone's layers up
/// to the cut, with their weights, under a new head; a frozen phase (on cached features by default) and optional
/// fine-tuning. The result is a <see cref="NeuralNetworkClassificationTransformer"/>: Score, PredictedLabel, Evaluate,
/// CrossValidate, PredictionEngine, SaveDeep/LoadDeep and ONNX export as for every classifier. It reads the pixels as
/// they come (the normalisation is its first layer).
/// </summary>
public sealed class TransferLearningClassifier : DeepEstimator<TransferLearningOptions, NeuralNetworkClassificationTransformer>
{
    public TransferLearningClassifier(IHostEnvironment env, TransferLearningOptions options) : base(env, options) { }

    private protected override string Name => "TransferLearningClassifier";

    /// <summary>
    /// Images per batch of the bottleneck pass: small batches keep each layer's activations in the CPU's caches
    /// (MobileNetV2 at 224 x 224 ran 38 images/s in batches of 32 against 11 in batches of 256).
    /// </summary>
    public const int BottleneckBatchSize = TransferTraining.BottleneckBatchSize;

    private protected override TaskSetup Setup(DataViewSchema schema) => ClassificationTask.Setup(schema, Options);

    private protected override IEnumerable<SchemaShape.Column> OutputShapes(SchemaShape inputSchema) => ClassificationTask.OutputShapes(inputSchema, Options);

    private protected override NetworkSpec NetworkFor(TaskSetup task) => TransferTraining.NetworkFor(Options, Options.Network, task);

    private protected override nn.Module BuildModule(NetworkSpec network, int[] inputShape) => TransferTraining.BuildModule(Options, network, inputShape);

    private protected override TrainingHistory Train(nn.Module module, TaskSetup task, TensorData train, TensorData? validation, Device device, int seed, Generator random) =>
        TransferTraining.Train(Options, Options, NetworkFor(task), module, task, train, validation, device, seed, random);

    private protected override NeuralNetworkClassificationTransformer CreateTransformer(nn.Module module, NetworkSpec network, int[] inputShape, Device device,
        TaskSetup task, DataViewSchema schema, TrainingHistory history) => ClassificationTask.Transformer(module, network, inputShape, device, task, schema, history, Options);
}

/// <summary>
/// Binary image classification (a Boolean label) from a pretrained backbone: as <see cref="TransferLearningClassifier"/>,
/// with the binary classifier's Score, Probability and PredictedLabel (<see cref="NeuralNetworkBinaryClassificationTransformer"/>).
/// </summary>
public sealed class BinaryTransferLearningClassifier : DeepEstimator<BinaryTransferLearningOptions, NeuralNetworkBinaryClassificationTransformer>
{
    public BinaryTransferLearningClassifier(IHostEnvironment env, BinaryTransferLearningOptions options) : base(env, options) { }

    private protected override string Name => "BinaryTransferLearningClassifier";

    private protected override TaskSetup Setup(DataViewSchema schema) => BinaryClassificationTask.Setup(schema, Options);

    private protected override IEnumerable<SchemaShape.Column> OutputShapes(SchemaShape inputSchema) => BinaryClassificationTask.OutputShapes(inputSchema, Options);

    private protected override NetworkSpec NetworkFor(TaskSetup task) => TransferTraining.NetworkFor(Options, Options.Network, task);

    private protected override nn.Module BuildModule(NetworkSpec network, int[] inputShape) => TransferTraining.BuildModule(Options, network, inputShape);

    private protected override TrainingHistory Train(nn.Module module, TaskSetup task, TensorData train, TensorData? validation, Device device, int seed, Generator random) =>
        TransferTraining.Train(Options, Options, NetworkFor(task), module, task, train, validation, device, seed, random);

    private protected override NeuralNetworkBinaryClassificationTransformer CreateTransformer(nn.Module module, NetworkSpec network, int[] inputShape, Device device,
        TaskSetup task, DataViewSchema schema, TrainingHistory history) => BinaryClassificationTask.Transformer(module, network, inputShape, device, history, Options);
}

/// <summary>
/// The transfer-learning engine both classifiers share: the network (normalisation, backbone to the cut, head), the
/// backbone's weights, the frozen phase (on cached bottleneck features, or through the frozen backbone), fine-tuning.
/// </summary>
internal static class TransferTraining
{
    public const int BottleneckBatchSize = 32;

    public static void Validate(ITransferLearningOptions t, SupervisedNetworkOptions o)
    {
        if (t.Backbone is not { } backbone)
            throw new ArgumentNullException(nameof(t.Backbone), "A transfer-learning classifier needs a Backbone (TransferBackbone.FromOnnx, FromModelFile, FromModel or FromNetwork).");
        if (t.FineTuneEpochs < 0) throw new ArgumentOutOfRangeException(nameof(t.FineTuneEpochs), t.FineTuneEpochs, "FineTuneEpochs must be 0 or more.");
        if (t.FineTuneLayers is < 1) throw new ArgumentOutOfRangeException(nameof(t.FineTuneLayers), t.FineTuneLayers, "FineTuneLayers must be at least 1 (null: every backbone layer).");
        if (t.FineTuneLearningRate is { } rate && !(rate > 0 && double.IsFinite(rate)))
            throw new ArgumentOutOfRangeException(nameof(t.FineTuneLearningRate), rate, "FineTuneLearningRate must be a positive number.");
        if (t.CacheBottleneck == true && o.TrainingInputTransform is not null)
            throw new ArgumentException("CacheBottleneck cannot be used with a TrainingInputTransform: augmented images have new features every epoch. " +
                "Leave CacheBottleneck null to train the frozen phase through the backbone.", nameof(t.CacheBottleneck));
        if (o.AdversarialTraining is not null) throw new ArgumentException("The transfer-learning classifier takes no AdversarialTraining.", nameof(o.AdversarialTraining));
        if (t.FineTuneEpochs == 0 && t.FineTuneLayers is not null)
            throw new ArgumentException("FineTuneLayers chooses the layers of the fine-tuning phase, which FineTuneEpochs = 0 leaves out: set FineTuneEpochs or leave FineTuneLayers null.", nameof(t.FineTuneLayers));
        if (t.FineTuneEpochs == 0 && t.FineTuneLearningRate is not null)
            throw new ArgumentException("FineTuneLearningRate is the rate of the fine-tuning phase, which FineTuneEpochs = 0 leaves out: set FineTuneEpochs or leave FineTuneLearningRate null.", nameof(t.FineTuneLearningRate));
        if (o.InputShape is not null && !o.InputShape.SequenceEqual(backbone.InputShape))
            throw new ArgumentException($"InputShape [{string.Join(", ", o.InputShape)}] differs from the backbone's input [{string.Join(", ", backbone.InputShape)}]; leave it null.", nameof(o.InputShape));
        o.InputShape = backbone.InputShape.ToArray(); // the images the backbone reads
        if (t.Normalization is { } normalization && normalization.Mean?.Length != backbone.InputShape[0])
            throw new ArgumentException($"The normalisation has {normalization.Mean?.Length ?? 0} channel(s); the backbone {backbone.Source} reads {backbone.InputShape[0]}.", nameof(t.Normalization));
        int cut = backbone.CutIndex(t.CutAfter);
        var features = backbone.Network.InferShapes(backbone.InputShape)[cut];
        try
        {
            o.Network.WithTaskOutputs(2).InferShapes(features);
        }
        catch (InvalidOperationException ex)
        {
            throw new ArgumentException($"The head '{o.Network.Name}' does not fit the backbone's output after {backbone.LayerNames[cut]} ([{string.Join(", ", features)}]): {ex.Message}", nameof(o.Network), ex);
        }
    }

    /// <summary>Layers before the backbone's: the normalisation, when there is one.</summary>
    private static int Offset(ITransferLearningOptions t) => t.Normalization is null ? 0 : 1;

    private static int Cut(ITransferLearningOptions t) => t.Backbone!.CutIndex(t.CutAfter);

    /// <summary>(normalisation,) the backbone up to the cut, the head.</summary>
    public static NetworkSpec NetworkFor(ITransferLearningOptions t, NetworkSpec head, TaskSetup task)
    {
        var backbone = t.Backbone!.Network.Prefix(Cut(t) + 1);
        var start = t.Normalization is { } normalize ? new NetworkSpec([normalize]).Then(backbone) : backbone;
        return start.Then(head.WithTaskOutputs(task.Outputs), $"{t.Backbone.Network.Name}+{head.Name}");
    }

    public static nn.Module BuildModule(ITransferLearningOptions t, NetworkSpec network, int[] inputShape)
    {
        var module = network.Build(inputShape, null, asGraph: true);
        t.Backbone!.LoadInto(module, Cut(t), Offset(t));
        return module;
    }

    public static TrainingHistory Train(ITransferLearningOptions t, SupervisedNetworkOptions options, NetworkSpec network, nn.Module module, TaskSetup task,
        TensorData train, TensorData? validation, Device device, int seed, Generator random)
    {
        var graph = (GraphModule)module;
        int offset = Offset(t), backboneEnd = offset + Cut(t); // the last backbone layer
        var layers = NetworkRunner.Layers(module);
        bool cache = t.CacheBottleneck ?? options.TrainingInputTransform is null;

        // Phase 1: the backbone (and the normalisation) frozen, in eval mode.
        SetFrozen(graph, layers, Enumerable.Range(0, backboneEnd + 1));
        TrainingHistory history = options.Epochs == 0 ? new TrainingHistory()
            : cache ? TrainHeadOnFeatures(t, options, network, layers, backboneEnd, task, train, validation, device, seed, random)
            : TrainingEngine.Fit(module, task.Objective, train, validation, options, device, seed, random);

        // Phase 2: the top layers of the backbone join the head, at a lower rate.
        if (t.FineTuneEpochs > 0)
        {
            int first = t.FineTuneLayers is { } n ? Math.Max(offset, backboneEnd - n + 1) : offset;
            SetFrozen(graph, layers, Enumerable.Range(0, first));
            var fineTune = options.Clone();
            fineTune.Epochs = t.FineTuneEpochs;
            fineTune.Optimizer = options.Optimizer with { LearningRate = t.FineTuneLearningRate ?? options.Optimizer.LearningRate / 10 };
            var tuned = TrainingEngine.Fit(module, task.Objective, train, validation, fineTune, device, seed + 1, random);
            foreach (var epoch in tuned.Epochs) history.Add(epoch with { Epoch = history.Epochs.Count });
            history.StopReason = tuned.StopReason ?? history.StopReason;
        }
        SetFrozen(graph, layers, []);
        return history;
    }

    /// <summary>Freezes exactly <paramref name="frozen"/>: no gradients, and eval mode whatever the network's mode.</summary>
    private static void SetFrozen(GraphModule graph, IReadOnlyList<nn.Module<Tensor, Tensor>> layers, IEnumerable<int> frozen)
    {
        graph.Frozen.Clear();
        graph.Frozen.UnionWith(frozen);
        for (int i = 0; i < layers.Count; i++)
            foreach (var parameter in layers[i].parameters()) parameter.requires_grad_(!graph.Frozen.Contains(i));
    }

    /// <summary>
    /// The bottleneck cache: the frozen part runs once over every image (eval mode, no gradients), and the head trains
    /// on its outputs as a network of its own; its weights then go back into the whole network.
    /// </summary>
    private static TrainingHistory TrainHeadOnFeatures(ITransferLearningOptions t, SupervisedNetworkOptions options, NetworkSpec network,
        IReadOnlyList<nn.Module<Tensor, Tensor>> layers, int backboneEnd, TaskSetup task, TensorData train, TensorData? validation, Device device, int seed, Generator random)
    {
        var featureShape = network.InferShapes(options.InputShape!)[backboneEnd];
        long total = train.Count + (validation?.Count ?? 0);
        using var trainFeatures = Features(network, layers, backboneEnd, train, device, options, done => t.BottleneckProgress?.Report((double)done / total));
        using var validationFeatures = validation is null ? null
            : Features(network, layers, backboneEnd, validation, device, options, done => t.BottleneckProgress?.Report((double)(train.Count + done) / total));
        var head = options.Network.WithTaskOutputs(task.Outputs);
        using var headModule = Native.TorchRuntime.Seeded(seed, () => head.Build(featureShape));
        var headLayers = NetworkRunner.Layers(headModule);
        using (no_grad())
            // The head starts from the whole network's initial head weights, so cached and uncached runs begin alike.
            for (int j = 0; j < headLayers.Count; j++) Copy(layers[backboneEnd + 1 + j], headLayers[j]);
        headModule.to(device);
        var history = TrainingEngine.Fit(headModule, task.Objective, trainFeatures, validationFeatures, options, device, seed, random);
        using (no_grad())
            for (int j = 0; j < headLayers.Count; j++) Copy(headLayers[j], layers[backboneEnd + 1 + j]);
        return history;
    }

    private static void Copy(nn.Module from, nn.Module to)
    {
        var target = to.state_dict();
        foreach (var (name, value) in from.state_dict()) target[name].copy_(value);
    }

    /// <summary>The output of layer <paramref name="last"/> for every row, computed in batches in eval mode, on the CPU.</summary>
    private static TensorData Features(NetworkSpec network, IReadOnlyList<nn.Module<Tensor, Tensor>> layers, int last, TensorData data, Device device,
        DeepTrainerOptions options, Action<long> done)
    {
        var parts = new List<Tensor>();
        using var noGrad = no_grad();
        foreach (var layer in layers.Take(last + 1)) layer.eval();
        int batch = Math.Max(1, Math.Min(options.ScoringBatchSize, BottleneckBatchSize));
        for (long start = 0; start < data.Count; start += batch)
        {
            using var scope = NewDisposeScope();
            var x = data.Inputs.narrow(0, start, Math.Min(batch, data.Count - start)).to(device);
            var features = NetworkRunner.Run(layers, network.InputsOf, x, [last])[0];
            parts.Add(features.cpu().MoveToOuterDisposeScope());
            done(start + x.shape[0]);
            options.CancellationToken.ThrowIfCancellationRequested();
        }
        var inputs = cat(parts.ToArray(), 0);
        foreach (var part in parts) part.Dispose();
        return new TensorData(inputs, data.Targets?.clone());
    }
}
