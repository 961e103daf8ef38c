using System.Buffers;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MlNetDeep.Serving;

/// <summary>
/// Scores a batch of rows with a model and writes each row's outputs as one JSON object (UTF-8), in order. A NaN or
/// infinite float is written as null; a key column with text key values as its value, otherwise as its key number.
/// </summary>
internal static class OutputWriter
{
    /// <summary>The JSON object of each row's outputs.</summary>
    public static IReadOnlyList<ReadOnlyMemory<byte>> Score(LoadedModel model, IDataView rows, CancellationToken cancellation)
    {
        var results = new List<ReadOnlyMemory<byte>>();
        ForEachRow(model, rows, row => results.Add(row.ToArray()), cancellation);
        return results;
    }

    /// <summary>Scores <paramref name="rows"/> lazily and hands each row's JSON object to <paramref name="onRow"/> (valid only during the call).</summary>
    public static long ForEachRow(LoadedModel model, IDataView rows, Action<ReadOnlySpan<byte>> onRow, CancellationToken cancellation)
    {
        var scored = model.Transformer.Transform(rows);
        var columns = model.Schema.OutputColumns.Select(c => scored.Schema[c.Name]).ToList();
        var buffer = new ArrayBufferWriter<byte>();
        using var writer = new Utf8JsonWriter(buffer);
        using var cursor = scored.GetRowCursor(columns);
        var writers = columns.Select(c => ValueWriter(cursor, c)).ToArray();
        long count = 0;
        while (cursor.MoveNext())
        {
            cancellation.ThrowIfCancellationRequested();
            buffer.ResetWrittenCount();
            writer.Reset(buffer);
            writer.WriteStartObject();
            for (int i = 0; i < columns.Count; i++)
            {
                writer.WritePropertyName(columns[i].Name);
                writers[i](writer);
            }
            writer.WriteEndObject();
            writer.Flush();
            onRow(buffer.WrittenSpan);
            count++;
        }
        return count;
    }

    private static Action<Utf8JsonWriter> ValueWriter(DataViewRowCursor cursor, DataViewSchema.Column column)
    {
        var type = column.Type;
        if (type is VectorDataViewType { ItemType: var item })
        {
            if (item == NumberDataViewType.Single) return Vector<float>(cursor, column, (w, v) => Number(w, v));
            if (item == NumberDataViewType.Double) return Vector<double>(cursor, column, Number);
            if (item == TextDataViewType.Instance) return Vector<ReadOnlyMemory<char>>(cursor, column, (w, v) => w.WriteStringValue(v.Span));
            if (item == BooleanDataViewType.Instance) return Vector<bool>(cursor, column, (w, v) => w.WriteBooleanValue(v));
        }
        else if (type == NumberDataViewType.Single) return Scalar<float>(cursor, column, (w, v) => Number(w, v));
        else if (type == NumberDataViewType.Double) return Scalar<double>(cursor, column, Number);
        else if (type == NumberDataViewType.Int32) return Scalar<int>(cursor, column, (w, v) => w.WriteNumberValue(v));
        else if (type == NumberDataViewType.Int64) return Scalar<long>(cursor, column, (w, v) => w.WriteNumberValue(v));
        else if (type == NumberDataViewType.UInt32) return Scalar<uint>(cursor, column, (w, v) => w.WriteNumberValue(v));
        else if (type == BooleanDataViewType.Instance) return Scalar<bool>(cursor, column, (w, v) => w.WriteBooleanValue(v));
        else if (type == TextDataViewType.Instance) return Scalar<ReadOnlyMemory<char>>(cursor, column, (w, v) => w.WriteStringValue(v.Span));
        else if (type is KeyDataViewType { RawType: var raw } && raw == typeof(uint))
        {
            var names = KeyNames(column);
            return Scalar<uint>(cursor, column, (w, v) =>
            {
                if (v == 0) w.WriteNullValue();
                else if (names is not null && v <= names.Count) w.WriteStringValue(names[(int)v - 1]);
                else w.WriteNumberValue(v);
            });
        }
        throw new NotSupportedException($"The service cannot write output column '{column.Name}' of type {type}.");
    }

    /// <summary>A key column's text key values (what its keys stand for), or null when it has none.</summary>
    internal static IReadOnlyList<string>? KeyNames(DataViewSchema.Column column) =>
        MlNetDeep.Models.Common.KeyValues.From(column) is { TypeName: "Text" } values ? values.Values : null;

    private static void Number(Utf8JsonWriter writer, double value)
    {
        if (double.IsFinite(value)) writer.WriteNumberValue(value);
        else writer.WriteNullValue();
    }

    private static void Number(Utf8JsonWriter writer, float value)
    {
        if (float.IsFinite(value)) writer.WriteNumberValue(value);
        else writer.WriteNullValue();
    }

    private static Action<Utf8JsonWriter> Scalar<T>(DataViewRowCursor cursor, DataViewSchema.Column column, Action<Utf8JsonWriter, T> write)
    {
        var getter = cursor.GetGetter<T>(column);
        T value = default!;
        return w => { getter(ref value); write(w, value); };
    }

    private static Action<Utf8JsonWriter> Vector<T>(DataViewRowCursor cursor, DataViewSchema.Column column, Action<Utf8JsonWriter, T> write)
    {
        var getter = cursor.GetGetter<VBuffer<T>>(column);
        VBuffer<T> value = default;
        return w =>
        {
            getter(ref value);
            w.WriteStartArray();
            foreach (var item in value.DenseValues()) write(w, item);
            w.WriteEndArray();
        };
    }
}
