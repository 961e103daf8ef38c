using System.Text;
using System.Text.Json;
using Microsoft.ML.Data;

namespace MlNetDeep.Serving;

/// <summary>Rows of an upload or a file, read a chunk at a time.</summary>
internal interface IRowSource
{
    /// <summary>The next rows (at most <paramref name="maxRows"/>), or null at the end.</summary>
    ValueTask<RowBatch?> ReadAsync(int maxRows, CancellationToken cancellation);
}

/// <summary>
/// Lines of text from a stream, one at a time, each at most a set number of characters (so that an upload without line
/// breaks cannot fill the memory), counted from 1. A line ends at '\n' (a '\r' before it is dropped).
/// </summary>
internal sealed class LineReader(TextReader reader, int maxChars, int firstLine = 1)
{
    private readonly char[] _buffer = new char[16 * 1024];
    private readonly StringBuilder _line = new();
    private int _start, _end;

    /// <summary>The number of the line last returned (1 for the first).</summary>
    public int LineNumber { get; private set; } = firstLine - 1;

    public async ValueTask<string?> ReadLineAsync(CancellationToken cancellation)
    {
        _line.Clear();
        while (true)
        {
            if (TakeLine() is { } line) return line;
            int read = await reader.ReadAsync(_buffer.AsMemory(), cancellation).ConfigureAwait(false);
            if (read == 0) return _line.Length > 0 ? Finish() : null;
            _start = 0;
            _end = read;
        }
    }

    public string? ReadLine()
    {
        _line.Clear();
        while (true)
        {
            if (TakeLine() is { } line) return line;
            int read = reader.Read(_buffer.AsSpan());
            if (read == 0) return _line.Length > 0 ? Finish() : null;
            _start = 0;
            _end = read;
        }
    }

    /// <summary>The line ending in the buffer, or null after keeping what the buffer holds of it.</summary>
    private string? TakeLine()
    {
        int newline = Array.IndexOf(_buffer, '\n', _start, _end - _start);
        int end = newline >= 0 ? newline : _end;
        if (_line.Length + (end - _start) > maxChars)
            throw new RequestException($"Line {LineNumber + 1} is longer than {maxChars:N0} characters.", "body");
        _line.Append(_buffer, _start, end - _start);
        if (newline < 0)
        {
            _start = _end = 0;
            return null;
        }
        _start = newline + 1;
        return Finish();
    }

    private string Finish()
    {
        LineNumber++;
        if (_line.Length > 0 && _line[^1] == '\r') _line.Length--;
        return _line.ToString();
    }
}

/// <summary>One CSV record: the line it starts on and its values (quotes removed).</summary>
internal sealed record CsvRecord(int Line, List<string> Fields);

/// <summary>
/// CSV records (RFC 4180: comma-separated; a value in double quotes may hold commas, line breaks and doubled quotes),
/// the same rules for the header and the rows. Blank lines between records are skipped.
/// </summary>
internal sealed class CsvRecordReader(LineReader lines, int maxChars)
{
    private readonly StringBuilder _field = new();
    private List<string> _fields = [];
    private bool _inQuotes, _afterQuote;
    private int _chars;

    public int LineNumber => lines.LineNumber;

    public async ValueTask<CsvRecord?> ReadAsync(CancellationToken cancellation)
    {
        int start = -1;
        while (await lines.ReadLineAsync(cancellation).ConfigureAwait(false) is { } line)
            if (Feed(line, ref start) is { } record) return record;
        return End(start);
    }

    public CsvRecord? Read()
    {
        int start = -1;
        while (lines.ReadLine() is { } line)
            if (Feed(line, ref start) is { } record) return record;
        return End(start);
    }

    private CsvRecord? Feed(string line, ref int start)
    {
        if (start < 0)
        {
            if (string.IsNullOrWhiteSpace(line)) return null;
            start = lines.LineNumber;
            _chars = 0;
        }
        _chars += line.Length;
        if (_chars > maxChars) throw new RequestException($"Line {start}: the record is longer than {maxChars:N0} characters (a quote left open?).", "rows");
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (_inQuotes)
            {
                if (c != '"') _field.Append(c);
                else if (i + 1 < line.Length && line[i + 1] == '"') { _field.Append('"'); i++; }
                else { _inQuotes = false; _afterQuote = true; }
            }
            else if (c == ',') EndField();
            else if (_afterQuote)
            {
                if (!char.IsWhiteSpace(c))
                    throw new RequestException($"Line {start}: value {_fields.Count + 1} has text after its closing quote.", "rows");
            }
            else if (c == '"' && string.IsNullOrWhiteSpace(_field.ToString())) { _field.Clear(); _inQuotes = true; }
            else _field.Append(c);
        }
        if (_inQuotes)
        {
            _field.Append('\n');
            return null;
        }
        EndField();
        var record = new CsvRecord(start, _fields);
        _fields = [];
        return record;
    }

    private CsvRecord? End(int start)
    {
        if (start >= 0) throw new RequestException($"Line {start}: a quoted value is not closed before the end of the input.", "rows");
        return null;
    }

    private void EndField()
    {
        _fields.Add(_field.ToString());
        _field.Clear();
        _afterQuote = false;
    }
}

/// <summary>Where each input column the model needs is found in a CSV's records.</summary>
internal sealed class CsvLayout(IReadOnlyList<string> header, IReadOnlyList<(int Column, int[] Positions, string[] Labels)> columns)
{
    public IReadOnlyList<string> Header { get; } = header;
    public int HeaderCount => Header.Count;

    /// <summary>Each needed input column (its index in the model's input schema), the positions of its values and their header names.</summary>
    public IReadOnlyList<(int Column, int[] Positions, string[] Labels)> Columns { get; } = columns;
}

/// <summary>
/// A CSV (comma-separated, a header row) as rows for a model: a scalar input column by its name, a vector column of n
/// values as n header columns <c>Name.0</c> .. <c>Name.(n-1)</c>; other columns are allowed and not read. The header
/// is read with the same quoting rules as the rows. Every row is checked: a row with more or fewer values than the
/// header, or a needed value that does not parse (or is empty), is a <see cref="RequestException"/> naming its line
/// and column, never a silent missing value.
/// </summary>
internal sealed class CsvRows : IRowSource, IDisposable
{
    private readonly CsvRecordReader _records;
    private readonly ModelSchema _schema;
    private readonly IDisposable? _owned;

    private CsvRows(CsvRecordReader records, CsvLayout layout, ModelSchema schema, IDisposable? owned = null)
    {
        _records = records;
        Layout = layout;
        _schema = schema;
        _owned = owned;
    }

    /// <summary>Reads the header of the CSV file at <paramref name="path"/> and checks it against the model (the columns it needs, no name twice).</summary>
    public static CsvLayout ReadLayout(string path, ModelSchema schema, int maxLineChars)
    {
        using var reader = new StreamReader(path, new UTF8Encoding(false), detectEncodingFromByteOrderMarks: true);
        return Open(reader, schema, maxLineChars).Layout;
    }

    /// <summary>
    /// The rows in bytes [<paramref name="start"/>, <paramref name="end"/>) of the CSV file at <paramref name="path"/>,
    /// which start and end at line boundaries and hold no header, the first of them line <paramref name="firstLine"/>
    /// of the file (errors name the file's line numbers); the columns are found in the file's header row, read with the
    /// same rules. A part of a file scored on its own, e.g. one shard of a cluster job.
    /// </summary>
    public static CsvRows OpenRange(string path, ModelSchema schema, long start, long end, long firstLine, int maxLineChars)
    {
        if (start < 0 || end < start) throw new ArgumentOutOfRangeException(nameof(start), $"Bytes [{start}, {end}) are not a range of the file.");
        var layout = ReadLayout(path, schema, maxLineChars);
        var (records, reader) = OpenRecords(path, start, end, firstLine, maxLineChars);
        return new CsvRows(records, layout, schema, reader);
    }

    /// <summary>
    /// The CSV records in bytes [<paramref name="start"/>, <paramref name="end"/>) of <paramref name="path"/>, read with
    /// the reader's rules, the first on line <paramref name="firstLine"/>; the caller disposes the returned reader.
    /// </summary>
    internal static (CsvRecordReader Records, StreamReader Reader) OpenRecords(string path, long start, long end, long firstLine, int maxLineChars)
    {
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        try
        {
            stream.Seek(start, SeekOrigin.Begin);
            var reader = new StreamReader(new BoundedStream(stream, end - start), new UTF8Encoding(false), detectEncodingFromByteOrderMarks: false);
            return (new CsvRecordReader(new LineReader(reader, maxLineChars, checked((int)firstLine)), maxLineChars), reader);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    public void Dispose() => _owned?.Dispose();

    public CsvLayout Layout { get; }

    public static async Task<CsvRows> OpenAsync(TextReader reader, ModelSchema schema, int maxLineChars, CancellationToken cancellation)
    {
        var records = new CsvRecordReader(new LineReader(reader, maxLineChars), maxLineChars);
        var header = await records.ReadAsync(cancellation).ConfigureAwait(false);
        return new CsvRows(records, LayoutOf(header, schema), schema);
    }

    public static CsvRows Open(TextReader reader, ModelSchema schema, int maxLineChars)
    {
        var records = new CsvRecordReader(new LineReader(reader, maxLineChars), maxLineChars);
        return new CsvRows(records, LayoutOf(records.Read(), schema), schema);
    }

    public async ValueTask<RowBatch?> ReadAsync(int maxRows, CancellationToken cancellation)
    {
        var chunk = new List<CsvRecord>();
        while (chunk.Count < maxRows && await _records.ReadAsync(cancellation).ConfigureAwait(false) is { } record) chunk.Add(record);
        return chunk.Count == 0 ? null : RowBatch.FromCsv(chunk, Layout, _schema);
    }

    public RowBatch? Read(int maxRows)
    {
        var chunk = new List<CsvRecord>();
        while (chunk.Count < maxRows && _records.Read() is { } record) chunk.Add(record);
        return chunk.Count == 0 ? null : RowBatch.FromCsv(chunk, Layout, _schema);
    }

    private static CsvLayout LayoutOf(CsvRecord? header, ModelSchema schema)
    {
        if (header is null) throw new RequestException("The CSV is empty: it needs a header row naming the columns.", "header");
        var names = header.Fields.Select(n => n.Trim()).ToList();
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < names.Count; i++)
            if (!index.TryAdd(names[i], i))
                throw new RequestException($"The CSV header names column '{names[i]}' twice (columns {index[names[i]] + 1} and {i + 1}).", names[i]);

        var columns = new List<(int, int[], string[])>();
        foreach (var field in schema.Inputs.Where(f => f.Required))
        {
            var type = schema.Input[field.Name].Type;
            CheckReadable(type, field.Name);
            if (field.Size == 0)
            {
                if (!index.TryGetValue(field.Name, out int at))
                    throw new RequestException($"The CSV has no column '{field.Name}' ({field.Type}), which the model needs. Its header: {Shorten(names)}.", field.Name);
                columns.Add((schema.Input[field.Name].Index, [at], [field.Name]));
                continue;
            }
            var positions = new int[field.Size];
            var labels = new string[field.Size];
            for (int i = 0; i < field.Size; i++)
            {
                labels[i] = $"{field.Name}.{i}";
                if (!index.TryGetValue(labels[i], out positions[i]))
                    throw new RequestException($"The CSV lacks column '{field.Name}.{i}': the model needs '{field.Name}' as {field.Size} columns {field.Name}.0 .. {field.Name}.{field.Size - 1}.", field.Name);
            }
            columns.Add((schema.Input[field.Name].Index, positions, labels));
        }
        return new CsvLayout(names, columns);
    }

    private static void CheckReadable(DataViewType type, string name)
    {
        var item = type is VectorDataViewType v ? v.ItemType : type;
        if (item is KeyDataViewType)
            throw new RequestException($"Column '{name}' ({type}) cannot be read from a CSV.", name);
    }

    private static string Shorten(List<string> names) => names.Count <= 8 ? string.Join(", ", names) : string.Join(", ", names.Take(8)) + $", ... ({names.Count} columns)";
}

/// <summary>JSON lines (one row object per line; blank lines are skipped) as rows for a model; errors name the line, counted from 1.</summary>
internal sealed class JsonLinesRows(TextReader reader, ModelSchema schema, int maxLineChars) : IRowSource
{
    private readonly LineReader _lines = new(reader, maxLineChars);

    public async ValueTask<RowBatch?> ReadAsync(int maxRows, CancellationToken cancellation)
    {
        var documents = new List<JsonDocument>();
        var numbers = new List<int>();
        try
        {
            while (documents.Count < maxRows && await _lines.ReadLineAsync(cancellation).ConfigureAwait(false) is { } line)
            {
                if (string.IsNullOrWhiteSpace(line)) continue;
                try { documents.Add(JsonDocument.Parse(line, new JsonDocumentOptions { MaxDepth = 16 })); }
                catch (JsonException e) { throw new RequestException($"Line {_lines.LineNumber} is not valid JSON: {e.Message}", "body"); }
                numbers.Add(_lines.LineNumber);
            }
            return documents.Count == 0 ? null : RowBatch.FromJson(documents.Select(d => d.RootElement).ToList(), schema, r => $"Line {numbers[r]}");
        }
        finally
        {
            foreach (var document in documents) document.Dispose();
        }
    }
}

/// <summary>Reads at most a given number of bytes of a stream (and disposes it).</summary>
internal sealed class BoundedStream(Stream inner, long length) : Stream
{
    private long _left = length;

    public override int Read(byte[] buffer, int offset, int count)
    {
        if (_left <= 0) return 0;
        int n = inner.Read(buffer, offset, (int)Math.Min(count, _left));
        _left -= n;
        return n;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }
}
