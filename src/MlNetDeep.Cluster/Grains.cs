using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans;
using Orleans.Concurrency;
using Orleans.Runtime;

namespace MlNetDeep.Cluster;

/// <summary>
/// A scoring job. Its state (request, shards, which are done) is persisted after every change; the dispatch loop runs
/// inside the activation, hands each unfinished shard to a silo that is active now (at most
/// <see cref="ClusterScoringOptions.WorkersPerSilo"/> at once per silo, the least busy first), hands a shard out again
/// when its call fails (the silo died or stopped: Orleans' membership declares it dead and breaks the calls to it),
/// and merges the outputs when every shard is done. If the job's own silo dies, the next call to the job (a status
/// query) activates it on another silo from its stored state and the loop goes on with the shards not done.
/// </summary>
public sealed class ScoringJobGrain(
    [PersistentState("job", ClusterHosting.StorageName)] IPersistentState<JobState> state,
    IClusterMembershipService membership,
    ModelCache models,
    IOptions<ClusterScoringOptions> options,
    ILogger<ScoringJobGrain> logger) : Grain, IScoringJobGrain
{
    private readonly ClusterScoringOptions _options = options.Value;
    private readonly SemaphoreSlim _saving = new(1, 1);
    private Task? _loop;
    private bool _stopping;

    private string Name => this.GetPrimaryKeyString();
    private JobState State => state.State;

    public async Task<JobStatus> Submit(JobRequest request)
    {
        if (state.RecordExists && State.Request is { } existing)
        {
            if (!existing.SameAs(request))
                throw new InvalidOperationException($"A job named '{Name}' already exists (scoring {existing.InputPath} into {existing.OutputPath}, {State.Phase.ToString().ToLowerInvariant()}): choose another name.");
            EnsureRunning();
            return Status();
        }
        if (request.Shards < 1) throw new ArgumentException($"A job needs at least one shard, got {request.Shards}.");
        if (!File.Exists(request.ModelPath)) throw new FileNotFoundException($"The model file '{request.ModelPath}' does not exist.", request.ModelPath);
        bool images = Directory.Exists(request.InputPath);
        if (!images && !File.Exists(request.InputPath))
            throw new FileNotFoundException($"The input '{request.InputPath}' is neither a CSV file nor a folder of images.", request.InputPath);

        var (version, length, shards, list, skipped) = await Task.Run(() =>
        {
            string v = ModelCache.VersionOf(request.ModelPath);
            using var lease = models.Acquire(request.ModelPath, v);
            if (images)
            {
                // The folder is scanned once, here, as `score` scans it; the shards are ranges of the list written from it.
                string path = ShardScoring.ImageListPath(request.OutputPath);
                int left = ShardScoring.WriteImageList(request.InputPath, lease.Model.Schema, path);
                return (v, new FileInfo(path).Length, ShardScoring.Cut(path, request.Shards, ShardScoring.ImageAlignRows), path, left);
            }
            // The header is checked against the model here, so that a CSV missing a column fails at submission.
            Serving.CsvRows.ReadLayout(request.InputPath, lease.Model.Schema, Serving.BatchScorer.MaxLineChars);
            return (v, new FileInfo(request.InputPath).Length, ShardScoring.Cut(request.InputPath, request.Shards), (string?)null, 0);
        });
        state.State = new JobState
        {
            Request = request, ModelVersion = version, InputLength = length, Shards = shards, Phase = JobPhase.Running, SubmittedUtc = DateTime.UtcNow,
            ImageList = list, ImagesSkipped = skipped,
        };
        await Save();
        await GrainFactory.GetGrain<IJobIndexGrain>(0).Add(Name);
        logger.LogInformation("Job {Job}: {Input} in {Shards} shards with model {Model} version {Version}", Name, request.InputPath, shards.Count, request.ModelPath, version);
        EnsureRunning();
        return Status();
    }

    /// <summary>The silo is shutting down (or the activation is collected): stop handing out shards; the next call to the job, on another silo, goes on from the stored state.</summary>
    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _stopping = true;
        return Task.CompletedTask;
    }

    public Task<JobStatus> GetStatus()
    {
        EnsureRunning();
        return Task.FromResult(Status());
    }

    public async Task<JobStatus> Cancel()
    {
        if (State.Request is not null && State.Phase == JobPhase.Running)
        {
            State.Phase = JobPhase.Cancelled;
            State.FinishedUtc = DateTime.UtcNow;
            await Save();
        }
        return Status();
    }

    private JobStatus Status() => new() { Name = Name, Exists = State.Request is not null, State = Copy(State) };

    private static JobState Copy(JobState s) => new()
    {
        Request = s.Request, ModelVersion = s.ModelVersion, InputLength = s.InputLength, Phase = s.Phase, Error = s.Error, Rows = s.Rows,
        Retries = s.Retries, SubmittedUtc = s.SubmittedUtc, FinishedUtc = s.FinishedUtc, ImageList = s.ImageList, ImagesSkipped = s.ImagesSkipped,
        Shards = s.Shards.Select(x => new ShardState
        {
            Index = x.Index, Start = x.Start, End = x.End, FirstLine = x.FirstLine, Done = x.Done, Rows = x.Rows, Attempts = x.Attempts, Silo = x.Silo, Error = x.Error,
            FailedOn = x.FailedOn.ToList(),
        }).ToList(),
    };

    private void EnsureRunning()
    {
        if (State.Request is not null && State.Phase == JobPhase.Running && (_loop is null || _loop.IsCompleted))
            _loop = RunAsync();
    }

    private async Task Save()
    {
        await _saving.WaitAsync();
        try { await state.WriteStateAsync(); }
        finally { _saving.Release(); }
    }

    /// <summary>Where shard <paramref name="index"/>'s output goes: <c>&lt;output&gt;.shards/&lt;index&gt;.csv</c>.</summary>
    public static string ShardFile(string output, int index) => Path.Combine(output + ".shards", $"{index}.csv");

    private async Task RunAsync()
    {
        var request = State.Request!;
        var running = new Dictionary<Task<ShardResult>, (ShardState Shard, string Silo)>();
        try
        {
            while (State.Phase == JobPhase.Running && !_stopping)
            {
                this.DelayDeactivation(TimeSpan.FromMinutes(30));
                var busy = running.Values.Select(r => r.Shard.Index).ToHashSet();
                var silos = ActiveSilos();
                foreach (var shard in State.Shards.Where(s => !s.Done && s.Error is null && !busy.Contains(s.Index)))
                {
                    if (running.Count >= silos.Count * _options.WorkersPerSilo) break; // every silo is full
                    // A silo the shard failed on (one that cannot read the model or the input, say) is not given it again
                    // while another silo is active: the shard waits for room there.
                    var candidates = silos.Where(s => !shard.FailedOn.Any(f => f.StartsWith(s + ":", StringComparison.Ordinal))).ToList();
                    if (candidates.Count == 0) candidates = silos;
                    var load = candidates.Select(s => (Silo: s, Count: running.Values.Count(r => r.Silo == s)))
                        .Where(x => x.Count < _options.WorkersPerSilo).OrderBy(x => x.Count).ThenBy(_ => Random.Shared.Next()).ToList();
                    if (load.Count == 0) continue; // no room on its silos now; another shard may fit elsewhere
                    string silo = load[0].Silo;
                    shard.Attempts++;
                    shard.Silo = silo;
                    running.Add(Dispatch(request, shard, silo), (shard, silo));
                }
                if (running.Count == 0) break;
                var finished = await Task.WhenAny(running.Keys);
                var (done, from) = running[finished];
                running.Remove(finished);
                if (State.Phase != JobPhase.Running || _stopping) break; // cancelled or deactivated meanwhile
                try
                {
                    var result = await finished;
                    if (result.FatalError is { } fatal)
                    {
                        State.Phase = JobPhase.Failed;
                        State.Error = fatal;
                        State.FinishedUtc = DateTime.UtcNow;
                    }
                    else if (result.DataError is { } bad) done.Error = bad;
                    else
                    {
                        done.Done = true;
                        done.Rows = result.Rows;
                        done.Silo = result.Silo;
                    }
                }
                catch (Exception e)
                {
                    State.Retries++;
                    done.FailedOn.Add($"{from}: {ClusterHosting.Brief(e)}");
                    logger.LogWarning("Job {Job}: shard {Shard} on {Silo} failed (attempt {Attempt}): {Error}", Name, done.Index, from, done.Attempts, ClusterHosting.Brief(e));
                    if (done.Attempts >= _options.MaxAttempts)
                        done.Error = $"shard {done.Index} failed {done.Attempts} times, on {string.Join("; ", done.FailedOn.Distinct())}";
                    else await Task.Delay(_options.RetryDelay);
                }
                await Save();
            }
            if (State.Phase != JobPhase.Running || _stopping) return;
            var failed = State.Shards.Where(s => s.Error is not null).ToList();
            if (failed.Count > 0)
            {
                State.Phase = JobPhase.Failed;
                State.Error = $"{failed.Count} of {State.Shards.Count} shards failed: " + string.Join("; ", failed.Select(s => s.Error));
            }
            else
            {
                var files = State.Shards.Select(s => ShardFile(request.OutputPath, s.Index)).ToList();
                var rows = State.Shards.Select(s => s.Rows).ToList();
                try
                {
                    bool numbered = State.ImageList is null; // CSV rows are numbered; image rows are named by their paths
                    State.Rows = await Task.Run(() => ShardScoring.Merge(files, rows, request.OutputPath, numbered));
                    try { Directory.Delete(request.OutputPath + ".shards", recursive: true); }
                    catch (IOException) { }
                    State.Phase = JobPhase.Completed;
                }
                catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
                {
                    State.Phase = JobPhase.Failed;
                    State.Error = $"merging the shards into '{request.OutputPath}' failed: {e.Message}";
                }
            }
            State.FinishedUtc = DateTime.UtcNow;
            await Save();
            logger.LogInformation("Job {Job}: {Phase}, {Rows} rows, {Retries} retries", Name, State.Phase, State.Rows, State.Retries);
        }
        catch (Exception e)
        {
            // The activation was deactivated (its silo stopping, or Orleans' directory recovering from a dead silo) or the
            // state could not be saved: the stored state stays as last written, and the next call to the job (on this
            // silo or another) goes on from it. Shards whose completion was not saved are scored again (same bytes).
            logger.LogWarning("Job {Job}: dispatch stopped, resumed at the next call: {Error}", Name, ClusterHosting.Brief(e));
            if (e is Orleans.Storage.InconsistentStateException) await state.ReadStateAsync();
            DeactivateOnIdle();
        }
    }

    private List<string> ActiveSilos() =>
        membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress.ToParsableString()).ToList();

    private Task<ShardResult> Dispatch(JobRequest request, ShardState shard, string silo) =>
        GrainFactory.GetGrain<ISiloScorerGrain>(silo).Score(new ShardWork
        {
            Job = Name, Index = shard.Index, ModelPath = request.ModelPath, ModelVersion = State.ModelVersion, InputPath = State.ImageList ?? request.InputPath, Images = State.ImageList is not null,
            InputLength = State.InputLength, Start = shard.Start, End = shard.End, FirstLine = shard.FirstLine, OutputPath = ShardFile(request.OutputPath, shard.Index),
        });
}

/// <summary>The names of the jobs submitted, persisted.</summary>
public sealed class JobIndexGrain([PersistentState("jobs", ClusterHosting.StorageName)] IPersistentState<List<string>> names) : Grain, IJobIndexGrain
{
    public async Task Add(string job)
    {
        if (names.State.Contains(job)) return;
        names.State.Add(job);
        await names.WriteStateAsync();
    }

    public Task<IReadOnlyList<string>> List() => Task.FromResult<IReadOnlyList<string>>(names.State.ToList());
}

/// <summary>A silo's entry point for shards, placed on the silo its key names; it hands each shard to the silo's local stateless workers.</summary>
[SiloKeyedPlacement, Reentrant]
public sealed class SiloScorerGrain : Grain, ISiloScorerGrain
{
    public Task<ShardResult> Score(ShardWork work) => GrainFactory.GetGrain<IShardWorkerGrain>(0).Score(work);
}

/// <summary>Reports the silo it is placed on: its models (for jobs and for serving) and the shards it is scoring.</summary>
[SiloKeyedPlacement, Reentrant]
public sealed class SiloInfoGrain(IServiceProvider services, ILocalSiloDetails silo) : Grain, ISiloInfoGrain
{
    public Task<SiloReport> Describe()
    {
        var models = new List<HostedModel>();
        var cache = services.GetService(typeof(ModelCache)) as ModelCache;
        if (cache is not null) models.AddRange(cache.Loaded);
        if (services.GetService(typeof(ServedModels)) is ServedModels served) models.AddRange(served.Loaded);
        return Task.FromResult(new SiloReport
        {
            Silo = silo.SiloAddress.ToParsableString(), Host = silo.DnsHostName, Models = models, ShardsRunning = cache?.ShardsRunning ?? 0,
        });
    }
}

/// <summary>Scores a shard with the silo's cached model (a stateless worker: activated on the calling silo, several at once).</summary>
[StatelessWorker(ClusterHosting.MaxLocalWorkers)]
public sealed class ShardWorkerGrain(ModelCache models, ILocalSiloDetails silo, IOptions<ClusterScoringOptions> options, ILogger<ShardWorkerGrain> logger) : Grain, IShardWorkerGrain
{
    public async Task<ShardResult> Score(ShardWork work)
    {
        models.ShardStarted();
        try { return await ScoreShard(work); }
        finally { models.ShardEnded(); }
    }

    private async Task<ShardResult> ScoreShard(ShardWork work)
    {
        if (options.Value.ShardDelay > TimeSpan.Zero) await Task.Delay(options.Value.ShardDelay);
        var result = await Task.Run(() =>
        {
            try
            {
                using var lease = models.Acquire(work.ModelPath, work.ModelVersion);
                return ShardScoring.Score(lease.Model, work);
            }
            catch (ModelChangedException e) { return new ShardResult { FatalError = e.Message }; }
        });
        result.Silo = silo.SiloAddress.ToParsableString();
        logger.LogDebug("Job {Job} shard {Shard}: {Rows} rows", work.Job, work.Index, result.Rows);
        return result;
    }
}
