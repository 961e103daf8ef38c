using Microsoft.ML;
using Microsoft.ML.Data;

namespace MlNetDeep.Serving;

/// <summary>One column a request must (or may) carry: its name, item type and vector size (0 for a scalar).</summary>
public sealed record InputField(string Name, string Type, int Size, bool Required);

/// <summary>One column the service returns.</summary>
public sealed record OutputField(string Name, string Type, int Size);

/// <summary>
/// What a loaded pipeline reads and writes, worked out once per model: the input columns its outputs depend on
/// (required in a request) and the other input columns (filled with missing values), and the columns it adds.
/// </summary>
public sealed class ModelSchema
{
    private ModelSchema(DataViewSchema input, IReadOnlyList<InputField> inputs, IReadOnlyList<DataViewSchema.Column> outputs)
    {
        Input = input;
        Inputs = inputs;
        OutputColumns = outputs;
        Outputs = outputs.Select(c => new OutputField(c.Name, TypeName(c.Type), VectorSize(c.Type))).ToList();
    }

    /// <summary>The pipeline's input schema as saved with it.</summary>
    public DataViewSchema Input { get; }

    public IReadOnlyList<InputField> Inputs { get; }

    public IReadOnlyList<OutputField> Outputs { get; }

    internal IReadOnlyList<DataViewSchema.Column> OutputColumns { get; }

    /// <summary>Works out the schema of <paramref name="model"/> on <paramref name="input"/>; unsupported required column types are an error.</summary>
    public static ModelSchema Of(ITransformer model, DataViewSchema input)
    {
        var output = model.GetOutputSchema(input);
        // The columns the pipeline appends (a replaced column is appended again; the last of a name wins).
        var added = output.Where(c => !c.IsHidden && c.Index >= input.Count).GroupBy(c => c.Name).Select(g => g.Last()).ToList();
        if (added.Count == 0) throw new InvalidOperationException("The model adds no columns: there is nothing to return.");
        HashSet<string> required;
        try
        {
            var mapper = model.GetRowToRowMapper(input);
            required = mapper.GetDependencies(added.Select(c => mapper.OutputSchema[c.Index])).Select(c => c.Name).ToHashSet();
        }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException)
        {
            required = input.Where(c => !c.IsHidden).Select(c => c.Name).ToHashSet();
        }
        var fields = new List<InputField>();
        foreach (var column in input.Where(c => !c.IsHidden))
        {
            bool needed = required.Contains(column.Name);
            if (!IsSupported(column.Type))
            {
                if (needed) throw new NotSupportedException($"The model needs input column '{column.Name}' of type {column.Type}, which the service cannot read from a request.");
                continue;
            }
            fields.Add(new InputField(column.Name, TypeName(column.Type), VectorSize(column.Type), needed));
        }
        return new ModelSchema(input, fields, added);
    }

    internal static bool IsSupported(DataViewType type) => type switch
    {
        VectorDataViewType v => v.IsKnownSize && IsScalar(v.ItemType),
        _ => IsScalar(type),
    };

    private static bool IsScalar(DataViewType type) =>
        type == NumberDataViewType.Single || type == NumberDataViewType.Double || type == NumberDataViewType.Int32 ||
        type == NumberDataViewType.Int64 || type == NumberDataViewType.UInt32 || type == BooleanDataViewType.Instance ||
        type == TextDataViewType.Instance || type is KeyDataViewType { RawType: var raw } && raw == typeof(uint);

    internal static string TypeName(DataViewType type) => type switch
    {
        VectorDataViewType v => $"{TypeName(v.ItemType)}[{(v.IsKnownSize ? v.Size.ToString() : "")}]",
        KeyDataViewType => "key",
        _ when type == TextDataViewType.Instance => "text",
        _ when type == BooleanDataViewType.Instance => "bool",
        _ => type.RawType.Name.ToLowerInvariant() switch { "single" => "float", "double" => "double", "int32" => "int", "int64" => "long", "uint32" => "uint", var n => n },
    };

    internal static int VectorSize(DataViewType type) => type is VectorDataViewType v ? v.Size : 0;
}
