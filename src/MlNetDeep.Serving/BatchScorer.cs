using System.Globalization;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;

namespace MlNetDeep.Serving;

/// <summary>
/// Scores a file or an image folder with a saved model into a CSV, streaming: rows are read, scored in the model's
/// batches and written as they come, so the input may be larger than memory. Columns: a row number (CSV input) or the
/// image path and folder label (image folder), then each output column (a vector as Name.0 .. Name.(n-1)).
/// </summary>
public static class BatchScorer
{
    /// <summary>Rows of a CSV read, checked and scored at a time.</summary>
    internal const int ChunkRows = 1024;

    /// <summary>Longest line of a CSV input, in characters.</summary>
    internal const int MaxLineChars = 64 << 20;

    /// <summary>
    /// Scores <paramref name="input"/> (a .csv file, or a folder of images in one subfolder per class) into
    /// <paramref name="output"/>; returns the rows written. A CSV row that is malformed (more or fewer values than the
    /// header, a value that does not parse) stops the job with a <see cref="RequestException"/> naming its line and
    /// column. The output is written to a hidden temporary file beside it and renamed when complete; a failure or a
    /// cancellation deletes the temporary file.
    /// </summary>
    public static long Score(string modelPath, string input, string output, IProgress<long>? progress = null, CancellationToken cancellation = default)
    {
        var ml = new MLContext(seed: 1);
        var transformer = ml.Model.LoadDeep(modelPath, out var inputSchema);
        StreamReader? csvFile = null;
        try
        {
            var schema = ModelSchema.Of(transformer, inputSchema);
            Func<IDataView?> next;
            string[] keep;
            if (Directory.Exists(input))
            {
                if (!schema.Inputs.Any(f => f.Name == "ImagePath" && f.Required))
                    throw new InvalidOperationException($"The model reads {string.Join(", ", schema.Inputs.Where(f => f.Required).Select(f => $"'{f.Name}' ({f.Type})"))}, " +
                        "not an 'ImagePath' column: an image folder can only be scored by a pipeline that loads its images itself (LoadImages -> ...).");
                IDataView? images = ImageFolder.Scan(input, new ImageFolderOptions { MinimumClasses = 1 }).ToDataView(ml.Data);
                next = () => { var view = images; images = null; return view; };
                keep = ["ImagePath", "Label"];
            }
            else if (File.Exists(input))
            {
                csvFile = new StreamReader(input, new UTF8Encoding(false), detectEncodingFromByteOrderMarks: true);
                var rows = CsvRows.Open(csvFile, schema, MaxLineChars);
                next = () => rows.Read(ChunkRows);
                keep = [];
            }
            else throw new FileNotFoundException($"The input '{input}' is neither a CSV file nor a folder.", input);

            var folder = Path.GetDirectoryName(Path.GetFullPath(output))!;
            Directory.CreateDirectory(folder);
            var temporary = Path.Combine(folder, $".{Path.GetFileName(output)}.{Guid.NewGuid():N}.tmp");
            long written;
            try
            {
                using (var writer = new StreamWriter(temporary, false, new UTF8Encoding(false)))
                    written = WriteCsv(transformer, schema, next, keep, writer, progress, cancellation);
                File.Move(temporary, output, overwrite: true);
            }
            finally { File.Delete(temporary); }
            progress?.Report(written);
            return written;
        }
        finally
        {
            csvFile?.Dispose();
            LoadedModel.Free(transformer);
        }
    }

    /// <summary>
    /// Scores the chunks <paramref name="next"/> gives (null at the end) with <paramref name="transformer"/> and writes
    /// them as CSV to <paramref name="writer"/>: the header (also for no rows), then a line a row (the row number counted
    /// from 0, or the <paramref name="keep"/> columns, then each output column); returns the rows written.
    /// </summary>
    internal static long WriteCsv(ITransformer transformer, ModelSchema schema, Func<IDataView?> next, IReadOnlyList<string> keep, TextWriter writer,
        IProgress<long>? progress = null, CancellationToken cancellation = default)
    {
        bool header = false;
        long written = 0;
        while (true)
        {
            cancellation.ThrowIfCancellationRequested();
            var data = next();
            if (data is null && header) break;
            // An input with no rows still gets its header: the columns of an empty batch.
            var scored = transformer.Transform(data ?? RowBatch.FromJson([], schema));
            var outputs = schema.OutputColumns.Select(c => scored.Schema[c.Name]).ToList();
            var passed = keep.Select(name => scored.Schema[name]).ToList();
            if (!header)
            {
                var names = (passed.Count == 0 ? ["Row"] : passed.Select(c => c.Name)).Concat(outputs.SelectMany(HeaderNames));
                writer.WriteLine(string.Join(",", names.Select(Quote)));
                header = true;
            }
            if (data is null) break;
            using var cursor = scored.GetRowCursor(outputs.Concat(passed));
            var cells = passed.Concat(outputs).Select(c => CellWriter(cursor, c)).ToList();
            var line = new StringBuilder();
            while (cursor.MoveNext())
            {
                cancellation.ThrowIfCancellationRequested();
                line.Clear();
                if (passed.Count == 0) line.Append(written.ToString(CultureInfo.InvariantCulture));
                for (int i = 0; i < cells.Count; i++)
                {
                    if (i > 0 || passed.Count == 0) line.Append(',');
                    cells[i](line);
                }
                writer.WriteLine(line);
                if (++written % 1000 == 0) progress?.Report(written);
            }
        }
        return written;
    }

    private static IEnumerable<string> HeaderNames(DataViewSchema.Column column) =>
        column.Type is VectorDataViewType v ? Enumerable.Range(0, v.Size).Select(i => $"{column.Name}.{i}") : [column.Name];

    /// <summary>A CSV field: quoted (quotes doubled) when it holds a comma, a quote or a line break.</summary>
    internal static string Quote(string text) =>
        text.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + text.Replace("\"", "\"\"") + "\"" : text;

    private static Action<StringBuilder> CellWriter(DataViewRowCursor cursor, DataViewSchema.Column column)
    {
        var type = column.Type;
        if (type is VectorDataViewType { ItemType: var item } && item == NumberDataViewType.Single)
        {
            var getter = cursor.GetGetter<VBuffer<float>>(column);
            VBuffer<float> value = default;
            return line =>
            {
                getter(ref value);
                bool first = true;
                foreach (var v in value.DenseValues())
                {
                    if (!first) line.Append(',');
                    line.Append(v.ToString("R", CultureInfo.InvariantCulture));
                    first = false;
                }
            };
        }
        if (type == NumberDataViewType.Single) return Scalar<float>(cursor, column, v => v.ToString("R", CultureInfo.InvariantCulture));
        if (type == NumberDataViewType.Double) return Scalar<double>(cursor, column, v => v.ToString("R", CultureInfo.InvariantCulture));
        if (type == NumberDataViewType.UInt32) return Scalar<uint>(cursor, column, v => v.ToString(CultureInfo.InvariantCulture));
        if (type == NumberDataViewType.Int32) return Scalar<int>(cursor, column, v => v.ToString(CultureInfo.InvariantCulture));
        if (type == BooleanDataViewType.Instance) return Scalar<bool>(cursor, column, v => v ? "true" : "false");
        if (type == TextDataViewType.Instance) return Scalar<ReadOnlyMemory<char>>(cursor, column, v => Quote(v.ToString()));
        if (type is KeyDataViewType { RawType: var raw } && raw == typeof(uint))
        {
            var names = OutputWriter.KeyNames(column);
            return Scalar<uint>(cursor, column, v => v == 0 ? "" : names is not null && v <= names.Count ? Quote(names[(int)v - 1]) : v.ToString(CultureInfo.InvariantCulture));
        }
        throw new NotSupportedException($"Output column '{column.Name}' of type {type} cannot be written to a CSV.");
    }

    private static Action<StringBuilder> Scalar<T>(DataViewRowCursor cursor, DataViewSchema.Column column, Func<T, string> format)
    {
        var getter = cursor.GetGetter<T>(column);
        T value = default!;
        return line => { getter(ref value); line.Append(format(value)); };
    }
}
