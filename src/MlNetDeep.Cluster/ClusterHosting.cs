using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Runtime.Hosting;
using Orleans.Storage;

namespace MlNetDeep.Cluster;

/// <summary>Setting up a silo for scoring jobs.</summary>
public static class ClusterHosting
{
    /// <summary>The grain storage the jobs' state lives in.</summary>
    public const string StorageName = "mlnetdeep-jobs";

    /// <summary>Most stateless worker activations per silo (the job hands a silo at most <see cref="ClusterScoringOptions.WorkersPerSilo"/> shards at once).</summary>
    public const int MaxLocalWorkers = 16;

    /// <summary>Adds the scoring job grains' needs to a silo: the job state storage (files in <see cref="ClusterScoringOptions.StateFolder"/>), the per-silo model cache and the silo-keyed placement.</summary>
    public static ISiloBuilder AddScoringJobs(this ISiloBuilder silo, ClusterScoringOptions options)
    {
        if (options.WorkersPerSilo is < 1 or > MaxLocalWorkers) throw new ArgumentOutOfRangeException(nameof(options), options.WorkersPerSilo, $"WorkersPerSilo must be 1 to {MaxLocalWorkers}.");
        silo.Services.Configure<ClusterScoringOptions>(o =>
        {
            o.StateFolder = options.StateFolder;
            o.WorkersPerSilo = options.WorkersPerSilo;
            o.MaxAttempts = options.MaxAttempts;
            o.RetryDelay = options.RetryDelay;
            o.ShardDelay = options.ShardDelay;
        });
        silo.Services.AddSingleton<ModelCache>();
        silo.Services.AddGrainStorage(StorageName, (_, _) => new FileGrainStorage(options.StateFolder));
        silo.AddPlacementDirector<SiloKeyedPlacement, SiloKeyedPlacementDirector>();
        return silo;
    }

    /// <summary>Adds model serving to a silo: its <see cref="ServedModels"/> (loaded at the first request) behind <see cref="IModelServerGrain"/>.</summary>
    public static ISiloBuilder AddModelServing(this ISiloBuilder silo, ModelServingOptions? options = null)
    {
        options ??= new ModelServingOptions();
        silo.Services.Configure<ModelServingOptions>(o =>
        {
            o.ReloadCheckInterval = options.ReloadCheckInterval;
            o.MaxModelBytes = options.MaxModelBytes;
        });
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
}
