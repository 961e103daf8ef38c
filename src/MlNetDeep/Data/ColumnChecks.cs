using Microsoft.ML;
using Microsoft.ML.Data;

namespace MlNetDeep.Data;

/// <summary>
/// The schema checks every deep estimator makes, one place, with errors that name the column and what was expected.
/// Work on both a <see cref="DataViewSchema"/> (Fit, Transform) and a <see cref="SchemaShape"/> (GetOutputSchema).
/// </summary>
internal static class ColumnChecks
{
    /// <summary>A column as the checks see it: name, item type, vector kind and size (0 when unknown or scalar).</summary>
    public readonly record struct ColumnView(string Name, DataViewType ItemType, SchemaShape.Column.VectorKind Kind, int Size, bool IsKey)
    {
        public string TypeText => Kind switch
        {
            SchemaShape.Column.VectorKind.Scalar => IsKey ? $"Key<{ItemType}>" : ItemType.ToString() ?? "",
            SchemaShape.Column.VectorKind.Vector => Size > 0 ? $"Vector<{ItemType}, {Size}>" : $"Vector<{ItemType}>",
            _ => $"VarVector<{ItemType}>",
        };
    }

    public static ColumnView Find(DataViewSchema schema, string name, string role)
    {
        var column = schema.GetColumnOrNull(name) ?? throw Missing(name, role, schema.Where(c => !c.IsHidden).Select(c => c.Name));
        return View(column);
    }

    public static ColumnView Find(SchemaShape schema, string name, string role)
    {
        var matches = schema.Where(c => c.Name == name).ToList();
        if (matches.Count == 0) throw Missing(name, role, schema.Select(c => c.Name));
        var column = matches[^1];
        return new ColumnView(column.Name, column.ItemType, column.Kind, 0, column.IsKey);
    }

    public static ColumnView View(DataViewSchema.Column column)
    {
        var type = column.Type;
        if (type is VectorDataViewType vector)
            return new ColumnView(column.Name, vector.ItemType, vector.IsKnownSize ? SchemaShape.Column.VectorKind.Vector : SchemaShape.Column.VectorKind.VariableVector, vector.Size, vector.ItemType is KeyDataViewType);
        return new ColumnView(column.Name, type, SchemaShape.Column.VectorKind.Scalar, 1, type is KeyDataViewType);
    }

    /// <summary>Features: a float or a known-size vector of floats. Returns the number of floats per row (0 if not known from a SchemaShape).</summary>
    public static int RequireFloatFeatures(ColumnView column, string role = "feature")
    {
        bool isFloat = column.ItemType == NumberDataViewType.Single;
        if (!isFloat || column.Kind == SchemaShape.Column.VectorKind.VariableVector)
            throw new ArgumentOutOfRangeException(role, $"The {role} column '{column.Name}' must be Single or a vector of Single of known size, but is {column.TypeText}." +
                (isFloat ? " Give it a fixed size (e.g. with ResizeImages/ExtractPixels or Concatenate)." : " Convert it with mlContext.Transforms.Conversion.ConvertType(..., outputKind: DataKind.Single)."));
        return column.Kind == SchemaShape.Column.VectorKind.Scalar ? 1 : column.Size;
    }

    /// <summary>Text: a scalar text column (one document, passage or line per row).</summary>
    public static void RequireText(ColumnView column, string role = "text")
    {
        if (column.ItemType is not TextDataViewType || column.Kind != SchemaShape.Column.VectorKind.Scalar)
            throw new ArgumentOutOfRangeException(role, $"The {role} column '{column.Name}' must hold text (String), but is {column.TypeText}.");
    }

    /// <summary>Checks that the vector size matches the product of <paramref name="shape"/>.</summary>
    public static void RequireShape(ColumnView column, int size, int[]? shape)
    {
        if (shape is null) return;
        int product = shape.Aggregate(1, (a, b) => a * b);
        if (product != size)
            throw new ArgumentOutOfRangeException("InputShape", $"InputShape [{string.Join(", ", shape)}] holds {product} values, but column '{column.Name}' has {size} per row ({column.TypeText}).");
    }

    /// <summary>Classification labels: a key type. Returns its key count (0 if unknown).</summary>
    public static int RequireKeyLabel(ColumnView column)
    {
        if (!column.IsKey || column.Kind != SchemaShape.Column.VectorKind.Scalar)
            throw new ArgumentOutOfRangeException("LabelColumnName", $"The label column '{column.Name}' must be a key type, but is {column.TypeText}. " +
                "Map it to a key first: mlContext.Transforms.Conversion.MapValueToKey(\"" + column.Name + "\").");
        return 0;
    }

    /// <summary>Regression labels: a float.</summary>
    public static void RequireFloatLabel(ColumnView column)
    {
        if (column.ItemType != NumberDataViewType.Single || column.Kind != SchemaShape.Column.VectorKind.Scalar || column.IsKey)
            throw new ArgumentOutOfRangeException("LabelColumnName", $"The label column '{column.Name}' must be Single, but is {column.TypeText}. " +
                "Convert it with mlContext.Transforms.Conversion.ConvertType(\"" + column.Name + "\", outputKind: DataKind.Single).");
    }

    /// <summary>Binary classification labels: a Boolean.</summary>
    public static void RequireBooleanLabel(ColumnView column)
    {
        if (column.ItemType != BooleanDataViewType.Instance || column.Kind != SchemaShape.Column.VectorKind.Scalar)
            throw new ArgumentOutOfRangeException("LabelColumnName", $"The label column '{column.Name}' must be Boolean for binary classification, but is {column.TypeText}. " +
                (column.IsKey
                    ? "For a key label with more than two classes use mlContext.MulticlassClassification.Trainers.NeuralNetwork(...); for two classes map the values to true/false first."
                    : "Map it to true/false first, e.g. with mlContext.Transforms.Conversion.ConvertType(\"" + column.Name + "\", outputKind: DataKind.Boolean) or CustomMapping, " +
                      "or load it as bool (a CSV column of true/false or 0/1)."));
    }

    /// <summary>The number of keys of a key column in a DataViewSchema (any key type: Byte, UInt16, UInt32 or UInt64 values).</summary>
    public static int KeyCount(DataViewSchema.Column column)
    {
        if (column.Type is not KeyDataViewType key)
            throw new ArgumentOutOfRangeException("LabelColumnName", $"The label column '{column.Name}' must be a key type, but is {column.Type}.");
        if (key.Count > int.MaxValue)
            throw new ArgumentOutOfRangeException("LabelColumnName", $"The label column '{column.Name}' is a key of {key.Count:N0} values ({key.RawType.Name}); " +
                $"a deep model's label can have at most {int.MaxValue:N0} classes. Map the label to a key of the classes it really has (MapValueToKey).");
        return (int)key.Count;
    }

    private static ArgumentOutOfRangeException Missing(string name, string role, IEnumerable<string> available) =>
        new(role, $"The {role} column '{name}' is not in the data. Columns present: {string.Join(", ", available.Distinct())}.");
}
