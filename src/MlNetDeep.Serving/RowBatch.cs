using System.Globalization;
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
    public static RowBatch FromJson(IReadOnlyList<JsonElement> rows, ModelSchema schema, int firstRowNumber = 0) =>
        FromJson(rows, schema, r => $"Row {firstRowNumber + r}");

    /// <summary>
    /// Parses JSON objects (one per row) against the model's schema. Every row is checked whole: a column the model
    /// does not know, a column given twice, a missing required column or a value of the wrong type is a
    /// <see cref="RequestException"/> naming the row (<paramref name="rowName"/> of its index: "Row 3", "Line 7") and the column.
    /// </summary>
    public static RowBatch FromJson(IReadOnlyList<JsonElement> rows, ModelSchema schema, Func<int, string> rowName)
    {
        var input = schema.Input;
        var columns = new IColumnValues?[input.Count];
        var fields = schema.Inputs.ToDictionary(f => f.Name);
        // Every visible input column by name (the last of a name wins, as in the schema); values are kept for the columns a request can give.
        var byName = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var column in input.Where(c => !c.IsHidden)) byName[column.Name] = column.Index;
        var required = new List<int>();
        foreach (var (name, index) in byName)
        {
            if (!fields.TryGetValue(name, out var field)) continue;
            columns[index] = ColumnValues.Create(input[index].Type, rows.Count);
            if (field.Required) required.Add(index);
        }
        var seen = new int[input.Count]; // r + 1 once row r names the column
        var present = new int[input.Count]; // r + 1 once row r gives it a value
        for (int r = 0; r < rows.Count; r++)
        {
            var row = rows[r];
            if (row.ValueKind != JsonValueKind.Object)
                throw new RequestException($"{rowName(r)} is {row.ValueKind}, not a JSON object of columns.", "rows");
            string? unknown = null;
            foreach (var property in row.EnumerateObject())
            {
                if (!byName.TryGetValue(property.Name, out int c))
                {
                    unknown ??= property.Name;
                    continue;
                }
                if (seen[c] == r + 1) throw new RequestException($"{rowName(r)} has column '{property.Name}' twice.", property.Name);
                seen[c] = r + 1;
                if (property.Value.ValueKind == JsonValueKind.Null) continue; // null: missing
                columns[c]?.Set(r, property.Value, property.Name, rowName(r));
                present[c] = r + 1;
            }
            foreach (int c in required)
                if (present[c] != r + 1)
                    throw new RequestException($"{rowName(r)} lacks column '{input[c].Name}' ({fields[input[c].Name].Type}), which the model needs.", input[c].Name);
            // A missing column first (a wrong name usually means one), then a column the model does not know.
            if (unknown is not null)
                throw new RequestException($"{rowName(r)} has column '{unknown}', which the model does not know. Its columns: {string.Join(", ", schema.Inputs.Select(f => f.Name))}.", unknown);
        }
        for (int c = 0; c < columns.Length; c++) columns[c] ??= ColumnValues.Create(input[c].Type, rows.Count);
        return new RowBatch(input, columns!, rows.Count);
    }

    /// <summary>
    /// Rows of a CSV (see <see cref="CsvRows"/>): each record's values for the columns of <paramref name="layout"/>
    /// parsed to the model's types; a value that does not parse is a <see cref="RequestException"/> naming the line and column.
    /// </summary>
    internal static RowBatch FromCsv(IReadOnlyList<CsvRecord> records, CsvLayout layout, ModelSchema schema)
    {
        var input = schema.Input;
        var columns = new IColumnValues[input.Count];
        for (int c = 0; c < input.Count; c++) columns[c] = ColumnValues.Create(input[c].Type, records.Count);
        for (int r = 0; r < records.Count; r++)
        {
            var record = records[r];
            string name = $"Line {record.Line}";
            if (record.Fields.Count != layout.HeaderCount)
                throw new RequestException($"{name} has {record.Fields.Count} values; the header has {layout.HeaderCount} columns.", "rows");
            foreach (var (column, positions, labels) in layout.Columns)
                for (int i = 0; i < positions.Length; i++)
                    columns[column].SetText(r, i, record.Fields[positions[i]], labels[i], name);
        }
        return new RowBatch(input, columns, records.Count);
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
    void Set(int row, JsonElement value, string column, string rowName);
    void SetText(int row, int item, string text, string column, string rowName);
    IColumnValues Concat(IReadOnlyList<IColumnValues> parts);
    ValueGetter<TValue> Getter<TValue>(Func<int> position, string column);
}

internal static class ColumnValues
{
    /// <summary>The values of a column of <paramref name="type"/> for <paramref name="rows"/> rows, missing until set.</summary>
    public static IColumnValues Create(DataViewType type, int rows)
    {
        var item = type is VectorDataViewType vector ? vector.ItemType : type;
        int size = type is VectorDataViewType { IsKnownSize: true } v ? v.Size : 0;
        if (!ModelSchema.IsSupported(type)) return Column(rows, size, 0f, Unreadable<float>(type), UnreadableText<float>(type));
        if (item == NumberDataViewType.Single) return Column(rows, size, float.NaN, ReadSingle, ParseSingle);
        if (item == NumberDataViewType.Double) return Column(rows, size, double.NaN, ReadDouble, ParseDouble);
        if (item == NumberDataViewType.Int32) return Column(rows, size, 0, ReadInt32, (t, c, r) => int.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out var x) ? x : throw NotA(c, r, "whole number", t));
        if (item == NumberDataViewType.Int64)
            return Column(rows, size, 0L, (e, c, r) => e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out var x) ? x : throw NotA(c, r, "whole number"),
                (t, c, r) => long.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out var x) ? x : throw NotA(c, r, "whole number", t));
        if (item == NumberDataViewType.UInt32) return Column(rows, size, 0u, ReadUInt32, ParseUInt32);
        if (item == BooleanDataViewType.Instance)
            return Column(rows, size, false, (e, c, r) => e.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw NotA(c, r, "true or false"),
            }, (t, c, r) => t.Trim().ToLowerInvariant() switch
            {
                "true" or "1" => true,
                "false" or "0" => false,
                _ => throw NotA(c, r, "true or false", t),
            });
        if (item == TextDataViewType.Instance)
            return Column(rows, size, ReadOnlyMemory<char>.Empty, (e, c, r) => e.ValueKind == JsonValueKind.String ? e.GetString().AsMemory() : throw NotA(c, r, "string"), (t, c, r) => t.AsMemory());
        if (item is KeyDataViewType key)
        {
            uint Check(uint value, string c, string r) => value <= key.Count ? value : throw new RequestException($"{r}: '{c}' is key {value}, beyond the {key.Count} keys of the column.", c);
            return Column(rows, size, 0u, (e, c, r) => Check(ReadUInt32(e, c, r), c, r), (t, c, r) => Check(ParseUInt32(t, c, r), c, r));
        }
        return Column(rows, size, 0f, Unreadable<float>(type), UnreadableText<float>(type));
    }

    private static IColumnValues Column<T>(int rows, int size, T missing, Func<JsonElement, string, string, T> read, Func<string, string, string, T> parse) =>
        size > 0 ? new Vector<T>(rows, size, read, parse, missing) : new Scalar<T>(rows, read, parse, missing);

    private static Func<JsonElement, string, string, T> Unreadable<T>(DataViewType type) => (e, c, r) => throw Unsupported(c, type);
    private static Func<string, string, string, T> UnreadableText<T>(DataViewType type) => (e, c, r) => throw Unsupported(c, type);

    private static float ReadSingle(JsonElement e, string column, string row) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetSingle(out var v) && float.IsFinite(v) ? v : throw NotA(column, row, "finite number");

    private static double ReadDouble(JsonElement e, string column, string row) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out var v) && double.IsFinite(v) ? v : throw NotA(column, row, "finite number");

    private static int ReadInt32(JsonElement e, string column, string row) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out var v) ? v : throw NotA(column, row, "whole number");

    private static uint ReadUInt32(JsonElement e, string column, string row) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetUInt32(out var v) ? v : throw NotA(column, row, "whole number >= 0");

    private static float ParseSingle(string text, string column, string row) =>
        float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && float.IsFinite(v) ? v : throw NotA(column, row, "finite number", text);

    private static double ParseDouble(string text, string column, string row) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v) ? v : throw NotA(column, row, "finite number", text);

    private static uint ParseUInt32(string text, string column, string row) =>
        uint.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : throw NotA(column, row, "whole number >= 0", text);

    private static RequestException NotA(string column, string row, string what) => new($"{row}: '{column}' must be a {what}.", column);

    private static RequestException NotA(string column, string row, string what, string text) =>
        new(text.Length == 0 ? $"{row}: '{column}' is empty; it must be a {what}." : $"{row}: '{column}' is '{Shorten(text)}', not a {what}.", column);

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..40] + "...";

    private static RequestException Unsupported(string column, DataViewType type) => new($"Column '{column}' ({type}) cannot be given in a request.", column);

    private sealed class Scalar<T> : IColumnValues
    {
        private readonly Func<JsonElement, string, string, T> _read;
        private readonly Func<string, string, string, T> _parse;
        private readonly T[] _values;

        public Scalar(int rows, Func<JsonElement, string, string, T> read, Func<string, string, string, T> parse, T missing)
            : this(Enumerable.Repeat(missing, rows).ToArray(), read, parse) { }

        private Scalar(T[] values, Func<JsonElement, string, string, T> read, Func<string, string, string, T> parse)
        {
            _values = values;
            _read = read;
            _parse = parse;
        }

        public void Set(int row, JsonElement value, string column, string rowName) => _values[row] = _read(value, column, rowName);

        public void SetText(int row, int item, string text, string column, string rowName) => _values[row] = _parse(text, column, rowName);

        public IColumnValues Concat(IReadOnlyList<IColumnValues> parts) => new Scalar<T>(parts.Cast<Scalar<T>>().SelectMany(p => p._values).ToArray(), _read, _parse);

        public ValueGetter<TValue> Getter<TValue>(Func<int> position, string column)
        {
            ValueGetter<T> getter = (ref T value) => value = _values[position()];
            return getter as ValueGetter<TValue> ?? throw new InvalidOperationException($"Column '{column}' holds {typeof(T).Name}, not {typeof(TValue).Name}.");
        }
    }

    private sealed class Vector<T> : IColumnValues
    {
        private readonly Func<JsonElement, string, string, T> _read;
        private readonly Func<string, string, string, T> _parse;
        private readonly T[][] _values;
        private readonly int _size;

        public Vector(int rows, int size, Func<JsonElement, string, string, T> read, Func<string, string, string, T> parse, T missing)
            : this(Enumerable.Range(0, rows).Select(_ => Enumerable.Repeat(missing, size).ToArray()).ToArray(), size, read, parse) { }

        private Vector(T[][] values, int size, Func<JsonElement, string, string, T> read, Func<string, string, string, T> parse)
        {
            _values = values;
            _size = size;
            _read = read;
            _parse = parse;
        }

        public void Set(int row, JsonElement value, string column, string rowName)
        {
            if (value.ValueKind != JsonValueKind.Array)
                throw new RequestException($"{rowName}: '{column}' must be an array of {_size} numbers, not {value.ValueKind}.", column);
            int length = value.GetArrayLength();
            if (length != _size)
                throw new RequestException($"{rowName}: '{column}' has {length} values; the model needs {_size}.", column);
            var target = _values[row];
            int i = 0;
            foreach (var item in value.EnumerateArray()) target[i++] = _read(item, column, rowName);
        }

        public void SetText(int row, int item, string text, string column, string rowName) => _values[row][item] = _parse(text, column, rowName);

        public IColumnValues Concat(IReadOnlyList<IColumnValues> parts) =>
            new Vector<T>(parts.Cast<Vector<T>>().SelectMany(p => p._values).ToArray(), _size, _read, _parse);

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
