using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Serving;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// <c>mlnetdeep benchmark serve</c>: a bounded load test of the scoring service on the loopback address. For 1, 8 and 32
/// concurrent clients, with and without micro-batching, a fixed number of one-row /predict requests of MNIST test
/// images: rows/s, p50/p99 latency, failed requests, and whether every answer equals the model's own Transform.
/// </summary>
internal static class ServingBenchmark
{
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "A saved MNIST model (input Pixels).", DefaultValueFactory = _ => Path.Combine("models", "mnist-cnn", "mnist-cnn.zip") }.ExistingFile(OptionChecks.ModelHelpName);
        var requests = new Option<int>("--requests") { Description = "Requests per setting.", DefaultValueFactory = _ => 2000 }.AtLeast(1);
        var clients = new Option<int[]>("--clients") { Description = "Concurrent client counts.", DefaultValueFactory = _ => [1, 8, 32], AllowMultipleArgumentsPerToken = true }
            .Check(counts => counts.Length > 0 && counts.All(c => c >= 1) ? null : "--clients takes counts of at least 1.");
        var url = new Option<string?>("--url") { Description = "Load a service that is already running (e.g. a silo of a cluster started with `serve --cluster`) instead of starting one: its base address, e.g. http://127.0.0.1:5000. --model is then only used for the expected answers." }
            .Check(u => u is null || (Uri.TryCreate(u, UriKind.Absolute, out var parsed) && parsed.Scheme is "http" or "https") ? null : $"--url '{u}' is not an http(s) address.");
        var command = new Command("serve", "Load test of the scoring service on loopback: rows/s and p50/p99 latency at 1, 8 and 32 clients, with and without micro-batching.")
        {
            model, requests, clients, url,
        };
        command.SetAction(async (result, cancellation) =>
        {
            int n = result.GetValue(requests);
            var counts = result.GetValue(clients)!;
            var path = result.GetValue(model)!;
            return await RunAsync(path, n, counts, result.GetValue(url), cancellation);
        });
        return command;
    }

    private static async Task<int> RunAsync(string modelPath, int requests, int[] clientCounts, string? url, CancellationToken cancellation)
    {
        var ml = new MLContext(seed: 1);
        var model = ml.Model.LoadDeep(modelPath, out _); // first: a file that is not a model fails before MNIST is read
        var test = ml.Data.LoadMnist(MnistSplit.Test, maxRows: 1000);
        var pixels = test.GetColumn<VBuffer<float>>("Pixels").Select(v => v.DenseValues().ToArray()).ToArray();
        var expected = model.Transform(test).GetColumn<VBuffer<float>>("Score").Select(v => v.DenseValues().ToArray()).ToArray();
        var bodies = pixels.Select(p => Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { Pixels = p }))).ToArray();
        Console.WriteLine($"{modelPath}: {requests} one-row /predict requests per setting, MNIST test images; {Environment.ProcessorCount} cores; " +
            (url is null ? "client and server in one process" : $"the service at {url}"));
        Console.WriteLine($"{"micro-batching",-15} {"clients",8} {"rows/s",10} {"p50 ms",9} {"p99 ms",9} {"failed",7} {"max |diff|",11}");
        if (url is not null)
        {
            using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256 }) { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(100) };
            var (warm, _) = await Send(client, bodies[0], cancellation);
            if (warm != HttpStatusCode.OK) throw new InvalidOperationException($"The service at {url} answered {(int)warm} {warm} to a first /predict of an MNIST image.");
            foreach (int clients in clientCounts)
                Console.WriteLine(await Measure(client, "service's", clients, requests, bodies, expected, cancellation));
            return 0;
        }
        foreach (bool batching in new[] { true, false })
        {
            await using var server = await ScoringServer.StartAsync(new ServingOptions { ModelPath = modelPath, MicroBatching = batching, ReloadCheckInterval = TimeSpan.Zero },
                "http://127.0.0.1:0", logging: _ => { }, cancellation);
            using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256 }) { BaseAddress = new Uri(server.Urls[0]) };
            await Send(client, bodies[0], cancellation); // warm-up
            foreach (int clients in clientCounts)
                Console.WriteLine(await Measure(client, batching ? "on" : "off", clients, requests, bodies, expected, cancellation));
        }
        return 0;
    }

    /// <summary>
    /// <paramref name="requests"/> one-row requests from <paramref name="clients"/> concurrent clients: a table row of
    /// rows/s, latencies, failed requests (any answer but 200, or no answer; each named by its cause at the end) and the
    /// largest difference from the model's own scores.
    /// </summary>
    private static async Task<string> Measure(HttpClient client, string label, int clients, int requests, byte[][] bodies, float[][] expected, CancellationToken cancellation)
    {
        var latencies = new double[requests];
        int next = -1, failed = 0;
        double worst = 0;
        var gate = new object();
        var causes = new Dictionary<string, int>();
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < requests)
            {
                int row = i % bodies.Length;
                var start = Stopwatch.GetTimestamp();
                string? cause = null;
                try
                {
                    var (status, body) = await Send(client, bodies[row], cancellation);
                    latencies[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                    if (status != HttpStatusCode.OK) cause = $"{(int)status} {status}";
                    else
                    {
                        var score = JsonDocument.Parse(body).RootElement.GetProperty("predictions")[0].GetProperty("Score").EnumerateArray().Select(v => v.GetSingle()).ToArray();
                        double diff = score.Zip(expected[row], (a, b) => Math.Abs(a - b)).Max();
                        lock (gate) worst = Math.Max(worst, diff);
                    }
                }
                catch (HttpRequestException e) { cause = CliApp.OneLine(e.Message); latencies[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds; }
                catch (TaskCanceledException) when (!cancellation.IsCancellationRequested) { cause = "timed out"; latencies[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds; }
                if (cause is null) continue;
                Interlocked.Increment(ref failed);
                lock (gate) causes[cause] = causes.GetValueOrDefault(cause) + 1;
            }
        }, cancellation)));
        clock.Stop();
        Array.Sort(latencies);
        return $"{label,-15} {clients,8} {requests / clock.Elapsed.TotalSeconds,10:F0} {latencies[requests / 2],9:F2} {latencies[(int)(requests * 0.99)],9:F2} {failed,7} {worst,11:G3}" +
            string.Concat(causes.Select(c => $"\n    failed: {c.Value} x {c.Key}"));
    }

    private static async Task<(HttpStatusCode, byte[])> Send(HttpClient client, byte[] body, CancellationToken cancellation)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        using var response = await client.PostAsync("/predict", content, cancellation);
        return (response.StatusCode, await response.Content.ReadAsByteArrayAsync(cancellation));
    }
}
