using Orleans;

namespace MlNetDeep.Cluster;

/// <summary>
/// A batch scoring job: score <see cref="InputPath"/> (a CSV file, or a folder of images in one subfolder per class, as
/// <c>score</c> takes) with <see cref="ModelPath"/> into <see cref="OutputPath"/>.
/// </summary>
[GenerateSerializer]
public sealed class JobRequest
{
    [Id(0)] public string ModelPath { get; set; } = "";
    [Id(1)] public string InputPath { get; set; } = "";
    [Id(2)] public string OutputPath { get; set; } = "";
    /// <summary>How many shards to cut the input into (fewer when the file has fewer rows).</summary>
    [Id(3)] public int Shards { get; set; } = 16;

    /// <summary>Whether <paramref name="other"/> asks for the same work (same files, same shard count).</summary>
    public bool SameAs(JobRequest other) =>
        ModelPath == other.ModelPath && InputPath == other.InputPath && OutputPath == other.OutputPath && Shards == other.Shards;
}

public enum JobPhase { Running, Completed, Failed, Cancelled }

/// <summary>One shard of a job: rows in bytes [<see cref="Start"/>, <see cref="End"/>) of the input, and how far it got.</summary>
[GenerateSerializer]
public sealed class ShardState
{
    [Id(0)] public int Index { get; set; }
    [Id(1)] public long Start { get; set; }
    [Id(2)] public long End { get; set; }
    /// <summary>The file line number (1-based; the header is line 1) of the shard's first row.</summary>
    [Id(3)] public long FirstLine { get; set; }
    [Id(4)] public bool Done { get; set; }
    /// <summary>Rows scored (when done).</summary>
    [Id(5)] public long Rows { get; set; }
    /// <summary>How many times it was handed to a silo.</summary>
    [Id(6)] public int Attempts { get; set; }
    /// <summary>The silo that scored it (when done), or the last one it was handed to.</summary>
    [Id(7)] public string? Silo { get; set; }
    /// <summary>Why it failed for good: a row that does not parse (file, line, cause), or too many failed attempts.</summary>
    [Id(8)] public string? Error { get; set; }
    /// <summary>The silos it failed on (with why), which are not given it again while another silo is active.</summary>
    [Id(9)] public List<string> FailedOn { get; set; } = [];
}

/// <summary>A job's persisted state: what was asked, the shards, the outcome.</summary>
[GenerateSerializer]
public sealed class JobState
{
    [Id(0)] public JobRequest? Request { get; set; }
    /// <summary>The model file's version (first 12 hex digits of its SHA-256) when the job was submitted: every shard is scored by it.</summary>
    [Id(1)] public string ModelVersion { get; set; } = "";
    [Id(2)] public long InputLength { get; set; }
    [Id(3)] public List<ShardState> Shards { get; set; } = [];
    [Id(4)] public JobPhase Phase { get; set; }
    [Id(5)] public string? Error { get; set; }
    /// <summary>Rows in the merged output (when completed).</summary>
    [Id(6)] public long Rows { get; set; }
    /// <summary>Shard hand-outs that failed (a silo that died or stopped, a timeout) and were handed out again.</summary>
    [Id(7)] public int Retries { get; set; }
    [Id(8)] public DateTime SubmittedUtc { get; set; }
    [Id(9)] public DateTime? FinishedUtc { get; set; }
    /// <summary>
    /// For an image folder: the list of its images (ImagePath, Label; a CSV beside the output, written at submission in
    /// the order <c>score</c> scores them) whose rows the shards are byte ranges of; null for a CSV input.
    /// </summary>
    [Id(10)] public string? ImageList { get; set; }
    /// <summary>For an image folder: the files the scan left out (not images, damaged), which <c>score</c> leaves out too.</summary>
    [Id(11)] public int ImagesSkipped { get; set; }
}

/// <summary>What a client sees of a job.</summary>
[GenerateSerializer]
public sealed class JobStatus
{
    [Id(0)] public string Name { get; set; } = "";
    /// <summary>False when no job of this name was ever submitted.</summary>
    [Id(1)] public bool Exists { get; set; }
    [Id(2)] public JobState State { get; set; } = new();

    public int ShardsDone => State.Shards.Count(s => s.Done);
    public long RowsDone => State.Shards.Where(s => s.Done).Sum(s => s.Rows);

    public override string ToString() => !Exists ? $"{Name}: no such job" :
        $"{Name}: {State.Phase.ToString().ToLowerInvariant()}, shards {ShardsDone}/{State.Shards.Count}, rows {RowsDone:N0}, retries {State.Retries}" +
        (State.Error is { } e ? $"; {e}" : "");
}

/// <summary>One shard handed to a silo.</summary>
[GenerateSerializer]
public sealed class ShardWork
{
    [Id(0)] public string Job { get; set; } = "";
    [Id(1)] public int Index { get; set; }
    [Id(2)] public string ModelPath { get; set; } = "";
    [Id(3)] public string ModelVersion { get; set; } = "";
    [Id(4)] public string InputPath { get; set; } = "";
    [Id(5)] public long InputLength { get; set; }
    [Id(6)] public long Start { get; set; }
    [Id(7)] public long End { get; set; }
    [Id(8)] public long FirstLine { get; set; }
    /// <summary>Where the shard's scored rows go (written atomically: a temporary file renamed).</summary>
    [Id(9)] public string OutputPath { get; set; } = "";
    /// <summary>True when <see cref="InputPath"/> is an image list (ImagePath, Label) rather than rows for the model.</summary>
    [Id(10)] public bool Images { get; set; }
}

/// <summary>A shard's outcome: rows written, or a data error (no retry), or a fatal one (the job stops).</summary>
[GenerateSerializer]
public sealed class ShardResult
{
    [Id(0)] public long Rows { get; set; }
    [Id(1)] public string Silo { get; set; } = "";
    /// <summary>A row that does not parse: file, line and cause. Retrying would fail the same way.</summary>
    [Id(2)] public string? DataError { get; set; }
    /// <summary>The model or input changed since the job was submitted: no shard can be scored as asked.</summary>
    [Id(3)] public string? FatalError { get; set; }
}

/// <summary>A batch scoring job, keyed by its name. Its progress is persisted: it survives the silo it lives on.</summary>
public interface IScoringJobGrain : IGrainWithStringKey
{
    /// <summary>
    /// Starts the job. Submitting again under the same name with the same request returns the existing job (idempotent);
    /// with a different request it fails with <see cref="InvalidOperationException"/>.
    /// </summary>
    Task<JobStatus> Submit(JobRequest request);

    /// <summary>The job's progress (and, for a job left running by a cluster that went down, resumes it).</summary>
    Task<JobStatus> GetStatus();

    /// <summary>Stops handing out shards; shards already running finish, nothing is merged.</summary>
    Task<JobStatus> Cancel();
}

/// <summary>The names of every job submitted (for <c>cluster status</c> without a name).</summary>
public interface IJobIndexGrain : IGrainWithIntegerKey
{
    Task Add(string job);
    Task<IReadOnlyList<string>> List();
}

/// <summary>A silo's entry point for shards: one activation on each silo (keyed by the silo's address), which hands shards to that silo's local workers.</summary>
public interface ISiloScorerGrain : IGrainWithStringKey
{
    [ResponseTimeout("02:00:00")]
    Task<ShardResult> Score(ShardWork work);
}

/// <summary>Scores one shard on the silo it is called from (a stateless worker: several activations per silo).</summary>
public interface IShardWorkerGrain : IGrainWithIntegerKey
{
    [ResponseTimeout("02:00:00")]
    Task<ShardResult> Score(ShardWork work);
}

/// <summary>A model a silo holds in memory: its file, its version (the first 12 hex digits of the file's SHA-256) and what for.</summary>
[GenerateSerializer]
public sealed class HostedModel
{
    [Id(0)] public string Path { get; set; } = "";
    [Id(1)] public string Version { get; set; } = "";
    /// <summary><c>jobs</c> (batch scoring) or <c>serving</c> (<c>/predict</c>).</summary>
    [Id(2)] public string Use { get; set; } = "";
}

/// <summary>What one silo reports of itself for <c>cluster status</c>.</summary>
[GenerateSerializer]
public sealed class SiloReport
{
    [Id(0)] public string Silo { get; set; } = "";
    [Id(1)] public string Host { get; set; } = "";
    [Id(2)] public List<HostedModel> Models { get; set; } = [];
    /// <summary>Shards being scored on the silo now.</summary>
    [Id(3)] public int ShardsRunning { get; set; }
}

/// <summary>A silo's own report (one activation on each silo, keyed by the silo's address).</summary>
public interface ISiloInfoGrain : IGrainWithStringKey
{
    Task<SiloReport> Describe();
}
