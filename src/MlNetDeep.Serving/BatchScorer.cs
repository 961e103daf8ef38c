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
    /// <summary>Scores <paramref name="input"/> (a .csv file, or a folder of images in one subfolder per class) into <paramref name="output"/>; returns the rows written.</summary>
    public static long Score(string modelPath, string input, string output, IProgress<long>? progress = null, CancellationToken cancellation = default)
    {
        var ml = new MLContext(seed: 1);
        var transformer = ml.Model.LoadDeep(modelPath, out var inputSchema);
        try
        {
            var schema = ModelSchema.Of(transformer, inputSchema);
            IDataView data;
            string[] keep;
            if (Directory.Exists(input))
            {
                if (!schema.Inputs.Any(f => f.Name == "ImagePath" && f.Required))
                    throw new InvalidOperationException($"The model reads {string.Join(", ", schema.Inputs.Where(f => f.Required).Select(f => $"'{f.Name}' ({f.Type})"))}, " +
                        "not an 'ImagePath' column: an image folder can only be scored by a pipeline that loads its images itself (LoadImages -> ...).");
                data = ImageFolder.Scan(input, new ImageFolderOptions { MinimumClasses = 1 }).ToDataView(ml.Data);
                keep = ["ImagePath", "Label"];
            }
            else if (File.Exists(input))
            {
                data = CsvRows.Load(ml, input, schema);
                keep = [];
            }
            else throw new FileNotFoundException($"The input '{input}' is neither a CSV file nor a folder.", input);

            var scored = transformer.Transform(data);
            var folder = Path.GetDirectoryName(Path.GetFullPath(output))!;
            Directory.CreateDirectory(folder);
            var temporary = Path.Combine(folder, $".{Path.GetFileName(output)}.{Guid.NewGuid():N}.tmp");
            long rows;
            try
            {
                using (var writer = new StreamWriter(temporary, false, new UTF8Encoding(false)))
                    rows = WriteCsv(scored, schema, keep, writer, progress, cancellation);
                File.Move(temporary, output, overwrite: true);
            }
            finally { File.Delete(temporary); }
            progress?.Report(rows);
            return rows;
        }
        finally { LoadedModel.Free(transformer); }
    }

    /// <summary>
    /// Writes the scored rows <paramref name="scored"/> as CSV to <paramref name="writer"/>: the header, then one line a
    /// row (the row number counted from 0, or the <paramref name="keep"/> columns, then each output column); the rows written.
    /// </summary>
    public static long WriteCsv(IDataView scored, ModelSchema schema, IReadOnlyList<string> keep, TextWriter writer, IProgress<long>? progress = null, CancellationToken cancellation = default)
    {
        var outputs = schema.OutputColumns.Select(c => scored.Schema[c.Name]).ToList();
        var passed = keep.Select(name => scored.Schema[name]).ToList();
        long rows = 0;
        using var cursor = scored.GetRowCursor(outputs.Concat(passed));
        var header = (passed.Count == 0 ? ["Row"] : passed.Select(c => c.Name)).Concat(outputs.SelectMany(HeaderNames));
        writer.WriteLine(string.Join(",", header.Select(Quote)));
        var cells = passed.Concat(outputs).Select(c => CellWriter(cursor, c)).ToList();
        var line = new StringBuilder();
        while (cursor.MoveNext())
        {
            cancellation.ThrowIfCancellationRequested();
            line.Clear();
            if (passed.Count == 0) line.Append(rows.ToString(CultureInfo.InvariantCulture));
            for (int i = 0; i < cells.Count; i++)
            {
                if (i > 0 || passed.Count == 0) line.Append(',');
                cells[i](line);
            }
            writer.WriteLine(line);
            if (++rows % 1000 == 0) progress?.Report(rows);
        }
        return rows;
    }

    private static IEnumerable<string> HeaderNames(DataViewSchema.Column column) =>
        column.Type is VectorDataViewType v ? Enumerable.Range(0, v.Size).Select(i => $"{column.Name}.{i}") : [column.Name];

    private static string Quote(string text) =>
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
