using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Training;
using Orleans;
using Orleans.Concurrency;
using Orleans.Runtime;

namespace MlNetDeep.Cluster;

/// <summary>One point of the grid: the MLP's hidden units and Adam's learning rate.</summary>
[GenerateSerializer]
public sealed class TrialSpec
{
    [Id(0)] public int Hidden { get; set; }
    [Id(1)] public double LearningRate { get; set; }
    public override string ToString() => $"hidden={Hidden}, lr={LearningRate.ToString("G", CultureInfo.InvariantCulture)}";
}

/// <summary>A cross-validated grid search of an MLP classifier on a CSV (numeric columns; the label column's values are the classes).</summary>
[GenerateSerializer]
public sealed class SweepRequest
{
    [Id(0)] public string DataPath { get; set; } = "";
    [Id(1)] public string Label { get; set; } = "Label";
    [Id(2)] public List<TrialSpec> Trials { get; set; } = [];
    [Id(3)] public int Folds { get; set; } = 3;
    [Id(4)] public int Epochs { get; set; } = 10;
    [Id(5)] public int Seed { get; set; } = 1;
    [Id(6)] public int BatchSize { get; set; } = 16;

    public bool SameAs(SweepRequest o) => DataPath == o.DataPath && Label == o.Label && Folds == o.Folds && Epochs == o.Epochs && Seed == o.Seed
        && BatchSize == o.BatchSize && Trials.Count == o.Trials.Count && Trials.Zip(o.Trials).All(p => p.First.Hidden == p.Second.Hidden && p.First.LearningRate == p.Second.LearningRate);

    /// <summary>Parses a grid such as <c>hidden=16,32;lr=0.001,0.01</c> into its trials (every combination, hidden first).</summary>
    public static List<TrialSpec> ParseGrid(string grid)
    {
        var axes = grid.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(part =>
        {
            var kv = part.Split('=', 2, StringSplitOptions.TrimEntries);
            if (kv.Length != 2 || kv[1].Length == 0) throw new ArgumentException($"The grid part '{part}' is not name=value,value,...");
            return (Name: kv[0].ToLowerInvariant(), Values: kv[1].Split(',', StringSplitOptions.TrimEntries).ToList());
        }).ToDictionary(a => a.Name, a => a.Values);
        foreach (var name in axes.Keys)
            if (name is not ("hidden" or "lr")) throw new ArgumentException($"The grid names '{name}'; it takes hidden and lr.");
        var hidden = axes.GetValueOrDefault("hidden", ["32"]).Select(v => int.TryParse(v, CultureInfo.InvariantCulture, out int h) && h > 0 ? h : throw new ArgumentException($"hidden '{v}' is not a positive integer.")).ToList();
        var rates = axes.GetValueOrDefault("lr", ["0.001"]).Select(v => double.TryParse(v, CultureInfo.InvariantCulture, out double r) && r > 0 && double.IsFinite(r) ? r : throw new ArgumentException($"lr '{v}' is not a positive number.")).ToList();
        return hidden.SelectMany(h => rates.Select(r => new TrialSpec { Hidden = h, LearningRate = r })).ToList();
    }

    /// <summary>
    /// A random search: <paramref name="count"/> trials drawn from ranges such as <c>hidden=8..128;lr=0.0001..0.1</c>, each
    /// value log-uniform in its range (hidden rounded to an integer), from <paramref name="seed"/> (the same trials every
    /// time). A range left out keeps its default (hidden 32, lr 0.001); repeated draws are kept once.
    /// </summary>
    public static List<TrialSpec> ParseRandom(string ranges, int count, int seed)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "A random search needs at least one trial.");
        var axes = ranges.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(part =>
        {
            var kv = part.Split('=', 2, StringSplitOptions.TrimEntries);
            var bounds = kv.Length == 2 ? kv[1].Split("..", StringSplitOptions.TrimEntries) : [];
            if (bounds.Length != 2
                || !double.TryParse(bounds[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double low)
                || !double.TryParse(bounds[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double high))
                throw new ArgumentException($"The range '{part}' is not name=low..high.");
            if (!(low > 0 && high >= low && double.IsFinite(high))) throw new ArgumentException($"The range '{part}' needs 0 < low <= high.");
            return (Name: kv[0].ToLowerInvariant(), Low: low, High: high);
        }).ToDictionary(a => a.Name, a => (a.Low, a.High));
        foreach (var name in axes.Keys)
            if (name is not ("hidden" or "lr")) throw new ArgumentException($"The ranges name '{name}'; they take hidden and lr.");
        if (axes.TryGetValue("hidden", out var h) && (h.Low < 1 || h.High > 1_000_000)) throw new ArgumentException("hidden must lie in 1..1000000.");
        var random = new Random(seed);
        double Draw((double Low, double High) r) => Math.Exp(Math.Log(r.Low) + random.NextDouble() * (Math.Log(r.High) - Math.Log(r.Low)));
        var trials = new List<TrialSpec>();
        for (int i = 0; i < count; i++)
        {
            var trial = new TrialSpec
            {
                Hidden = axes.TryGetValue("hidden", out var hr) ? (int)Math.Round(Draw(hr)) : 32,
                LearningRate = axes.TryGetValue("lr", out var lr) ? double.Parse(Draw(lr).ToString("G3", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture) : 0.001,
            };
            if (!trials.Any(t => t.Hidden == trial.Hidden && t.LearningRate == trial.LearningRate)) trials.Add(trial);
        }
        return trials;
    }
}

/// <summary>One unit of a sweep: a trial trained on every fold but one and measured on that one.</summary>
[GenerateSerializer]
public sealed class SweepUnit
{
    [Id(0)] public int Trial { get; set; }
    [Id(1)] public int Fold { get; set; }
    [Id(2)] public bool Done { get; set; }
    [Id(3)] public double Accuracy { get; set; }
    [Id(4)] public double LogLoss { get; set; }
    [Id(5)] public int Attempts { get; set; }
    [Id(6)] public string? Silo { get; set; }
    [Id(7)] public string? Error { get; set; }
}

/// <summary>A sweep's persisted state.</summary>
[GenerateSerializer]
public sealed class SweepState
{
    [Id(0)] public SweepRequest? Request { get; set; }
    [Id(1)] public List<SweepUnit> Units { get; set; } = [];
    [Id(2)] public JobPhase Phase { get; set; }
    [Id(3)] public string? Error { get; set; }
    [Id(4)] public int Retries { get; set; }
}

/// <summary>A trial's line of the table: its mean over the folds.</summary>
public sealed record TrialRow(int Trial, TrialSpec Spec, double Accuracy, double LogLoss, IReadOnlyList<double> FoldAccuracies);

/// <summary>What a client sees of a sweep.</summary>
[GenerateSerializer]
public sealed class SweepStatus
{
    [Id(0)] public string Name { get; set; } = "";
    [Id(1)] public bool Exists { get; set; }
    [Id(2)] public SweepState State { get; set; } = new();

    public int UnitsDone => State.Units.Count(u => u.Done);

    /// <summary>The trials, best mean accuracy first (ties: lower log-loss, then grid order); only trials whose folds are all done.</summary>
    public List<TrialRow> Table() => SweepTraining.Table(State.Request!.Trials, State.Units);

    public override string ToString() => !Exists ? $"{Name}: no such sweep" :
        $"{Name}: {State.Phase.ToString().ToLowerInvariant()}, units {UnitsDone}/{State.Units.Count}, retries {State.Retries}" + (State.Error is { } e ? $"; {e}" : "");
}

/// <summary>A sweep, keyed by its name; its units are persisted as they finish.</summary>
public interface ISweepGrain : IGrainWithStringKey
{
    Task<SweepStatus> Submit(SweepRequest request);
    Task<SweepStatus> GetStatus();
}

/// <summary>A silo's trainer: one activation per silo (keyed by its address).</summary>
public interface ISweepWorkerGrain : IGrainWithStringKey
{
    [ResponseTimeout("04:00:00")]
    Task<(double Accuracy, double LogLoss, string Silo)> Run(SweepRequest request, int trial, int fold);
}

/// <summary>Training and measuring one fold of one trial, the same in a silo and in one process.</summary>
public static class SweepTraining
{
    private sealed class Row
    {
        public float[] Features { get; set; } = [];
        public uint Label { get; set; }
    }

    /// <summary>Reads the CSV: every column but <paramref name="label"/> a number; the label's distinct values (sorted) are the classes.</summary>
    public static (List<float[]> X, List<uint> Y, int Classes) Read(string path, string label)
    {
        var lines = File.ReadAllLines(path).Where(l => l.Length > 0).ToList();
        var header = lines[0].Split(',');
        int li = Array.IndexOf(header, label);
        if (li < 0) throw new ArgumentException($"{path} has no column '{label}' (columns: {string.Join(", ", header)}).");
        var raw = lines.Skip(1).Select((l, i) =>
        {
            var cells = l.Split(',');
            if (cells.Length != header.Length) throw new InvalidDataException($"{path}: Line {i + 2}: {cells.Length} cells, the header has {header.Length}.");
            var x = new float[header.Length - 1];
            for (int c = 0, k = 0; c < cells.Length; c++)
            {
                if (c == li) continue;
                x[k++] = float.TryParse(cells[c], CultureInfo.InvariantCulture, out float v) && float.IsFinite(v) ? v
                    : throw new InvalidDataException($"{path}: Line {i + 2}: '{header[c]}' is '{cells[c]}', not a finite number");
            }
            return (x, cells[li]);
        }).ToList();
        var classes = raw.Select(r => r.Item2).Distinct().OrderBy(s => s, StringComparer.Ordinal).ToList();
        return (raw.Select(r => r.x).ToList(), raw.Select(r => (uint)classes.IndexOf(r.Item2) + 1).ToList(), classes.Count);
    }

    /// <summary>Trains trial <paramref name="trial"/> on every fold but <paramref name="fold"/> (row i is in fold i mod Folds) and measures it on that fold.</summary>
    public static (double Accuracy, double LogLoss) Run(SweepRequest request, int trial, int fold)
    {
        var (x, y, classes) = Read(request.DataPath, request.Label);
        var spec = request.Trials[trial];
        var ml = new MLContext(seed: request.Seed);
        var schema = SchemaDefinition.Create(typeof(Row));
        schema["Features"].ColumnType = new VectorDataViewType(NumberDataViewType.Single, x[0].Length);
        schema["Label"].ColumnType = new KeyDataViewType(typeof(uint), classes);
        IDataView Part(bool test) => ml.Data.LoadFromEnumerable(
            Enumerable.Range(0, x.Count).Where(i => (i % request.Folds == fold) == test).Select(i => new Row { Features = x[i], Label = y[i] }).ToList(), schema);
        var model = ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Features", LabelColumnName = "Label", Network = Networks.Networks.Mlp(spec.Hidden),
            Optimizer = new Adam(spec.LearningRate), Epochs = request.Epochs, BatchSize = request.BatchSize, Seed = request.Seed,
        }).Fit(Part(test: false));
        try
        {
            var metrics = ml.MulticlassClassification.Evaluate(model.Transform(Part(test: true)), "Label");
            return (metrics.MicroAccuracy, metrics.LogLoss);
        }
        finally { (model as IDisposable)?.Dispose(); }
    }

    /// <summary>Every unit of a request run in this process, one after another (what a sweep on a cluster must equal).</summary>
    public static List<TrialRow> RunInProcess(SweepRequest request)
    {
        var units = new List<SweepUnit>();
        for (int t = 0; t < request.Trials.Count; t++)
            for (int f = 0; f < request.Folds; f++)
            {
                var (a, l) = Run(request, t, f);
                units.Add(new SweepUnit { Trial = t, Fold = f, Done = true, Accuracy = a, LogLoss = l });
            }
        return Table(request.Trials, units);
    }

    public static List<TrialRow> Table(IReadOnlyList<TrialSpec> trials, IReadOnlyList<SweepUnit> units) =>
        units.GroupBy(u => u.Trial).Where(g => g.All(u => u.Done))
            .Select(g => new TrialRow(g.Key, trials[g.Key], g.Average(u => u.Accuracy), g.Average(u => u.LogLoss), g.OrderBy(u => u.Fold).Select(u => u.Accuracy).ToList()))
            .OrderByDescending(r => r.Accuracy).ThenBy(r => r.LogLoss).ThenBy(r => r.Trial).ToList();

    /// <summary>The table as text: rank, trial, mean accuracy, mean log-loss, the folds' accuracies.</summary>
    public static string Format(IEnumerable<TrialRow> rows) =>
        "rank | hidden | lr | accuracy | log-loss | folds\n" + string.Join("\n", rows.Select((r, i) =>
            $"{i + 1} | {r.Spec.Hidden} | {r.Spec.LearningRate.ToString("G", CultureInfo.InvariantCulture)} | {r.Accuracy:F4} | {r.LogLoss:F4} | {string.Join(" ", r.FoldAccuracies.Select(a => a.ToString("F3", CultureInfo.InvariantCulture)))}"));
}

/// <summary>
/// A sweep: hands each (trial, fold) unit to a silo active now (at most <see cref="ClusterScoringOptions.WorkersPerSilo"/>
/// at once per silo), persists each result as it comes, and hands a unit out again when its silo fails (up to
/// <see cref="ClusterScoringOptions.MaxAttempts"/>). Like a scoring job, it resumes from its stored state at the next call.
/// </summary>
public sealed class SweepGrain(
    [PersistentState("sweep", ClusterHosting.StorageName)] IPersistentState<SweepState> state,
    IClusterMembershipService membership,
    IOptions<ClusterScoringOptions> options,
    ILogger<SweepGrain> logger) : Grain, ISweepGrain
{
    private Task? _loop;
    private bool _stopping;
    private SweepState State => state.State;
    private string Name => this.GetPrimaryKeyString();

    public async Task<SweepStatus> Submit(SweepRequest request)
    {
        if (state.RecordExists && State.Request is { } existing)
        {
            if (!existing.SameAs(request)) throw new InvalidOperationException($"A sweep named '{Name}' already exists: choose another name.");
        }
        else
        {
            if (request.Trials.Count == 0) throw new ArgumentException("A sweep needs at least one trial.");
            if (request.Folds < 2) throw new ArgumentException($"A cross-validation needs at least 2 folds, got {request.Folds}.");
            if (!File.Exists(request.DataPath)) throw new FileNotFoundException($"The data file '{request.DataPath}' does not exist.", request.DataPath);
            await Task.Run(() => SweepTraining.Read(request.DataPath, request.Label)); // a bad file fails at submission
            state.State = new SweepState
            {
                Request = request, Phase = JobPhase.Running,
                Units = Enumerable.Range(0, request.Trials.Count).SelectMany(t => Enumerable.Range(0, request.Folds).Select(f => new SweepUnit { Trial = t, Fold = f })).ToList(),
            };
            await state.WriteStateAsync();
        }
        EnsureRunning();
        return Status();
    }

    public Task<SweepStatus> GetStatus()
    {
        EnsureRunning();
        return Task.FromResult(Status());
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _stopping = true;
        return Task.CompletedTask;
    }

    private SweepStatus Status() => new()
    {
        Name = Name, Exists = State.Request is not null,
        State = new SweepState
        {
            Request = State.Request, Phase = State.Phase, Error = State.Error, Retries = State.Retries,
            Units = State.Units.Select(u => new SweepUnit { Trial = u.Trial, Fold = u.Fold, Done = u.Done, Accuracy = u.Accuracy, LogLoss = u.LogLoss, Attempts = u.Attempts, Silo = u.Silo, Error = u.Error }).ToList(),
        },
    };

    private void EnsureRunning()
    {
        if (State.Request is not null && State.Phase == JobPhase.Running && (_loop is null || _loop.IsCompleted)) _loop = RunAsync();
    }

    private async Task RunAsync()
    {
        var request = State.Request!;
        var opts = options.Value;
        var running = new Dictionary<Task<(double, double, string)>, (SweepUnit Unit, string Silo)>();
        try
        {
            while (!_stopping)
            {
                this.DelayDeactivation(TimeSpan.FromMinutes(30));
                var busy = running.Values.Select(r => r.Unit).ToHashSet();
                var silos = membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress.ToParsableString()).ToList();
                foreach (var unit in State.Units.Where(u => !u.Done && u.Error is null && !busy.Contains(u)))
                {
                    var free = silos.Select(s => (s, n: running.Values.Count(r => r.Silo == s))).Where(p => p.n < opts.WorkersPerSilo).OrderBy(p => p.n).ThenBy(_ => Random.Shared.Next()).ToList();
                    if (free.Count == 0) break;
                    unit.Attempts++;
                    unit.Silo = free[0].s;
                    running.Add(GrainFactory.GetGrain<ISweepWorkerGrain>(free[0].s).Run(request, unit.Trial, unit.Fold), (unit, free[0].s));
                }
                if (running.Count == 0) break;
                var finished = await Task.WhenAny(running.Keys);
                var (done, from) = running[finished];
                running.Remove(finished);
                if (_stopping) break;
                try
                {
                    var (accuracy, logLoss, silo) = await finished;
                    (done.Done, done.Accuracy, done.LogLoss, done.Silo) = (true, accuracy, logLoss, silo);
                }
                catch (Exception e)
                {
                    State.Retries++;
                    logger.LogWarning("Sweep {Sweep}: trial {Trial} fold {Fold} on {Silo} failed (attempt {Attempt}): {Error}", Name, done.Trial, done.Fold, from, done.Attempts, ClusterHosting.Brief(e));
                    if (e is InvalidDataException or ArgumentException || done.Attempts >= opts.MaxAttempts) done.Error = $"trial {done.Trial} fold {done.Fold}: {e.Message}";
                    else await Task.Delay(opts.RetryDelay);
                }
                await state.WriteStateAsync();
            }
            if (_stopping) return;
            var failed = State.Units.Where(u => u.Error is not null).ToList();
            State.Phase = failed.Count == 0 ? JobPhase.Completed : JobPhase.Failed;
            if (failed.Count > 0) State.Error = $"{failed.Count} of {State.Units.Count} units failed: " + string.Join("; ", failed.Select(u => u.Error));
            await state.WriteStateAsync();
        }
        catch (Exception e)
        {
            logger.LogWarning("Sweep {Sweep}: dispatch stopped, resumed at the next call: {Error}", Name, ClusterHosting.Brief(e));
            if (e is Orleans.Storage.InconsistentStateException) await state.ReadStateAsync();
            DeactivateOnIdle();
        }
    }
}

/// <summary>Trains a unit on the silo its key names (reentrant: several at once; the training runs on the thread pool).</summary>
[SiloKeyedPlacement, Reentrant]
public sealed class SweepWorkerGrain(ILocalSiloDetails silo, IOptions<ClusterScoringOptions> options) : Grain, ISweepWorkerGrain
{
    public async Task<(double Accuracy, double LogLoss, string Silo)> Run(SweepRequest request, int trial, int fold)
    {
        if (options.Value.ShardDelay > TimeSpan.Zero) await Task.Delay(options.Value.ShardDelay);
        var (a, l) = await Task.Run(() => SweepTraining.Run(request, trial, fold));
        return (a, l, silo.SiloAddress.ToParsableString());
    }
}
