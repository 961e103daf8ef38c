using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MlNetDeep.Data;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Models.Common;
using MlNetDeep.Networks;
using MlNetDeep.Persistence;
using MlNetDeep.Persistence.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Anomaly;

/// <summary>
/// Options of <see cref="AutoencoderAnomalyDetector"/>: the autoencoder underneath (any of the autoencoder families'
/// options) and how the threshold is chosen.
/// </summary>
public sealed class AutoencoderAnomalyOptions
{
    /// <summary>
    /// The autoencoder that learns the normal rows: <see cref="AutoencoderOptions"/> (dense by default, convolutional or
    /// denoising with its networks) or <see cref="VariationalAutoencoderOptions"/>. Its FeatureColumnName is the column
    /// scored; its Latent and Reconstruction column names are not used (the detector adds its own columns).
    /// </summary>
    public AutoencoderOptionsBase Autoencoder { get; set; } = new AutoencoderOptions { ReconstructionLoss = ReconstructionLoss.MeanSquaredError };

    /// <summary>
    /// The share of training rows whose score is at or below the threshold (default 0.99: the 99th percentile of the
    /// training scores, so about 1 % of rows like the training rows are flagged). Used when neither
    /// <see cref="Threshold"/> nor <see cref="Contamination"/> is set.
    /// </summary>
    public double ThresholdQuantile { get; set; } = 0.99;

    /// <summary>An explicit threshold on the score (0 or more: scores are reconstruction errors); overrides the quantile and the contamination.</summary>
    public float? Threshold { get; set; }

    /// <summary>
    /// The share of anomalies expected in the training data, in (0, 0.5), for training on mostly-normal data: the
    /// threshold is the (1 - contamination) quantile of the training scores. The autoencoder still learns from every row.
    /// </summary>
    public double? Contamination { get; set; }

    /// <summary>
    /// An optional label, Single (1 = anomalous, 0 = normal: the column <c>AnomalyDetection.Evaluate</c> reads) or
    /// Boolean (true = anomalous): when set, the autoencoder and the threshold see only the normal rows. Otherwise no
    /// label is read: the trainer learns from every row it is given.
    /// </summary>
    public string? LabelColumnName { get; set; }

    /// <summary>The score column (default <c>Score</c>, as ML.NET's anomaly detectors): higher is more anomalous.</summary>
    public string ScoreColumnName { get; set; } = "Score";

    /// <summary>The Boolean column (default <c>PredictedLabel</c>): Score above the threshold.</summary>
    public string PredictedLabelColumnName { get; set; } = "PredictedLabel";

    /// <summary>The per-feature reconstruction errors (default <c>FeatureErrors</c>), a vector of the feature column's size; null leaves it out.</summary>
    public string? FeatureErrorsColumnName { get; set; } = "FeatureErrors";

    internal void Validate()
    {
        if (Autoencoder is null) throw new ArgumentNullException(nameof(Autoencoder), "Give the autoencoder's options (AutoencoderOptions or VariationalAutoencoderOptions).");
        if (Autoencoder is not (AutoencoderOptions or VariationalAutoencoderOptions))
            throw new ArgumentException($"Autoencoder must be AutoencoderOptions or VariationalAutoencoderOptions, not {Autoencoder.GetType().Name}.", nameof(Autoencoder));
        if (!(ThresholdQuantile > 0 && ThresholdQuantile < 1))
            throw new ArgumentOutOfRangeException(nameof(ThresholdQuantile), ThresholdQuantile, "The threshold quantile must be in (0, 1), e.g. 0.99 for the 99th percentile of the training scores.");
        if (Contamination is { } c && !(c > 0 && c < 0.5))
            throw new ArgumentOutOfRangeException(nameof(Contamination), c, "The contamination (the share of anomalies in the training data) must be in (0, 0.5).");
        if (Threshold is { } t) AutoencoderAnomalyTransformer.CheckThreshold(t, nameof(Threshold));
        if (Threshold is not null && Contamination is not null)
            throw new ArgumentException("Set Threshold or Contamination, not both: each chooses the threshold.", nameof(Contamination));
        foreach (var (option, name) in new[] { (nameof(ScoreColumnName), ScoreColumnName), (nameof(PredictedLabelColumnName), PredictedLabelColumnName) })
            if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException($"{option} must name a column.", option);
        OutputColumnNames.Check(
            [(nameof(ScoreColumnName), ScoreColumnName), (nameof(PredictedLabelColumnName), PredictedLabelColumnName), (nameof(FeatureErrorsColumnName), FeatureErrorsColumnName)],
            [("FeatureColumnName", Autoencoder.FeatureColumnName, "feature"), (nameof(LabelColumnName), LabelColumnName, "label")]);
    }
}

/// <summary>
/// Anomaly detection with an autoencoder, on ML.NET's <c>AnomalyDetection.Trainers</c>: the autoencoder (dense,
/// convolutional or variational, trained by its own family) learns the normal rows; a row's <c>Score</c> is how badly
/// it reconstructs (the mean reconstruction loss per value, or the negative ELBO for a VAE); <c>PredictedLabel</c> is
/// Score above a threshold chosen from the training scores. <c>AnomalyDetection.Evaluate</c> reads the columns as
/// those of ML.NET's own detectors.
/// </summary>
public sealed class AutoencoderAnomalyDetector : IEstimator<AutoencoderAnomalyTransformer>
{
    private readonly IHostEnvironment _env;

    /// <summary>Creates the detector; prefer <c>mlContext.AnomalyDetection.Trainers.Autoencoder(options)</c>.</summary>
    public AutoencoderAnomalyDetector(IHostEnvironment env, AutoencoderAnomalyOptions options)
    {
        _env = env ?? throw new ArgumentNullException(nameof(env));
        Options = options ?? throw new ArgumentNullException(nameof(options));
        Options.Validate();
    }

    /// <summary>The options (kept, not copied).</summary>
    public AutoencoderAnomalyOptions Options { get; }

    public AutoencoderAnomalyTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        Options.Validate();
        var training = NormalRows(input);
        AutoencoderTransformerBase autoencoder = Options.Autoencoder switch
        {
            VariationalAutoencoderOptions vae => new VariationalAutoencoderEstimator(_env, vae).Fit(training),
            AutoencoderOptions dense => new AutoencoderEstimator(_env, dense).Fit(training),
            _ => throw new InvalidOperationException("Validate() admits no other options."),
        };
        var history = autoencoder.History;
        var module = autoencoder.ReleaseModule();
        AutoencoderAnomalyTransformer? detector = null;
        try
        {
            detector = new AutoencoderAnomalyTransformer(module, autoencoder.Network, autoencoder.Encoder, autoencoder.Decoder, autoencoder.LatentShape,
                autoencoder.FeatureColumnName, autoencoder.InputShape, autoencoder.Device, autoencoder.ScoringBatchSize, Options.Autoencoder.ReconstructionLoss,
                float.NaN, Options.ScoreColumnName, Options.PredictedLabelColumnName, Options.FeatureErrorsColumnName) { History = history };
            detector.UseEnvironment(_env);
            var scores = detector.Transform(training).GetColumn<float>(Options.ScoreColumnName).ToArray();
            if (scores.Length == 0) throw new InvalidOperationException("No training rows to choose the threshold from.");
            detector.TrainingScores = Summary(scores);
            detector.SetThreshold(Options.Threshold ?? Quantile(scores, Options.Contamination is { } c ? 1 - c : Options.ThresholdQuantile));
            return detector;
        }
        catch
        {
            if (detector is null) module.Dispose();
            else detector.Dispose();
            throw;
        }
    }

    /// <summary>The normal rows (label false or 0) when a label column is given (Boolean or Single, as ML.NET's anomaly evaluator reads); all rows otherwise.</summary>
    private IDataView NormalRows(IDataView input)
    {
        if (Options.LabelColumnName is not { } label) return input;
        var column = ColumnChecks.Find(input.Schema, label, "label");
        bool boolean = column.ItemType is BooleanDataViewType;
        if (column.Kind != SchemaShape.Column.VectorKind.Scalar || column.IsKey || !(boolean || column.ItemType == NumberDataViewType.Single))
            throw new ArgumentException($"The label column '{label}' is {column.TypeText}; the anomaly detector reads a Boolean or Single label (true or 1 = anomalous, " +
                "as AnomalyDetection.Evaluate does) to train on the normal rows alone.", nameof(Options.LabelColumnName));
        var ml = new MLContext();
        string numeric = "__anomaly_label_" + Guid.NewGuid().ToString("N");
        var converted = ml.Transforms.Conversion.ConvertType(numeric, label, DataKind.Single).Fit(input).Transform(input);
        var normal = ml.Data.FilterRowsByColumn(converted, numeric, lowerBound: -0.5, upperBound: 0.5);
        return ml.Transforms.DropColumns(numeric).Fit(normal).Transform(normal);
    }

    /// <summary>The <paramref name="q"/> quantile of <paramref name="values"/> (linear between order statistics).</summary>
    internal static float Quantile(float[] values, double q)
    {
        var sorted = values.Where(float.IsFinite).Order().ToArray();
        if (sorted.Length == 0) throw new InvalidOperationException("Every training score is NaN or infinite: the autoencoder did not train (check the features for NaN).");
        double position = q * (sorted.Length - 1);
        int below = (int)Math.Floor(position);
        int above = Math.Min(below + 1, sorted.Length - 1);
        return (float)(sorted[below] + (position - below) * (sorted[above] - sorted[below]));
    }

    private static ScoreSummary Summary(float[] scores)
    {
        var finite = scores.Where(float.IsFinite).ToArray();
        return finite.Length == 0 ? new ScoreSummary(float.NaN, float.NaN, float.NaN, scores.Length)
            : new ScoreSummary(finite.Min(), Quantile(finite, 0.5), finite.Max(), scores.Length);
    }

    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        Options.Validate();
        var columns = inputSchema.ToDictionary(c => c.Name);
        if (!columns.TryGetValue(Options.Autoencoder.FeatureColumnName, out var feature))
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"The feature column '{Options.Autoencoder.FeatureColumnName}' is not in the data.");
        if (feature.ItemType != NumberDataViewType.Single || feature.Kind == SchemaShape.Column.VectorKind.Scalar)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"The feature column '{feature.Name}' must be a vector of Single.");
        columns[Options.ScoreColumnName] = SchemaShapes.Column(Options.ScoreColumnName, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single, false);
        columns[Options.PredictedLabelColumnName] = SchemaShapes.Column(Options.PredictedLabelColumnName, SchemaShape.Column.VectorKind.Scalar, BooleanDataViewType.Instance, false);
        if (Options.FeatureErrorsColumnName is { } errors)
            columns[errors] = SchemaShapes.Column(errors, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false);
        return new SchemaShape(columns.Values);
    }
}

/// <summary>The training scores a threshold was chosen from: smallest, median, largest and how many.</summary>
public sealed record ScoreSummary(float Min, float Median, float Max, int Rows);

/// <summary>
/// A fitted autoencoder anomaly detector. Adds <c>Score</c> (higher is more anomalous), <c>PredictedLabel</c>
/// (Score &gt; <see cref="Threshold"/>) and the per-feature reconstruction errors (<c>FeatureErrors</c>, whose mean is
/// the score of a dense or convolutional autoencoder). Change the threshold with
/// <c>mlContext.AnomalyDetection.ChangeModelThreshold(model, threshold)</c>.
/// </summary>
public sealed class AutoencoderAnomalyTransformer : AutoencoderTransformerBase
{
    internal const string KindName = "AutoencoderAnomaly";

    private readonly string? _errorsColumn;

    internal AutoencoderAnomalyTransformer(nn.Module module, NetworkSpec network, NetworkSpec encoder, NetworkSpec decoder, int[] latentShape,
        string featureColumnName, int[] inputShape, Device device, int scoringBatchSize, ReconstructionLoss reconstructionLoss, float threshold,
        string scoreColumnName, string predictedLabelColumnName, string? featureErrorsColumnName)
        : base(module, network, encoder, decoder, latentShape, featureColumnName, inputShape, device, scoringBatchSize, "Latent", "Reconstruction")
    {
        ReconstructionLoss = reconstructionLoss;
        Threshold = threshold;
        ScoreColumnName = scoreColumnName;
        PredictedLabelColumnName = predictedLabelColumnName;
        _errorsColumn = featureErrorsColumnName;
        var columns = new List<OutputColumn> { new ScalarOutputColumn(scoreColumnName, 0), new PositiveOutputColumn(predictedLabelColumnName, 1) };
        if (featureErrorsColumnName is not null) columns.Add(new VectorOutputColumn(featureErrorsColumnName, 2, FeatureSize));
        OutputColumns = columns;
    }

    /// <summary>Rows scoring above it are anomalous (PredictedLabel true).</summary>
    public float Threshold { get; private set; }

    /// <summary>The training scores the threshold was chosen from (null for a model loaded from a file).</summary>
    public ScoreSummary? TrainingScores { get; internal set; }

    /// <summary>True when a variational autoencoder scores (Score = negative ELBO).</summary>
    public bool IsVariational => Module is VariationalAutoencoderModule;

    /// <summary>The reconstruction loss the autoencoder trained with, and that the scores use.</summary>
    public ReconstructionLoss ReconstructionLoss { get; }

    public string ScoreColumnName { get; }

    public string PredictedLabelColumnName { get; }

    /// <summary>The per-feature error column's name, or null when it is left out.</summary>
    public string? FeatureErrorsColumnName => _errorsColumn;

    internal override IReadOnlyList<OutputColumn> OutputColumns { get; }

    /// <summary>Score, Score - threshold (PredictedLabel), then the per-feature errors.</summary>
    public override int OutputWidth => 2 + (_errorsColumn is null ? 0 : FeatureSize);

    public override string Kind => KindName;

    internal static void CheckThreshold(float threshold, string option)
    {
        if (!float.IsFinite(threshold) || threshold < 0)
            throw new ArgumentOutOfRangeException(option, threshold, "The threshold is outside the score range: scores are reconstruction errors (or a VAE's negative ELBO), 0 or more, so give a finite threshold >= 0.");
    }

    internal void SetThreshold(float threshold)
    {
        CheckThreshold(threshold, nameof(threshold));
        Threshold = threshold;
    }

    protected override Tensor Forward(Tensor inputs)
    {
        long n = inputs.shape[0];
        var (errors, score) = Errors(inputs);
        var parts = new List<Tensor> { score.unsqueeze(1), (score - Threshold).unsqueeze(1) };
        if (_errorsColumn is not null) parts.Add(errors);
        return cat(parts.ToArray(), 1);
    }

    /// <summary>Per-value reconstruction losses [n, features] and the score [n] of a batch.</summary>
    private (Tensor Errors, Tensor Score) Errors(Tensor inputs)
    {
        long n = inputs.shape[0];
        var flat = inputs.reshape(n, -1);
        if (Module is VariationalAutoencoderModule vae)
        {
            var (mean, logVariance) = vae.Encode(inputs);
            var errors = Reconstruction.Elementwise(vae.Decode(mean).reshape(n, -1), flat, ReconstructionLoss);
            return (errors, errors.sum(1) + Reconstruction.KL(mean, logVariance));
        }
        var reconstructed = Reconstruction.Elementwise(Parts.Decode(Parts.EncodeLatent(inputs)).reshape(n, -1), flat, ReconstructionLoss);
        return (reconstructed, reconstructed.mean([1]));
    }

    /// <summary>A copy with another threshold (its own copy of the network: dispose each separately).</summary>
    internal AutoencoderAnomalyTransformer WithThreshold(float threshold)
    {
        CheckThreshold(threshold, nameof(threshold));
        var module = BuildModule(Encoder, Decoder, InputShape, LatentShape, IsVariational);
        try
        {
            WithModule(source => CopyWeights(source, module));
            module.to(Device);
            return new AutoencoderAnomalyTransformer(module, Network, Encoder, Decoder, LatentShape, FeatureColumnName, InputShape, Device, ScoringBatchSize,
                ReconstructionLoss, threshold, ScoreColumnName, PredictedLabelColumnName, _errorsColumn) { History = History, TrainingScores = TrainingScores };
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    internal static nn.Module BuildModule(NetworkSpec encoder, NetworkSpec decoder, int[] inputShape, int[] latentShape, bool variational) => variational
        ? new VariationalAutoencoderModule(encoder, decoder, inputShape, latentShape.Aggregate(1, (a, b) => a * b))
        : new AutoencoderModule(encoder, decoder, inputShape);

    /// <summary>
    /// The detector as ONNX: the feature column in; <c>Score</c> [N, 1], <c>PredictedLabel</c> [N, 1] (1 when Score is
    /// above the threshold, else 0) and the per-feature errors out, as the columns' names. ML.NET's <c>ApplyOnnxModel</c>
    /// scores it without MlNetDeep.
    /// </summary>
    private protected override byte[] ExportOnnx(string outputName)
    {
        var graph = new OnnxGraph();
        var (body, bodyShape) = OnnxExporter.EmitNetwork(graph, Encoder, Parts.EncoderModule, FeatureColumnName, InputShape);
        string latent = bodyShape.Length == 1 ? body : graph.Node("Flatten", [body], ("axis", 1L));
        string? kl = null;
        if (Module is VariationalAutoencoderModule vae)
        {
            int width = bodyShape.Aggregate(1, (a, b) => a * b);
            var mean = OnnxExporter.EmitLayer(graph, new Dense(LatentSize), latent, [width], vae.MeanHead.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value));
            var logVariance = OnnxExporter.EmitLayer(graph, new Dense(LatentSize), latent, [width], vae.LogVarianceHead.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value));
            // KL = 0.5 * sum(exp(logvar) + mean^2 - 1 - logvar)
            var terms = graph.Node("Sub", [graph.Node("Sub", [graph.Node("Add", [graph.Node("Exp", [logVariance]), graph.Node("Mul", [mean, mean])]), OnnxExporter.Constant(graph, 1f)]), logVariance]);
            kl = graph.Node("Mul", [graph.Node("ReduceSum", [terms, graph.Int64Initializer("axes", [1])], ("keepdims", 1L)), OnnxExporter.Constant(graph, 0.5f)]);
            latent = mean;
        }
        var (decoded, decodedShape) = OnnxExporter.EmitNetwork(graph, Decoder, Parts.DecoderModule, latent, LatentShape);
        string reconstruction = decodedShape.Length == 1 ? decoded : graph.Node("Flatten", [decoded], ("axis", 1L));
        string input = FeatureColumnName;
        string errors = ReconstructionLoss == ReconstructionLoss.BinaryCrossEntropy
            ? BinaryCrossEntropy(graph, reconstruction, input)
            : graph.Node("Mul", [graph.Node("Sub", [reconstruction, input]), graph.Node("Sub", [reconstruction, input])]);
        string sum = graph.Node("ReduceSum", [errors, graph.Int64Initializer("axes", [1])], ("keepdims", 1L));
        string score = kl is null ? graph.Node("Mul", [sum, OnnxExporter.Constant(graph, 1f / FeatureSize)]) : graph.Node("Add", [sum, kl]);
        string label = graph.Node("Cast", [graph.Node("Greater", [score, OnnxExporter.Constant(graph, Threshold)])], ("to", 1L));
        var outputs = new List<(string, string, int)> { (score, ScoreColumnName, 1), (label, PredictedLabelColumnName, 1) };
        if (_errorsColumn is not null) outputs.Add((errors, _errorsColumn, FeatureSize));
        return graph.ToModel(Network.Name, FeatureColumnName, FeatureSize, outputs);
    }

    /// <summary>-(t log o + (1 - t) log(1 - o)) with o clipped to [1e-7, 1 - 1e-7], as <see cref="Reconstruction.Elementwise"/>.</summary>
    private static string BinaryCrossEntropy(OnnxGraph g, string output, string target)
    {
        var o = g.Node("Clip", [output, OnnxExporter.Constant(g, 1e-7f), OnnxExporter.Constant(g, 1 - 1e-7f)]);
        var one = OnnxExporter.Constant(g, 1f);
        var positive = g.Node("Mul", [target, g.Node("Log", [o])]);
        var negative = g.Node("Mul", [g.Node("Sub", [one, target]), g.Node("Log", [g.Node("Sub", [one, o])])]);
        return g.Node("Neg", [g.Node("Add", [positive, negative])]);
    }

    internal override TransformerRecord ToRecord() => NewRecord()
        .With("encoder", Encoder)
        .With("decoder", Decoder)
        .With("latentShape", LatentShape)
        .With("variational", IsVariational)
        .With("reconstructionLoss", ReconstructionLoss)
        .With("threshold", Threshold)
        .With("scoreColumn", ScoreColumnName)
        .With("predictedLabelColumn", PredictedLabelColumnName)
        .With("featureErrorsColumn", _errorsColumn);
}

/// <summary>How a saved <see cref="AutoencoderAnomalyTransformer"/> is read back.</summary>
internal sealed class AutoencoderAnomalyTransformerFormat : NetworkModelFormat
{
    public override string Kind => AutoencoderAnomalyTransformer.KindName;

    public override nn.Module BuildModule(TransformerRecord record) => AutoencoderAnomalyTransformer.BuildModule(
        record.Get<NetworkSpec>("encoder"), record.Get<NetworkSpec>("decoder"), record.InputShape, record.Get<int[]>("latentShape"), record.Get<bool>("variational"));

    public override ITransformer Create(TransformerRecord record, nn.Module module, Device device)
    {
        float threshold = record.Get<float>("threshold");
        AutoencoderAnomalyTransformer.CheckThreshold(threshold, "threshold");
        return new AutoencoderAnomalyTransformer(module, record.Network, record.Get<NetworkSpec>("encoder"), record.Get<NetworkSpec>("decoder"),
            record.Get<int[]>("latentShape"), record.FeatureColumnName, record.InputShape, device, record.ScoringBatchSize,
            record.Get<ReconstructionLoss>("reconstructionLoss"), threshold, record.Get<string>("scoreColumn"), record.Get<string>("predictedLabelColumn"),
            record.GetOrDefault<string>("featureErrorsColumn"));
    }
}
