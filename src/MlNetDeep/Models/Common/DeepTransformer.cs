using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Networks;
using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Common;

/// <summary>
/// The base of every fitted deep model: an ML.NET <see cref="ITransformer"/> that adds output columns computed by a
/// TorchSharp network from one feature column. Transform is lazy (scored in batches as rows are read); PredictionEngine
/// works through the row-to-row mapper. Save with <c>mlContext.Model.SaveDeep</c>, not ML.NET's Model.Save.
/// </summary>
/// <remarks>
/// Thread safety: any number of threads may score one transformer at once (Transform, cursors, PredictionEngines,
/// Encode/Decode); the forward passes run one at a time under a private lock. <c>Dispose</c> takes the same lock,
/// so it waits for the forward pass in progress and then frees the module; every use after it throws
/// <see cref="ObjectDisposedException"/>.
/// </remarks>
/// <summary>What runs a fitted network when it scores rows (Transform, PredictionEngine, <see cref="DeepTransformer.Score"/>).</summary>
public enum ScoringBackend
{
    /// <summary>
    /// ONNX Runtime for a convolutional network on the CPU whose family scores exactly what its ONNX export computes
    /// (measured faster there: <c>mlnetdeep benchmark scoring</c>), TorchSharp otherwise.
    /// </summary>
    Auto,
    /// <summary>TorchSharp, the engine the network trained on (any device).</summary>
    TorchSharp,
    /// <summary>
    /// ONNX Runtime, through the network's ONNX export: on the CPU, or on the CUDA device that
    /// <see cref="DeepTransformer.OnnxRuntimeGpuDeviceId"/> names; an error for a model whose export is not what it scores.
    /// </summary>
    OnnxRuntime,
}

public abstract class DeepTransformer : ITransformer, IDisposable, Persistence.ISavedNetwork
{
    private readonly object _gate = new();
    private readonly nn.Module _module;
    private volatile bool _disposed;
    private float[]? _inputBuffer;
    private bool _moduleFreed;
    private Persistence.Onnx.OnnxScorer? _onnx;
    private volatile ScoringBackend _backend;
    private volatile bool _onnxUnavailable;
    private readonly bool _convolutional;
    private int? _onnxGpu;
    private bool _onnxFallbackToCpu = true;
    private Microsoft.ML.Runtime.IHostEnvironment? _environment;

    protected DeepTransformer(nn.Module module, NetworkSpec network, string featureColumnName, int[] inputShape, Device device, int scoringBatchSize)
    {
        _module = module;
        _module.eval();
        Network = network;
        FeatureColumnName = featureColumnName;
        InputShape = inputShape;
        FeatureSize = inputShape.Aggregate(1, (a, b) => a * b);
        Device = device;
        ScoringBatchSize = scoringBatchSize;
        _convolutional = network.Layers.Any(l => l is Conv2D);
        ForwardBatchSize = device.type == DeviceType.CPU && network.Layers.Any(l => l is Conv2D or ConvTranspose2D or MaxPool2D or AvgPool2D or Upsample2D)
            ? Math.Min(scoringBatchSize, 64)
            : scoringBatchSize;
    }

    /// <summary>The network's layer spec.</summary>
    public NetworkSpec Network { get; }

    /// <summary>The column the network reads.</summary>
    public string FeatureColumnName { get; }

    /// <summary>The shape of one sample as the network sees it.</summary>
    public int[] InputShape { get; }

    public int FeatureSize { get; }

    /// <summary>The device the network runs on.</summary>
    public Device Device { get; }

    public int ScoringBatchSize { get; }

    /// <summary>The training run's per-epoch metrics (null for a model loaded from a file).</summary>
    public TrainingHistory? History { get; init; }

    /// <summary>The TorchSharp module (in eval mode); for inspection, e.g. of filters. Throws <see cref="ObjectDisposedException"/> after Dispose.</summary>
    public nn.Module Module
    {
        get
        {
            ThrowIfDisposed();
            return _module;
        }
    }

    /// <summary>The columns this transformer adds, in order.</summary>
    internal abstract IReadOnlyList<OutputColumn> OutputColumns { get; }

    /// <summary>Floats per row that <see cref="Forward"/> returns (the output columns read slices of it).</summary>
    public abstract int OutputWidth { get; }

    /// <summary>The network's scoring pass: inputs [n, ...InputShape] to outputs [n, OutputWidth].</summary>
    protected abstract Tensor Forward(Tensor inputs);

    /// <summary>A name for this family in saved models.</summary>
    public abstract string Kind { get; }

    /// <summary>
    /// What runs the network when it scores (default <see cref="ScoringBackend.Auto"/>); setting it takes effect at the
    /// next batch. Not saved with the model: a loaded model starts at Auto.
    /// </summary>
    public ScoringBackend Backend
    {
        get => _backend;
        set
        {
            if (!Enum.IsDefined(value)) throw new ArgumentOutOfRangeException(nameof(value), value, "Unknown scoring backend.");
            if (value == ScoringBackend.OnnxRuntime && !OnnxScoringMatchesForward)
                throw new NotSupportedException($"{GetType().Name} does not score through ONNX Runtime: its ONNX export is not what its columns read.");
            _backend = value;
        }
    }

    /// <summary>
    /// The CUDA device ONNX Runtime scores on when it is the scoring backend (null, the default: the CPU). A model made
    /// by Fit or LoadDeep starts with its MLContext's <c>GpuDeviceId</c>, as ML.NET's <c>ApplyOnnxModel</c> does. The
    /// CUDA provider needs the GPU build of ONNX Runtime (the Microsoft.ML.OnnxRuntime.Gpu package instead of
    /// Microsoft.ML.OnnxRuntime) and CUDA; where it cannot start, scoring falls back to the CPU (unless
    /// <see cref="OnnxRuntimeFallbackToCpu"/> is false), <see cref="OnnxRuntimeFallbackReason"/> says why and the
    /// MLContext's log gets a warning. Setting it takes effect at the next batch.
    /// </summary>
    public int? OnnxRuntimeGpuDeviceId
    {
        get => _onnxGpu;
        set
        {
            if (value < 0) throw new ArgumentOutOfRangeException(nameof(value), value, "A CUDA device id is 0 or more.");
            ResetOnnx(() => _onnxGpu = value);
        }
    }

    /// <summary>Whether ONNX Runtime scores on the CPU when the CUDA device asked for cannot be used (default true, as <c>MLContext.FallbackToCpu</c>); false makes it an error.</summary>
    public bool OnnxRuntimeFallbackToCpu
    {
        get => _onnxFallbackToCpu;
        set => ResetOnnx(() => _onnxFallbackToCpu = value);
    }

    /// <summary>The ONNX Runtime execution provider scoring runs on (<c>CPUExecutionProvider</c> or <c>CUDAExecutionProvider</c>); null until ONNX Runtime has scored.</summary>
    public string? OnnxRuntimeExecutionProvider => _onnx?.ExecutionProvider;

    /// <summary>Why ONNX Runtime scores on the CPU although <see cref="OnnxRuntimeGpuDeviceId"/> asks for a GPU (null otherwise).</summary>
    public string? OnnxRuntimeFallbackReason => _onnx?.FallbackReason;

    /// <summary>Takes the GPU settings and the log of the MLContext that made or loaded this model.</summary>
    internal void UseEnvironment(Microsoft.ML.Runtime.IHostEnvironment environment)
    {
        _environment = environment;
        _onnxGpu = Native.HostEnvironments.GpuDeviceId(environment);
        _onnxFallbackToCpu = Native.HostEnvironments.FallbackToCpu(environment);
    }

    /// <summary>Changes an ONNX Runtime setting under the model's lock and drops the session made with the old one.</summary>
    private void ResetOnnx(Action change)
    {
        lock (_gate)
        {
            change();
            _onnx?.Dispose();
            _onnx = null;
            _onnxUnavailable = false;
        }
    }

    /// <summary>The engine the next batch runs on, <see cref="Backend"/> resolved.</summary>
    public ScoringBackend ActiveBackend => _backend switch
    {
        ScoringBackend.Auto => !_onnxUnavailable && Device.type == DeviceType.CPU && OnnxScoringMatchesForward && _convolutional
            ? ScoringBackend.OnnxRuntime : ScoringBackend.TorchSharp,
        var chosen => chosen,
    };

    /// <summary>
    /// The ONNX Runtime session, made once under the model's lock from the network as it is. A network with a layer the
    /// exporter does not write scores with TorchSharp under Auto (from then on), and is an error under OnnxRuntime.
    /// </summary>
    private Persistence.Onnx.OnnxScorer? OnnxScorer()
    {
        if (_onnx is not null) return _onnx;
        try
        {
            var model = Persistence.Onnx.OnnxExporter.Export(Network, Module, InputShape, FeatureColumnName, OutputColumns[0].Name,
                OnnxScoringHead ?? throw new NotSupportedException($"{GetType().Name} cannot be exported to ONNX."));
            _onnx = new Persistence.Onnx.OnnxScorer(model, FeatureColumnName, OutputColumns[0].Name, FeatureSize, OutputWidth,
                get_num_threads(), _onnxGpu, _onnxFallbackToCpu);
            if (_onnx.FallbackReason is { } reason && _environment is { } env)
            {
                using var channel = env.Start("OnnxRuntime");
                channel.Warning(Microsoft.ML.Runtime.MessageSensitivity.None, $"{GetType().Name}: ONNX Runtime scores on the CPU, not CUDA device {_onnxGpu}: {reason}");
            }
            return _onnx;
        }
        catch (NotSupportedException) when (_backend == ScoringBackend.Auto)
        {
            _onnxUnavailable = true;
            return null;
        }
    }

    /// <summary>True for a family whose <see cref="Forward"/> output is exactly the network with <see cref="OnnxScoringHead"/> in ONNX.</summary>
    private protected virtual bool OnnxScoringMatchesForward => false;

    /// <summary>What the in-process ONNX Runtime session appends to the network to compute <see cref="Forward"/> (default <see cref="OnnxHead"/>).</summary>
    private protected virtual Persistence.Onnx.OnnxExporter.Head? OnnxScoringHead => OnnxHead;

    /// <summary>Scores <paramref name="rows"/> rows of <paramref name="features"/> into <paramref name="outputs"/>.</summary>
    public void Score(float[] features, int rows, float[] outputs) => WithModule(_ =>
    {
        if (ActiveBackend == ScoringBackend.OnnxRuntime && OnnxScorer() is { } onnx)
        {
            for (int start = 0; start < rows; start += ForwardBatchSize)
                onnx.Score(features, start, Math.Min(ForwardBatchSize, rows - start), outputs);
            return true;
        }
        using var noGrad = no_grad();
        int chunk = ForwardBatchSize;
        var shape = InputShape.Select(d => (long)d).ToArray();
        for (int start = 0; start < rows; start += chunk)
        {
            int count = Math.Min(chunk, rows - start);
            using var scope = NewDisposeScope();
            // Full passes reuse one input buffer (under the model's lock): a new array per pass would be a large-object-heap
            // allocation that only a full collection frees, and the resident size would grow over a long run. A short pass
            // (a PredictionEngine's single row, the end of a batch) gets an array of its own size: tensor() copies its whole
            // array, and copying the full buffer for one row cut a PredictionEngine on the MNIST MLP from 13,700 to 1,170 rows/s.
            var buffer = count < chunk ? new float[count * FeatureSize]
                : _inputBuffer is { } b && b.Length == chunk * FeatureSize ? b : _inputBuffer = new float[chunk * FeatureSize];
            features.AsSpan(start * FeatureSize, count * FeatureSize).CopyTo(buffer);
            var x = InputTensor(buffer, [count, .. shape], Device);
            var y = Forward(x).to(CPU).to(float32).contiguous();
            if (y.shape.Length != 2 || y.shape[0] != count || y.shape[1] != OutputWidth)
                throw new InvalidOperationException($"The network produced [{string.Join(", ", y.shape)}], expected [{count}, {OutputWidth}].");
            y.data<float>().CopyTo(outputs.AsSpan(start * OutputWidth, count * OutputWidth));
        }
        // Measured: without it a VAE's 100,000-row scoring run ends 6.2 % above its start, with it 1.3 to 1.8 %.
        Native.NativeMemory.AfterScoringBatch(rows);
        return true;
    });

    /// <summary>
    /// A batch of inputs as a tensor on <paramref name="device"/> whose memory libtorch allocated. <c>tensor(array)</c> copies the
    /// array into managed memory, aligned to 8 bytes wherever the garbage collector puts it, and the CPU's matrix products
    /// of small batches (a few rows) round differently by their input's alignment: the same rows scored twice could differ
    /// in their last bits. A copy that libtorch allocates is 64-byte aligned, so one batch always scores alike.
    /// </summary>
    private protected static Tensor InputTensor(float[] values, long[] shape, Device device)
    {
        var managed = tensor(values, shape);
        if (device.type != DeviceType.CPU) return managed.to(device);
        using (managed) return managed.clone();
    }

    /// <summary>
    /// Rows per forward pass when scoring: <see cref="ScoringBatchSize"/>, except for a convolutional network on the CPU,
    /// which runs in chunks of at most 64 rows. libtorch's CPU convolutions slow down on large batches: Keras' MNIST CNN
    /// runs 4,169 rows/s in forward passes of 64 rows and 1,793 in passes of 1,024 (<c>mlnetdeep benchmark scoring</c>).
    /// ONNX Runtime runs the same chunks: as fast as passes of 1,024 rows, with a resident set of 291 MB instead of 595 MB
    /// (its memory arena grows to the largest pass).
    /// </summary>
    public int ForwardBatchSize { get; }

    /// <summary>
    /// Runs <paramref name="work"/> on the module under the private lock that <see cref="Score"/> and <see cref="Dispose"/> take:
    /// one use of the module at a time, never one after (or while) it is freed.
    /// </summary>
    internal T WithModule<T>(Func<nn.Module, T> work)
    {
        ThrowIfDisposed();
        lock (_gate)
        {
            ThrowIfDisposed();
            return work(_module);
        }
    }

    /// <summary>Copies the weights of <paramref name="source"/> into <paramref name="target"/>, which has the same parameter names.</summary>
    private protected static bool CopyWeights(nn.Module source, nn.Module target)
    {
        using var noGrad = no_grad();
        var weights = source.state_dict();
        foreach (var (name, tensor) in target.state_dict()) tensor.copy_(weights[name]);
        return true;
    }

    private protected void ThrowIfDisposed()
    {
        if (_disposed)
            throw new ObjectDisposedException(GetType().Name, $"This {GetType().Name} was disposed: its network is freed and it can no longer score. " +
                "Dispose a model only after every Transform, cursor and PredictionEngine that uses it has finished.");
    }

    public bool IsRowToRowMapper => true;

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ThrowIfDisposed();
        CheckInput(inputSchema);
        OutputColumnNames.Check(OutputColumns.Select((c, i) => ($"output {i + 1}", (string?)c.Name)), [(nameof(FeatureColumnName), FeatureColumnName, "feature")]);
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        foreach (var column in OutputColumns)
        {
            var annotations = new DataViewSchema.Annotations.Builder();
            column.AddAnnotations(annotations);
            builder.AddColumn(column.Name, column.Type, annotations.ToAnnotations());
        }
        return builder.ToSchema();
    }

    /// <summary>Checks that <paramref name="inputSchema"/> has the feature column this model was trained on.</summary>
    public void CheckInput(DataViewSchema inputSchema)
    {
        var column = ColumnChecks.Find(inputSchema, FeatureColumnName, "feature");
        int size = ColumnChecks.RequireFloatFeatures(column);
        if (size != FeatureSize)
            throw new ArgumentOutOfRangeException("inputSchema", $"The feature column '{FeatureColumnName}' has {size} values per row ({column.TypeText}), but this model was trained on {FeatureSize} (shape [{string.Join(", ", InputShape)}]).");
    }

    public IDataView Transform(IDataView input) => new ScoringDataView(input, this);

    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new ScoringRowMapper(this, inputSchema);

    void ICanSaveModel.Save(ModelSaveContext ctx) =>
        throw new NotSupportedException($"ML.NET's Model.Save cannot store a {GetType().Name} (ML.NET keeps its model-saving API internal). " +
            "Save the whole pipeline with mlContext.Model.SaveDeep(model, inputSchema, path) and load it with mlContext.Model.LoadDeep(path, out schema).");

    /// <summary>
    /// Writes the scoring network as an ONNX model (input: the feature column [N, features]; output: <paramref name="outputName"/>,
    /// by default the first output column), which ML.NET's <c>ApplyOnnxModel</c> scores without MlNetDeep and
    /// <c>Model.Save</c> stores in a plain ML.NET model file.
    /// </summary>
    public void SaveAsOnnx(Stream stream, string? outputName = null) => stream.Write(WithModule(_ => ExportOnnx(outputName ?? OutputColumns[0].Name)));

    /// <summary>The ONNX model bytes: the network and <see cref="OnnxHead"/> by default; families with more around their network override.</summary>
    private protected virtual byte[] ExportOnnx(string outputName)
    {
        if (OnnxHead is not { } head) throw new NotSupportedException($"{GetType().Name} cannot be exported to ONNX.");
        return Persistence.Onnx.OnnxExporter.Export(Network, Module, InputShape, FeatureColumnName, outputName, head);
    }

    /// <inheritdoc cref="SaveAsOnnx(Stream, string?)"/>
    /// <remarks>The file is replaced in one step once the whole model is on disk; a failed export leaves no file behind.</remarks>
    public void SaveAsOnnx(string path, string? outputName = null) =>
        Persistence.AtomicFile.Write(path, file => SaveAsOnnx(file, outputName));

    /// <summary>What the ONNX graph appends to the network to match <see cref="Forward"/>; null when the family cannot be exported.</summary>
    private protected virtual Persistence.Onnx.OnnxExporter.Head? OnnxHead => null;

    /// <summary>A saved-model record holding what every deep transformer has (kind, column, shape, network); families add their settings.</summary>
    private protected Persistence.TransformerRecord NewRecord() => new()
    {
        Kind = Kind, FeatureColumnName = FeatureColumnName, InputShape = InputShape, Network = Network, ScoringBatchSize = ScoringBatchSize,
    };

    /// <summary>The family-specific part of a saved model (settings beyond the network, weights and feature column).</summary>
    internal abstract Persistence.TransformerRecord ToRecord();

    Persistence.TransformerRecord Persistence.ISavedNetwork.ToRecord() => ToRecord();

    /// <summary>The weights as a saved model stores them, read under the module's lock.</summary>
    internal void WriteWeights(Stream stream) => WithModule(module => { Persistence.WeightsFile.Write(module, stream); return true; });

    /// <summary>
    /// Hands this transformer's module to a new owner (a family built on another's training, e.g. an anomaly detector on
    /// a fitted autoencoder): this transformer is disposed without freeing it.
    /// </summary>
    internal nn.Module ReleaseModule()
    {
        _disposed = true;
        lock (_gate)
        {
            if (_moduleFreed) throw new ObjectDisposedException(GetType().Name);
            _moduleFreed = true;
            _onnx?.Dispose();
            _onnx = null;
            return _module;
        }
    }

    /// <summary>
    /// Frees the network. Uses that have not yet started fail at once with <see cref="ObjectDisposedException"/> (so a stream of
    /// new batches cannot hold Dispose off); the forward pass in progress, if any, finishes first. Safe to call twice.
    /// </summary>
    public void Dispose()
    {
        _disposed = true;
        lock (_gate)
        {
            if (_moduleFreed) return;
            _module.Dispose();
            _onnx?.Dispose();
            _moduleFreed = true;
        }
        GC.SuppressFinalize(this);
    }
}
