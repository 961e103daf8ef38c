using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.ML;
using MlNetDeep.Models.Common;

namespace MlNetDeep.Serving;

/// <summary>A pipeline loaded from a file, with what the service needs to know of it; freed when the last request using it ends.</summary>
public sealed class LoadedModel
{
    private int _references = 1;

    internal LoadedModel(ITransformer transformer, ModelSchema schema, string path, string version, DateTimeOffset loadedAt)
    {
        Transformer = transformer;
        Schema = schema;
        Path = path;
        Version = version;
        LoadedAt = loadedAt;
        Stages = (transformer as IEnumerable<ITransformer> ?? [transformer])
            .Select(t => t is DeepTransformer deep ? $"{deep.Kind} ({deep.Network.Name})" : t.GetType().Name).ToList();
    }

    public ITransformer Transformer { get; }
    public ModelSchema Schema { get; }
    public string Path { get; }

    /// <summary>The first 12 hex digits of the file's SHA-256.</summary>
    public string Version { get; }

    public DateTimeOffset LoadedAt { get; }
    public IReadOnlyList<string> Stages { get; }

    internal bool TryAcquire()
    {
        while (true)
        {
            int current = Volatile.Read(ref _references);
            if (current == 0) return false;
            if (Interlocked.CompareExchange(ref _references, current + 1, current) == current) return true;
        }
    }

    internal void Release()
    {
        if (Interlocked.Decrement(ref _references) == 0) Free(Transformer);
    }

    /// <summary>Frees a pipeline's native resources (its deep stages' modules).</summary>
    internal static void Free(ITransformer transformer)
    {
        foreach (var stage in transformer as IEnumerable<ITransformer> ?? [])
            (stage as IDisposable)?.Dispose();
        (transformer as IDisposable)?.Dispose();
    }
}

/// <summary>
/// Holds the current model and swaps in a new one when its file changes (checked every
/// <see cref="ServingOptions.ReloadCheckInterval"/>): the new file is loaded and checked first, requests already
/// running finish on the model they started with, and that model is freed after the last of them. A file that fails
/// to load is logged and the current model stays.
/// </summary>
public sealed class ModelHost : IDisposable
{
    private readonly ILogger _logger;
    private readonly string _path;
    private readonly Timer? _timer;
    private readonly object _reloadGate = new();
    private LoadedModel _current;
    private (DateTime Written, long Length) _stamp;
    private int _disposed;

    public ModelHost(string path, ServingOptions options, ILogger logger)
    {
        _logger = logger;
        _path = System.IO.Path.GetFullPath(path);
        _stamp = Stamp();
        _current = Load();
        _logger.LogInformation("Loaded model {Path} version {Version}: inputs {Inputs}; outputs {Outputs}", _path, _current.Version,
            string.Join(", ", _current.Schema.Inputs.Where(i => i.Required).Select(i => $"{i.Name} {i.Type}")),
            string.Join(", ", _current.Schema.Outputs.Select(o => $"{o.Name} {o.Type}")));
        if (options.ReloadCheckInterval > TimeSpan.Zero)
            _timer = new Timer(_ => CheckForNewFile(), null, options.ReloadCheckInterval, options.ReloadCheckInterval);
    }

    /// <summary>The model new requests get.</summary>
    public LoadedModel Current => Volatile.Read(ref _current);

    /// <summary>How many times a changed file was loaded and swapped in.</summary>
    public int Reloads { get; private set; }

    /// <summary>Takes the current model for one request; dispose the lease when the request is done with it.</summary>
    public Lease Acquire()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        while (true)
        {
            var model = Volatile.Read(ref _current);
            if (model.TryAcquire()) return new Lease(model);
        }
    }

    /// <summary>Loads the file again if it changed since the last load; returns true when a new model was swapped in.</summary>
    public bool CheckForNewFile()
    {
        if (Volatile.Read(ref _disposed) != 0) return false;
        lock (_reloadGate)
        {
            try
            {
                var stamp = Stamp();
                if (stamp == _stamp) return false;
                _stamp = stamp;
                var fresh = Load();
                if (fresh.Version == Current.Version)
                {
                    fresh.Release();
                    return false;
                }
                var old = Interlocked.Exchange(ref _current, fresh);
                old.Release();
                Reloads++;
                _logger.LogInformation("Reloaded model {Path}: version {OldVersion} -> {Version}", _path, old.Version, fresh.Version);
                return true;
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or InvalidOperationException or NotSupportedException or ArgumentException)
            {
                _logger.LogError(e, "The model file {Path} changed but could not be loaded; still serving version {Version}", _path, Current.Version);
                return false;
            }
        }
    }

    private (DateTime, long) Stamp()
    {
        var info = new FileInfo(_path);
        if (!info.Exists) throw new FileNotFoundException($"The model file '{_path}' does not exist.", _path);
        return (info.LastWriteTimeUtc, info.Length);
    }

    private LoadedModel Load()
    {
        byte[] bytes = File.ReadAllBytes(_path);
        string version = Convert.ToHexString(SHA256.HashData(bytes))[..12].ToLowerInvariant();
        var ml = new MLContext(seed: 1);
        using var stream = new MemoryStream(bytes, writable: false);
        var transformer = Persistence.DeepModelFile.Load(ml.Model, stream, out var inputSchema, _path); // errors name the file, not "stream"
        try
        {
            var schema = ModelSchema.Of(transformer, inputSchema);
            return new LoadedModel(transformer, schema, _path, version, DateTimeOffset.UtcNow);
        }
        catch
        {
            LoadedModel.Free(transformer);
            throw;
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _timer?.Dispose();
        lock (_reloadGate) Current.Release();
    }

    /// <summary>One request's hold on a model.</summary>
    public readonly struct Lease(LoadedModel model) : IDisposable
    {
        public LoadedModel Model { get; } = model;
        public void Dispose() => Model.Release();
    }
}
