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
    /// Cuts the rows of <paramref name="path"/> into at most <paramref name="count"/> byte ranges of about equal size,
    /// each starting right after a newline (the header row is shared, not part of any shard), with each shard's first
    /// line number. A file with no rows gets one empty shard.
    /// </summary>
    public static List<ShardState> Cut(string path, int count)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "A job needs at least one shard.");
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        long length = file.Length;
        // Every newline's position is not kept: only the line count up to each boundary, in one pass.
        var buffer = new byte[1 << 16];
        long position = 0, lines = 0, dataStart = -1;
        var shards = new List<ShardState>();
        long target = 0, step = 0;
        long shardStart = 0, shardFirstLine = 2;
        int read;
        while ((read = file.Read(buffer, 0, buffer.Length)) > 0)
        {
            for (int i = 0; i < read; i++)
            {
                if (buffer[i] != (byte)'\n') continue;
                lines++;
                long next = position + i + 1;
                if (dataStart < 0)
                {
                    dataStart = shardStart = next;
                    step = Math.Max(1, (length - dataStart) / count);
                    target = dataStart + step;
                    continue;
                }
                if (next >= target && next < length && shards.Count < count - 1)
                {
                    shards.Add(new ShardState { Index = shards.Count, Start = shardStart, End = next, FirstLine = shardFirstLine });
                    shardStart = next;
                    shardFirstLine = lines + 1;
                    target = Math.Max(next + 1, dataStart + step * (shards.Count + 1));
                }
            }
            position += read;
        }
        if (dataStart < 0) throw new InvalidDataException($"The CSV '{path}' has no complete header row (no newline).");
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
    /// so the file is what one process's <c>score</c> writes. Returns the rows written.
    /// </summary>
    public static long Merge(IReadOnlyList<string> shardFiles, IReadOnlyList<long> shardRows, string output)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(output))!;
        Directory.CreateDirectory(folder);
        var temporary = Path.Combine(folder, $".{Path.GetFileName(output)}.{Guid.NewGuid():N}.tmp");
        long offset = 0;
        try
        {
            using (var writer = new StreamWriter(temporary, false, new UTF8Encoding(false)))
            {
                for (int s = 0; s < shardFiles.Count; s++)
                {
                    using var reader = new StreamReader(shardFiles[s]);
                    string header = reader.ReadLine() ?? throw new InvalidDataException($"The shard output '{shardFiles[s]}' is empty.");
                    if (s == 0) writer.WriteLine(header);
                    long local = 0;
                    for (string? line; (line = reader.ReadLine()) is not null; local++)
                    {
                        int comma = line.IndexOf(',');
                        if (comma < 0 || !long.TryParse(line.AsSpan(0, comma), NumberStyles.None, CultureInfo.InvariantCulture, out long n) || n != local)
                            throw new InvalidDataException($"The shard output '{shardFiles[s]}' line {local + 2} is not row {local}.");
                        writer.Write((offset + local).ToString(CultureInfo.InvariantCulture));
                        writer.WriteLine(line.AsSpan(comma));
                    }
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
}
