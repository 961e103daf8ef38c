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
public sealed class TransferLearningOptions : NeuralNetworkClassifierOptions
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
        if (Backbone is null) throw new ArgumentNullException(nameof(Backbone), "A transfer-learning classifier needs a Backbone (TransferBackbone.FromOnnx, FromModelFile, FromModel or FromNetwork).");
        if (FineTuneEpochs < 0) throw new ArgumentOutOfRangeException(nameof(FineTuneEpochs), FineTuneEpochs, "FineTuneEpochs must be 0 or more.");
        if (FineTuneLayers is < 1) throw new ArgumentOutOfRangeException(nameof(FineTuneLayers), FineTuneLayers, "FineTuneLayers must be at least 1 (null: every backbone layer).");
        if (FineTuneLearningRate is { } rate && !(rate > 0 && double.IsFinite(rate)))
            throw new ArgumentOutOfRangeException(nameof(FineTuneLearningRate), rate, "FineTuneLearningRate must be a positive number.");
        if (CacheBottleneck == true && TrainingInputTransform is not null)
            throw new ArgumentException("CacheBottleneck cannot be used with a TrainingInputTransform: augmented images have new features every epoch. Leave CacheBottleneck null to train the frozen phase through the backbone.", nameof(CacheBottleneck));
        if (AdversarialTraining is not null) throw new ArgumentException("The transfer-learning classifier takes no AdversarialTraining.", nameof(AdversarialTraining));
        if (FineTuneEpochs == 0 && FineTuneLayers is not null)
            throw new ArgumentException("FineTuneLayers chooses the layers of the fine-tuning phase, which FineTuneEpochs = 0 leaves out: set FineTuneEpochs or leave FineTuneLayers null.", nameof(FineTuneLayers));
        if (FineTuneEpochs == 0 && FineTuneLearningRate is not null)
            throw new ArgumentException("FineTuneLearningRate is the rate of the fine-tuning phase, which FineTuneEpochs = 0 leaves out: set FineTuneEpochs or leave FineTuneLearningRate null.", nameof(FineTuneLearningRate));
        if (InputShape is not null && !InputShape.SequenceEqual(Backbone.InputShape))
            throw new ArgumentException($"InputShape [{string.Join(", ", InputShape)}] differs from the backbone's input [{string.Join(", ", Backbone.InputShape)}]; leave it null.", nameof(InputShape));
        InputShape = Backbone.InputShape.ToArray(); // the images the backbone reads
        if (Normalization is not null && Normalization.Mean?.Length != Backbone.InputShape[0])
            throw new ArgumentException($"The normalisation has {Normalization.Mean?.Length ?? 0} channel(s); the backbone {Backbone.Source} reads {Backbone.InputShape[0]}.", nameof(Normalization));
        int cut = Backbone.CutIndex(CutAfter);
        var features = Backbone.Network.InferShapes(Backbone.InputShape)[cut];
        try
        {
            Network.WithTaskOutputs(2).InferShapes(features);
        }
        catch (InvalidOperationException ex)
        {
            throw new ArgumentException($"The head '{Network.Name}' does not fit the backbone's output after {Backbone.LayerNames[cut]} ([{string.Join(", ", features)}]): {ex.Message}", nameof(Network), ex);
        }
    }
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

    protected override string Name => "TransferLearningClassifier";

    /// <summary>
    /// Images per batch of the bottleneck pass: small batches keep each layer's activations in the CPU's caches
    /// (MobileNetV2 at 224 x 224 ran 38 images/s in batches of 32 against 11 in batches of 256).
    /// </summary>
    public const int BottleneckBatchSize = 32;

    private TransferBackbone Backbone => Options.Backbone!;

    /// <summary>Layers before the backbone's: the normalisation, when there is one.</summary>
    private int Offset => Options.Normalization is null ? 0 : 1;

    private int Cut => Backbone.CutIndex(Options.CutAfter);

    protected override TaskSetup Setup(DataViewSchema schema) => ClassificationTask.Setup(schema, Options);

    protected override IEnumerable<SchemaShape.Column> OutputShapes(SchemaShape inputSchema) => ClassificationTask.OutputShapes(inputSchema, Options);

    /// <summary>(normalisation,) the backbone up to the cut, the head.</summary>
    protected override NetworkSpec NetworkFor(TaskSetup task)
    {
        var backbone = Backbone.Network.Prefix(Cut + 1);
        var start = Options.Normalization is { } normalize ? new NetworkSpec([normalize]).Then(backbone) : backbone;
        return start.Then(Options.Network.WithTaskOutputs(task.Outputs), $"{Backbone.Network.Name}+{Options.Network.Name}");
    }

    protected override nn.Module BuildModule(NetworkSpec network, int[] inputShape)
    {
        var module = network.Build(inputShape, null, asGraph: true);
        Backbone.LoadInto(module, Cut, Offset);
        return module;
    }

    private protected override TrainingHistory Train(nn.Module module, TaskSetup task, TensorData train, TensorData? validation, Device device, int seed, Generator random)
    {
        var graph = (GraphModule)module;
        var network = NetworkFor(task);
        int backboneEnd = Offset + Cut; // the last backbone layer
        var layers = NetworkRunner.Layers(module);
        bool cache = Options.CacheBottleneck ?? Options.TrainingInputTransform is null;

        // Phase 1: the backbone (and the normalisation) frozen, in eval mode.
        SetFrozen(graph, layers, Enumerable.Range(0, backboneEnd + 1));
        TrainingHistory history = Options.Epochs == 0 ? new TrainingHistory()
            : cache ? TrainHeadOnFeatures(network, layers, backboneEnd, task, train, validation, device, seed, random)
            : TrainingEngine.Fit(module, task.Objective, train, validation, Options, device, seed, random);

        // Phase 2: the top layers of the backbone join the head, at a lower rate.
        if (Options.FineTuneEpochs > 0)
        {
            int first = Options.FineTuneLayers is { } n ? Math.Max(Offset, backboneEnd - n + 1) : Offset;
            SetFrozen(graph, layers, Enumerable.Range(0, first));
            var fineTune = (TransferLearningOptions)Options.Clone();
            fineTune.Epochs = Options.FineTuneEpochs;
            fineTune.Optimizer = Options.Optimizer with { LearningRate = Options.FineTuneLearningRate ?? Options.Optimizer.LearningRate / 10 };
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
    private TrainingHistory TrainHeadOnFeatures(NetworkSpec network, IReadOnlyList<nn.Module<Tensor, Tensor>> layers, int backboneEnd, TaskSetup task,
        TensorData train, TensorData? validation, Device device, int seed, Generator random)
    {
        var featureShape = network.InferShapes(Options.InputShape!)[backboneEnd];
        long total = train.Count + (validation?.Count ?? 0);
        using var trainFeatures = Features(network, layers, backboneEnd, train, device, done => Options.BottleneckProgress?.Report((double)done / total));
        using var validationFeatures = validation is null ? null
            : Features(network, layers, backboneEnd, validation, device, done => Options.BottleneckProgress?.Report((double)(train.Count + done) / total));
        var head = Options.Network.WithTaskOutputs(task.Outputs);
        using var headModule = Native.TorchRuntime.Seeded(seed, () => head.Build(featureShape));
        using (no_grad())
        {
            // The head starts from the whole network's initial head weights, so cached and uncached runs begin alike.
            var headLayers = NetworkRunner.Layers(headModule);
            for (int j = 0; j < headLayers.Count; j++) Copy(layers[backboneEnd + 1 + j], headLayers[j]);
        }
        headModule.to(device);
        var history = TrainingEngine.Fit(headModule, task.Objective, trainFeatures, validationFeatures, Options, device, seed, random);
        using (no_grad())
        {
            var headLayers = NetworkRunner.Layers(headModule);
            for (int j = 0; j < headLayers.Count; j++) Copy(headLayers[j], layers[backboneEnd + 1 + j]);
        }
        return history;
    }

    private static void Copy(nn.Module from, nn.Module to)
    {
        var target = to.state_dict();
        foreach (var (name, value) in from.state_dict()) target[name].copy_(value);
    }

    /// <summary>The output of layer <paramref name="last"/> for every row, computed in batches in eval mode, on the CPU.</summary>
    private TensorData Features(NetworkSpec network, IReadOnlyList<nn.Module<Tensor, Tensor>> layers, int last, TensorData data, Device device, Action<long> done)
    {
        var parts = new List<Tensor>();
        using var noGrad = no_grad();
        foreach (var layer in layers.Take(last + 1)) layer.eval();
        int batch = Math.Max(1, Math.Min(Options.ScoringBatchSize, BottleneckBatchSize));
        for (long start = 0; start < data.Count; start += batch)
        {
            using var scope = NewDisposeScope();
            var x = data.Inputs.narrow(0, start, Math.Min(batch, data.Count - start)).to(device);
            var features = NetworkRunner.Run(layers, network.InputsOf, x, [last])[0];
            parts.Add(features.cpu().MoveToOuterDisposeScope());
            done(start + x.shape[0]);
            Options.CancellationToken.ThrowIfCancellationRequested();
        }
        var inputs = cat(parts.ToArray(), 0);
        foreach (var part in parts) part.Dispose();
        return new TensorData(inputs, data.Targets?.clone());
    }

    protected override NeuralNetworkClassificationTransformer CreateTransformer(nn.Module module, NetworkSpec network, int[] inputShape, Device device,
        TaskSetup task, DataViewSchema schema, TrainingHistory history) => ClassificationTask.Transformer(module, network, inputShape, device, task, schema, history, Options);
}
