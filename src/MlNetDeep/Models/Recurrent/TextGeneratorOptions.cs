using MlNetDeep.Networks;
using MlNetDeep.Training;
using DropoutLayer = MlNetDeep.Networks.Dropout;

namespace MlNetDeep.Models.Recurrent;

/// <summary>The recurrent cell of a language model's layers.</summary>
public enum RecurrentKind { Lstm, Gru, SimpleRnn }

/// <summary>
/// Options of <c>mlContext.Transforms.Text.TextGenerator</c>: a language model over characters or words trained on a
/// text column. The defaults are the course's character model: windows of 40 characters every 3, an embedding, two
/// LSTM layers of 128 units (the lower returning its whole sequence) and a softmax over the vocabulary.
/// <see cref="DeepTrainerOptions.FeatureColumnName"/> is the text column (default <c>Text</c>); its rows are joined with
/// a line break, in order, into one text. <see cref="DeepTrainerOptions.ValidationFraction"/> holds out the END of that text (a split by
/// position, so that no overlapping window falls on both sides).
/// </summary>
public sealed class TextGeneratorOptions : DeepTrainerOptions
{
    public TextGeneratorOptions()
    {
        FeatureColumnName = "Text";
        Epochs = 10;
        BatchSize = 128;
        Optimizer = new Adam(2e-3);
        ValidationFraction = 0.1;
        ScoringBatchSize = 512;
    }

    /// <summary>Characters or words.</summary>
    public TextLevel Level { get; set; } = TextLevel.Character;

    /// <summary>Lowercase the text before cutting it into tokens; null: no for characters, yes for words.</summary>
    public bool? Lowercase { get; set; }

    /// <summary>Most tokens in the vocabulary, the unknown token included; null: 256 for characters, 10,000 for words.</summary>
    public int? MaxVocabulary { get; set; }

    /// <summary>Tokens the model reads to predict the next one.</summary>
    public int WindowLength { get; set; } = 40;

    /// <summary>Tokens between the starts of consecutive training windows (the course takes every 3rd).</summary>
    public int Stride { get; set; } = 3;

    /// <summary>The token after each window (the course's model), or the next token at every step.</summary>
    public PredictionTargets Targets { get; set; } = PredictionTargets.NextToken;

    /// <summary>The recurrent cell.</summary>
    public RecurrentKind Cell { get; set; } = RecurrentKind.Lstm;

    /// <summary>Stacked recurrent layers.</summary>
    public int Layers { get; set; } = 2;

    /// <summary>Units of each recurrent layer.</summary>
    public int Units { get; set; } = 128;

    /// <summary>Size of each token's learned embedding; null: 32 for characters, 128 for words.</summary>
    public int? EmbeddingSize { get; set; }

    /// <summary>Dropout between the recurrent layers (and before the softmax layer); 0 for none.</summary>
    public double Dropout { get; set; }

    /// <summary>Rescales the gradients when their joint norm exceeds this (the usual guard for recurrent networks); null for none.</summary>
    public double? MaxGradientNorm { get; set; } = 5.0;

    /// <summary>Text to generate after every epoch (the course's samples at temperatures 0.2, 0.5, 1.0); null for none.</summary>
    public TextSamples? Samples { get; set; }

    /// <summary>The column of next-token probabilities (a vector over the vocabulary, slot names the tokens).</summary>
    public string ProbabilitiesColumnName { get; set; } = "NextTokenProbabilities";

    /// <summary>The column of the most likely next token (text).</summary>
    public string PredictedTokenColumnName { get; set; } = "PredictedNextToken";

    /// <summary>The longest window a model may read (and a saved model may ask for).</summary>
    public const int MaxWindowLength = 100_000;

    internal bool ResolvedLowercase => Lowercase ?? Level == TextLevel.Word;
    internal int ResolvedMaxVocabulary => MaxVocabulary ?? (Level == TextLevel.Character ? 256 : 10_000);
    internal int ResolvedEmbeddingSize => EmbeddingSize ?? (Level == TextLevel.Character ? 32 : 128);

    internal override void Validate()
    {
        base.Validate();
        if (MaxVocabulary is { } max && max < 2)
            throw new ArgumentOutOfRangeException(nameof(MaxVocabulary), max, "The vocabulary limit must be at least 2 (the unknown token and one more).");
        if (MaxVocabulary > Vocabulary.MaxSize)
            throw new ArgumentOutOfRangeException(nameof(MaxVocabulary), MaxVocabulary, $"The vocabulary limit may be at most {Vocabulary.MaxSize:N0}.");
        if (WindowLength is <= 0 or > MaxWindowLength)
            throw new ArgumentOutOfRangeException(nameof(WindowLength), WindowLength, $"A window needs 1 to {MaxWindowLength:N0} tokens.");
        if (Stride <= 0) throw new ArgumentOutOfRangeException(nameof(Stride), Stride, "The stride must be at least 1.");
        if (Layers <= 0) throw new ArgumentOutOfRangeException(nameof(Layers), Layers, "A language model needs at least one recurrent layer.");
        if (Units <= 0) throw new ArgumentOutOfRangeException(nameof(Units), Units, "Units must be at least 1.");
        if (EmbeddingSize is { } e && e <= 0) throw new ArgumentOutOfRangeException(nameof(EmbeddingSize), e, "The embedding size must be at least 1.");
        if (Dropout is < 0 or >= 1 || double.IsNaN(Dropout)) throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "Dropout must be in [0, 1).");
        if (MaxGradientNorm is { } n && !(n > 0 && double.IsFinite(n))) throw new ArgumentOutOfRangeException(nameof(MaxGradientNorm), n, "The gradient norm limit must be a positive number.");
        Samples?.Validate();
        if (ValidationData is not null) throw new ArgumentException("A text generator holds out the end of its text: set ValidationFraction, not ValidationData.", nameof(ValidationData));
        if (InputShape is not null) throw new ArgumentException("A text generator's input shape is its window ([WindowLength]); leave InputShape unset.", nameof(InputShape));
        if (TrainingInputTransform is not null) throw new ArgumentException("A text generator takes no TrainingInputTransform.", nameof(TrainingInputTransform));
        if (AdversarialTraining is not null) throw new ArgumentException("A text generator takes no AdversarialTraining: its inputs are token ids, not pixels.", nameof(AdversarialTraining));
        if (string.IsNullOrWhiteSpace(ProbabilitiesColumnName) || string.IsNullOrWhiteSpace(PredictedTokenColumnName) || ProbabilitiesColumnName == PredictedTokenColumnName)
            throw new ArgumentException("ProbabilitiesColumnName and PredictedTokenColumnName must be two different column names.");
    }

    /// <summary>The network for a vocabulary of <paramref name="vocabulary"/> tokens: input [window] ids, output [vocabulary] (or [window, vocabulary]) logits.</summary>
    internal NetworkSpec Network(int vocabulary)
    {
        var layers = new List<Layer> { new Embedding(vocabulary, ResolvedEmbeddingSize) };
        for (int i = 0; i < Layers; i++)
        {
            bool sequences = Targets == PredictionTargets.EveryStep || i < Layers - 1;
            layers.Add(Cell switch
            {
                RecurrentKind.Gru => new GRU(Units, sequences),
                RecurrentKind.SimpleRnn => new SimpleRNN(Units, sequences),
                _ => new LSTM(Units, sequences),
            });
            if (Dropout > 0) layers.Add(new DropoutLayer(Dropout));
        }
        layers.Add(new Dense(vocabulary));
        return new NetworkSpec(layers) { Name = $"{Level.ToString().ToLowerInvariant()}-{Cell.ToString().ToLowerInvariant()}-{Layers}x{Units}" };
    }
}
