using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Common;

namespace MlNetDeep.Vision;

/// <summary>
/// The shared shape of the vision transforms that map one image column to one float vector column through a trained
/// model (row by row, thread-safe): the schema checks, the ML.NET mapping, the column names.
/// </summary>
public abstract class ImageMappingTransformer : RowMappingTransformer
{
    private protected ImageMappingTransformer(DeepTransformer model, string outputColumnName, string? inputColumnName)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (string.IsNullOrWhiteSpace(outputColumnName)) throw new ArgumentException("outputColumnName must name a column.", nameof(outputColumnName));
        OutputColumnName = outputColumnName;
        InputColumnName = inputColumnName ?? model.FeatureColumnName;
        ImageModel = model;
    }

    private DeepTransformer ImageModel { get; }

    public string OutputColumnName { get; }
    public string InputColumnName { get; }

    /// <summary>Values per row of the output column.</summary>
    private protected abstract int OutputWidth { get; }

    /// <summary>The output of one image.</summary>
    private protected abstract float[] Map(float[] image);

    private sealed class In
    {
        public float[] Features { get; set; } = [];
    }

    private sealed class Out
    {
        public float[] Values { get; set; } = [];
    }

    private protected override ITransformer Mapper(DataViewSchema schema)
    {
        int size = NetworkInspection.RequireImageColumn(schema, InputColumnName, ImageModel);
        var input = SchemaDefinition.Create(typeof(In));
        var features = input[nameof(In.Features)];
        features.ColumnName = InputColumnName;
        features.ColumnType = new VectorDataViewType(NumberDataViewType.Single, size);
        var output = SchemaDefinition.Create(typeof(Out));
        var values = output[nameof(Out.Values)];
        values.ColumnName = OutputColumnName;
        values.ColumnType = new VectorDataViewType(NumberDataViewType.Single, OutputWidth);
        var ml = new MLContext(seed: 0);
        return ml.Transforms.CustomMapping<In, Out>((row, result) => result.Values = Map(row.Features), contractName: null, input, output)
            .Fit(ml.Data.LoadFromEnumerable(new List<In>(), input));
    }
}

/// <summary>
/// Adds a column with the output of one layer of a trained network (its feature maps, flattened) for every row, so
/// that feature maps flow through ML.NET like any column: into k-means, PCA or another trainer. Rows are mapped one at a
/// time through the model (thread-safe); the model is not copied, so dispose it after the last use of this transform.
/// Not stored by SaveDeep: rebuild it from the saved model.
/// </summary>
public sealed class LayerActivationsTransformer : ImageMappingTransformer
{
    internal LayerActivationsTransformer(DeepTransformer model, string layer, string outputColumnName, string? inputColumnName)
        : base(model, outputColumnName, inputColumnName)
    {
        Model = model;
        LayerIndex = NetworkInspection.LayerIndex(model.Network, layer);
        Layer = model.LayerNames()[LayerIndex];
        LayerShape = model.LayerShape(Layer);
    }

    public DeepTransformer Model { get; }
    public string Layer { get; }
    public int LayerIndex { get; }

    /// <summary>The shape of one row's activations (e.g. [32, 26, 26]); the column holds their product of values.</summary>
    public int[] LayerShape { get; }

    private protected override int OutputWidth => LayerShape.Aggregate(1, (a, b) => a * b);

    private protected override float[] Map(float[] image) => NetworkInspection.Activations(Model, [image], LayerIndex)[0];
}

/// <summary>
/// Adds a column with each row's adversarial image against a trained classifier: the attack (FGSM or PGD) pushes the
/// image away from its label (a key column of the model's classes), or towards the attack's target class. A row whose
/// label is missing keeps its image. The model is not copied; not stored by SaveDeep.
/// </summary>
public sealed class AdversarialExamplesTransformer : RowMappingTransformer
{
    internal AdversarialExamplesTransformer(NeuralNetworkClassificationTransformer model, Attack attack, string outputColumnName, string? inputColumnName, string labelColumnName, int seed)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(attack);
        attack.Validate(model.ClassCount);
        if (string.IsNullOrWhiteSpace(outputColumnName)) throw new ArgumentException("outputColumnName must name a column.", nameof(outputColumnName));
        if (string.IsNullOrWhiteSpace(labelColumnName)) throw new ArgumentException("labelColumnName must name a column.", nameof(labelColumnName));
        Model = model;
        Attack = attack;
        OutputColumnName = outputColumnName;
        InputColumnName = inputColumnName ?? model.FeatureColumnName;
        LabelColumnName = labelColumnName;
        Seed = seed;
    }

    public NeuralNetworkClassificationTransformer Model { get; }
    public Attack Attack { get; }
    public string OutputColumnName { get; }
    public string InputColumnName { get; }
    public string LabelColumnName { get; }
    public int Seed { get; }

    private sealed class In
    {
        public float[] Features { get; set; } = [];
        public uint Label { get; set; }
    }

    private sealed class Out
    {
        public float[] Adversarial { get; set; } = [];
    }

    private protected override ITransformer Mapper(DataViewSchema schema)
    {
        int size = NetworkInspection.RequireImageColumn(schema, InputColumnName, Model);
        var label = schema.GetColumnOrNull(LabelColumnName)
            ?? throw new ArgumentOutOfRangeException(LabelColumnName, $"The label column '{LabelColumnName}' is not in the data (columns: {string.Join(", ", schema.Select(c => c.Name))}).");
        if (label.Type is not KeyDataViewType { RawType: var raw } key || raw != typeof(uint) || key.Count != (ulong)Model.ClassCount)
            throw new ArgumentOutOfRangeException(LabelColumnName, $"The label column '{LabelColumnName}' is {label.Type}; it must be a key (UInt32) of the model's {Model.ClassCount} classes (use MapValueToKey).");
        var input = SchemaDefinition.Create(typeof(In));
        var features = input[nameof(In.Features)];
        features.ColumnName = InputColumnName;
        features.ColumnType = new VectorDataViewType(NumberDataViewType.Single, size);
        var labels = input[nameof(In.Label)];
        labels.ColumnName = LabelColumnName;
        labels.ColumnType = label.Type;
        var output = SchemaDefinition.Create(typeof(Out));
        var adversarial = output[nameof(Out.Adversarial)];
        adversarial.ColumnName = OutputColumnName;
        adversarial.ColumnType = new VectorDataViewType(NumberDataViewType.Single, size);
        var ml = new MLContext(seed: 0);
        return ml.Transforms.CustomMapping<In, Out>((row, result) => result.Adversarial = row.Label == 0
                ? row.Features.ToArray()
                : Model.AdversarialExamples([row.Features], [(int)row.Label - 1], Attack, Seed)[0], contractName: null, input, output)
            .Fit(ml.Data.LoadFromEnumerable(new List<In>(), input));
    }
}

/// <summary>
/// Adds a column with each row's saliency map for the class the model predicts for it (the gradient of that class's
/// logit with respect to the pixels, or that times the pixels), in the image's layout. The model is not copied; not
/// stored by SaveDeep.
/// </summary>
public sealed class SaliencyTransformer : ImageMappingTransformer
{
    internal SaliencyTransformer(NeuralNetworkClassificationTransformer model, SaliencyKind kind, string outputColumnName, string? inputColumnName)
        : base(model, outputColumnName, inputColumnName)
    {
        if (!Enum.IsDefined(kind)) throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown saliency kind.");
        Model = model;
        Kind = kind;
    }

    public NeuralNetworkClassificationTransformer Model { get; }
    public SaliencyKind Kind { get; }

    private protected override int OutputWidth => Model.FeatureSize;

    private protected override float[] Map(float[] image) => Model.Saliency([image], classes: null, Kind)[0];
}

/// <summary>An estimator for a transform that learns nothing: Fit checks the data's schema and returns the transform.</summary>
public sealed class FixedTransformEstimator<TTransformer> : IEstimator<TTransformer> where TTransformer : class, ITransformer
{
    private readonly TTransformer _transformer;
    private readonly Func<SchemaShape, SchemaShape> _outputShape;

    internal FixedTransformEstimator(TTransformer transformer, Func<SchemaShape, SchemaShape> outputShape)
    {
        _transformer = transformer;
        _outputShape = outputShape;
    }

    public TTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        _transformer.GetOutputSchema(input.Schema);
        return _transformer;
    }

    public SchemaShape GetOutputSchema(SchemaShape inputSchema) => _outputShape(inputSchema);
}

/// <summary>The vision transforms in ML.NET's catalog: <c>ml.Transforms.LayerActivations</c>, <c>ml.Transforms.Saliency</c> and <c>ml.Transforms.AdversarialExamples</c>.</summary>
public static class VisionCatalog
{
    /// <summary>Adds <paramref name="outputColumnName"/>: the output of <paramref name="layer"/> (a name such as conv2d_0, or a position) for each row's image.</summary>
    public static FixedTransformEstimator<LayerActivationsTransformer> LayerActivations(this TransformsCatalog catalog, DeepTransformer model, string layer,
        string outputColumnName = "Activations", string? inputColumnName = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var transformer = new LayerActivationsTransformer(model, layer, outputColumnName, inputColumnName);
        return new(transformer, shape => ImageToVector(shape, transformer.InputColumnName, outputColumnName));
    }

    /// <summary>Adds <paramref name="outputColumnName"/>: each row's saliency map for the class the model predicts for it.</summary>
    public static FixedTransformEstimator<SaliencyTransformer> Saliency(this TransformsCatalog catalog, NeuralNetworkClassificationTransformer model,
        SaliencyKind kind = SaliencyKind.GradientTimesInput, string outputColumnName = "Saliency", string? inputColumnName = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var transformer = new SaliencyTransformer(model, kind, outputColumnName, inputColumnName);
        return new(transformer, shape => ImageToVector(shape, transformer.InputColumnName, outputColumnName));
    }

    /// <summary>Adds <paramref name="outputColumnName"/>: each row's image attacked with <paramref name="attack"/> against <paramref name="model"/>.</summary>
    public static FixedTransformEstimator<AdversarialExamplesTransformer> AdversarialExamples(this TransformsCatalog catalog, NeuralNetworkClassificationTransformer model,
        Attack attack, string outputColumnName = "Adversarial", string? inputColumnName = null, string labelColumnName = "Label", int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var transformer = new AdversarialExamplesTransformer(model, attack, outputColumnName, inputColumnName, labelColumnName, seed);
        return new(transformer, shape =>
        {
            ColumnChecks.RequireKeyLabel(ColumnChecks.Find(shape, labelColumnName, "label"));
            return ImageToVector(shape, transformer.InputColumnName, outputColumnName);
        });
    }

    /// <summary>The schema after a vision transform: the image column checked, a float vector column added.</summary>
    private static SchemaShape ImageToVector(SchemaShape shape, string inputColumnName, string outputColumnName)
    {
        ColumnChecks.RequireFloatFeatures(ColumnChecks.Find(shape, inputColumnName, "image"), "image");
        return SchemaShapes.Extend(shape, [SchemaShapes.Column(outputColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false)]);
    }
}
