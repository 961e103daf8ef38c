using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MlNetDeep.Serving;

namespace MlNetDeep.Cluster;

/// <summary>Thrown when a model file no longer holds the version a job was submitted with.</summary>
public sealed class ModelChangedException(string message) : InvalidOperationException(message);

/// <summary>
/// A silo's models: each model file is loaded once per silo (by <see cref="ModelHost"/>, without its reload timer) and
/// shared by every shard the silo scores. A shard asks for the version its job was submitted with, so one job is
/// scored by one model version end to end; a file changed since is loaded anew and, if it is not that version, refused.
/// </summary>
public sealed class ModelCache(ILogger<ModelCache>? logger = null) : IDisposable
{
    private readonly Dictionary<string, ModelHost> _hosts = [];
    private readonly ILogger _logger = (ILogger?)logger ?? NullLogger.Instance;
    private int _loads, _running;

    /// <summary>Shards this silo is scoring now.</summary>
    public int ShardsRunning => Volatile.Read(ref _running);

    internal void ShardStarted() => Interlocked.Increment(ref _running);

    internal void ShardEnded() => Interlocked.Decrement(ref _running);

    /// <summary>Loads a model file instead of <see cref="ModelHost"/>'s constructor (tests: a silo that cannot read the file).</summary>
    internal Func<string, ModelHost>? Load { get; init; }

    /// <summary>How many times this silo loaded a model file.</summary>
    public int Loads => Volatile.Read(ref _loads);

    /// <summary>The version <see cref="ModelHost"/> gives a file: the first 12 hex digits of its SHA-256.</summary>
    public static string VersionOf(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream))[..12].ToLowerInvariant();
    }

    /// <summary>Holds the model at <paramref name="path"/> in version <paramref name="version"/> for one shard.</summary>
    public ModelHost.Lease Acquire(string path, string version)
    {
        path = Path.GetFullPath(path);
        lock (_hosts)
        {
            if (_hosts.TryGetValue(path, out var host) && host.Current.Version == version) return host.Acquire();
            var fresh = Load?.Invoke(path) ?? new ModelHost(path, new ServingOptions { ModelPath = path, ReloadCheckInterval = TimeSpan.Zero }, _logger);
            Interlocked.Increment(ref _loads);
            if (fresh.Current.Version != version)
            {
                string found = fresh.Current.Version;
                fresh.Dispose();
                throw new ModelChangedException($"The model file '{path}' changed since the job was submitted (version {version}, now {found}): submit a new job to score with the new model.");
            }
            host?.Dispose(); // shards still scoring with the old version keep it until they end
            _hosts[path] = fresh;
            return fresh.Acquire();
        }
    }

    /// <summary>The model files this silo holds for jobs now, with their versions.</summary>
    public IReadOnlyList<HostedModel> Loaded
    {
        get { lock (_hosts) return _hosts.Select(h => new HostedModel { Path = h.Key, Version = h.Value.Current.Version, Use = "jobs" }).ToList(); }
    }

    public void Dispose()
    {
        lock (_hosts)
        {
            foreach (var host in _hosts.Values) host.Dispose();
            _hosts.Clear();
        }
    }
}
