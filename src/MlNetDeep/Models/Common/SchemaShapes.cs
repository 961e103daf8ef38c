using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MlNetDeep.Models.Common;

/// <summary>
/// Builds <see cref="SchemaShape"/>s for GetOutputSchema. ML.NET keeps <see cref="SchemaShape.Column"/>'s constructor
/// internal (ML.NET issue #3243), so this is the one place that reaches it, by reflection; a test pins it down so that
/// an ML.NET upgrade that changes it fails there first.
/// </summary>
internal static class SchemaShapes
{
    private static readonly ConstructorInfo ColumnConstructor =
        typeof(SchemaShape.Column).GetConstructors(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public)
            .FirstOrDefault(c => c.GetParameters().Select(p => p.ParameterType).SequenceEqual(
                [typeof(string), typeof(SchemaShape.Column.VectorKind), typeof(DataViewType), typeof(bool), typeof(SchemaShape)]))
        ?? throw new MissingMethodException("SchemaShape.Column(string, VectorKind, DataViewType, bool, SchemaShape) was not found: this ML.NET version changed it.");

    public static SchemaShape.Column Column(string name, SchemaShape.Column.VectorKind kind, DataViewType itemType, bool isKey, SchemaShape? annotations = null) =>
        (SchemaShape.Column)ColumnConstructor.Invoke([name, kind, itemType, isKey, annotations ?? new SchemaShape([])]);

    /// <summary>The input columns with <paramref name="added"/> appended (an added column hides an input column of the same name).</summary>
    public static SchemaShape Extend(SchemaShape input, IEnumerable<SchemaShape.Column> added)
    {
        var columns = input.ToDictionary(c => c.Name);
        foreach (var column in added) columns[column.Name] = column;
        return new SchemaShape(columns.Values);
    }

    /// <summary>A SchemaShape column describing a DataViewSchema column (annotations included, one level).</summary>
    public static SchemaShape.Column FromSchemaColumn(DataViewSchema.Column column)
    {
        var annotations = new SchemaShape(column.Annotations.Schema.Select(a => Describe(a.Name, a.Type, null)));
        return Describe(column.Name, column.Type, annotations);
    }

    /// <summary>As ML.NET describes a column: a key's item type is its raw unsigned type, with IsKey set.</summary>
    public static SchemaShape.Column Describe(string name, DataViewType type, SchemaShape? annotations)
    {
        var kind = type is VectorDataViewType v ? (v.IsKnownSize ? SchemaShape.Column.VectorKind.Vector : SchemaShape.Column.VectorKind.VariableVector) : SchemaShape.Column.VectorKind.Scalar;
        var item = type is VectorDataViewType vector ? vector.ItemType : type;
        bool isKey = item is KeyDataViewType;
        if (item is KeyDataViewType key)
            item = key.RawType == typeof(byte) ? NumberDataViewType.Byte : key.RawType == typeof(ushort) ? NumberDataViewType.UInt16 : key.RawType == typeof(ulong) ? NumberDataViewType.UInt64 : NumberDataViewType.UInt32;
        return Column(name, kind, item, isKey, annotations);
    }
}
