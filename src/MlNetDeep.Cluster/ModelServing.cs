using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using MlNetDeep.Serving;
using Orleans;
using Orleans.Concurrency;
using Orleans.Runtime;

namespace MlNetDeep.Cluster;

/// <summary>How the silos serve models to <c>/predict</c>.</summary>
public sealed class ModelServingOptions
{
    /// <summary>How often each silo checks a served model's file for a new version (each silo swaps on its own, atomically).</summary>
    public TimeSpan ReloadCheckInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Largest model file in bytes.</summary>
    public long MaxModelBytes { get; set; } = 2048L << 20;

    /// <summary>
    /// Gather the rows of the requests a silo is scoring at once into one forward pass (as <c>serve</c> does on one
    /// machine): at most <see cref="MicroBatchMaxRows"/> rows, waiting at most <see cref="MicroBatchMaxDelay"/> for more
    /// (never when every request the silo is handling is already in the batch).
    /// </summary>
    public bool MicroBatching { get; set; } = true;

    public int MicroBatchMaxRows { get; set; } = 256;

    public TimeSpan MicroBatchMaxDelay { get; set; } = TimeSpan.FromMilliseconds(2);
}

/// <summary>
/// The models a silo serves: one <see cref="ModelHost"/> per model file, loaded at the first request for it, with its
/// reload timer. A new file is loaded beside the current model and swapped in atomically when it loaded; a request
/// holds the model it started with to its end (one version for all its rows), and the old model is freed after the
/// last such request.
/// </summary>
public sealed class ServedModels(IOptions<ModelServingOptions> options, ILogger<ServedModels>? logger = null) : IDisposable
{
    private readonly Dictionary<string, ModelHost> _hosts = [];
    private readonly ILogger _logger = (ILogger?)logger ?? NullLogger.Instance;
    private readonly ServingMetrics _metrics = new();
    private MicroBatcher? _batcher;
    private int _active;
    private bool _disposed;

    /// <summary>Scores <paramref name="rows"/> with <paramref name="model"/> (leased by the caller): in the silo's next micro-batch, or alone.</summary>
    internal async Task<IReadOnlyList<ReadOnlyMemory<byte>>> ScoreAsync(LoadedModel model, IReadOnlyList<JsonElement> rows)
    {
        var batch = RowBatch.FromJson(rows, model.Schema); // a bad row is a RequestException here, before any batch
        if (!options.Value.MicroBatching) return OutputWriter.Score(model, batch, CancellationToken.None);
        Interlocked.Increment(ref _active);
        try
        {
            MicroBatcher batcher;
            lock (_hosts)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                batcher = _batcher ??= new MicroBatcher(new ServingOptions
                {
                    MicroBatchMaxRows = options.Value.MicroBatchMaxRows, MicroBatchMaxDelay = options.Value.MicroBatchMaxDelay, MicroBatchQueueLimit = 4096,
                }, _metrics, () => Volatile.Read(ref _active));
            }
            return await batcher.ScoreAsync(model, batch, CancellationToken.None);
        }
        finally { Interlocked.Decrement(ref _active); }
    }

    /// <summary>Files loaded by this silo (at the first request for each; reloads not counted).</summary>
    public int Loads { get; private set; }

    /// <summary>The host of the model at <paramref name="path"/> on this silo (loaded now if it is not yet).</summary>
    public ModelHost Host(string path)
    {
        path = Path.GetFullPath(path);
        lock (_hosts)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_hosts.TryGetValue(path, out var host)) return host;
            host = new ModelHost(path, new ServingOptions
            {
                ModelPath = path, ReloadCheckInterval = options.Value.ReloadCheckInterval, MaxModelBytes = options.Value.MaxModelBytes,
            }, _logger);
            Loads++;
            _hosts[path] = host;
            return host;
        }
    }

    /// <summary>The model files this silo serves now, with their current versions.</summary>
    public IReadOnlyList<HostedModel> Loaded
    {
        get { lock (_hosts) return _hosts.Select(h => new HostedModel { Path = h.Key, Version = h.Value.Current.Version, Use = "serving" }).ToList(); }
    }

    public void Dispose()
    {
        MicroBatcher? batcher;
        lock (_hosts)
        {
            _disposed = true;
            batcher = _batcher;
        }
        batcher?.DisposeAsync().AsTask().GetAwaiter().GetResult(); // the requests in it are scored or cancelled first
        lock (_hosts)
        {
            foreach (var host in _hosts.Values) host.Dispose();
            _hosts.Clear();
        }
        _metrics.Dispose();
    }
}

/// <summary>The rows of one <c>/predict</c> request for a model file: a JSON array of row objects.</summary>
[GenerateSerializer]
public sealed class PredictCall
{
    [Id(0)] public string ModelPath { get; set; } = "";
    [Id(1)] public byte[] Rows { get; set; } = [];
}

/// <summary>The predictions (one JSON object each) and the one model version that made them, or a request error.</summary>
[GenerateSerializer]
public sealed class PredictReply
{
    [Id(0)] public string Version { get; set; } = "";
    [Id(1)] public List<byte[]> Predictions { get; set; } = [];
    [Id(2)] public string Silo { get; set; } = "";
    /// <summary>A row that does not fit the model (answered 400; not retried).</summary>
    [Id(3)] public string? Error { get; set; }
    [Id(4)] public string? Field { get; set; }
}

/// <summary>A silo's model server: one activation on each silo (keyed by the silo's address), scoring with that silo's <see cref="ServedModels"/>.</summary>
public interface IModelServerGrain : IGrainWithStringKey
{
    [ResponseTimeout("00:00:30")]
    Task<PredictReply> Predict(PredictCall call);
}

/// <summary>Scores requests on the silo its key names, many at once (reentrant; the scoring runs on the thread pool).</summary>
[SiloKeyedPlacement, Reentrant]
public sealed class ModelServerGrain(ServedModels models, ILocalSiloDetails silo) : Grain, IModelServerGrain
{
    public Task<PredictReply> Predict(PredictCall call) => Task.Run(async () =>
    {
        using var lease = models.Host(call.ModelPath).Acquire();
        var reply = new PredictReply { Version = lease.Model.Version, Silo = silo.SiloAddress.ToParsableString() };
        try
        {
            using var document = JsonDocument.Parse(call.Rows);
            var rows = document.RootElement.EnumerateArray().ToList();
            foreach (var row in await models.ScoreAsync(lease.Model, rows)) reply.Predictions.Add(row.ToArray());
        }
        catch (RequestException e)
        {
            reply.Error = e.Message;
            reply.Field = e.Field;
        }
        return reply;
    });
}

/// <summary>
/// How <see cref="ClusterPredictor"/> retries a request whose silo failed (stopped, died, unreachable, too slow): scoring
/// has no side effect, so a request is sent again, to another active silo, up to <see cref="MaxAttempts"/> times in all,
/// waiting <see cref="Delay"/> times the attempt number between tries. A silo that failed is avoided for
/// <see cref="AvoidFor"/>. A request error (a row that does not fit the model) is not retried.
/// </summary>
public sealed class PredictRetryPolicy
{
    public int MaxAttempts { get; set; } = 5;
    public TimeSpan Delay { get; set; } = TimeSpan.FromMilliseconds(100);
    public TimeSpan AvoidFor { get; set; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// The backend of <c>/predict</c> on a cluster: each request goes whole to one active silo's <see cref="IModelServerGrain"/>
/// (round robin over the silos the membership shows active now, so a silo that joins takes requests at once, with no
/// configuration elsewhere), and is retried on another silo by <see cref="PredictRetryPolicy"/> when its silo fails.
/// </summary>
public sealed class ClusterPredictor(IGrainFactory grains, Func<IReadOnlyList<string>> activeSilos, string modelPath, PredictRetryPolicy? policy = null, ILogger? logger = null) : IPredictBackend
{
    private readonly PredictRetryPolicy _policy = policy ?? new();
    private readonly ILogger _logger = logger ?? NullLogger.Instance;
    private readonly Dictionary<string, DateTime> _avoid = [];
    private readonly Dictionary<string, int> _answered = [];
    private int _next = Random.Shared.Next(1000);
    private int _retries;

    /// <summary>The backend of a silo's co-hosted service: the silo's grain factory and membership.</summary>
    public ClusterPredictor(IServiceProvider services, string modelPath, PredictRetryPolicy? policy = null, ILogger? logger = null)
        : this((IGrainFactory)services.GetService(typeof(IGrainFactory))!, ActiveSilosOf((IClusterMembershipService)services.GetService(typeof(IClusterMembershipService))!), modelPath, policy, logger) { }

    /// <summary>The silos the membership shows active now (their addresses, as grain keys).</summary>
    public static Func<IReadOnlyList<string>> ActiveSilosOf(IClusterMembershipService membership) => () =>
        membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress.ToParsableString()).OrderBy(s => s, StringComparer.Ordinal).ToList();

    /// <summary>Calls sent again after a failed one.</summary>
    public int Retries => Volatile.Read(ref _retries);

    /// <summary>Requests answered, by silo.</summary>
    public IReadOnlyDictionary<string, int> AnsweredBy { get { lock (_answered) return new Dictionary<string, int>(_answered); } }

    public async Task<PredictResult> PredictAsync(IReadOnlyList<JsonElement> rows, CancellationToken cancellation)
    {
        var call = new PredictCall { ModelPath = modelPath, Rows = JsonSerializer.SerializeToUtf8Bytes(rows) };
        for (int attempt = 1; ; attempt++)
        {
            string silo = Pick();
            try
            {
                var reply = await grains.GetGrain<IModelServerGrain>(silo).Predict(call).WaitAsync(cancellation);
                if (reply.Error is { } error) throw new RequestException(error, reply.Field);
                lock (_answered) _answered[reply.Silo] = _answered.GetValueOrDefault(reply.Silo) + 1;
                return new PredictResult(reply.Version, reply.Predictions.Select(p => (ReadOnlyMemory<byte>)p).ToList());
            }
            catch (Exception e) when (e is not RequestException && !cancellation.IsCancellationRequested && attempt < _policy.MaxAttempts)
            {
                lock (_avoid) _avoid[silo] = DateTime.UtcNow + _policy.AvoidFor;
                Interlocked.Increment(ref _retries);
                _logger.LogWarning("/predict on silo {Silo} failed (attempt {Attempt} of {Max}), sent again: {Error}", silo, attempt, _policy.MaxAttempts, ClusterHosting.Brief(e));
                await Task.Delay(_policy.Delay * attempt, cancellation);
            }
        }
    }

    private string Pick()
    {
        var silos = activeSilos();
        if (silos.Count == 0) throw new SiloUnavailableException("No silo of the cluster is active.");
        List<string> usable;
        lock (_avoid)
        {
            var now = DateTime.UtcNow;
            usable = silos.Where(s => !_avoid.TryGetValue(s, out var until) || until < now).ToList();
        }
        if (usable.Count == 0) usable = silos.ToList();
        return usable[(int)((uint)Interlocked.Increment(ref _next) % (uint)usable.Count)];
    }
}
