using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using Microsoft.Extensions.Logging;
using MlNetDeep.Serving;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// <c>mlnetdeep benchmark serve-hostile</c>: the scoring service on loopback under more clients than its limits, for a
/// fixed time: well-behaved one-row /predict clients (each answer checked against the model's own Transform), clients
/// that send bodies over the limit, clients that upload a batch and never read the answer, /health probes, and the
/// model file rewritten (a reload) every few seconds. Prints requests answered, refused with 503, refused with 413,
/// lost (accepted but not answered correctly: must be 0), the slowest /health, reloads and the peak resident memory.
/// </summary>
internal static class ServingHostileBenchmark
{
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "A saved MNIST model (input Pixels).", DefaultValueFactory = _ => Path.Combine("models", "mnist-cnn", "mnist-cnn.zip") }.ExistingFile(OptionChecks.ModelHelpName);
        var seconds = new Option<double>("--seconds") { Description = "How long the load runs.", DefaultValueFactory = _ => 30 }.Between(1, 3600);
        var clients = new Option<int>("--clients") { Description = "Well-behaved /predict clients (more than the limits let in at once).", DefaultValueFactory = _ => 64 }.AtLeast(1);
        var slow = new Option<int>("--slow-clients") { Description = "Clients that upload a batch and never read the answer (reconnecting when dropped).", DefaultValueFactory = _ => 16 }.AtLeast(0);
        var oversized = new Option<int>("--oversized-clients") { Description = "Clients that send bodies over the limit.", DefaultValueFactory = _ => 4 }.AtLeast(0);
        var maxRequests = new Option<int>("--max-concurrent-requests") { Description = "The service's limit of /predict requests at once.", DefaultValueFactory = _ => 8 }.AtLeast(1);
        var queue = new Option<int>("--queue-limit") { Description = "The service's queue limit per route.", DefaultValueFactory = _ => 16 }.Between(0, 1_000_000);
        var command = new Command("serve-hostile", "Load test of the scoring service against hostile clients: more clients than its limits, oversized bodies, clients that never read, a reload under load; 503s, lost requests, /health latency, peak memory.")
        {
            model, seconds, clients, slow, oversized, maxRequests, queue,
        };
        command.SetAction(async (result, cancellation) => await RunAsync(result.GetValue(model)!, TimeSpan.FromSeconds(result.GetValue(seconds)), result.GetValue(clients),
            result.GetValue(slow), result.GetValue(oversized), result.GetValue(maxRequests), result.GetValue(queue), cancellation));
        return command;
    }

    private sealed class Counts
    {
        public long Ok, Busy, TooLarge, Lost, SlowStarted, SlowDropped, HealthProbes;
        public double WorstHealthMs;
        public readonly List<string> LostExamples = [];
    }

    private static async Task<int> RunAsync(string modelPath, TimeSpan duration, int clientCount, int slowCount, int oversizedCount, int maxRequests, int queue, CancellationToken cancellation)
    {
        var ml = new MLContext(seed: 1);
        var model = ml.Model.LoadDeep(modelPath, out var inputSchema); // first: a file that is not a model fails before MNIST is read
        var test = ml.Data.LoadMnist(MnistSplit.Test, maxRows: 200);
        var pixels = test.GetColumn<VBuffer<float>>("Pixels").Select(v => v.DenseValues().ToArray()).ToArray();
        var expected = model.Transform(test).GetColumn<VBuffer<float>>("Score").Select(v => v.DenseValues().ToArray()).ToArray();
        var bodies = pixels.Select(p => Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { Pixels = p }))).ToArray();
        var upload = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Range(0, 2000).Select(i => JsonSerializer.Serialize(new { Pixels = pixels[i % pixels.Length] }) + "\n")));

        // The service serves a copy, which is rewritten during the run (a reload under load).
        var folder = Directory.CreateTempSubdirectory("mlnetdeep-serve-hostile-").FullName;
        try
        {
            var served = Path.Combine(folder, "model.zip");
            File.Copy(modelPath, served);
            var options = new ServingOptions
            {
                ModelPath = served, ReloadCheckInterval = TimeSpan.FromMilliseconds(500),
                MaxConcurrentRequests = maxRequests, RequestQueueLimit = queue, MaxConcurrentBatchRequests = 2,
                MaxRequestBodyBytes = 1 << 20, MaxBatchRequestBodyBytes = 64 << 20, MinDataRateGracePeriod = TimeSpan.FromSeconds(2),
            };
            await using var server = await ScoringServer.StartAsync(options, "http://127.0.0.1:0", logging: logging =>
            {
                // MLNETDEEP_SERVE_LOG=1: the service's warnings and Kestrel's connection events on stderr.
                if (Environment.GetEnvironmentVariable("MLNETDEEP_SERVE_LOG") != "1") return;
                logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; }).SetMinimumLevel(LogLevel.Warning)
                    .AddFilter("Microsoft.AspNetCore.Server.Kestrel", LogLevel.Debug).AddFilter("MlNetDeep.Serving", LogLevel.Warning);
                logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
            }, cancellation);
            var uri = new Uri(server.Urls[0]);
            using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 4096 }) { BaseAddress = uri, Timeout = TimeSpan.FromSeconds(60) };
            Console.WriteLine($"{modelPath}: {duration.TotalSeconds:G} s; {clientCount} /predict clients, {oversizedCount} sending 2 MiB bodies (limit 1 MiB), {slowCount} uploading {upload.Length / 1e6:F1} MB batches and never reading; " +
                $"limits: {maxRequests} requests at once, {queue} queued, {options.MaxConcurrentBatchRequests} batch uploads; model rewritten every 3 s; {Environment.ProcessorCount} cores; client and server in one process");

            var counts = new Counts();
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            stop.CancelAfter(duration);
            var token = stop.Token;
            var tasks = new List<Task>();
            for (int c = 0; c < clientCount; c++)
            {
                int first = c;
                tasks.Add(Task.Run(() => WellBehaved(client, bodies, expected, first, counts, token)));
            }
            for (int c = 0; c < oversizedCount; c++) tasks.Add(Task.Run(() => Oversized(client, counts, token)));
            for (int c = 0; c < slowCount; c++) tasks.Add(Task.Run(() => NeverReads(uri, upload, counts, token)));
            tasks.Add(Task.Run(() => Probe(client, counts, token)));
            // The same model saved again: other bytes (the zip's timestamps), so another version, and the same scores.
            var resaved = Path.Combine(folder, "resaved.zip");
            ml.Model.SaveDeep(model, inputSchema, resaved);
            tasks.Add(Task.Run(() => Rewrite(modelPath, resaved, served, token)));
            await Task.WhenAll(tasks);

            var health = JsonDocument.Parse(await client.GetStringAsync("/health", cancellation)).RootElement;
            Console.WriteLine($"{"answered",9} {"503",7} {"413",7} {"lost",5} {"slow uploads",13} {"dropped",8} {"worst /health ms",17} {"reloads",8} {"peak RSS MB",12}");
            Console.WriteLine($"{counts.Ok,9} {counts.Busy,7} {counts.TooLarge,7} {counts.Lost,5} {counts.SlowStarted,13} {counts.SlowDropped,8} {counts.WorstHealthMs,17:F1} {health.GetProperty("reloads").GetInt32(),8} {PeakResidentBytes() / 1e6,12:F0}");
            foreach (var example in counts.LostExamples.Take(5)) Console.WriteLine($"lost: {example}");
            return counts.Lost == 0 ? 0 : CliApp.Failed;
        }
        finally
        {
            try { Directory.Delete(folder, recursive: true); } catch (IOException) { }
        }
    }

    private static async Task WellBehaved(HttpClient client, byte[][] bodies, float[][] expected, int first, Counts counts, CancellationToken token)
    {
        for (int i = first; !token.IsCancellationRequested; i += 7)
        {
            int row = i % bodies.Length;
            try
            {
                using var content = new ByteArrayContent(bodies[row]);
                content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
                using var response = await client.PostAsync("/predict", content, CancellationToken.None);
                var text = await response.Content.ReadAsStringAsync(CancellationToken.None);
                if (response.StatusCode == HttpStatusCode.ServiceUnavailable && response.Headers.RetryAfter is not null)
                {
                    Interlocked.Increment(ref counts.Busy);
                    await Task.Delay(TimeSpan.FromMilliseconds(50), CancellationToken.None); // a polite client backs off
                    continue;
                }
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    var score = JsonDocument.Parse(text).RootElement.GetProperty("predictions")[0].GetProperty("Score").EnumerateArray().Select(v => v.GetSingle()).ToArray();
                    if (score.Length == expected[row].Length && score.Zip(expected[row], (a, b) => Math.Abs(a - b)).Max() <= 1e-4f)
                    {
                        Interlocked.Increment(ref counts.Ok);
                        continue;
                    }
                }
                Lost(counts, $"{(int)response.StatusCode}: {text[..Math.Min(200, text.Length)]}");
            }
            catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException)
            {
                Lost(counts, $"{e.GetType().Name}: {e.Message} {e.InnerException?.GetType().Name}: {e.InnerException?.Message} {e.InnerException?.InnerException?.Message}");
            }
        }
    }

    private static void Lost(Counts counts, string what)
    {
        Interlocked.Increment(ref counts.Lost);
        lock (counts.LostExamples) counts.LostExamples.Add(what);
    }

    private static async Task Oversized(HttpClient client, Counts counts, CancellationToken token)
    {
        var body = new byte[2 << 20];
        body.AsSpan().Fill((byte)' ');
        while (!token.IsCancellationRequested)
        {
            try
            {
                using var content = new ByteArrayContent(body);
                content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
                using var response = await client.PostAsync("/predict", content, CancellationToken.None);
                if (response.StatusCode == HttpStatusCode.RequestEntityTooLarge) Interlocked.Increment(ref counts.TooLarge);
                else if (response.StatusCode == HttpStatusCode.ServiceUnavailable) Interlocked.Increment(ref counts.Busy);
            }
            catch (HttpRequestException) { } // the server may close the connection while the body is still being sent
            await Task.Delay(100, CancellationToken.None);
        }
    }

    /// <summary>Uploads a batch and never reads the answer; the service drops the connection once it reads too slowly, and this client comes back.</summary>
    private static async Task NeverReads(Uri server, byte[] upload, Counts counts, CancellationToken token)
    {
        while (!token.IsCancellationRequested)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
            try
            {
                await socket.ConnectAsync(server.Host, server.Port, token);
                using var stream = new NetworkStream(socket);
                var head = $"POST /predict/batch HTTP/1.1\r\nHost: {server.Host}:{server.Port}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {upload.Length}\r\n\r\n";
                await stream.WriteAsync(Encoding.ASCII.GetBytes(head), token);
                Interlocked.Increment(ref counts.SlowStarted);
                await stream.WriteAsync(upload, token);
                // Never read: wait until the service closes the connection (a zero-byte peek would read, so poll the socket's state).
                while (!token.IsCancellationRequested && !(socket.Poll(0, SelectMode.SelectRead) && socket.Available == 0)) await Task.Delay(200, token);
                if (!token.IsCancellationRequested) Interlocked.Increment(ref counts.SlowDropped);
            }
            catch (OperationCanceledException) { }
            catch (Exception e) when (e is IOException or SocketException) { Interlocked.Increment(ref counts.SlowDropped); }
        }
    }

    private static async Task Probe(HttpClient client, Counts counts, CancellationToken token)
    {
        while (!token.IsCancellationRequested)
        {
            var clock = Stopwatch.StartNew();
            try
            {
                using var response = await client.GetAsync("/health", CancellationToken.None);
                double ms = clock.Elapsed.TotalMilliseconds;
                if (ms > counts.WorstHealthMs) counts.WorstHealthMs = ms;
                counts.HealthProbes++;
            }
            catch (HttpRequestException) { counts.WorstHealthMs = double.PositiveInfinity; }
            try { await Task.Delay(200, token); } catch (OperationCanceledException) { }
        }
    }

    /// <summary>Rewrites the served model every 3 s, atomically, alternating two files of the same model that differ in their bytes.</summary>
    private static async Task Rewrite(string source, string resaved, string served, CancellationToken token)
    {
        var original = await File.ReadAllBytesAsync(source, CancellationToken.None);
        var touched = await File.ReadAllBytesAsync(resaved, CancellationToken.None);
        for (int i = 0; !token.IsCancellationRequested; i++)
        {
            try { await Task.Delay(3000, token); } catch (OperationCanceledException) { return; }
            var next = served + ".next";
            await File.WriteAllBytesAsync(next, i % 2 == 0 ? touched : original, CancellationToken.None);
            File.Move(next, served, overwrite: true);
        }
    }

    /// <summary>The process's peak resident memory: VmHWM on Linux, else the peak working set.</summary>
    private static long PeakResidentBytes()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return Process.GetCurrentProcess().PeakWorkingSet64;
    }
}
