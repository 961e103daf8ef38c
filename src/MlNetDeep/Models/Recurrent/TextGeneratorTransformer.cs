using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Networks;
using MlNetDeep.Persistence;
using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Recurrent;

/// <summary>How well a language model predicts held-out text: each token from the full window before it.</summary>
/// <param name="CrossEntropy">Mean negative log-likelihood per token, in nats.</param>
/// <param name="BitsPerToken">The same in bits (bits per character for a character model).</param>
/// <param name="Perplexity">e to the cross-entropy: as unsure as a uniform choice among this many tokens.</param>
/// <param name="Accuracy">Share of tokens that were the model's most likely one.</param>
/// <param name="Tokens">Tokens predicted.</param>
public sealed record LanguageModelMetrics(double CrossEntropy, double BitsPerToken, double Perplexity, double Accuracy, long Tokens);

/// <summary>
/// A trained language model. <see cref="Generate(string, int, Sampling?, int)"/> continues a prompt; <see cref="NextTokenProbabilities"/> and, in a
/// pipeline, Transform give the distribution of the token after a text (the last <see cref="WindowLength"/> tokens of
/// each row); <see cref="Evaluate(string)"/> measures cross-entropy, bits per token and perplexity on held-out text.
/// Tokens outside the vocabulary become its unknown token. Save with <c>mlContext.Model.SaveDeep</c>.
/// </summary>
/// <remarks>Thread safety: any number of threads may use one model; the network runs one call at a time.</remarks>
public sealed class TextGeneratorTransformer : Models.Common.RowMappingTransformer, ISavedNetwork, IDisposable
{
    internal const string KindName = "TextGenerator";

    private readonly object _gate = new();
    private readonly nn.Module<Tensor, Tensor> _module;
    private bool _disposed;

    internal TextGeneratorTransformer(nn.Module<Tensor, Tensor> module, NetworkSpec network, Vocabulary vocabulary, int windowLength, PredictionTargets targets,
        string textColumnName, string probabilitiesColumnName, string predictedTokenColumnName, Device device, int scoringBatchSize)
    {
        _module = module;
        _module.eval();
        Network = network;
        Vocabulary = vocabulary;
        WindowLength = windowLength;
        Targets = targets;
        TextColumnName = textColumnName;
        ProbabilitiesColumnName = probabilitiesColumnName;
        PredictedTokenColumnName = predictedTokenColumnName;
        Device = device;
        ScoringBatchSize = scoringBatchSize;
    }

    public NetworkSpec Network { get; }
    public Vocabulary Vocabulary { get; }

    /// <summary>Tokens of context the model reads.</summary>
    public int WindowLength { get; }

    public PredictionTargets Targets { get; }
    public string TextColumnName { get; }
    public string ProbabilitiesColumnName { get; }
    public string PredictedTokenColumnName { get; }
    public Device Device { get; }
    public int ScoringBatchSize { get; }

    /// <summary>The training run's per-epoch metrics (loss in nats per token); null for a model loaded from a file.</summary>
    public TrainingHistory? History { get; init; }

    /// <summary>The TorchSharp module (in eval mode).</summary>
    public nn.Module Module
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _module;
        }
    }

    /// <summary>
    /// <paramref name="length"/> tokens after <paramref name="prompt"/> (the continuation only), drawn with
    /// <paramref name="sampling"/> (temperature 1 when null) from <paramref name="seed"/>: the same seed gives the same text.
    /// For a word model the tokens are joined by spaces.
    /// </summary>
    public string Generate(string prompt, int length, Sampling? sampling = null, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        sampling ??= new Sampling();
        sampling.Validate();
        var ids = Vocabulary.Encode(prompt);
        return Vocabulary.Decode(WithModule(m => TokenSampler.Generate(m, ids, length, WindowLength, Device, sampling, seed)));
    }

    /// <inheritdoc cref="Generate(string, int, Sampling?, int)"/>
    public string Generate(string prompt, int length, double temperature, int seed = 0) => Generate(prompt, length, new Sampling(temperature), seed);

    /// <summary>The probability of each vocabulary token (<see cref="Vocabulary"/>.Tokens order) coming after <paramref name="context"/>.</summary>
    public float[] NextTokenProbabilities(string context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var ids = Vocabulary.Encode(context);
        if (ids.Length == 0) throw new ArgumentException("The context holds no tokens.", nameof(context));
        return NextTokenProbabilities(ids);
    }

    private float[] NextTokenProbabilities(int[] ids)
    {
        var logits = WithModule(m => TokenSampler.NextLogits(m, ids, WindowLength, Device));
        return TokenSampler.Softmax(logits).Select(p => (float)p).ToArray();
    }

    /// <summary>
    /// The ids of <paramref name="context"/>'s last <see cref="WindowLength"/> tokens (as floats): the input row of the
    /// ONNX model (<see cref="SaveAsOnnx(string)"/>), which reads exactly one full window.
    /// </summary>
    public float[] TokenIds(string context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var ids = Vocabulary.Encode(context);
        if (ids.Length < WindowLength)
            throw new ArgumentException($"The context has {ids.Length} tokens; the ONNX model reads exactly {WindowLength}.", nameof(context));
        return ids[^WindowLength..].Select(i => (float)i).ToArray();
    }

    /// <summary>
    /// Writes the network as an ONNX model that ML.NET's <c>ApplyOnnxModel</c> (ONNX Runtime) scores without MlNetDeep:
    /// input <paramref name="inputName"/>, a window of token ids [N, WindowLength] (<see cref="TokenIds"/>), output
    /// <paramref name="outputName"/>, the next token's probabilities [N, vocabulary] in <see cref="Vocabulary"/> order.
    /// The file is replaced in one step once the whole model is on disk.
    /// </summary>
    public void SaveAsOnnx(string path, string inputName = "TokenIds", string? outputName = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(inputName);
        var bytes = WithModule(module =>
        {
            var graph = new Persistence.Onnx.OnnxGraph();
            var (logits, shape) = Persistence.Onnx.OnnxExporter.EmitNetwork(graph, Network, module, inputName, [WindowLength]);
            if (shape.Length == 2) // every step: the last one's logits
                logits = graph.Node("Squeeze", [graph.Node("Gather", [logits, graph.Int64Initializer("last", [-1])], ("axis", 1L)), graph.Int64Initializer("axes", [1])]);
            var probabilities = graph.Node("Softmax", [logits], ("axis", -1L));
            return graph.ToModel(Network.Name, inputName, WindowLength, probabilities, outputName ?? ProbabilitiesColumnName, Vocabulary.Size);
        });
        Persistence.AtomicFile.Write(path, file => file.Write(bytes));
    }

    /// <summary>Cross-entropy, bits per token, perplexity and accuracy on <paramref name="text"/>: every token after the first full window, from the window before it.</summary>
    public LanguageModelMetrics Evaluate(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = Vocabulary.Encode(text);
        if (ids.Length < WindowLength + 1)
            throw new ArgumentException($"The text has {ids.Length:N0} tokens; evaluating needs at least a window of {WindowLength} and one token after it.", nameof(text));
        using var windows = new TokenWindows(ids, WindowLength, 1, PredictionTargets.NextToken);
        return WithModule(module =>
        {
            using var noGrad = no_grad();
            double loss = 0, correct = 0;
            using var batches = windows.Epoch(RowsPerPass, shuffle: false, generator: null, device: Device);
            for (int b = 0; b < batches.Count; b++)
            {
                using var scope = NewDisposeScope();
                var batch = batches.Get(b);
                var logits = module.call(batch.Inputs);
                if (logits.dim() == 3) logits = logits.select(1, -1);
                loss += nn.functional.cross_entropy(logits, batch.Targets!, reduction: nn.Reduction.Sum).to(ScalarType.Float64).item<double>();
                correct += logits.argmax(1).eq(batch.Targets!).sum().item<long>();
            }
            double n = windows.Count, ce = loss / n;
            return new LanguageModelMetrics(ce, ce / Math.Log(2), Math.Exp(ce), correct / n, windows.Count);
        });
    }

    /// <summary>
    /// Windows per forward pass when evaluating: <see cref="ScoringBatchSize"/>, fewer for a model that predicts at every
    /// step, whose logits ([rows, window, vocabulary]) would otherwise take gigabytes for a word vocabulary.
    /// </summary>
    internal int RowsPerPass => Targets == PredictionTargets.EveryStep
        ? (int)Math.Clamp((1L << 24) / Math.Max(1L, (long)WindowLength * Vocabulary.Size), 1, ScoringBatchSize)
        : ScoringBatchSize;

    /// <summary>The same measures on a data view's text column (its rows joined by line breaks).</summary>
    public LanguageModelMetrics Evaluate(IDataView data)
    {
        ArgumentNullException.ThrowIfNull(data);
        ColumnChecks.RequireText(ColumnChecks.Find(data.Schema, TextColumnName, "text"));
        return Evaluate(TextGeneratorEstimator.ReadText(data, TextColumnName));
    }

    private T WithModule<T>(Func<nn.Module<Tensor, Tensor>, T> work)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return work(_module);
        }
    }

    // ---- ML.NET transformer: adds the next-token distribution of each row's text ----


    private sealed class NextTokenRow
    {
        public float[] Probabilities { get; set; } = [];
        public string Predicted { get; set; } = "";
    }

    /// <summary>ML.NET's CustomMapping around <see cref="NextTokenProbabilities"/>, with this model's column names and vocabulary as slot names.</summary>
    private protected override ITransformer Mapper(DataViewSchema inputSchema)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ColumnChecks.RequireText(ColumnChecks.Find(inputSchema, TextColumnName, "text"));
        var input = SchemaDefinition.Create(typeof(Datasets.TextRow));
        input[nameof(Datasets.TextRow.Text)].ColumnName = TextColumnName;
        var output = SchemaDefinition.Create(typeof(NextTokenRow));
        var probabilities = output[nameof(NextTokenRow.Probabilities)];
        probabilities.ColumnName = ProbabilitiesColumnName;
        probabilities.ColumnType = new VectorDataViewType(NumberDataViewType.Single, Vocabulary.Size);
        var names = new VBuffer<ReadOnlyMemory<char>>(Vocabulary.Size, Vocabulary.Tokens.Select(t => t.AsMemory()).ToArray());
        probabilities.AddAnnotation("SlotNames", names, new VectorDataViewType(TextDataViewType.Instance, Vocabulary.Size));
        output[nameof(NextTokenRow.Predicted)].ColumnName = PredictedTokenColumnName;
        var ml = new MLContext(seed: 0);
        var mapping = ml.Transforms.CustomMapping<Datasets.TextRow, NextTokenRow>((row, result) =>
        {
            var ids = string.IsNullOrEmpty(row.Text) ? [] : Vocabulary.Encode(row.Text);
            if (ids.Length == 0)
            {
                result.Probabilities = new float[Vocabulary.Size];
                result.Predicted = "";
                return;
            }
            var p = NextTokenProbabilities(ids);
            result.Probabilities = p;
            result.Predicted = Vocabulary.Tokens[1 + Common.Vectors.ArgMax(p.AsSpan(1))]; // never the unknown token (id 0)
        }, contractName: null, input, output);
        return mapping.Fit(ml.Data.LoadFromEnumerable(new List<Datasets.TextRow>(), input));
    }

    TransformerRecord ISavedNetwork.ToRecord() => new TransformerRecord
    {
        Kind = KindName, FeatureColumnName = TextColumnName, InputShape = [WindowLength], Network = Network, ScoringBatchSize = ScoringBatchSize,
    }
        .With("level", Vocabulary.Level.ToString())
        .With("lowercase", Vocabulary.Lowercase)
        .With("tokens", Vocabulary.Tokens)
        .With("targets", Targets.ToString())
        .With("probabilitiesColumn", ProbabilitiesColumnName)
        .With("predictedTokenColumn", PredictedTokenColumnName);

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _module.Dispose();
        }
    }
}

/// <summary>How a saved <see cref="TextGeneratorTransformer"/> is read back: the vocabulary and network are checked against each other.</summary>
internal sealed class TextGeneratorFormat : NetworkModelFormat
{
    private const int MaxWindow = TextGeneratorOptions.MaxWindowLength;

    public override string Kind => TextGeneratorTransformer.KindName;

    public override nn.Module BuildModule(TransformerRecord record)
    {
        if (record.InputShape is not [var window] || window <= 0 || window > MaxWindow)
            throw new InvalidDataException($"its input shape [{string.Join(", ", record.InputShape ?? [])}] is not a window of 1 to {MaxWindow:N0} tokens.");
        var vocabulary = ReadVocabulary(record);
        if (record.Network.Layers.FirstOrDefault() is not Embedding embedding || embedding.Vocabulary != vocabulary.Size)
            throw new InvalidDataException($"its network does not start with an Embedding over its {vocabulary.Size} tokens.");
        var output = record.Network.OutputShape(record.InputShape);
        if (output[^1] != vocabulary.Size)
            throw new InvalidDataException($"its network outputs {output[^1]} values per step for a vocabulary of {vocabulary.Size}.");
        return record.Network.Build(record.InputShape);
    }

    public override ITransformer Create(TransformerRecord record, nn.Module module, Device device)
    {
        if (!Enum.TryParse<PredictionTargets>(record.Get<string>("targets"), ignoreCase: false, out var targets) || !Enum.IsDefined(targets) || char.IsDigit(record.Get<string>("targets")[0]))
            throw new InvalidDataException("its prediction targets are unknown.");
        string text = record.FeatureColumnName, probabilities = record.Get<string>("probabilitiesColumn"), predicted = record.Get<string>("predictedTokenColumn");
        if (string.IsNullOrWhiteSpace(text) || string.IsNullOrWhiteSpace(probabilities) || string.IsNullOrWhiteSpace(predicted) || probabilities == predicted)
            throw new InvalidDataException("its column names are empty or the same.");
        return new TextGeneratorTransformer((nn.Module<Tensor, Tensor>)module, record.Network, ReadVocabulary(record), record.InputShape[0], targets,
            text, probabilities, predicted, device, record.ScoringBatchSize);
    }

    private static Vocabulary ReadVocabulary(TransformerRecord record)
    {
        if (!Enum.TryParse<TextLevel>(record.Get<string>("level"), out var level)) throw new InvalidDataException("its text level is unknown.");
        return Vocabulary.FromSaved(level, record.Get<bool>("lowercase"), record.Get<string[]>("tokens"));
    }
}
