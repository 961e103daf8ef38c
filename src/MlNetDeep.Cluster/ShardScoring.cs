using System.Globalization;
using System.Text;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Serving;

namespace MlNetDeep.Cluster;

/// <summary>Cutting a CSV into shards at row boundaries, scoring one shard, and merging the shards' outputs.</summary>
public static class ShardScoring
{
    /// <summary>
    /// Image jobs' shards start at multiples of this many images: a convolutional network scores at most 64 images per
    /// forward pass on the CPU, so each shard's passes are those of one process's <c>score</c>.
    /// </summary>
    public const int ImageAlignRows = 64;

    /// <summary>Where an image job's list of images goes: <c>&lt;output&gt;.shards/images.csv</c> (removed with the shards).</summary>
    public static string ImageListPath(string output) => Path.Combine(output + ".shards", "images.csv");

    /// <summary>
    /// Scans the image folder <paramref name="folder"/> as <c>score</c> does (one subfolder per class; files that are
    /// not readable images left out) and writes its images, in <c>score</c>'s order, to <paramref name="path"/> as a CSV
    /// of ImagePath and Label. The model must read an ImagePath column (a pipeline that loads its images itself).
    /// Returns the files left out.
    /// </summary>
    public static int WriteImageList(string folder, ModelSchema schema, string path)
    {
        if (!schema.Inputs.Any(f => f.Name == "ImagePath" && f.Required))
            throw new InvalidOperationException($"The model reads {string.Join(", ", schema.Inputs.Where(f => f.Required).Select(f => $"'{f.Name}' ({f.Type})"))}, " +
                "not an 'ImagePath' column: an image folder can only be scored by a pipeline that loads its images itself (LoadImages -> ...).");
        var scan = MlNetDeep.Data.ImageFolder.Scan(folder, new MlNetDeep.Data.ImageFolderOptions { MinimumClasses = 1 });
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var temporary = path + ".tmp";
        using (var writer = new StreamWriter(temporary, false, new UTF8Encoding(false)))
        {
            writer.Write("ImagePath,Label\n");
            foreach (var image in scan.Images) writer.Write($"{BatchScorer.Quote(image.Path)},{BatchScorer.Quote(image.Label)}\n");
        }
        File.Move(temporary, path, overwrite: true);
        return scan.Skipped.Count;
    }

    private sealed class ImageRow
    {
        public string ImagePath { get; set; } = "";
        public string Label { get; set; } = "";
    }

    /// <summary>The images in a shard of an image list: read with the CSV reader <c>score</c> uses.</summary>
    private static List<ImageRow> ReadImages(ShardWork work)
    {
        var (records, reader) = CsvRows.OpenRecords(work.InputPath, work.Start, work.End, work.FirstLine, BatchScorer.MaxLineChars);
        using var _ = reader;
        var rows = new List<ImageRow>();
        while (records.Read() is { } record)
        {
            if (record.Fields.Count != 2) throw new InvalidDataException($"The image list '{work.InputPath}' line {record.Line} has {record.Fields.Count} fields, not 2.");
            rows.Add(new ImageRow { ImagePath = record.Fields[0], Label = record.Fields[1] });
        }
        return rows;
    }

    /// <summary>
    /// Cuts the rows of <paramref name="path"/> into at most <paramref name="count"/> byte ranges of about equal size,
    /// each starting right after a record's line break (the header row is shared, not part of any shard), with each
    /// shard's first line number. Records are found as <c>score</c>'s CSV reader finds them: a quoted field may hold line
    /// breaks, and blank lines are not records. Every shard but the last starts at a multiple of
    /// <paramref name="alignRows"/> records (default: the rows <c>score</c> reads and scores at a time), so that each shard is
    /// scored in exactly the batches one process's <c>score</c> uses and the merged output is the same to the last bit
    /// on any processor; an input of fewer than <paramref name="count"/> times that many rows gets fewer shards. A file with
    /// no rows gets one empty shard.
    /// </summary>
    public static List<ShardState> Cut(string path, int count, int alignRows = BatchScorer.ChunkRows)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "A job needs at least one shard.");
        if (alignRows < 1) throw new ArgumentOutOfRangeException(nameof(alignRows), alignRows, "Shards align to at least one row.");
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
        long length = file.Length;
        var buffer = new byte[1 << 20];
        long position = 0, lines = 0, records = 0, dataStart = -1;
        var shards = new List<ShardState>();
        long target = 0, step = 0;
        long shardStart = 0, shardFirstLine = 2;
        // The reader's states: inside a quoted field; a quote just closed it (another quote next is an escaped one);
        // the current field holds only whitespace so far (a quote there opens a quoted field); the line holds a record.
        bool inQuotes = false, closed = false, fieldBlank = true, content = false;
        int read;
        while ((read = file.Read(buffer, 0, buffer.Length)) > 0)
        {
            for (int i = 0; i < read; i++)
            {
                byte b = buffer[i];
                if (inQuotes)
                {
                    if (b == (byte)'"') { inQuotes = false; closed = true; }
                    else if (b == (byte)'\n') lines++;
                    continue;
                }
                if (closed)
                {
                    closed = false;
                    if (b == (byte)'"') { inQuotes = true; continue; }
                }
                switch (b)
                {
                    case (byte)'\n':
                        lines++;
                        fieldBlank = true;
                        if (!content) continue; // a blank line: not a record
                        content = false;
                        long next = position + i + 1;
                        if (dataStart < 0)
                        {
                            dataStart = shardStart = next;
                            shardFirstLine = lines + 1;
                            step = Math.Max(1, (length - dataStart) / count);
                            target = dataStart + step;
                            continue;
                        }
                        records++;
                        if (records % alignRows == 0 && next >= target && next < length && shards.Count < count - 1)
                        {
                            shards.Add(new ShardState { Index = shards.Count, Start = shardStart, End = next, FirstLine = shardFirstLine });
                            shardStart = next;
                            shardFirstLine = lines + 1;
                            target = Math.Max(next + 1, dataStart + step * (shards.Count + 1));
                        }
                        break;
                    case (byte)',':
                        fieldBlank = true;
                        content = true;
                        break;
                    case (byte)'"':
                        if (fieldBlank) inQuotes = true;
                        fieldBlank = false;
                        content = true;
                        break;
                    case (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\v' or (byte)'\f':
                        break;
                    default:
                        fieldBlank = false;
                        content = true;
                        break;
                }
            }
            position += read;
        }
        if (dataStart < 0) throw new InvalidDataException($"The CSV '{path}' has no complete header row (no line break after it).");
        shards.Add(new ShardState { Index = shards.Count, Start = shardStart, End = length, FirstLine = shardFirstLine });
        return shards;
    }

    /// <summary>
    /// Scores one shard with <paramref name="model"/> into <see cref="ShardWork.OutputPath"/> (a temporary file renamed:
    /// a reader never sees half a shard): the header, then the shard's rows numbered from 0. Rows are checked first: a
    /// row with the wrong number of cells, or a value the model reads as a number that is not one, makes a
    /// <see cref="ShardResult.DataError"/> naming the file, the line and the cause, and nothing is written.
    /// </summary>
    public static ShardResult Score(LoadedModel model, ShardWork work, CancellationToken cancellation = default)
    {
        if (new FileInfo(work.InputPath) is not { Exists: true } info || info.Length != work.InputLength)
            return new ShardResult { FatalError = $"The input '{work.InputPath}' changed or disappeared since the job was submitted ({work.InputLength} bytes then)." };
        var folder = Path.GetDirectoryName(Path.GetFullPath(work.OutputPath))!;
        Directory.CreateDirectory(folder);
        var temporary = Path.Combine(folder, $".{Path.GetFileName(work.OutputPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            long count;
            if (work.Images)
            {
                // The images are scored as `score` scores a folder: path and label first, then the outputs.
                var ml = new MLContext(seed: 1);
                IDataView? view = ml.Data.LoadFromEnumerable(ReadImages(work));
                using (var writer = new StreamWriter(temporary, false, new UTF8Encoding(false)))
                    count = BatchScorer.WriteCsv(model.Transformer, model.Schema, () => { var v = view; view = null; return v; }, ["ImagePath", "Label"], writer, cancellation: cancellation);
                File.Move(temporary, work.OutputPath, overwrite: true);
                return new ShardResult { Rows = count };
            }
            // The rows are read as `score` reads a whole file: every row checked, a malformed one named by its line.
            using (var rows = CsvRows.OpenRange(work.InputPath, model.Schema, work.Start, work.End, work.FirstLine, BatchScorer.MaxLineChars))
            using (var writer = new StreamWriter(temporary, false, new UTF8Encoding(false)))
                count = BatchScorer.WriteCsv(model.Transformer, model.Schema, () => rows.Read(BatchScorer.ChunkRows), [], writer, cancellation: cancellation);
            File.Move(temporary, work.OutputPath, overwrite: true);
            return new ShardResult { Rows = count };
        }
        catch (RequestException ex)
        {
            return new ShardResult { DataError = $"{work.InputPath}: {ex.Message}" };
        }
        finally { File.Delete(temporary); }
    }

    /// <summary>
    /// Merges the shards' outputs in order into <paramref name="output"/> (a temporary file renamed): the header once,
    /// then every shard's rows with their row numbers made global (shard-local number + the rows of the shards before),
    /// so the file is what one process's <c>score</c> writes. Rows that are not numbered (<paramref name="numbered"/> false:
    /// an image job's rows, which start with their image's path) are copied as they are. Returns the rows written.
    /// </summary>
    public static long Merge(IReadOnlyList<string> shardFiles, IReadOnlyList<long> shardRows, string output, bool numbered = true)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(output))!;
        Directory.CreateDirectory(folder);
        var temporary = Path.Combine(folder, $".{Path.GetFileName(output)}.{Guid.NewGuid():N}.tmp");
        long offset = 0;
        try
        {
            using (var writer = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                for (int s = 0; s < shardFiles.Count; s++)
                {
                    using var reader = new FileStream(shardFiles[s], FileMode.Open, FileAccess.Read, FileShare.Read, 1);
                    long local = CopyRows(reader, writer, s == 0, numbered ? offset : -1, shardFiles[s]);
                    if (local != shardRows[s])
                        throw new InvalidDataException($"The shard output '{shardFiles[s]}' holds {local} rows where {shardRows[s]} were scored.");
                    offset += local;
                }
            }
            File.Move(temporary, output, overwrite: true);
            return offset;
        }
        finally { File.Delete(temporary); }
    }

    /// <summary>
    /// Copies one shard's output to <paramref name="output"/> as bytes, line by line: its header when
    /// <paramref name="header"/>, then each row with its leading row number (which must count from 0) replaced by
    /// <paramref name="offset"/> plus it, or, with a negative <paramref name="offset"/>, each row as it is (a quoted
    /// field may then hold line breaks: rows are counted outside quotes). Returns the rows copied.
    /// </summary>
    private static long CopyRows(Stream input, Stream output, bool header, long offset, string name)
    {
        var buffer = new byte[1 << 20];
        Span<byte> digits = stackalloc byte[24];
        int start = 0, end = 0;
        long local = -1; // -1: the header line is next
        bool quoted = false;
        while (true)
        {
            int newline = buffer.AsSpan(start, end - start).IndexOf((byte)'\n');
            if (newline < 0)
            {
                if (start > 0) { Buffer.BlockCopy(buffer, start, buffer, 0, end - start); end -= start; start = 0; }
                if (end == buffer.Length) Array.Resize(ref buffer, buffer.Length * 2);
                int read = input.Read(buffer, end, buffer.Length - end);
                if (read > 0) { end += read; continue; }
                if (end > start) throw new InvalidDataException($"The shard output '{name}' ends in the middle of a line.");
                break;
            }
            var line = buffer.AsSpan(start, newline + 1);
            start += newline + 1;
            if (local < 0)
            {
                if (header) output.Write(line);
                local = 0;
                continue;
            }
            if (offset < 0)
            {
                output.Write(line);
                foreach (byte b in line) if (b == (byte)'"') quoted = !quoted;
                if (!quoted) local++;
                continue;
            }
            int comma = line.IndexOf((byte)',');
            if (comma <= 0 || !System.Buffers.Text.Utf8Parser.TryParse(line[..comma], out long n, out int used) || used != comma || n != local)
                throw new InvalidDataException($"The shard output '{name}' line {local + 2} is not row {local}.");
            System.Buffers.Text.Utf8Formatter.TryFormat(offset + local, digits, out int written);
            output.Write(digits[..written]);
            output.Write(line[comma..]);
            local++;
        }
        if (local < 0) throw new InvalidDataException($"The shard output '{name}' is empty.");
        if (quoted) throw new InvalidDataException($"The shard output '{name}' ends inside a quoted field.");
        return local;
    }
}
