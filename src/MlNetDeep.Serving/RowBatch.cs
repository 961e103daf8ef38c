using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace MlNetDeep.Serving;

/// <summary>
/// Rows of a request as an in-memory IDataView with the model's input schema: the columns a request carries, and
/// missing values for the input columns the model does not need. Read by one cursor, in order.
/// </summary>
internal sealed class RowBatch : IDataView
{
    private readonly IColumnValues[] _columns;

    private RowBatch(DataViewSchema schema, IColumnValues[] columns, int count)
    {
        Schema = schema;
        _columns = columns;
        Count = count;
    }

    public int Count { get; }
    public DataViewSchema Schema { get; }
    public bool CanShuffle => false;
    public long? GetRowCount() => Count;

    /// <summary>Parses JSON objects (one per row) against the model's schema; a wrong row is a <see cref="RequestException"/> naming it.</summary>
    public static RowBatch FromJson(IReadOnlyList<JsonElement> rows, ModelSchema schema, int firstRowNumber = 0)
    {
        var columns = new IColumnValues[schema.Input.Count];
        var fields = schema.Inputs.ToDictionary(f => f.Name);
        for (int c = 0; c < schema.Input.Count; c++)
        {
            var column = schema.Input[c];
            columns[c] = ColumnValues.Create(column.Type, rows.Count);
            if (column.IsHidden || !fields.TryGetValue(column.Name, out var field)) continue;
            for (int r = 0; r < rows.Count; r++)
            {
                if (rows[r].ValueKind != JsonValueKind.Object)
                    throw new RequestException($"Row {firstRowNumber + r} is {rows[r].ValueKind}, not a JSON object of columns.", "rows");
                if (rows[r].TryGetProperty(column.Name, out var value) && value.ValueKind != JsonValueKind.Null)
                    columns[c].Set(r, value, column.Name, firstRowNumber + r);
                else if (field.Required)
                    throw new RequestException($"Row {firstRowNumber + r} lacks column '{column.Name}' ({field.Type}), which the model needs.", column.Name);
            }
        }
        if (rows.Count > 0)
        {
            var known = schema.Input.Select(c => c.Name).ToHashSet();
            foreach (var property in rows[0].EnumerateObject())
                if (!known.Contains(property.Name))
                    throw new RequestException($"Row {firstRowNumber} has column '{property.Name}', which the model does not know. Its columns: {string.Join(", ", schema.Inputs.Select(f => f.Name))}.", property.Name);
        }
        return new RowBatch(schema.Input, columns, rows.Count);
    }

    /// <summary>One batch holding the rows of several, in order (micro-batching).</summary>
    public static RowBatch Concat(IReadOnlyList<RowBatch> batches)
    {
        if (batches.Count == 1) return batches[0];
        var schema = batches[0].Schema;
        var columns = new IColumnValues[schema.Count];
        for (int c = 0; c < columns.Length; c++) columns[c] = batches[0]._columns[c].Concat(batches.Select(b => b._columns[c]).ToList());
        return new RowBatch(schema, columns, batches.Sum(b => b.Count));
    }

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
        new Cursor(this, columnsNeeded.Select(c => c.Index).ToHashSet());

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    private sealed class Cursor(RowBatch batch, HashSet<int> active) : DataViewRowCursor
    {
        private int _position = -1;
        public override DataViewSchema Schema => batch.Schema;
        public override long Position => _position;
        public override long Batch => 0;
        public override bool IsColumnActive(DataViewSchema.Column column) => active.Contains(column.Index);
        public override bool MoveNext() => ++_position < batch.Count;
        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)_position, 0);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) =>
            batch._columns[column.Index].Getter<TValue>(() => _position, column.Name);
    }
}

/// <summary>The values of one column for every row of a batch.</summary>
internal interface IColumnValues
{
    void Set(int row, JsonElement value, string column, int rowNumber);
    IColumnValues Concat(IReadOnlyList<IColumnValues> parts);
    ValueGetter<TValue> Getter<TValue>(Func<int> position, string column);
}

internal static class ColumnValues
{
    public static IColumnValues Create(DataViewType type, int rows) => type switch
    {
        VectorDataViewType { ItemType: var item } v when item == NumberDataViewType.Single => new Vector<float>(rows, v.Size, ReadSingle, float.NaN),
        VectorDataViewType { ItemType: var item } v when item == NumberDataViewType.Double => new Vector<double>(rows, v.Size, ReadDouble, double.NaN),
        VectorDataViewType { ItemType: var item } v when item == NumberDataViewType.Int32 => new Vector<int>(rows, v.Size, ReadInt32, 0),
        VectorDataViewType v => new Vector<float>(rows, v.Size, (e, c, r) => throw Unsupported(c, type), 0f),
        _ when type == NumberDataViewType.Single => new Scalar<float>(rows, ReadSingle, float.NaN),
        _ when type == NumberDataViewType.Double => new Scalar<double>(rows, ReadDouble, double.NaN),
        _ when type == NumberDataViewType.Int32 => new Scalar<int>(rows, ReadInt32, 0),
        _ when type == NumberDataViewType.Int64 => new Scalar<long>(rows, (e, c, r) => e.TryGetInt64(out var v) ? v : throw NotA(c, r, "whole number"), 0),
        _ when type == NumberDataViewType.UInt32 => new Scalar<uint>(rows, ReadUInt32, 0u),
        _ when type == BooleanDataViewType.Instance => new Scalar<bool>(rows, (e, c, r) => e.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw NotA(c, r, "true or false"),
        }, false),
        _ when type == TextDataViewType.Instance => new Scalar<ReadOnlyMemory<char>>(rows,
            (e, c, r) => e.ValueKind == JsonValueKind.String ? e.GetString().AsMemory() : throw NotA(c, r, "string"), ReadOnlyMemory<char>.Empty),
        KeyDataViewType key when key.RawType == typeof(uint) => new Scalar<uint>(rows, (e, c, r) =>
        {
            uint value = ReadUInt32(e, c, r);
            return value <= key.Count ? value : throw new RequestException($"Row {r}: '{c}' is key {value}, beyond the {key.Count} keys of the column.", c);
        }, 0u),
        _ => new Scalar<float>(rows, (e, c, r) => throw Unsupported(c, type), 0f),
    };

    private static float ReadSingle(JsonElement e, string column, int row) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetSingle(out var v) && float.IsFinite(v) ? v : throw NotA(column, row, "finite number");

    private static double ReadDouble(JsonElement e, string column, int row) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out var v) && double.IsFinite(v) ? v : throw NotA(column, row, "finite number");

    private static int ReadInt32(JsonElement e, string column, int row) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out var v) ? v : throw NotA(column, row, "whole number");

    private static uint ReadUInt32(JsonElement e, string column, int row) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetUInt32(out var v) ? v : throw NotA(column, row, "whole number >= 0");

    private static RequestException NotA(string column, int row, string what) => new($"Row {row}: '{column}' must be a {what}.", column);

    private static RequestException Unsupported(string column, DataViewType type) => new($"Column '{column}' ({type}) cannot be given in a request.", column);

    private sealed class Scalar<T> : IColumnValues
    {
        private readonly Func<JsonElement, string, int, T> _read;
        private readonly T[] _values;

        public Scalar(int rows, Func<JsonElement, string, int, T> read, T missing) : this(Enumerable.Repeat(missing, rows).ToArray(), read) { }

        private Scalar(T[] values, Func<JsonElement, string, int, T> read)
        {
            _values = values;
            _read = read;
        }

        public void Set(int row, JsonElement value, string column, int rowNumber) => _values[row] = _read(value, column, rowNumber);

        public IColumnValues Concat(IReadOnlyList<IColumnValues> parts) => new Scalar<T>(parts.Cast<Scalar<T>>().SelectMany(p => p._values).ToArray(), _read);

        public ValueGetter<TValue> Getter<TValue>(Func<int> position, string column)
        {
            ValueGetter<T> getter = (ref T value) => value = _values[position()];
            return getter as ValueGetter<TValue> ?? throw new InvalidOperationException($"Column '{column}' holds {typeof(T).Name}, not {typeof(TValue).Name}.");
        }
    }

    private sealed class Vector<T> : IColumnValues
    {
        private readonly Func<JsonElement, string, int, T> _read;
        private readonly T[][] _values;
        private readonly int _size;

        public Vector(int rows, int size, Func<JsonElement, string, int, T> read, T missing)
            : this(Enumerable.Range(0, rows).Select(_ => Enumerable.Repeat(missing, size).ToArray()).ToArray(), size, read) { }

        private Vector(T[][] values, int size, Func<JsonElement, string, int, T> read)
        {
            _values = values;
            _size = size;
            _read = read;
        }

        public void Set(int row, JsonElement value, string column, int rowNumber)
        {
            if (value.ValueKind != JsonValueKind.Array)
                throw new RequestException($"Row {rowNumber}: '{column}' must be an array of {_size} numbers, not {value.ValueKind}.", column);
            int length = value.GetArrayLength();
            if (length != _size)
                throw new RequestException($"Row {rowNumber}: '{column}' has {length} values; the model needs {_size}.", column);
            var target = _values[row];
            int i = 0;
            foreach (var item in value.EnumerateArray()) target[i++] = _read(item, column, rowNumber);
        }

        public IColumnValues Concat(IReadOnlyList<IColumnValues> parts) =>
            new Vector<T>(parts.Cast<Vector<T>>().SelectMany(p => p._values).ToArray(), _size, _read);

        public ValueGetter<TValue> Getter<TValue>(Func<int> position, string column)
        {
            ValueGetter<VBuffer<T>> getter = (ref VBuffer<T> value) =>
            {
                var source = _values[position()];
                var editor = VBufferEditor.Create(ref value, source.Length);
                source.CopyTo(editor.Values);
                value = editor.Commit();
            };
            return getter as ValueGetter<TValue> ?? throw new InvalidOperationException($"Column '{column}' holds vectors of {typeof(T).Name}, not {typeof(TValue).Name}.");
        }
    }
}
