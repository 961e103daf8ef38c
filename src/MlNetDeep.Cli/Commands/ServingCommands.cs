using System.CommandLine;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Hosting;
using MlNetDeep.Cluster;
using MlNetDeep.Serving;

namespace MlNetDeep.Cli.Commands;

/// <summary><c>mlnetdeep serve</c> (the scoring service) and <c>mlnetdeep score</c> (a file batch job).</summary>
internal static class ServingCommands
{
    public static Command Serve()
    {
        var model = new Option<string>("--model", "-m") { Description = "A model saved with SaveDeep (e.g. out/mnist-cnn.zip).", Required = true }.ExistingFile(OptionChecks.ModelHelpName);
        var port = new Option<int>("--port", "-p") { Description = "TCP port (0: any free port).", DefaultValueFactory = _ => 5000 }.Between(0, 65535);
        var host = new Option<string>("--host") { Description = "Address to listen on (0.0.0.0 for every interface).", DefaultValueFactory = _ => "127.0.0.1" };
        var noBatching = new Option<bool>("--no-micro-batching") { Description = "Score each request on its own instead of gathering concurrent requests into one forward pass." };
        var batchRows = new Option<int>("--micro-batch-rows") { Description = "Most rows per micro-batch.", DefaultValueFactory = _ => 256 }.AtLeast(1);
        var batchDelay = new Option<double>("--micro-batch-delay-ms") { Description = "Longest wait for a micro-batch to fill.", DefaultValueFactory = _ => 2 }.Between(0, 60_000);
        var maxRows = new Option<int>("--max-rows") { Description = "Most rows per /predict request.", DefaultValueFactory = _ => 10_000 }.AtLeast(1);
        var maxBody = new Option<long>("--max-body-mb") { Description = "Largest request body, in MiB.", DefaultValueFactory = _ => 16 }
            .Check(mb => mb is >= 1 and <= 1L << 20 ? null : $"--max-body-mb must be 1 to {1L << 20}, got {mb}.");
        var maxBatchBody = new Option<long>("--max-batch-body-mb") { Description = "Largest /predict/batch upload, in MiB (read and scored as it streams in).", DefaultValueFactory = _ => 1024 }
            .Check(mb => mb is >= 1 and <= 1L << 20 ? null : $"--max-batch-body-mb must be 1 to {1L << 20}, got {mb}.");
        var maxModel = new Option<long>("--max-model-mb") { Description = "Largest model file, in MiB (checked before it is read, at start and on reload).", DefaultValueFactory = _ => 2048 }
            .Check(mb => mb is >= 1 and <= 1L << 20 ? null : $"--max-model-mb must be 1 to {1L << 20}, got {mb}.");
        var timeout = new Option<double>("--timeout") { Description = "Request timeout in seconds.", DefaultValueFactory = _ => 30 }.Between(0.001, 86_400);
        var maxRequests = new Option<int>("--max-concurrent-requests") { Description = "Most /predict requests handled at once (more wait in the queue).", DefaultValueFactory = _ => 64 }.AtLeast(1);
        var maxBatches = new Option<int>("--max-concurrent-batches") { Description = "Most /predict/batch uploads handled at once (more wait in the queue).", DefaultValueFactory = _ => 4 }.AtLeast(1);
        var queue = new Option<int>("--queue-limit") { Description = "Most requests of each route waiting for their turn; beyond it: 503 with Retry-After.", DefaultValueFactory = _ => 128 }.Between(0, 1_000_000);
        var maxConnections = new Option<int>("--max-connections") { Description = "Most open TCP connections; further ones are closed at once.", DefaultValueFactory = _ => 1024 }.AtLeast(1);
        var batchQueue = new Option<int>("--micro-batch-queue") { Description = "Most /predict requests waiting in the micro-batcher; beyond it: 503 with Retry-After.", DefaultValueFactory = _ => 1024 }.AtLeast(1);
        var minRate = new Option<double>("--min-data-rate") { Description = "Slowest a client may send or read, in bytes/s, after a 5 s grace; a slower connection is closed.", DefaultValueFactory = _ => 240 }.Between(1, 1e12);
        var jsonLogs = new Option<bool>("--json-logs") { Description = "Write logs as JSON lines (structured) instead of text." };
        var cluster = new Option<string?>("--cluster") { Description = "Also run a silo of the scoring cluster ('localhost': silos on this machine; 'redis': membership in Redis at --redis, silos on several machines): /predict is scored by the model grains of every silo, and goes to another silo if one fails." };
        var redis = ClusterCommands.RedisOption();
        var siloPort = new Option<int>("--silo-port") { Description = "With --cluster: this silo's port.", DefaultValueFactory = _ => 11111 }.Between(1, 65535);
        var gatewayPort = new Option<int>("--gateway-port") { Description = "With --cluster: this silo's port for clients.", DefaultValueFactory = _ => 30000 }.Between(1, 65535);
        var primaryPort = new Option<int?>("--primary-port") { Description = "With --cluster localhost: the primary silo's port (default: this silo's, i.e. this one is the primary)." };
        var command = new Command("serve", "Serve a saved model over HTTP: POST /predict, POST /predict/batch, GET /health, GET /model.")
        {
            model, port, host, noBatching, batchRows, batchDelay, maxRows, maxBody, maxBatchBody, maxModel, timeout,
            maxRequests, maxBatches, queue, maxConnections, batchQueue, minRate, jsonLogs, cluster, siloPort, gatewayPort, primaryPort, redis,
        };
        command.Validators.Add(result =>
        {
            string? c = result.GetValue(cluster), r = result.GetValue(redis);
            if (c is not null && !string.Equals(c, "localhost", StringComparison.OrdinalIgnoreCase) && !string.Equals(c, "redis", StringComparison.OrdinalIgnoreCase))
                result.AddError($"--cluster '{c}' is not supported: 'localhost' (silos on this machine) or 'redis' (with --redis host:port).");
            else if (string.Equals(c, "redis", StringComparison.OrdinalIgnoreCase) && r is null)
                result.AddError("--cluster redis needs --redis host:port.");
            else if (r is not null && !string.Equals(c, "redis", StringComparison.OrdinalIgnoreCase))
                result.AddError("--redis goes with --cluster redis.");
        });
        command.SetAction(async (result, cancellation) =>
        {
            int p = result.GetValue(port);
            var options = new ServingOptions
            {
                ModelPath = result.GetValue(model)!,
                MicroBatching = !result.GetValue(noBatching),
                MicroBatchMaxRows = result.GetValue(batchRows),
                MicroBatchMaxDelay = TimeSpan.FromMilliseconds(result.GetValue(batchDelay)),
                MaxRowsPerRequest = result.GetValue(maxRows),
                MaxRequestBodyBytes = result.GetValue(maxBody) << 20,
                MaxBatchRequestBodyBytes = result.GetValue(maxBatchBody) << 20,
                MaxModelBytes = result.GetValue(maxModel) << 20,
                RequestTimeout = TimeSpan.FromSeconds(result.GetValue(timeout)),
                MaxConcurrentRequests = result.GetValue(maxRequests),
                MaxConcurrentBatchRequests = result.GetValue(maxBatches),
                RequestQueueLimit = result.GetValue(queue),
                MaxConnections = result.GetValue(maxConnections),
                MicroBatchQueueLimit = result.GetValue(batchQueue),
                MinDataRateBytesPerSecond = result.GetValue(minRate),
            };
            bool json = result.GetValue(jsonLogs);
            ServingHooks? hooks = null;
            if (result.GetValue(cluster) is not null)
            {
                int sp = result.GetValue(siloPort), gp = result.GetValue(gatewayPort), pp = result.GetValue(primaryPort) ?? sp;
                string modelPath = Path.GetFullPath(options.ModelPath);
                string? r = result.GetValue(redis);
                if (r is not null) await ClusterHosting.CheckRedisAsync(r, cancellation);
                hooks = new ServingHooks
                {
                    ConfigureBuilder = builder => builder.AddFilterForCluster().UseOrleans(silo => (r is null ? silo.UseLocalhostCluster(sp, gp, pp) : silo.UseRedisCluster(r, sp, gp))
                        .UseQuickFailureDetection()
                        .AddModelServing(new ModelServingOptions { MaxModelBytes = options.MaxModelBytes })),
                    Predict = services => new ClusterPredictor(services, modelPath,
                        logger: ((ILoggerFactory)services.GetService(typeof(ILoggerFactory))!).CreateLogger("MlNetDeep.Cluster")),
                };
            }
            await using var server = await ScoringServer.StartAsync(options, $"http://{result.GetValue(host)}:{p}", hooks, logging =>
            {
                if (json) logging.AddJsonConsole();
                else logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
            }, cancellation);
            Console.WriteLine($"Listening on {string.Join(", ", server.Urls)}; Ctrl+C stops.");
            await server.WaitForShutdownAsync(cancellation);
            return 0;
        });
        return command;
    }

    private static Microsoft.AspNetCore.Builder.WebApplicationBuilder AddFilterForCluster(this Microsoft.AspNetCore.Builder.WebApplicationBuilder builder)
    {
        builder.Logging.AddFilter("Orleans", LogLevel.Warning).AddFilter("Polly", LogLevel.Warning).AddFilter("Microsoft", LogLevel.Warning);
        return builder;
    }

    public static Command Score()
    {
        var model = new Option<string>("--model", "-m") { Description = "A model saved with SaveDeep.", Required = true }.ExistingFile(OptionChecks.ModelHelpName);
        var input = new Option<string>("--input", "-i") { Description = "A CSV file (header row; a vector column as Name.0 .. Name.(n-1)) or a folder of images (one subfolder per class).", Required = true }.ExistingPath();
        var output = new Option<string>("--output", "-o") { Description = "The CSV of predictions to write.", DefaultValueFactory = _ => "predictions.csv" };
        var cluster = new Option<string?>("--cluster") { Description = "Run as a job on a cluster of silos instead of in this process: 'localhost' (silos on this machine, found at --gateway) or 'redis' (found in the membership at --redis). Needs --job." }
            .AcceptOnlyFromAmong("localhost", "redis");
        var job = new Option<string?>("--job", "-j") { Description = "With --cluster: the job's name. The same name and files again follow (or resume) the same job; `cluster status --job NAME` and `cluster cancel --job NAME` act on it." };
        var shards = new Option<int>("--shards") { Description = "With --cluster: shards to cut the input into.", DefaultValueFactory = _ => 16 }.Between(1, 100_000);
        var noWait = new Option<bool>("--no-wait") { Description = "With --cluster: return once the job is submitted." };
        var gateways = ClusterCommands.Gateways();
        var redis = ClusterCommands.RedisOption();
        var command = new Command("score", "Score a CSV file or an image folder with a saved model into a CSV, streaming (inputs larger than memory are fine); with --cluster, as a job on a cluster of silos.")
        {
            model, input, output, cluster, job, shards, noWait, gateways, redis,
        };
        command.Validators.Add(r =>
        {
            string? c = r.GetValue(cluster);
            if (c is null)
            {
                if (r.GetValue(job) is not null) r.AddError("--job goes with --cluster localhost|redis.");
                if (r.GetValue(redis) is not null) r.AddError("--redis goes with --cluster redis.");
            }
            else
            {
                if (r.GetValue(job) is null) r.AddError("--cluster needs --job NAME (the job's name, to follow, resume or cancel it).");
                if (c == "redis" && r.GetValue(redis) is null) r.AddError("--cluster redis needs --redis host:port.");
                if (c == "localhost" && r.GetValue(redis) is not null) r.AddError("--redis goes with --cluster redis.");
            }
        });
        command.SetAction((result, cancellation) =>
        {
            string m = result.GetValue(model)!, i = result.GetValue(input)!, o = result.GetValue(output)!;
            if (result.GetValue(cluster) is not null)
                return ClusterCommands.RunJob(result.GetValue(redis), result.GetValue(gateways)!, result.GetValue(job)!, m, i, o, result.GetValue(shards), result.GetValue(noWait), cancellation);
            var clock = Stopwatch.StartNew();
            long rows = 0;
            Spectre.Console.AnsiConsole.Status().Start($"Scoring {i} ...", context =>
            {
                // Ctrl+C or SIGTERM cancels the job, which deletes its temporary output before the process ends.
                rows = BatchScorer.Score(m, i, o, new Progress<long>(n =>
                    context.Status = $"Scoring {i}: {n:N0} rows, {n / Math.Max(clock.Elapsed.TotalSeconds, 1e-9):N0} rows/s"), cancellation);
            });
            Console.WriteLine($"Wrote {rows:N0} rows to {o} in {clock.Elapsed.TotalSeconds:F1} s ({rows / Math.Max(clock.Elapsed.TotalSeconds, 1e-9):N0} rows/s).");
            return Task.FromResult(0);
        });
        return command;
    }
}
