using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Runtime.Hosting;
using Orleans.Storage;
using StackExchange.Redis;

namespace MlNetDeep.Cluster;

/// <summary>Setting up a silo for scoring jobs.</summary>
public static class ClusterHosting
{
    /// <summary>The grain storage the jobs' state lives in.</summary>
    public const string StorageName = "mlnetdeep-jobs";

    /// <summary>Most stateless worker activations per silo (the job hands a silo at most <see cref="ClusterScoringOptions.WorkersPerSilo"/> shards at once).</summary>
    public const int MaxLocalWorkers = 16;

    /// <summary>
    /// Adds the scoring job grains' needs to a silo: the job state storage (files in <see cref="ClusterScoringOptions.StateFolder"/>,
    /// or Redis at <see cref="ClusterScoringOptions.StateRedis"/>), the per-silo model cache and the silo-keyed placement.
    /// </summary>
    public static ISiloBuilder AddScoringJobs(this ISiloBuilder silo, ClusterScoringOptions options)
    {
        if (options.WorkersPerSilo is < 1 or > MaxLocalWorkers) throw new ArgumentOutOfRangeException(nameof(options), options.WorkersPerSilo, $"WorkersPerSilo must be 1 to {MaxLocalWorkers}.");
        silo.Services.AddSingleton(Microsoft.Extensions.Options.Options.Create(options));
        silo.Services.AddSingleton<ModelCache>();
        if (options.StateRedis is { } redis)
        {
            var connection = RedisOptions(redis);
            silo.AddRedisGrainStorage(StorageName, o => o.ConfigurationOptions = connection);
        }
        else silo.Services.AddGrainStorage(StorageName, (_, _) => new FileGrainStorage(options.StateFolder));
        silo.AddPlacementDirector<SiloKeyedPlacement, SiloKeyedPlacementDirector>();
        return silo;
    }

    /// <summary>Adds model serving to a silo: its <see cref="ServedModels"/> (loaded at the first request) behind <see cref="IModelServerGrain"/>.</summary>
    public static ISiloBuilder AddModelServing(this ISiloBuilder silo, ModelServingOptions? options = null)
    {
        options ??= new ModelServingOptions();
        silo.Services.AddSingleton(Microsoft.Extensions.Options.Options.Create(options));
        silo.Services.AddSingleton<ServedModels>();
        silo.AddPlacementDirector<SiloKeyedPlacement, SiloKeyedPlacementDirector>();
        return silo;
    }

    /// <summary>
    /// Failure detection fast enough for batch jobs on a few silos: a silo that stops answering probes is declared dead
    /// in seconds, and the calls to it fail so that its shards are handed out again.
    /// </summary>
    public static ISiloBuilder UseQuickFailureDetection(this ISiloBuilder silo)
    {
        silo.Configure<ClusterMembershipOptions>(o =>
        {
            o.ProbeTimeout = TimeSpan.FromSeconds(1);
            o.NumMissedProbesLimit = 2;
            o.NumVotesForDeathDeclaration = 1;
            o.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(5);
        });
        return silo;
    }

    /// <summary>
    /// A silo of a cluster on this machine (localhost clustering): the primary silo listens on
    /// <paramref name="primaryPort"/>; the others find it there.
    /// </summary>
    public static ISiloBuilder UseLocalhostCluster(this ISiloBuilder silo, int siloPort, int gatewayPort, int primaryPort, string clusterId = "mlnetdeep") =>
        silo.UseLocalhostClustering(siloPort, gatewayPort, new IPEndPoint(IPAddress.Loopback, primaryPort), clusterId, clusterId);

    /// <summary>
    /// A silo of a cluster whose membership table is in Redis at <paramref name="redis"/> (<c>host:port</c>): silos on
    /// several machines find each other there, and no silo is special. The silo advertises <paramref name="address"/>
    /// (default: loopback when Redis is on loopback, as one machine's silos; otherwise this machine's first address).
    /// </summary>
    public static ISiloBuilder UseRedisCluster(this ISiloBuilder silo, string redis, int siloPort, int gatewayPort, IPAddress? address = null, string clusterId = "mlnetdeep")
    {
        var options = RedisOptions(redis);
        silo.UseRedisClustering(o => o.ConfigurationOptions = options)
            .Configure<ClusterOptions>(o => { o.ClusterId = clusterId; o.ServiceId = clusterId; });
        address = AdvertisedAddress(redis, address);
        return address is null
            ? silo.ConfigureEndpoints(siloPort, gatewayPort, listenOnAnyHostAddress: true)
            : silo.ConfigureEndpoints(address, siloPort, gatewayPort, listenOnAnyHostAddress: true);
    }

    /// <summary>A client of a cluster whose membership table is in Redis at <paramref name="redis"/> (it finds the gateways there).</summary>
    public static IClientBuilder UseRedisCluster(this IClientBuilder client, string redis, string clusterId = "mlnetdeep") =>
        client.UseRedisClustering(o => o.ConfigurationOptions = RedisOptions(redis))
            .Configure<ClusterOptions>(o => { o.ClusterId = clusterId; o.ServiceId = clusterId; });

    /// <summary>The connection options of <paramref name="redis"/> (<c>host:port</c>, or StackExchange.Redis' configuration string).</summary>
    public static ConfigurationOptions RedisOptions(string redis)
    {
        ConfigurationOptions options;
        try { options = ConfigurationOptions.Parse(redis); }
        catch (Exception e) when (e is ArgumentException or FormatException or NotSupportedException)
        {
            throw new ArgumentException($"'{redis}' is not a Redis address (host:port): {e.Message}", nameof(redis));
        }
        if (options.EndPoints.Count == 0) throw new ArgumentException($"'{redis}' is not a Redis address (host:port).", nameof(redis));
        options.ConnectTimeout = 5000;
        return options;
    }

    /// <summary>
    /// Connects to Redis at <paramref name="redis"/> once and pings it, so that a Redis that is not there fails with one line
    /// naming the address (<see cref="IOException"/>) before a silo or client starts retrying behind it.
    /// </summary>
    public static async Task CheckRedisAsync(string redis, CancellationToken cancellation = default)
    {
        var options = RedisOptions(redis);
        options.AbortOnConnectFail = true;
        options.ConnectRetry = 1;
        try
        {
            await using var connection = await ConnectionMultiplexer.ConnectAsync(options).WaitAsync(TimeSpan.FromSeconds(10), cancellation);
            await connection.GetDatabase().PingAsync().WaitAsync(TimeSpan.FromSeconds(5), cancellation);
        }
        catch (Exception e) when (e is RedisException or TimeoutException or System.Net.Sockets.SocketException)
        {
            throw new IOException($"Redis at {redis} did not answer ({(e is TimeoutException ? "timed out" : FirstSentence(e.Message))}): start it, or check the address.", e);
        }
    }

    /// <summary>The address a silo of a Redis cluster advertises: <paramref name="address"/>, else loopback when Redis is on loopback, else null (this machine's first address).</summary>
    public static IPAddress? AdvertisedAddress(string redis, IPAddress? address = null) =>
        address ?? (RedisOptions(redis).EndPoints.All(e => e switch
        {
            IPEndPoint ip => IPAddress.IsLoopback(ip.Address),
            DnsEndPoint dns => dns.Host is "localhost" || (IPAddress.TryParse(dns.Host, out var parsed) && IPAddress.IsLoopback(parsed)),
            _ => false,
        }) ? IPAddress.Loopback : null);

    /// <summary>An exception's message for a one-line log: Orleans' messages carry their inner exception's stack trace after " ---> ".</summary>
    internal static string Brief(Exception e)
    {
        string message = e.Message.ReplaceLineEndings(" ");
        int inner = message.IndexOf(" ---> ", StringComparison.Ordinal);
        if (inner > 0) message = message[..inner];
        if (message.Length > 300) message = message[..300] + "...";
        return $"{e.GetType().Name}: {message.Trim()}";
    }

    private static string FirstSentence(string message)
    {
        message = message.ReplaceLineEndings(" ");
        int dot = message.IndexOf(". ", StringComparison.Ordinal);
        return dot > 0 ? message[..dot] : message;
    }
}
