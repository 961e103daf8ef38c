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
        return cluster;
    }

    private static Command Silo()
    {
        var port = new Option<int>("--port", "-p") { Description = "This silo's port (silo-to-silo).", DefaultValueFactory = _ => DefaultPrimaryPort }.Between(1, 65535);
        var gateway = new Option<int>("--gateway-port") { Description = "This silo's port for clients.", DefaultValueFactory = _ => DefaultGatewayPort }.Between(1, 65535);
        var primary = new Option<int>("--primary-port") { Description = "The primary silo's port (the first silo: its own --port).", DefaultValueFactory = _ => DefaultPrimaryPort }.Between(1, 65535);
        var state = new Option<string>("--state") { Description = "The folder of the jobs' persisted state, the same for every silo.", DefaultValueFactory = _ => "cluster-state" };
        var workers = new Option<int>("--workers") { Description = "Shards this silo scores at once.", DefaultValueFactory = _ => Math.Max(1, Environment.ProcessorCount / 2) }.Between(1, ClusterHosting.MaxLocalWorkers);
        var threads = new Option<int?>("--threads") { Description = "Threads TorchSharp scores with in this silo (torch.set_num_threads; default: TorchSharp's, one per core)." };
        var redis = RedisOption();
        var address = new Option<string?>("--address") { Description = "With --redis: the address other machines reach this silo at (default: loopback when Redis is on loopback, otherwise this machine's address)." };
        var command = new Command("silo", "Run a silo of a cluster until Ctrl+C.") { port, gateway, primary, state, workers, threads, redis, address };
        command.Validators.Add(r =>
        {
            if (r.GetValue(threads) is < 1 or > 256) r.AddError("--threads must be 1 to 256.");
            if (r.GetValue(address) is { } a && !System.Net.IPAddress.TryParse(a, out _)) r.AddError($"--address '{a}' is not an IP address.");
            if (r.GetValue(address) is not null && r.GetValue(redis) is null) r.AddError("--address needs --redis (localhost clustering is on loopback).");
        });
        command.SetAction(async (result, cancellation) =>
        {
            var builder = Host.CreateApplicationBuilder();
            builder.Logging.ClearProviders();
            builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
            builder.Logging.SetMinimumLevel(LogLevel.Warning).AddFilter("MlNetDeep", LogLevel.Information);
            var options = new ClusterScoringOptions { StateFolder = Path.GetFullPath(result.GetValue(state)!), WorkersPerSilo = result.GetValue(workers) };
            int p = result.GetValue(port), g = result.GetValue(gateway);
            string? r = result.GetValue(redis);
            if (r is not null) await ClusterHosting.CheckRedisAsync(r, cancellation);
            if (result.GetValue(threads) is { } n) TorchSharp.torch.set_num_threads(n);
            var advertised = result.GetValue(address) is { } a ? System.Net.IPAddress.Parse(a) : null;
            if (r is not null) advertised = ClusterHosting.AdvertisedAddress(r, advertised);
            builder.UseOrleans(silo => (r is null ? silo.UseLocalhostCluster(p, g, result.GetValue(primary)) : silo.UseRedisCluster(r, p, g, advertised))
                .UseQuickFailureDetection().AddScoringJobs(options));
            using var host = builder.Build();
            await host.StartAsync(cancellation);
            Console.WriteLine($"Silo on {(r is null ? "127.0.0.1" : advertised?.ToString() ?? "this machine's address")}:{p} (clients: {g}), " +
                $"{(r is null ? "localhost clustering" : $"membership in Redis at {r}")}, state in {options.StateFolder}" +
                $"{(result.GetValue(threads) is { } t ? $", {t} scoring thread(s)" : "")}; Ctrl+C stops.");
            try { await Task.Delay(Timeout.Infinite, cancellation); }
            catch (OperationCanceledException) { }
            using var stop = new CancellationTokenSource(CliApp.InterruptGrace);
            await host.StopAsync(stop.Token);
            return 0;
        });
        return command;
    }

    private static Option<int[]> Gateways() => new("--gateway", "-g")
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
        var input = new Option<string>("--input", "-i") { Description = "The CSV to score (header row; a vector column as Name.0 .. Name.(n-1)).", Required = true }.ExistingFile();
        var output = new Option<string>("--output", "-o") { Description = "The CSV of predictions to write (the same as `score` writes).", DefaultValueFactory = _ => "predictions.csv" };
        var shards = new Option<int>("--shards") { Description = "Shards to cut the input into.", DefaultValueFactory = _ => 16 }.Between(1, 100_000);
        var noWait = new Option<bool>("--no-wait") { Description = "Return once the job is submitted instead of following it to the end." };
        var gateways = Gateways();
        var redis = RedisOption();
        var command = new Command("submit", "Submit a scoring job (the same name and files again: the same job) and follow it to the end.") { job, model, input, output, shards, noWait, gateways, redis };
        command.SetAction(async (result, cancellation) =>
        {
            string name = result.GetValue(job)!;
            var request = new JobRequest
            {
                ModelPath = Path.GetFullPath(result.GetValue(model)!), InputPath = Path.GetFullPath(result.GetValue(input)!),
                OutputPath = Path.GetFullPath(result.GetValue(output)!), Shards = result.GetValue(shards),
            };
            // The model is checked here first, so that a file that is not a model fails before any silo is asked.
            using (new Serving.ModelHost(request.ModelPath, new Serving.ServingOptions { ModelPath = request.ModelPath, ReloadCheckInterval = TimeSpan.Zero },
                       Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance)) { }
            await using var client = await Connect(Target(result, gateways, redis), cancellation);
            var clock = Stopwatch.StartNew();
            var status = await client.Client.GetGrain<IScoringJobGrain>(name).Submit(request);
            Console.WriteLine($"Submitted {status}");
            if (result.GetValue(noWait)) return 0;
            status = await Follow(client.Client, name, cancellation);
            double seconds = clock.Elapsed.TotalSeconds;
            if (status.State.Phase != JobPhase.Completed) throw new InvalidOperationException(status.ToString());
            Console.WriteLine($"Wrote {status.State.Rows:N0} rows to {request.OutputPath} in {seconds:F1} s ({status.State.Rows / Math.Max(seconds, 1e-9):N0} rows/s); " +
                $"{status.State.Shards.Select(s => s.Silo).Distinct().Count()} silos, {status.State.Retries} retries.");
            return 0;
        });
        return command;
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
                string line = status.ToString();
                if (line != last) Console.WriteLine($"{DateTime.Now:HH:mm:ss} {line}");
                last = line;
                if (status.State.Phase != JobPhase.Running) return status;
            }
            catch (Exception e) when (e is not OperationCanceledException && ++failures < 120)
            {
                Console.WriteLine($"{DateTime.Now:HH:mm:ss} (job not reachable: {CliApp.OneLine(e.Message)}; retrying)");
            }
            await Task.Delay(500, cancellation);
        }
    }

    private static Command Sweep()
    {
        var name = new Option<string>("--job", "-j") { Description = "The sweep's name.", DefaultValueFactory = _ => "sweep" };
        var data = new Option<string>("--data", "-d") { Description = "A CSV of numbers with a label column (every silo must see this path).", Required = true }.ExistingFile();
        var label = new Option<string>("--label") { Description = "The label column (its distinct values are the classes).", DefaultValueFactory = _ => "Label" };
        var grid = new Option<string>("--grid") { Description = "The trials: every combination of e.g. \"hidden=16,32;lr=0.001,0.01\".", DefaultValueFactory = _ => "hidden=16,32;lr=0.001,0.01" };
        var folds = new Option<int>("--folds") { Description = "Cross-validation folds (row i is in fold i mod folds).", DefaultValueFactory = _ => 3 }.Between(2, 100);
        var epochs = new Option<int>("--epochs") { Description = "Epochs per training.", DefaultValueFactory = _ => 10 }.Between(1, 100_000);
        var seed = new Option<int>("--seed") { Description = "The seed of every training.", DefaultValueFactory = _ => 1 };
        var gateways = Gateways();
        var redis = RedisOption();
        var command = new Command("sweep", "A cross-validated grid search of an MLP classifier: each trial's folds trained on the silos; a table sorted by accuracy.")
            { name, data, label, grid, folds, epochs, seed, gateways, redis };
        command.SetAction(async (result, cancellation) =>
        {
            var request = new SweepRequest
            {
                DataPath = Path.GetFullPath(result.GetValue(data)!), Label = result.GetValue(label)!, Trials = SweepRequest.ParseGrid(result.GetValue(grid)!),
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

    private static Command Status()
    {
        var job = JobName(required: false);
        var gateways = Gateways();
        var redis = RedisOption();
        var command = new Command("status", "Show a job's progress (or every job's).") { job, gateways, redis };
        command.SetAction(async (result, cancellation) =>
        {
            await using var client = await Connect(Target(result, gateways, redis), cancellation);
            var names = result.GetValue(job) is { } one ? [one] : await client.Client.GetGrain<IJobIndexGrain>(0).List();
            if (names.Count == 0) Console.WriteLine("No jobs.");
            foreach (var name in names)
            {
                var status = await client.Client.GetGrain<IScoringJobGrain>(name).GetStatus();
                if (!status.Exists) throw new ArgumentException($"No job named '{name}'.");
                Console.WriteLine(status);
            }
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
