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
    /// <summary>The model file's full path (the service shows only its name).</summary>
    public string Path { get; }

    /// <summary>The model file's name, without its folder.</summary>
    public string FileName => System.IO.Path.GetFileName(Path);

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
/// to load (or has gone) is logged once, with one line, the current model stays, and <see cref="LastReloadError"/>
/// says why until a file loads again. No failure of a reload escapes: it runs on a timer thread, where an exception
/// would end the process.
/// </summary>
public sealed class ModelHost : IDisposable
{
    private readonly ILogger _logger;
    private readonly string _path;
    private readonly long _maxBytes;
    private readonly Timer? _timer;
    private readonly object _reloadGate = new();
    private LoadedModel _current;
    private (DateTime Written, long Length) _stamp;
    private string? _lastError;
    private bool _disposed; // read and written under _reloadGate
    private int _disposedFlag; // the same, for the lock-free fast path of Acquire

    public ModelHost(string path, ServingOptions options, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _logger = logger;
        _path = System.IO.Path.GetFullPath(path);
        _maxBytes = options.MaxModelBytes;
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

    /// <summary>Why the last look at the model file failed (it is gone, or does not load), or null when the file in place is the model served.</summary>
    public string? LastReloadError => Volatile.Read(ref _lastError);

    /// <summary>Takes the current model for one request; dispose the lease when the request is done with it.</summary>
    public Lease Acquire()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposedFlag) != 0, this);
        while (true)
        {
            var model = Volatile.Read(ref _current);
            if (model.TryAcquire()) return new Lease(model);
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposedFlag) != 0, this);
        }
    }

    /// <summary>
    /// Loads the file again if it changed since the last load; returns true when a new model was swapped in. Never
    /// throws: a failure is logged (once while it stays the same) and kept in <see cref="LastReloadError"/>.
    /// </summary>
    public bool CheckForNewFile()
    {
        lock (_reloadGate)
        {
            if (_disposed) return false;
            try
            {
                var stamp = Stamp();
                if (stamp == _stamp)
                {
                    // The file is the one whose load was last tried; a missing file that came back unchanged is fine again.
                    if (_lastError is not null && _stampLoaded) Recovered();
                    return false;
                }
                _stamp = stamp;
                _stampLoaded = false;
                var fresh = Load();
                _stampLoaded = true;
                if (fresh.Version == _current.Version)
                {
                    fresh.Release();
                    if (_lastError is not null) Recovered();
                    return false;
                }
                var old = Interlocked.Exchange(ref _current, fresh);
                old.Release();
                Reloads++;
                Volatile.Write(ref _lastError, null);
                _logger.LogInformation("Reloaded model {Path}: version {OldVersion} -> {Version}", _path, old.Version, fresh.Version);
                return true;
            }
            catch (Exception e)
            {
                // Anything at all (a registered format's own exception, libtorch's, out of memory): the current model stays.
                string error = e is FileNotFoundException
                    ? $"The model file {System.IO.Path.GetFileName(_path)} is missing."
                    : $"The model file {System.IO.Path.GetFileName(_path)} changed but could not be loaded ({e.GetType().Name}): {FirstLine(e.Message)}";
                if (error != _lastError)
                    _logger.LogError("{Error} Still serving version {Version}.", error, _current.Version);
                Volatile.Write(ref _lastError, error);
                return false;
            }
        }
    }

    private bool _stampLoaded = true;

    private void Recovered()
    {
        Volatile.Write(ref _lastError, null);
        _logger.LogInformation("The model file {Path} is readable again: serving version {Version}.", _path, _current.Version);
    }

    private static string FirstLine(string message) =>
        message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "";

    private (DateTime, long) Stamp()
    {
        var info = new FileInfo(_path);
        if (!info.Exists) throw new FileNotFoundException($"The model file '{_path}' does not exist.", _path);
        return (info.LastWriteTimeUtc, info.Length);
    }

    private LoadedModel Load()
    {
        byte[] bytes;
        using (var file = new FileStream(_path, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            // The cap is checked before anything is read, on the open file (not on a length looked up before).
            if (file.Length > _maxBytes)
                throw new InvalidDataException($"The model file is {file.Length / (1024.0 * 1024):F1} MiB; the limit is {_maxBytes / (1024.0 * 1024):F0} MiB (MaxModelBytes, --max-model-mb).");
            bytes = new byte[file.Length];
            file.ReadExactly(bytes);
        }
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

    /// <summary>Stops the reload timer and releases the current model (freed once the requests holding it end). A reload under way finishes first; none starts after.</summary>
    public void Dispose()
    {
        lock (_reloadGate)
        {
            if (_disposed) return;
            _disposed = true;
            Volatile.Write(ref _disposedFlag, 1);
            _current.Release();
        }
        _timer?.Dispose();
    }

    /// <summary>One request's hold on a model.</summary>
    public readonly struct Lease(LoadedModel model) : IDisposable
    {
        public LoadedModel Model { get; } = model;
        public void Dispose() => Model.Release();
    }
}
