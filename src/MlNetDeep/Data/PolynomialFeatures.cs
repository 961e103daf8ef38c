using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MlNetDeep.Models.Common;

namespace MlNetDeep.Data;

/// <summary>
/// Expands a float (or float vector) column into its powers up to a degree: for input (x1, ..., xm) the output is
/// (x1, x1², ..., x1^d, x2, ..., xm^d), m·d values, without cross terms. With a linear trainer on top this is polynomial
/// regression. Nothing is learned, so Fit only checks the schema.
/// </summary>
public sealed class PolynomialFeaturesEstimator : IEstimator<PolynomialFeaturesTransformer>
{
    internal PolynomialFeaturesEstimator(string outputColumnName, string inputColumnName, int degree)
    {
        if (string.IsNullOrWhiteSpace(outputColumnName)) throw new ArgumentException("outputColumnName must name a column.", nameof(outputColumnName));
        if (string.IsNullOrWhiteSpace(inputColumnName)) throw new ArgumentException("inputColumnName must name a column.", nameof(inputColumnName));
        if (degree < 1) throw new ArgumentOutOfRangeException(nameof(degree), degree, "The polynomial degree must be at least 1.");
        OutputColumnName = outputColumnName;
        InputColumnName = inputColumnName;
        Degree = degree;
    }

    /// <summary>The column added.</summary>
    public string OutputColumnName { get; }

    /// <summary>The column expanded.</summary>
    public string InputColumnName { get; }

    /// <summary>The highest power.</summary>
    public int Degree { get; }

    /// <inheritdoc/>
    public PolynomialFeaturesTransformer Fit(IDataView input)
    {
        var transformer = new PolynomialFeaturesTransformer(OutputColumnName, InputColumnName, Degree);
        transformer.GetOutputSchema(input.Schema);
        return transformer;
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ColumnChecks.RequireFloatFeatures(ColumnChecks.Find(inputSchema, InputColumnName, "input"), "input");
        return SchemaShapes.Extend(inputSchema,
            [SchemaShapes.Column(OutputColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false)]);
    }
}

/// <summary>The powers transform of <see cref="PolynomialFeaturesEstimator"/>: adds the expanded column lazily.</summary>
public sealed class PolynomialFeaturesTransformer : ITransformer, Persistence.IPersistentTransformer
{
    internal PolynomialFeaturesTransformer(string outputColumnName, string inputColumnName, int degree)
    {
        OutputColumnName = outputColumnName;
        InputColumnName = inputColumnName;
        Degree = degree;
    }

    /// <summary>The column added.</summary>
    public string OutputColumnName { get; }

    /// <summary>The column expanded.</summary>
    public string InputColumnName { get; }

    /// <summary>The highest power.</summary>
    public int Degree { get; }

    /// <inheritdoc/>
    public bool IsRowToRowMapper => true;

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Map(new EmptyView(inputSchema)).Schema;

    /// <inheritdoc/>
    public IDataView Transform(IDataView input) => Map(input);

    /// <summary>The expansion of one row's values (length m) into m·Degree powers.</summary>
    public float[] Expand(ReadOnlySpan<float> values)
    {
        var output = new float[values.Length * Degree];
        Expand(values, output, Degree);
        return output;
    }

    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => Map(new EmptyView(inputSchema)).AsRowToRowMapper();

    void ICanSaveModel.Save(ModelSaveContext ctx) =>
        throw new NotSupportedException("ML.NET's Model.Save cannot store third-party transformers: save the pipeline with mlContext.Model.SaveDeep(...) instead.");

    /// <inheritdoc/>
    string Persistence.IPersistentTransformer.Kind => KindName;

    /// <inheritdoc/>
    System.Text.Json.Nodes.JsonObject Persistence.IPersistentTransformer.Settings() => new()
    {
        ["output"] = OutputColumnName, ["input"] = InputColumnName, ["degree"] = Degree,
    };

    internal const string KindName = "PolynomialFeatures";

    private MappedColumnDataView Map(IDataView input)
    {
        var column = ColumnChecks.Find(input.Schema, InputColumnName, "input");
        int size = ColumnChecks.RequireFloatFeatures(column, "input");
        int degree = Degree;
        return new MappedColumnDataView(input, InputColumnName, size, OutputColumnName, size * degree, (values, output) => Expand(values, output, degree));
    }

    private static void Expand(ReadOnlySpan<float> values, Span<float> output, int degree)
    {
        for (int i = 0; i < values.Length; i++)
        {
            float power = 1;
            for (int p = 0; p < degree; p++) output[i * degree + p] = power *= values[i];
        }
    }

    /// <summary>A row-less view with a given schema, to derive output schemas.</summary>
    private sealed class EmptyView(DataViewSchema schema) : IDataView
    {
        public bool CanShuffle => false;
        public DataViewSchema Schema => schema;
        public long? GetRowCount() => 0;
        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
            throw new InvalidOperationException("A schema-only view has no rows.");
        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
            throw new InvalidOperationException("A schema-only view has no rows.");
    }
}

/// <summary>How a saved <see cref="PolynomialFeaturesTransformer"/> is read back.</summary>
internal sealed class PolynomialFeaturesFormat : Persistence.TransformModelFormat
{
    public override string Kind => PolynomialFeaturesTransformer.KindName;

    public override ITransformer Create(System.Text.Json.Nodes.JsonObject settings) =>
        new PolynomialFeaturesTransformer((string)settings["output"]!, (string)settings["input"]!, (int)settings["degree"]!);
}
