using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MlNetDeep.Data;
using MlNetDeep.Models.Common;
using MlNetDeep.Models.Recurrent;
using MlNetDeep.Networks;
using MlNetDeep.Training;

namespace MlNetDeep.Models.Classification;

/// <summary>
/// Options of the sequence classifier: a key label and a column of token keys of any length (ML.NET's
/// <c>TokenizeIntoWords</c> then <c>MapValueToKey</c>), read by an embedding and an LSTM (or GRU, plain RNN, or a
/// 1-D convolution) with the padding masked, then a dense layer over the classes.
/// </summary>
public sealed class SequenceClassifierOptions : DeepTrainerOptions
{
    public SequenceClassifierOptions()
    {
        FeatureColumnName = "Tokens";
        Epochs = 5;
        BatchSize = 64;
        Optimizer = new Adam(2e-3);
    }

    public string LabelColumnName { get; set; } = "Label";
    public string ScoreColumnName { get; set; } = "Score";
    public string PredictedLabelColumnName { get; set; } = "PredictedLabel";

    /// <summary>The column of padded token ids the classifier adds before its network (kept in the output).</summary>
    public string TokenIdsColumnName { get; set; } = "TokenIds";

    /// <summary>Tokens read per row: longer rows are cut, shorter ones padded (and the padding masked).</summary>
    public int MaxLength { get; set; } = 100;

    public SequenceEncoderKind Encoder { get; set; } = SequenceEncoderKind.Lstm;
    public int EmbeddingSize { get; set; } = 64;
    public int Units { get; set; } = 64;

    /// <summary>Stacked recurrent layers (recurrent encoders).</summary>
    public int Layers { get; set; } = 1;

    /// <summary>Tokens per convolution window (the convolutional encoder).</summary>
    public int KernelSize { get; set; } = 5;

    /// <summary>Dropout before the output layer.</summary>
    public double Dropout { get; set; } = 0.2;

    internal override void Validate()
    {
        base.Validate();
        if (MaxLength is < 1 or > TokenKeyPaddingTransformer.MaxMaxLength)
            throw new ArgumentOutOfRangeException(nameof(MaxLength), MaxLength, $"MaxLength must be 1 to {TokenKeyPaddingTransformer.MaxMaxLength:N0} tokens.");
        if (EmbeddingSize <= 0 || Units <= 0 || Layers <= 0 || KernelSize <= 0)
            throw new ArgumentOutOfRangeException(nameof(Units), "EmbeddingSize, Units, Layers and KernelSize must be positive.");
        if (Dropout is < 0 or >= 1 || double.IsNaN(Dropout)) throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "Dropout must be in [0, 1).");
        if (ValidationData is not null) throw new ArgumentException("A sequence classifier validates on a held-out share of its rows: set ValidationFraction, not ValidationData.", nameof(ValidationData));
        if (TrainingInputTransform is not null) throw new ArgumentException("A sequence classifier takes no TrainingInputTransform (it would change token ids).", nameof(TrainingInputTransform));
        if (AdversarialTraining is not null) throw new ArgumentException("A sequence classifier takes no AdversarialTraining: its inputs are token ids, not pixels.", nameof(AdversarialTraining));
        if (Encoder == SequenceEncoderKind.Convolution && MaxLength < KernelSize)
            throw new ArgumentOutOfRangeException(nameof(MaxLength), MaxLength, $"The convolutional encoder needs MaxLength of at least KernelSize ({KernelSize}).");
        if (InputShape is not null) throw new ArgumentException("A sequence classifier's input shape is [MaxLength]; leave InputShape unset.", nameof(InputShape));
        OutputColumnNames.Check(
            [(nameof(ScoreColumnName), ScoreColumnName), (nameof(PredictedLabelColumnName), PredictedLabelColumnName), (nameof(TokenIdsColumnName), TokenIdsColumnName)],
            [(nameof(FeatureColumnName), FeatureColumnName, "token"), (nameof(LabelColumnName), LabelColumnName, "label")]);
    }

    internal NetworkSpec Network(int vocabulary) => new(
    [
        new SequenceEncoder(vocabulary, EmbeddingSize, Units, Encoder, Layers, KernelSize),
        .. Dropout > 0 ? new Layer[] { new Networks.Dropout(Dropout) } : [],
        new Dense(Dense.TaskOutputs),
    ]) { Name = $"sequence-{Encoder.ToString().ToLowerInvariant()}-{Units}" };
}

/// <summary>
/// Classifies rows by their token sequence (which book is this passage from?): pads the token keys to
/// <see cref="SequenceClassifierOptions.MaxLength"/> ids and trains the multiclass neural network on them. The fitted
/// model is a chain of the padding and the classifier (Score, PredictedLabel), for Evaluate, CrossValidate,
/// PredictionEngine and SaveDeep.
/// </summary>
public sealed class SequenceClassifier : IEstimator<TransformerChain<ITransformer>>
{
    private readonly IHostEnvironment _env;

    public SequenceClassifier(IHostEnvironment env, SequenceClassifierOptions options)
    {
        _env = env ?? throw new ArgumentNullException(nameof(env));
        Options = options ?? throw new ArgumentNullException(nameof(options));
        options.Validate();
    }

    public SequenceClassifierOptions Options { get; }

    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        var tokens = ColumnChecks.Find(inputSchema, Options.FeatureColumnName, "token");
        if (!tokens.IsKey || tokens.Kind == SchemaShape.Column.VectorKind.Scalar)
            throw new ArgumentOutOfRangeException(Options.FeatureColumnName, $"The token column '{Options.FeatureColumnName}' must be a vector of keys (TokenizeIntoWords then MapValueToKey), but is {tokens.TypeText}.");
        var padded = SchemaShapes.Extend(inputSchema, [SchemaShapes.Column(Options.TokenIdsColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false)]);
        return Classifier(2).GetOutputSchema(padded);
    }

    public TransformerChain<ITransformer> Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        Options.Validate();
        int keys = TokenKeyPaddingTransformer.KeyCountOf(input.Schema, Options.FeatureColumnName);
        var padding = new TokenKeyPaddingTransformer(Options.TokenIdsColumnName, Options.FeatureColumnName, Options.MaxLength, keys);
        var classifier = Classifier(padding.Vocabulary);
        return new TransformerChain<ITransformer>(padding, classifier.Fit(padding.Transform(input)));
    }

    private NeuralNetworkClassifier Classifier(int vocabulary)
    {
        var options = new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = Options.TokenIdsColumnName, LabelColumnName = Options.LabelColumnName, ScoreColumnName = Options.ScoreColumnName,
            PredictedLabelColumnName = Options.PredictedLabelColumnName, Network = Options.Network(vocabulary), InputShape = [Options.MaxLength],
        };
        Options.CopyTrainingTo(options);
        return new NeuralNetworkClassifier(_env, options);
    }
}
