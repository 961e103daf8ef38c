using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MlNetDeep.Data;
using MlNetDeep.Models.Common;
using MlNetDeep.Native;
using MlNetDeep.Training;
using TorchSharp;

namespace MlNetDeep.Models.Recurrent;

/// <summary>
/// Trains a language model on a text column (<see cref="TextGeneratorOptions"/>): the rows are joined into one text,
/// cut into characters or words, the vocabulary built from the training part, and windows slid over it. The fitted
/// <see cref="TextGeneratorTransformer"/> generates text and adds next-token probabilities to text rows.
/// </summary>
public sealed class TextGeneratorEstimator : IEstimator<TextGeneratorTransformer>
{
    /// <summary>Most characters of text a fit reads (the rows joined).</summary>
    public const int MaxTextLength = 1 << 30;

    private readonly IHostEnvironment _env;

    public TextGeneratorEstimator(IHostEnvironment env, TextGeneratorOptions options)
    {
        _env = env ?? throw new ArgumentNullException(nameof(env));
        Options = options ?? throw new ArgumentNullException(nameof(options));
        options.Validate();
    }

    public TextGeneratorOptions Options { get; }

    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ColumnChecks.RequireText(ColumnChecks.Find(inputSchema, Options.FeatureColumnName, "text"));
        return SchemaShapes.Extend(inputSchema,
        [
            SchemaShapes.Column(Options.ProbabilitiesColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false),
            SchemaShapes.Column(Options.PredictedTokenColumnName, SchemaShape.Column.VectorKind.Scalar, TextDataViewType.Instance, false),
        ]);
    }

    public TextGeneratorTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        Options.Validate();
        ColumnChecks.RequireText(ColumnChecks.Find(input.Schema, Options.FeatureColumnName, "text"));
        TorchRuntime.EnsureLoaded();
        var text = ReadText(input, Options.FeatureColumnName);

        // Split by position: the end of the text validates, so no window overlaps both parts.
        int cut = Options.ValidationFraction > 0 ? (int)(text.Length * (1 - Options.ValidationFraction)) : text.Length;
        if (Options.Level == TextLevel.Word)
            while (cut < text.Length && !char.IsWhiteSpace(text[cut])) cut++; // never split a word
        string trainText = text[..cut], validationText = text[cut..];
        var (vocabulary, trainIds) = Vocabulary.BuildAndEncode(trainText, Options.Level, Options.ResolvedLowercase, Options.ResolvedMaxVocabulary);
        int window = Options.WindowLength;
        if (trainIds.Length < window + 1)
            throw new ArgumentException($"The training text has {trainIds.Length:N0} {Unit} tokens, fewer than one window of {window} and the token after it: " +
                "give more text or a shorter WindowLength.", nameof(input));
        using var train = new TokenWindows(trainIds, window, Options.Stride, Options.Targets);
        TokenWindows? validation = null;
        if (Options.ValidationFraction > 0)
        {
            var validationIds = vocabulary.Encode(validationText);
            if (validationIds.Length < window + 1)
                throw new ArgumentException($"The validation part (the last {Options.ValidationFraction:P0} of the text) has {validationIds.Length:N0} tokens, " +
                    $"fewer than one window of {window} and the token after it: raise ValidationFraction, shorten WindowLength, or set ValidationFraction = 0.", nameof(input));
            // Validation reads every position once: each token after a full window (NextToken), or non-overlapping windows (EveryStep).
            validation = new TokenWindows(validationIds, window, Options.Targets == PredictionTargets.NextToken ? 1 : window, Options.Targets);
        }
        using var validationScope = validation;

        if (Options.Samples is { } requested && vocabulary.Encode(requested.Prompt).Length == 0)
            throw new ArgumentException($"The sample prompt \"{requested.Prompt}\" holds no {Unit} tokens.", nameof(input));
        var network = Options.Network(vocabulary.Size);
        int seed = Options.Seed ?? HostEnvironments.NextSeed(_env, "TextGenerator");
        var device = HostEnvironments.Device(_env);
        int[] inputShape = [window];
        var (module, random) = TorchRuntime.SeededWithRandom(seed, () => network.Build(inputShape));
        using var randomScope = random;
        try
        {
            module.to(device);
            var settings = LoopSettings.From(Options);
            if (Options.Targets == PredictionTargets.EveryStep) // logits [rows, window, vocabulary] per validation pass
                settings = settings with { ValidationBatchSize = (int)Math.Clamp((1L << 24) / Math.Max(1L, (long)window * vocabulary.Size), 1, settings.ValidationBatchSize) };
            if (Options.Samples is { } samples)
                settings = settings with { Callbacks = [.. settings.Callbacks, new SampleCallback(samples, vocabulary, window, device)] };
            TrainingHistory history;
            using (var step = new SupervisedStep(module, new NextTokenObjective(), Options.Optimizer, maxGradientNorm: Options.MaxGradientNorm))
                history = TrainingLoop.Run(step, train, validation, settings, device, seed, random);
            return new TextGeneratorTransformer(module, network, vocabulary, window, Options.Targets, Options.FeatureColumnName,
                Options.ProbabilitiesColumnName, Options.PredictedTokenColumnName, device, Options.ScoringBatchSize) { History = history };
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    private string Unit => Options.Level == TextLevel.Character ? "character" : "word";

    /// <summary>The text column's rows, in order, joined by line breaks; missing values are skipped.</summary>
    internal static string ReadText(IDataView input, string columnName)
    {
        var column = input.Schema[columnName];
        var text = new StringBuilder();
        using (var cursor = input.GetRowCursor([column]))
        {
            var getter = cursor.GetGetter<ReadOnlyMemory<char>>(column);
            ReadOnlyMemory<char> value = default;
            bool first = true;
            while (cursor.MoveNext())
            {
                getter(ref value);
                if (value.IsEmpty) continue;
                if ((long)text.Length + value.Length + 1 > MaxTextLength)
                    throw new InvalidDataException($"The text column '{columnName}' holds more than {MaxTextLength:N0} characters: train on a part of it.");
                if (!first) text.Append('\n');
                text.Append(value.Span);
                first = false;
            }
        }
        if (text.Length == 0 || text.ToString().All(char.IsWhiteSpace))
            throw new InvalidDataException($"The text column '{columnName}' holds no text (no rows, or only empty ones).");
        return text.ToString();
    }

    /// <summary>Generates the requested samples after each epoch, with the weights of that moment.</summary>
    private sealed class SampleCallback(TextSamples request, Vocabulary vocabulary, int window, TorchSharp.torch.Device device) : ITrainingCallback
    {
        public void OnEpochEnd(EpochEnd end)
        {
            var module = (TorchSharp.torch.nn.Module<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor>)end.Step.Modules[0];
            var prompt = vocabulary.Encode(request.Prompt);
            var samples = request.Temperatures.Select(t => new TextSample(t,
                vocabulary.Decode(TokenSampler.Generate(module, prompt, request.Length, window, device, new Sampling(t), request.Seed)))).ToList();
            request.Report(end.Metrics.Epoch, samples);
        }
    }
}

/// <summary>Text generated at one temperature.</summary>
public sealed record TextSample(double Temperature, string Text);

/// <summary>
/// Samples to draw after every epoch while a <see cref="TextGeneratorEstimator"/> trains (the course shows them after
/// each epoch): <paramref name="Length"/> tokens after <paramref name="Prompt"/> at each temperature, from <paramref name="Seed"/>,
/// handed to <paramref name="Report"/> with the 0-based epoch.
/// </summary>
public sealed record TextSamples(string Prompt, int Length, IReadOnlyList<double> Temperatures, int Seed, Action<int, IReadOnlyList<TextSample>> Report)
{
    internal void Validate()
    {
        if (string.IsNullOrEmpty(Prompt)) throw new ArgumentException("The sample prompt must not be empty.", nameof(Prompt));
        if (Length <= 0) throw new ArgumentOutOfRangeException(nameof(Length), Length, "Sample at least one token.");
        if (Temperatures is null || Temperatures.Count == 0) throw new ArgumentException("Give at least one sampling temperature.", nameof(Temperatures));
        foreach (var t in Temperatures) new Sampling(t).Validate();
        ArgumentNullException.ThrowIfNull(Report);
    }
}
