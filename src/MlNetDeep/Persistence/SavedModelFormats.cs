using System.Collections.Concurrent;
using System.Reflection;
using System.Text.Json.Nodes;
using Microsoft.ML;
using static TorchSharp.torch;

namespace MlNetDeep.Persistence;

/// <summary>
/// How one kind of saved stage becomes a transformer again. A family declares its format as a small class in its own
/// folder; <see cref="SavedModelFormats"/> finds the library's formats by reflection, so adding a family touches no
/// central list. Another assembly's families add theirs with <see cref="DeepModelFile.Register(SavedModelFormat)"/>.
/// </summary>
public abstract class SavedModelFormat
{
    /// <summary>The name stages of this kind are saved under.</summary>
    public abstract string Kind { get; }

    /// <summary>The record version this format writes; files with a higher version are refused with a clear error.</summary>
    public virtual int Version => 1;
}

/// <summary>A stage with a network: its record (spec and settings) and checked weights.</summary>
public abstract class NetworkModelFormat : SavedModelFormat
{
    /// <summary>The module with the record's architecture (weights are loaded into it afterwards).</summary>
    public abstract nn.Module BuildModule(TransformerRecord record);

    /// <summary>The transformer around a module whose weights are loaded.</summary>
    public abstract ITransformer Create(TransformerRecord record, nn.Module module, Device device);
}

/// <summary>A stage without a network (<see cref="IPersistentTransformer"/>): its settings alone.</summary>
public abstract class TransformModelFormat : SavedModelFormat
{
    public abstract ITransformer Create(JsonObject settings);
}

/// <summary>A fitted stage with a network that <see cref="DeepModelFile"/> can save: its record and its module.</summary>
public interface ISavedNetwork
{
    TransformerRecord ToRecord();
    nn.Module Module { get; }
}

/// <summary>
/// The formats known to this process: the library's own (found once, lazily, by reflection; no lock is held while a
/// family's code runs, so loading and fitting in parallel cannot deadlock) and those registered by other assemblies.
/// </summary>
internal static class SavedModelFormats
{
    private static readonly Lazy<IReadOnlyDictionary<string, SavedModelFormat>> BuiltIn = new(Discover, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly ConcurrentDictionary<string, SavedModelFormat> Registered = new(StringComparer.Ordinal);

    public static void Register(SavedModelFormat format)
    {
        ArgumentNullException.ThrowIfNull(format);
        if (string.IsNullOrWhiteSpace(format.Kind)) throw new ArgumentException("A saved-model format needs a Kind.", nameof(format));
        if (BuiltIn.Value.ContainsKey(format.Kind)) throw new ArgumentException($"'{format.Kind}' is a built-in MlNetDeep format; choose another Kind.", nameof(format));
        Registered[format.Kind] = format;
    }

    public static T Find<T>(string? kind) where T : SavedModelFormat
    {
        if (kind is not null && (BuiltIn.Value.TryGetValue(kind, out var format) || Registered.TryGetValue(kind, out format)) && format is T typed)
            return typed;
        throw new InvalidDataException($"it holds a '{kind}' stage, which this MlNetDeep does not know" +
            (kind is null ? "." : $" (known: {string.Join(", ", BuiltIn.Value.Keys.Concat(Registered.Keys).Order())})."));
    }

    /// <summary>Checks a record's version against the format that reads it.</summary>
    public static void CheckVersion(SavedModelFormat format, int version)
    {
        if (version > format.Version)
            throw new InvalidDataException($"its '{format.Kind}' stage has record version {version}, written by a newer MlNetDeep (this one reads up to {format.Version}).");
        if (version < 1) throw new InvalidDataException($"its '{format.Kind}' stage has an invalid record version {version}.");
    }

    private static IReadOnlyDictionary<string, SavedModelFormat> Discover()
    {
        var formats = new Dictionary<string, SavedModelFormat>(StringComparer.Ordinal);
        foreach (var type in typeof(SavedModelFormat).Assembly.GetTypes())
        {
            if (type.IsAbstract || !typeof(SavedModelFormat).IsAssignableFrom(type)) continue;
            var constructor = type.GetConstructor(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic, Type.EmptyTypes)
                ?? throw new InvalidOperationException($"{type.FullName} needs a parameterless constructor.");
            var format = (SavedModelFormat)constructor.Invoke(null);
            if (!formats.TryAdd(format.Kind, format))
                throw new InvalidOperationException($"Two saved-model formats use the kind '{format.Kind}': {formats[format.Kind].GetType().FullName} and {type.FullName}.");
        }
        return formats;
    }
}
