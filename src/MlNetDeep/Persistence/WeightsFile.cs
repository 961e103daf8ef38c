using System.Runtime.InteropServices;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Persistence;

/// <summary>
/// A module's state (parameters and buffers) in a small, checked binary format. The file is untrusted input: its
/// whole layout (count, names, dtypes, shapes, sizes) is read and checked against limits and against the data's real
/// length, then against the module, before a single value is copied or a tensor is allocated.
/// </summary>
internal static class WeightsFile
{
    private static readonly byte[] Magic = "MLNDW001"u8.ToArray();
    private const int Float32 = 0, Int64 = 1;

    /// <summary>At most this many tensors in one weights file.</summary>
    internal const int MaxTensors = 100_000;

    /// <summary>At most this many dimensions per tensor.</summary>
    internal const int MaxDimensions = 8;

    /// <summary>One tensor as the file describes it: where its data lies in the file.</summary>
    internal sealed record StoredTensor(string Name, int Dtype, long[] Shape, long Values, int Offset, int Length)
    {
        public string ShapeText => $"[{string.Join(", ", Shape)}]";
    }

    public static void Write(nn.Module module, Stream stream)
    {
        using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        var state = module.state_dict();
        writer.Write(Magic);
        writer.Write(state.Count);
        foreach (var (name, tensor) in state)
        {
            using var cpu = tensor.detach().cpu().contiguous();
            writer.Write(name);
            int dtype = cpu.dtype switch
            {
                ScalarType.Float32 => Float32,
                ScalarType.Int64 => Int64,
                _ => throw new NotSupportedException($"Tensor '{name}' has dtype {cpu.dtype}; only float32 and int64 are saved."),
            };
            writer.Write(dtype);
            writer.Write(cpu.shape.Length);
            foreach (var d in cpu.shape) writer.Write(d);
            if (dtype == Float32) writer.Write(MemoryMarshal.AsBytes(cpu.data<float>().ToArray().AsSpan()));
            else writer.Write(MemoryMarshal.AsBytes(cpu.data<long>().ToArray().AsSpan()));
        }
    }

    /// <summary>Reads weights from <paramref name="stream"/> (all of it, at most <see cref="ModelFileLimits.MaxEntryBytes"/> bytes) into <paramref name="module"/>.</summary>
    public static void Read(nn.Module module, Stream stream)
    {
        long maxBytes = ModelFileLimits.Default.MaxEntryBytes;
        var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int n;
        while ((n = stream.Read(chunk)) > 0)
        {
            if (buffer.Length + n > maxBytes) throw new InvalidDataException($"the weights are larger than {maxBytes:N0} bytes.");
            buffer.Write(chunk, 0, n);
        }
        Read(module, buffer.ToArray());
    }

    /// <summary>Copies the weights in <paramref name="data"/> into <paramref name="module"/>, after checking all of them.</summary>
    internal static void Read(nn.Module module, byte[] data) => Read(module, data, ReadLayout(data));

    /// <summary>Copies the weights described by <paramref name="layout"/> (from <see cref="ReadLayout"/>) into <paramref name="module"/>.</summary>
    internal static void Read(nn.Module module, byte[] data, IReadOnlyList<StoredTensor> layout)
    {
        var state = module.state_dict();
        if (layout.Count != state.Count) throw new InvalidDataException($"the file holds {layout.Count} tensors, the network has {state.Count}.");
        var targets = new List<(StoredTensor Stored, Tensor Target)>(layout.Count);
        foreach (var stored in layout)
        {
            if (!state.TryGetValue(stored.Name, out var target)) throw new InvalidDataException($"tensor '{stored.Name}' is not part of the network.");
            if (!stored.Shape.SequenceEqual(target.shape))
                throw new InvalidDataException($"tensor '{stored.Name}' has shape {stored.ShapeText}, the network expects [{string.Join(", ", target.shape)}].");
            var expected = target.dtype switch { ScalarType.Float32 => Float32, ScalarType.Int64 => Int64, _ => -1 };
            if (stored.Dtype != expected)
                throw new InvalidDataException($"tensor '{stored.Name}' is {DtypeName(stored.Dtype)}, the network expects {target.dtype}.");
            targets.Add((stored, target));
        }
        using var noGrad = no_grad();
        foreach (var (stored, target) in targets)
        {
            var bytes = data.AsSpan(stored.Offset, stored.Length);
            using var source = stored.Dtype == Float32
                ? tensor(MemoryMarshal.Cast<byte, float>(bytes).ToArray(), stored.Shape)
                : tensor(MemoryMarshal.Cast<byte, long>(bytes).ToArray(), stored.Shape);
            target.copy_(source);
        }
    }

    /// <summary>
    /// The tensors <paramref name="data"/> describes, checked without allocating any of them: the header, a sane tensor
    /// count, unique names, known dtypes, at most <see cref="MaxDimensions"/> non-negative sizes whose product (in checked
    /// arithmetic) needs no more bytes than remain, and no bytes after the last tensor.
    /// </summary>
    internal static IReadOnlyList<StoredTensor> ReadLayout(byte[] data)
    {
        var stream = new MemoryStream(data, writable: false);
        using var reader = new BinaryReader(stream, Encoding.UTF8);
        try
        {
            var magic = reader.ReadBytes(Magic.Length);
            if (!magic.AsSpan().SequenceEqual(Magic)) throw new InvalidDataException("the weights do not start with the MlNetDeep weights header.");
            int count = reader.ReadInt32();
            if (count is < 0 or > MaxTensors) throw new InvalidDataException($"the weights declare {count:N0} tensors (0 to {MaxTensors:N0} allowed).");
            var names = new HashSet<string>(StringComparer.Ordinal);
            var tensors = new List<StoredTensor>(Math.Min(count, 1024));
            for (int i = 0; i < count; i++)
            {
                string name = reader.ReadString();
                if (!names.Add(name)) throw new InvalidDataException($"the weights hold tensor '{name}' twice (duplicate tensor name).");
                int dtype = reader.ReadInt32();
                int width = dtype switch { Float32 => 4, Int64 => 8, _ => throw new InvalidDataException($"tensor '{name}' has an unknown dtype code {dtype}.") };
                int dims = reader.ReadInt32();
                if (dims is < 0 or > MaxDimensions) throw new InvalidDataException($"tensor '{name}' has {dims} dimensions (0 to {MaxDimensions} allowed).");
                var shape = new long[dims];
                for (int d = 0; d < dims; d++)
                {
                    shape[d] = reader.ReadInt64();
                    if (shape[d] < 0) throw new InvalidDataException($"tensor '{name}' has a negative size {shape[d]} in dimension {d}.");
                }
                long bytes = ByteCount(name, shape, width, out long values);
                long remaining = stream.Length - stream.Position;
                if (bytes > remaining)
                    throw new InvalidDataException($"tensor '{name}' of shape [{string.Join(", ", shape)}] needs {bytes:N0} bytes, but only {remaining:N0} remain: the weights are truncated or their sizes are wrong.");
                tensors.Add(new StoredTensor(name, dtype, shape, values, (int)stream.Position, (int)bytes));
                stream.Position += bytes;
            }
            if (stream.Position != stream.Length)
                throw new InvalidDataException($"the weights have {stream.Length - stream.Position:N0} bytes after their last tensor.");
            return tensors;
        }
        catch (EndOfStreamException ex)
        {
            throw new InvalidDataException("the weights are truncated (their tensor list ends early).", ex);
        }
    }

    /// <summary>The values and bytes of one tensor; a product that overflows is an error naming the tensor.</summary>
    private static long ByteCount(string name, long[] shape, int width, out long values)
    {
        try
        {
            values = 1;
            foreach (var d in shape) values = checked(values * d);
            return checked(values * width);
        }
        catch (OverflowException ex)
        {
            throw new InvalidDataException($"tensor '{name}' has shape [{string.Join(", ", shape)}], whose size overflows a 64-bit count.", ex);
        }
    }

    private static string DtypeName(int dtype) => dtype == Float32 ? "Float32" : "Int64";
}
