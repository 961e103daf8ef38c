using System.IO.Compression;

namespace MlNetDeep.Data;

/// <summary>An IDX array (the MNIST file format): unsigned bytes with a shape.</summary>
internal sealed record IdxArray(int[] Shape, byte[] Data)
{
    public int Count => Shape[0];
    public int ItemSize => Shape.Skip(1).Aggregate(1, (a, b) => checked(a * b));
}

/// <summary>Reads IDX files (plain or gzip-compressed) of unsigned bytes, as MNIST ships them.</summary>
internal static class IdxReader
{
    private const byte UnsignedByte = 0x08;

    /// <summary>The most data bytes one IDX file may declare (MNIST's largest file holds 47 MB).</summary>
    internal const long MaxBytes = 1L << 30;

    public static IdxArray Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"IDX file not found: {path}", path);
        using var file = File.OpenRead(path);
        Stream stream = file;
        if (file.Length >= 2)
        {
            int b0 = file.ReadByte(), b1 = file.ReadByte();
            file.Position = 0;
            if (b0 == 0x1f && b1 == 0x8b) stream = new GZipStream(file, CompressionMode.Decompress);
        }
        try { return Read(stream, path); }
        finally { if (stream != file) stream.Dispose(); }
    }

    public static IdxArray Read(Stream stream, string name = "stream")
    {
        var header = new byte[4];
        ReadExactly(stream, header, name, "the magic number");
        if (header[0] != 0 || header[1] != 0)
            throw new InvalidDataException($"{name} is not an IDX file: its first two bytes must be zero.");
        if (header[2] != UnsignedByte)
            throw new InvalidDataException($"{name}: IDX element type 0x{header[2]:x2} is not supported (only unsigned bytes, 0x08).");
        int dims = header[3];
        if (dims is < 1 or > 4) throw new InvalidDataException($"{name}: IDX file with {dims} dimensions is not supported (1 to 4).");
        var shape = new int[dims];
        var dimBytes = new byte[4];
        long total = 1;
        for (int i = 0; i < dims; i++)
        {
            ReadExactly(stream, dimBytes, name, $"dimension {i}");
            shape[i] = dimBytes[0] << 24 | dimBytes[1] << 16 | dimBytes[2] << 8 | dimBytes[3];
            if (shape[i] < 0) throw new InvalidDataException($"{name}: negative size in dimension {i}.");
            total *= shape[i]; // at most MaxBytes times an int: no overflow
            if (total > MaxBytes)
                throw new InvalidDataException($"{name}: the header's sizes [{string.Join(", ", shape[..(i + 1)])}{(i + 1 < dims ? ", ..." : "")}] ask for more than the {MaxBytes:N0} data bytes an IDX file may hold.");
        }
        if (stream.CanSeek && stream.Length - stream.Position < total)
            throw new InvalidDataException($"{name} is truncated: its header declares {total:N0} data bytes, but only {stream.Length - stream.Position:N0} follow.");
        return new IdxArray(shape, stream.CanSeek ? ReadExactly(stream, (int)total, name) : ReadGrowing(stream, (int)total, name));
    }

    private static byte[] ReadExactly(Stream stream, int count, string name)
    {
        var data = new byte[count];
        ReadExactly(stream, data, name, $"{count:N0} data bytes");
        return data;
    }

    /// <summary>Reads <paramref name="count"/> bytes from a stream of unknown length, growing the buffer as data arrives (a header cannot make it allocate more than the data holds).</summary>
    private static byte[] ReadGrowing(Stream stream, int count, string name)
    {
        var data = new MemoryStream(Math.Min(count, 1 << 20));
        var chunk = new byte[81920];
        while (data.Length < count)
        {
            int n = stream.Read(chunk, 0, (int)Math.Min(chunk.Length, count - data.Length));
            if (n == 0) throw new InvalidDataException($"{name} is truncated: expected {count:N0} data bytes, got {data.Length:N0}.");
            data.Write(chunk, 0, n);
        }
        return data.Length == data.Capacity ? data.GetBuffer() : data.ToArray();
    }

    private static void ReadExactly(Stream stream, byte[] buffer, string name, string what)
    {
        int read = 0;
        while (read < buffer.Length)
        {
            int n = stream.Read(buffer, read, buffer.Length - read);
            if (n == 0) throw new InvalidDataException($"{name} is truncated: expected {what}, got {read} of {buffer.Length} bytes.");
            read += n;
        }
    }

    /// <summary>Writes an IDX array of unsigned bytes, gzip-compressed when the path ends in .gz.</summary>
    public static void Write(string path, IdxArray array)
    {
        using var file = File.Create(path);
        using Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionLevel.SmallestSize) : file;
        stream.Write([0, 0, UnsignedByte, (byte)array.Shape.Length]);
        foreach (var d in array.Shape) stream.Write([(byte)(d >> 24), (byte)(d >> 16), (byte)(d >> 8), (byte)d]);
        stream.Write(array.Data);
    }
}
