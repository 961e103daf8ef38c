using Microsoft.ML;
using Microsoft.ML.Data;

namespace MlNetDeep.Serving;

/// <summary>
/// A CSV file (comma-separated, a header row) as rows for a model, read by ML.NET's TextLoader: a scalar input column
/// by its name, a vector column of n values as n header columns <c>Name.0</c> .. <c>Name.(n-1)</c>. Only the columns the
/// model needs are read; a value that does not parse is missing (NaN), as TextLoader makes it.
/// </summary>
public static class CsvRows
{
    public static IDataView Load(MLContext ml, string path, ModelSchema schema) => Loader(ml, path, schema, hasHeader: true).Load(path);

    /// <summary>
    /// The rows in bytes [<paramref name="start"/>, <paramref name="end"/>) of the file, which start and end at line
    /// boundaries and hold no header; the columns are found in the file's header row, as <see cref="Load(MLContext, string, ModelSchema)"/> does.
    /// </summary>
    public static IDataView Load(MLContext ml, string path, ModelSchema schema, long start, long end) =>
        Loader(ml, path, schema, hasHeader: false).Load(new ByteRangeSource(path, start, end));

    private static TextLoader Loader(MLContext ml, string path, ModelSchema schema, bool hasHeader)
    {
        string header;
        using (var reader = new StreamReader(path)) header = reader.ReadLine() ?? throw new RequestException("The CSV is empty: it needs a header row naming the columns.", "header");
        var names = header.Split(',').Select(n => n.Trim().Trim('"')).ToList();
        var index = new Dictionary<string, int>();
        for (int i = 0; i < names.Count; i++)
            if (!index.TryAdd(names[i], i)) throw new RequestException($"The CSV header names column '{names[i]}' twice.", names[i]);

        var columns = new List<TextLoader.Column>();
        foreach (var field in schema.Inputs.Where(f => f.Required))
        {
            var kind = Kind(schema.Input[field.Name].Type, field.Name);
            if (field.Size == 0)
            {
                if (!index.TryGetValue(field.Name, out int at))
                    throw new RequestException($"The CSV has no column '{field.Name}' ({field.Type}), which the model needs. Its header: {Shorten(names)}.", field.Name);
                columns.Add(new TextLoader.Column(field.Name, kind, at));
                continue;
            }
            var positions = new int[field.Size];
            for (int i = 0; i < field.Size; i++)
                if (!index.TryGetValue($"{field.Name}.{i}", out positions[i]))
                    throw new RequestException($"The CSV lacks column '{field.Name}.{i}': the model needs '{field.Name}' as {field.Size} columns {field.Name}.0 .. {field.Name}.{field.Size - 1}.", field.Name);
            var ranges = new List<TextLoader.Range>();
            int start = 0;
            for (int i = 1; i <= field.Size; i++)
                if (i == field.Size || positions[i] != positions[i - 1] + 1)
                {
                    ranges.Add(new TextLoader.Range(positions[start], positions[i - 1]));
                    start = i;
                }
            columns.Add(new TextLoader.Column(field.Name, kind, ranges.ToArray()));
        }
        return ml.Data.CreateTextLoader(new TextLoader.Options { Separators = [','], HasHeader = hasHeader, AllowQuoting = true, Columns = columns.ToArray() });
    }

    private static DataKind Kind(DataViewType type, string name)
    {
        var item = type is VectorDataViewType v ? v.ItemType : type;
        if (item == NumberDataViewType.Single) return DataKind.Single;
        if (item == NumberDataViewType.Double) return DataKind.Double;
        if (item == NumberDataViewType.Int32) return DataKind.Int32;
        if (item == NumberDataViewType.Int64) return DataKind.Int64;
        if (item == NumberDataViewType.UInt32) return DataKind.UInt32;
        if (item == BooleanDataViewType.Instance) return DataKind.Boolean;
        if (item == TextDataViewType.Instance) return DataKind.String;
        throw new RequestException($"Column '{name}' ({type}) cannot be read from a CSV.", name);
    }

    private static string Shorten(List<string> names) => names.Count <= 8 ? string.Join(", ", names) : string.Join(", ", names.Take(8)) + $", ... ({names.Count} columns)";
}

/// <summary>A byte range of a file as TextLoader's one source.</summary>
internal sealed class ByteRangeSource(string path, long start, long end) : Microsoft.ML.Data.IMultiStreamSource
{
    public int Count => 1;
    public string? GetPathOrNull(int index) => path;
    public Stream Open(int index) => new RangeStream(path, start, end);
    public TextReader OpenTextReader(int index) => new StreamReader(Open(index));

    private sealed class RangeStream : Stream
    {
        private readonly FileStream _file;
        private readonly long _end;

        public RangeStream(string path, long start, long end)
        {
            _file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            _file.Seek(start, SeekOrigin.Begin);
            _end = Math.Min(end, _file.Length);
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            long left = _end - _file.Position;
            return left <= 0 ? 0 : _file.Read(buffer, offset, (int)Math.Min(count, left));
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
            if (disposing) _file.Dispose();
            base.Dispose(disposing);
        }
    }
}
