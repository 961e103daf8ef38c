using System.CommandLine;
using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using MlNetDeep.Cluster;
using Orleans.Hosting;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// <c>mlnetdeep cluster</c>: scoring jobs on an Orleans cluster of silos: on this machine (localhost clustering: the
/// primary silo's port is where the others and the clients find the cluster), or on several machines with
/// <c>--redis host:port</c> (the membership table in Redis, where silos and clients find each other). <c>silo</c> runs one silo;
/// <c>submit</c>, <c>status</c> and <c>cancel</c> are clients.
/// </summary>
internal static class ClusterCommands
{
    private const int DefaultPrimaryPort = 11111, DefaultGatewayPort = 30000;

    /// <summary>How long a client waits for a gateway to answer.</summary>
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);

    public static Command Create()
    {
        var cluster = new Command("cluster", "Batch scoring jobs on a cluster of silos (Orleans): shards of a CSV scored on every silo, a dead silo's shards scored elsewhere.");
        cluster.Subcommands.Add(Silo());
        cluster.Subcommands.Add(Submit());
        cluster.Subcommands.Add(Status());
        cluster.Subcommands.Add(Cancel());
        cluster.Subcommands.Add(Sweep());
        cluster.Subcommands.Add(ExampleInputs());
        return cluster;
    }

    private static Command Silo()
    {
        var port = new Option<int>("--port", "-p") { Description = "This silo's port (silo-to-silo).", DefaultValueFactory = _ => DefaultPrimaryPort }.Between(1, 65535);
        var gateway = new Option<int>("--gateway-port") { Description = "This silo's port for clients.", DefaultValueFactory = _ => DefaultGatewayPort }.Between(1, 65535);
        var primary = new Option<int>("--primary-port") { Description = "The primary silo's port (the first silo: its own --port).", DefaultValueFactory = _ => DefaultPrimaryPort }.Between(1, 65535);
        var state = new Option<string>("--state") { Description = "The folder of the jobs' persisted state, the same for every silo (with --job-state file).", DefaultValueFactory = _ => "cluster-state" };
        var jobState = new Option<string?>("--job-state") { Description = "Where the jobs' state lives: file (the --state folder, shared by every silo) or redis (the --redis server). Default: redis with --redis, file otherwise." }
            .AcceptOnlyFromAmong("file", "redis");
        var workers = new Option<int>("--workers") { Description = "Shards this silo scores at once.", DefaultValueFactory = _ => Math.Max(1, Environment.ProcessorCount / 2) }.Between(1, ClusterHosting.MaxLocalWorkers);
        var threads = new Option<int?>("--threads") { Description = "Threads TorchSharp scores with in this silo (torch.set_num_threads; default: TorchSharp's, one per core)." };
        var redis = RedisOption();
        var address = new Option<string?>("--address") { Description = "With --redis: the address other machines reach this silo at (default: loopback when Redis is on loopback, otherwise this machine's address)." };
        var command = new Command("silo", "Run a silo of a cluster until Ctrl+C.") { port, gateway, primary, state, jobState, workers, threads, redis, address };
        command.Validators.Add(r =>
        {
            if (r.GetValue(threads) is < 1 or > 256) r.AddError("--threads must be 1 to 256.");
            if (r.GetValue(address) is { } a && !System.Net.IPAddress.TryParse(a, out _)) r.AddError($"--address '{a}' is not an IP address.");
            if (r.GetValue(address) is not null && r.GetValue(redis) is null) r.AddError("--address needs --redis (localhost clustering is on loopback).");
            if (r.GetValue(jobState) == "redis" && r.GetValue(redis) is null) r.AddError("--job-state redis needs --redis host:port.");
        });
        command.SetAction(async (result, cancellation) =>
        {
            var builder = Host.CreateApplicationBuilder();
            builder.Logging.ClearProviders();
            builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
            // Orleans' note that server GC is off is advice for a silo alone on its machine, not a problem.
            builder.Logging.SetMinimumLevel(LogLevel.Warning).AddFilter("MlNetDeep", LogLevel.Information).AddFilter("Orleans.Runtime.Silo", LogLevel.Error);
            int p = result.GetValue(port), g = result.GetValue(gateway);
            string? r = result.GetValue(redis);
            bool redisState = (result.GetValue(jobState) ?? (r is null ? "file" : "redis")) == "redis";
            var options = new ClusterScoringOptions
            {
                StateFolder = Path.GetFullPath(result.GetValue(state)!), StateRedis = redisState ? r : null, WorkersPerSilo = result.GetValue(workers),
            };
            if (r is not null) await ClusterHosting.CheckRedisAsync(r, cancellation);
            if (result.GetValue(threads) is { } n) TorchSharp.torch.set_num_threads(n);
            var advertised = result.GetValue(address) is { } a ? System.Net.IPAddress.Parse(a) : null;
            if (r is not null) advertised = ClusterHosting.AdvertisedAddress(r, advertised);
            builder.UseOrleans(silo => (r is null ? silo.UseLocalhostCluster(p, g, result.GetValue(primary)) : silo.UseRedisCluster(r, p, g, advertised))
                .UseQuickFailureDetection().AddScoringJobs(options));
            using var host = builder.Build();
            await host.StartAsync(cancellation);
            Console.WriteLine($"Silo on {(r is null ? "127.0.0.1" : advertised?.ToString() ?? "this machine's address")}:{p} (clients: {g}), " +
                $"{(r is null ? "localhost clustering" : $"membership in Redis at {r}")}, job state in {(redisState ? $"Redis at {r}" : options.StateFolder)}" +
                $"{(result.GetValue(threads) is { } t ? $", {t} scoring thread(s)" : "")}; Ctrl+C stops.");
            try { await Task.Delay(Timeout.Infinite, cancellation); }
            catch (OperationCanceledException) { }
            using var stop = new CancellationTokenSource(CliApp.InterruptGrace);
            await host.StopAsync(stop.Token);
            return 0;
        });
        return command;
    }

    internal static Option<int[]> Gateways() => new("--gateway", "-g")
    {
        Description = "Gateway port(s) of silos on this machine to connect to (without --redis).", DefaultValueFactory = _ => [DefaultGatewayPort], AllowMultipleArgumentsPerToken = true,
    };

    /// <summary><c>--redis host:port</c>: the cluster's membership table is in this Redis (silos on several machines).</summary>
    internal static Option<string?> RedisOption() => new("--redis")
    {
        Description = "Redis host:port holding the cluster's membership (silos on several machines) instead of localhost clustering.",
    };

    /// <summary>Where a client finds the cluster: Redis' membership table, or gateway ports on this machine.</summary>
    private sealed record Where(int[] Gateways, string? Redis);

    private static Where Target(ParseResult result, Option<int[]> gateways, Option<string?> redis) => new(result.GetValue(gateways)!, result.GetValue(redis));

    private static Option<string> JobName(bool required) => new("--job", "-j") { Description = "The job's name.", Required = required };

    private static Command Submit()
    {
        var job = JobName(required: true);
        var model = new Option<string>("--model", "-m") { Description = "A model saved with SaveDeep (every silo must see this path).", Required = true }.ExistingFile(OptionChecks.ModelHelpName);
        var input = new Option<string>("--input", "-i") { Description = "The CSV to score (header row; a vector column as Name.0 .. Name.(n-1)), or a folder of images (one subfolder per class) for a model that loads its images; every silo must see this path.", Required = true }.ExistingPath();
        var output = new Option<string>("--output", "-o") { Description = "The CSV of predictions to write (the same as `score` writes).", DefaultValueFactory = _ => "predictions.csv" };
        var shards = new Option<int>("--shards") { Description = "Shards to cut the input into.", DefaultValueFactory = _ => 16 }.Between(1, 100_000);
        var noWait = new Option<bool>("--no-wait") { Description = "Return once the job is submitted instead of following it to the end." };
        var gateways = Gateways();
        var redis = RedisOption();
        var command = new Command("submit", "Submit a scoring job (the same name and files again: the same job) and follow it to the end.") { job, model, input, output, shards, noWait, gateways, redis };
        command.SetAction((result, cancellation) => RunJob(Target(result, gateways, redis), result.GetValue(job)!, result.GetValue(model)!, result.GetValue(input)!,
            result.GetValue(output)!, result.GetValue(shards), result.GetValue(noWait), cancellation));
        return command;
    }

    /// <summary>
    /// Submits a scoring job (or finds the one of that name asking the same) and follows it to its end; the work of
    /// <c>cluster submit</c> and of <c>score --cluster</c>.
    /// </summary>
    internal static async Task<int> RunJob(string? redis, int[] gateways, string name, string model, string input, string output, int shards, bool noWait, CancellationToken cancellation) =>
        await RunJob(new Where(gateways, redis), name, model, input, output, shards, noWait, cancellation);

    private static async Task<int> RunJob(Where where, string name, string model, string input, string output, int shards, bool noWait, CancellationToken cancellation)
    {
        var request = new JobRequest
        {
            ModelPath = Path.GetFullPath(model), InputPath = Path.GetFullPath(input), OutputPath = Path.GetFullPath(output), Shards = shards,
        };
        // The model is checked here first, so that a file that is not a model fails before any silo is asked.
        using (new Serving.ModelHost(request.ModelPath, new Serving.ServingOptions { ModelPath = request.ModelPath, ReloadCheckInterval = TimeSpan.Zero },
                   Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance)) { }
        await using var client = await Connect(where, cancellation);
        var clock = Stopwatch.StartNew();
        var status = await client.Client.GetGrain<IScoringJobGrain>(name).Submit(request);
        Console.WriteLine($"Submitted {status}");
        if (noWait) return 0;
        status = await Follow(client.Client, name, cancellation);
        double seconds = clock.Elapsed.TotalSeconds;
        if (status.State.Phase != JobPhase.Completed) throw new InvalidOperationException(status.ToString());
        Console.WriteLine($"Wrote {status.State.Rows:N0} rows to {request.OutputPath} in {seconds:F1} s ({status.State.Rows / Math.Max(seconds, 1e-9):N0} rows/s); " +
            $"{status.State.Shards.Select(s => s.Silo).Distinct().Count()} silos, {status.State.Retries} retries.");
        return 0;
    }

    /// <summary>A job's line with a progress bar: <c>[#########-----------]  45%</c> and its status.</summary>
    internal static string WithBar(JobStatus status)
    {
        const int width = 24;
        int total = Math.Max(1, status.State.Shards.Count);
        int filled = (int)Math.Round(width * (double)status.ShardsDone / total);
        return $"[{new string('#', filled)}{new string('-', width - filled)}] {100.0 * status.ShardsDone / total,3:F0}%  {status}";
    }

    /// <summary>Polls the job until it ends, printing progress when it changes; a call that fails while a silo is being declared dead is retried.</summary>
    private static async Task<JobStatus> Follow(Orleans.IClusterClient client, string name, CancellationToken cancellation)
    {
        string last = "";
        int failures = 0;
        while (true)
        {
            cancellation.ThrowIfCancellationRequested();
            try
            {
                var status = await client.GetGrain<IScoringJobGrain>(name).GetStatus();
                failures = 0;
                string line = WithBar(status);
                if (line != last) Console.WriteLine($"{DateTime.Now:HH:mm:ss} {line}");
                last = line;
                if (status.State.Phase != JobPhase.Running) return status;
            }
            catch (Exception e) when (e is not OperationCanceledException && ++failures < 300)
            {
                Console.WriteLine($"{DateTime.Now:HH:mm:ss} (job not reachable: {CliApp.OneLine(e.Message)}; retrying)");
            }
            await Task.Delay(200, cancellation);
        }
    }

    private static Command Sweep()
    {
        var name = new Option<string>("--job", "-j") { Description = "The sweep's name.", DefaultValueFactory = _ => "sweep" };
        var data = new Option<string>("--data", "-d") { Description = "A CSV of numbers with a label column (every silo must see this path).", Required = true }.ExistingFile();
        var label = new Option<string>("--label") { Description = "The label column (its distinct values are the classes).", DefaultValueFactory = _ => "Label" };
        var grid = new Option<string>("--grid") { Description = "The trials: every combination of e.g. \"hidden=16,32;lr=0.001,0.01\".", DefaultValueFactory = _ => "hidden=16,32;lr=0.001,0.01" };
        var random = new Option<int?>("--random") { Description = "A random search of N trials instead of the grid, drawn log-uniformly from --ranges (seeded by --seed)." }
            .Check(n => n is null or (>= 1 and <= 10_000) ? null : $"--random takes 1 to 10000 trials, got {n}.");
        var ranges = new Option<string>("--ranges") { Description = "With --random: the ranges, e.g. \"hidden=8..128;lr=0.0001..0.1\".", DefaultValueFactory = _ => "hidden=8..128;lr=0.0001..0.1" };
        var folds = new Option<int>("--folds") { Description = "Cross-validation folds (row i is in fold i mod folds).", DefaultValueFactory = _ => 3 }.Between(2, 100);
        var epochs = new Option<int>("--epochs") { Description = "Epochs per training.", DefaultValueFactory = _ => 10 }.Between(1, 100_000);
        var seed = new Option<int>("--seed") { Description = "The seed of every training.", DefaultValueFactory = _ => 1 };
        var gateways = Gateways();
        var redis = RedisOption();
        var command = new Command("sweep", "A cross-validated grid or random search of an MLP classifier: each trial's folds trained on the silos; a table sorted by accuracy.")
            { name, data, label, grid, random, ranges, folds, epochs, seed, gateways, redis };
        command.Validators.Add(r =>
        {
            // GetResult, not GetValue: a value that does not parse is the parser's error, reported on its own.
            if (r.GetResult(random) is not null && r.GetResult(grid) is { Implicit: false }) r.AddError("--grid and --random are two searches: give one.");
        });
        command.SetAction(async (result, cancellation) =>
        {
            var request = new SweepRequest
            {
                DataPath = Path.GetFullPath(result.GetValue(data)!), Label = result.GetValue(label)!,
                Trials = result.GetValue(random) is { } n ? SweepRequest.ParseRandom(result.GetValue(ranges)!, n, result.GetValue(seed)) : SweepRequest.ParseGrid(result.GetValue(grid)!),
                Folds = result.GetValue(folds), Epochs = result.GetValue(epochs), Seed = result.GetValue(seed),
            };
            string sweep = result.GetValue(name)!;
            await using var client = await Connect(Target(result, gateways, redis), cancellation);
            var clock = Stopwatch.StartNew();
            var status = await client.Client.GetGrain<ISweepGrain>(sweep).Submit(request);
            Console.WriteLine($"Submitted {status}");
            string last = "";
            int failures = 0;
            while (status.State.Phase == JobPhase.Running)
            {
                await Task.Delay(500, cancellation);
                try { status = await client.Client.GetGrain<ISweepGrain>(sweep).GetStatus(); failures = 0; }
                catch (Exception e) when (e is not OperationCanceledException && ++failures < 120) { continue; }
                if (status.ToString() != last) Console.WriteLine($"{DateTime.Now:HH:mm:ss} {last = status.ToString()}");
            }
            if (status.State.Phase != JobPhase.Completed) throw new InvalidOperationException(status.ToString());
            Console.WriteLine(SweepTraining.Format(status.Table()));
            Console.WriteLine($"{status.State.Units.Count} units in {clock.Elapsed.TotalSeconds:F1} s on {status.State.Units.Select(u => u.Silo).Distinct().Count()} silos, {status.State.Retries} retries.");
            return 0;
        });
        return command;
    }

    /// <summary>
    /// <c>cluster example-inputs</c>: a model and a CSV to try a cluster with (and the inputs of docs/cluster.md's
    /// measurements): model.zip, an MLP classifier (30 features, hidden 128, 3 classes) trained for 2 epochs on 2,000
    /// synthetic rows, and rows.csv, <c>--rows</c> rows of columns Id, Features.0 .. Features.29 (seeded: the same bytes
    /// every time).
    /// </summary>
    private static Command ExampleInputs()
    {
        var output = new Option<string>("--output", "-o") { Description = "The folder to write model.zip and rows.csv to.", DefaultValueFactory = _ => "cluster-example" };
        var rows = new Option<int>("--rows") { Description = "Rows of rows.csv.", DefaultValueFactory = _ => 200_000 }.Between(0, 100_000_000);
        var command = new Command("example-inputs", "Write a small MLP classifier (model.zip) and a synthetic CSV to score with it (rows.csv), to try a cluster job with.") { output, rows };
        command.SetAction((result, cancellation) =>
        {
            string folder = result.GetValue(output)!;
            int count = result.GetValue(rows);
            Directory.CreateDirectory(folder);
            var ml = new Microsoft.ML.MLContext(seed: 1);
            var rand = new Random(0);
            var train = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 2000).Select(_ =>
            {
                var x = Enumerable.Range(0, 30).Select(_ => (float)(rand.NextDouble() * 2 - 1)).ToArray();
                return new ExampleRow { Features = x, Class = (uint)((x[0] + x[1] > 0.5 ? 2 : x[0] + x[1] < -0.5 ? 0 : 1) + 1) };
            }).ToList());
            var model = ml.MulticlassClassification.Trainers.NeuralNetwork(new MlNetDeep.Models.Classification.NeuralNetworkClassifierOptions
            {
                FeatureColumnName = "Features", LabelColumnName = "Class", Network = MlNetDeep.Networks.Networks.Mlp(128), Epochs = 2, BatchSize = 64, Seed = 1,
            }).Fit(train);
            string modelPath = Path.Combine(folder, "model.zip"), csvPath = Path.Combine(folder, "rows.csv");
            ml.Model.SaveDeep(model, train.Schema, modelPath);
            var clock = Stopwatch.StartNew();
            using (var writer = new StreamWriter(csvPath))
            {
                writer.Write("Id," + string.Join(",", Enumerable.Range(0, 30).Select(i => $"Features.{i}")) + "\n");
                var line = new System.Text.StringBuilder();
                for (int r = 0; r < count; r++)
                {
                    cancellation.ThrowIfCancellationRequested();
                    line.Clear().Append(r);
                    for (int i = 0; i < 30; i++) line.Append(',').Append(((float)Math.Round(rand.NextDouble() * 2 - 1, 4)).ToString("R", System.Globalization.CultureInfo.InvariantCulture));
                    writer.Write(line.Append('\n'));
                }
            }
            Console.WriteLine($"Wrote {modelPath} and {csvPath} ({count:N0} rows, {new FileInfo(csvPath).Length / 1e6:F1} MB).");
            return Task.FromResult(0);
        });
        return command;
    }

    private sealed class ExampleRow
    {
        [Microsoft.ML.Data.VectorType(30)] public float[] Features { get; set; } = [];
        [Microsoft.ML.Data.KeyType(4)] public uint Class { get; set; }
    }

    private static Command Status()
    {
        var job = JobName(required: false);
        var gateways = Gateways();
        var redis = RedisOption();
        var command = new Command("status", "Show the cluster's silos with the models each holds, and a job's progress (or every job's).") { job, gateways, redis };
        command.SetAction(async (result, cancellation) =>
        {
            await using var client = await Connect(Target(result, gateways, redis), cancellation);
            if (result.GetValue(job) is { } one)
            {
                var status = await client.Client.GetGrain<IScoringJobGrain>(one).GetStatus();
                if (!status.Exists) throw new ArgumentException($"No job named '{one}'.");
                Console.WriteLine(WithBar(status));
                return 0;
            }
            var hosts = await client.Client.GetGrain<Orleans.Runtime.IManagementGrain>(0).GetDetailedHosts(onlyActive: true);
            Console.WriteLine($"Silos ({hosts.Length} active):");
            foreach (var host in hosts.OrderBy(h => h.SiloAddress.ToParsableString(), StringComparer.Ordinal))
            {
                string key = host.SiloAddress.ToParsableString();
                Console.WriteLine($"  {key}  started {host.StartTime:yyyy-MM-dd HH:mm:ss} UTC");
                try
                {
                    var report = await client.Client.GetGrain<ISiloInfoGrain>(key).Describe().WaitAsync(TimeSpan.FromSeconds(10), cancellation);
                    Console.WriteLine($"    shards scoring now: {report.ShardsRunning}");
                    if (report.Models.Count == 0) Console.WriteLine("    no model loaded");
                    foreach (var m in report.Models) Console.WriteLine($"    model {m.Path} version {m.Version} ({m.Use})");
                }
                catch (Exception e) when (e is not OperationCanceledException) { Console.WriteLine($"    did not answer: {CliApp.OneLine(e.Message)}"); }
            }
            var names = await client.Client.GetGrain<IJobIndexGrain>(0).List();
            Console.WriteLine(names.Count == 0 ? "No jobs." : $"Jobs ({names.Count}):");
            foreach (var name in names)
                Console.WriteLine("  " + WithBar(await client.Client.GetGrain<IScoringJobGrain>(name).GetStatus()));
            return 0;
        });
        return command;
    }

    private static Command Cancel()
    {
        var job = JobName(required: true);
        var gateways = Gateways();
        var redis = RedisOption();
        var command = new Command("cancel", "Stop a job: no more shards are handed out, nothing is merged.") { job, gateways, redis };
        command.SetAction(async (result, cancellation) =>
        {
            await using var client = await Connect(Target(result, gateways, redis), cancellation);
            var status = await client.Client.GetGrain<IScoringJobGrain>(result.GetValue(job)!).Cancel();
            if (!status.Exists) throw new ArgumentException($"No job named '{status.Name}'.");
            Console.WriteLine(status);
            return 0;
        });
        return command;
    }

    private sealed class Connection(IHost host) : IAsyncDisposable
    {
        public Orleans.IClusterClient Client { get; } = host.Services.GetRequiredService<Orleans.IClusterClient>();

        public async ValueTask DisposeAsync()
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try { await host.StopAsync(stop.Token); } catch (OperationCanceledException) { }
            host.Dispose();
        }
    }

    private static async Task<Connection> Connect(Where where, CancellationToken cancellation)
    {
        if (where.Redis is { } redis) await ClusterHosting.CheckRedisAsync(redis, cancellation);
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.UseOrleansClient(client =>
        {
            if (where.Redis is { } r) client.UseRedisCluster(r);
            else client.UseLocalhostClustering(where.Gateways, "mlnetdeep", "mlnetdeep");
        });
        var host = builder.Build();
        using var patience = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        patience.CancelAfter(ConnectTimeout);
        try
        {
            await host.StartAsync(patience.Token);
        }
        catch (Exception e) when (!cancellation.IsCancellationRequested)
        {
            host.Dispose();
            string place = where.Redis is { } r ? $"in the membership of Redis at {r}" : $"on gateway port {string.Join(", ", where.Gateways)}";
            throw new IOException($"No silo answered {place} within {ConnectTimeout.TotalSeconds:F0} s ({CliApp.OneLine(e.Message)}): start one with `mlnetdeep cluster silo`.", e);
        }
        return new Connection(host);
    }
}
