namespace MlNetDeep.Cluster;

/// <summary>How a silo runs scoring jobs.</summary>
public sealed class ClusterScoringOptions
{
    /// <summary>The folder of persisted job state (<see cref="FileGrainStorage"/>), shared by every silo of the cluster.</summary>
    public string StateFolder { get; set; } = "cluster-state";

    /// <summary>
    /// When set (<c>host:port</c>, or StackExchange.Redis' configuration string), the jobs' state lives in this Redis
    /// (Orleans' Redis grain storage) instead of <see cref="StateFolder"/>: no shared folder is needed for it, only for
    /// the inputs and outputs.
    /// </summary>
    public string? StateRedis { get; set; }

    /// <summary>Shards a silo scores at once (its stateless workers); the job hands out no more to one silo.</summary>
    public int WorkersPerSilo { get; set; } = 2;

    /// <summary>Times a shard is handed out before the job gives up on it (a silo that died or stopped counts one).</summary>
    public int MaxAttempts { get; set; } = 5;

    /// <summary>Wait before handing a shard out again after a failed attempt.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>A pause before each shard is scored: only to make tests and demonstrations of failover observable.</summary>
    public TimeSpan ShardDelay { get; set; } = TimeSpan.Zero;
}
