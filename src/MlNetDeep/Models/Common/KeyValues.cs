using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MlNetDeep.Models.Common;

/// <summary>
/// A key column's KeyValues annotation (the original label values), kept by value so that a trained model carries
/// it into PredictedLabel and through save/load. Supports text and numeric key values.
/// </summary>
internal sealed class KeyValues
{
    private static readonly Dictionary<string, DataViewType> Types = new()
    {
        ["Text"] = TextDataViewType.Instance,
        ["Single"] = NumberDataViewType.Single,
        ["Double"] = NumberDataViewType.Double,
        ["UInt32"] = NumberDataViewType.UInt32,
        ["Int32"] = NumberDataViewType.Int32,
        ["Int64"] = NumberDataViewType.Int64,
        ["UInt64"] = NumberDataViewType.UInt64,
        ["Byte"] = NumberDataViewType.Byte,
        ["Boolean"] = BooleanDataViewType.Instance,
    };

    public KeyValues(string typeName, IReadOnlyList<string> values)
    {
        if (!Types.ContainsKey(typeName)) throw new NotSupportedException($"Key values of type {typeName} are not supported.");
        TypeName = typeName;
        Values = values;
    }

    /// <summary>The item type's name (Text, Single, UInt32, ...).</summary>
    public string TypeName { get; }

    /// <summary>The values in key order, as invariant text.</summary>
    public IReadOnlyList<string> Values { get; }

    public DataViewType ItemType => Types[TypeName];

    /// <summary>Reads the KeyValues annotation of a key column; null when it has none (or of an unsupported type).</summary>
    public static KeyValues? From(DataViewSchema.Column column)
    {
        var annotation = column.Annotations.Schema.GetColumnOrNull("KeyValues");
        if (annotation is not { Type: VectorDataViewType vector }) return null;
        var entry = Types.FirstOrDefault(t => t.Value.Equals(vector.ItemType));
        if (entry.Key is null) return null;
        return entry.Key switch
        {
            "Text" => Read<ReadOnlyMemory<char>>(column, "Text", v => v.ToString()),
            "Single" => Read<float>(column, "Single", v => v.ToString("R", CultureInfo.InvariantCulture)),
            "Double" => Read<double>(column, "Double", v => v.ToString("R", CultureInfo.InvariantCulture)),
            "UInt32" => Read<uint>(column, "UInt32", v => v.ToString(CultureInfo.InvariantCulture)),
            "Int32" => Read<int>(column, "Int32", v => v.ToString(CultureInfo.InvariantCulture)),
            "Int64" => Read<long>(column, "Int64", v => v.ToString(CultureInfo.InvariantCulture)),
            "UInt64" => Read<ulong>(column, "UInt64", v => v.ToString(CultureInfo.InvariantCulture)),
            "Byte" => Read<byte>(column, "Byte", v => v.ToString(CultureInfo.InvariantCulture)),
            "Boolean" => Read<bool>(column, "Boolean", v => v.ToString(CultureInfo.InvariantCulture)),
            _ => null,
        };
    }

    private static KeyValues Read<T>(DataViewSchema.Column column, string typeName, Func<T, string> format)
    {
        VBuffer<T> buffer = default;
        column.GetKeyValues(ref buffer);
        return new KeyValues(typeName, buffer.DenseValues().Select(format).ToArray());
    }

    /// <summary>Adds this as the KeyValues annotation.</summary>
    public void AddTo(DataViewSchema.Annotations.Builder builder)
    {
        var type = new VectorDataViewType((PrimitiveDataViewType)ItemType, Values.Count);
        switch (TypeName)
        {
            case "Text": Add(builder, type, v => v.AsMemory()); break;
            case "Single": Add(builder, type, v => float.Parse(v, CultureInfo.InvariantCulture)); break;
            case "Double": Add(builder, type, v => double.Parse(v, CultureInfo.InvariantCulture)); break;
            case "UInt32": Add(builder, type, v => uint.Parse(v, CultureInfo.InvariantCulture)); break;
            case "Int32": Add(builder, type, v => int.Parse(v, CultureInfo.InvariantCulture)); break;
            case "Int64": Add(builder, type, v => long.Parse(v, CultureInfo.InvariantCulture)); break;
            case "UInt64": Add(builder, type, v => ulong.Parse(v, CultureInfo.InvariantCulture)); break;
            case "Byte": Add(builder, type, v => byte.Parse(v, CultureInfo.InvariantCulture)); break;
            case "Boolean": Add(builder, type, v => bool.Parse(v)); break;
        }
    }

    /// <summary>The values as text, for slot names.</summary>
    public void AddAsSlotNames(DataViewSchema.Annotations.Builder builder)
    {
        var type = new VectorDataViewType(TextDataViewType.Instance, Values.Count);
        Add(builder, type, v => v.AsMemory(), "SlotNames");
    }

    private void Add<T>(DataViewSchema.Annotations.Builder builder, VectorDataViewType type, Func<string, T> parse, string kind = "KeyValues")
    {
        var values = new VBuffer<T>(Values.Count, Values.Select(parse).ToArray());
        builder.Add(kind, type, (ref VBuffer<T> dst) => values.CopyTo(ref dst));
    }
}
