using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Persistence;

/// <summary>
/// A module's state (parameters and buffers) in a small, checked binary format: every name, dtype and shape is
/// verified against the module before a byte is copied, so a damaged file gives an error, never a native crash.
/// </summary>
public static class WeightsFile
{
    private static readonly byte[] Magic = "MLNDW001"u8.ToArray();
    private const int Float32 = 0, Int64 = 1;

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
            if (dtype == Float32) writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(cpu.data<float>().ToArray().AsSpan()));
            else writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(cpu.data<long>().ToArray().AsSpan()));
        }
    }

    public static void Read(nn.Module module, Stream stream)
    {
        using var reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        try
        {
            var magic = reader.ReadBytes(Magic.Length);
            if (!magic.AsSpan().SequenceEqual(Magic)) throw new InvalidDataException("the weights do not start with the MlNetDeep weights header.");
            var state = module.state_dict();
            int count = reader.ReadInt32();
            if (count != state.Count) throw new InvalidDataException($"the file holds {count} tensors, the network has {state.Count}.");
            using var noGrad = no_grad();
            for (int i = 0; i < count; i++)
            {
                string name = reader.ReadString();
                if (!state.TryGetValue(name, out var target)) throw new InvalidDataException($"tensor '{name}' is not part of the network.");
                int dtype = reader.ReadInt32();
                int dims = reader.ReadInt32();
                if (dims is < 0 or > 8) throw new InvalidDataException($"tensor '{name}' has {dims} dimensions.");
                var shape = new long[dims];
                for (int d = 0; d < dims; d++) shape[d] = reader.ReadInt64();
                if (!shape.SequenceEqual(target.shape))
                    throw new InvalidDataException($"tensor '{name}' has shape [{string.Join(", ", shape)}], the network expects [{string.Join(", ", target.shape)}].");
                long elements = shape.Aggregate(1L, (a, b) => a * b);
                int width = dtype switch { Float32 => 4, Int64 => 8, _ => throw new InvalidDataException($"tensor '{name}' has an unknown dtype code {dtype}.") };
                var bytes = reader.ReadBytes(checked((int)(elements * width)));
                if (bytes.Length != elements * width) throw new InvalidDataException($"tensor '{name}' is truncated.");
                using var source = dtype == Float32
                    ? tensor(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray(), shape)
                    : tensor(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(bytes).ToArray(), shape);
                if ((dtype == Float32) != (target.dtype == ScalarType.Float32))
                    throw new InvalidDataException($"tensor '{name}' is {source.dtype}, the network expects {target.dtype}.");
                target.copy_(source);
            }
        }
        catch (EndOfStreamException ex)
        {
            throw new InvalidDataException("the weights are truncated.", ex);
        }
    }
}
