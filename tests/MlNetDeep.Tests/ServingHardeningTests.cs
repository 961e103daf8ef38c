using System.Diagnostics;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML;
using MlNetDeep.Models.Regression;
using MlNetDeep.Persistence;
using MlNetDeep.Serving;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

/// <summary>
/// The scoring service against hostile clients and files, on a tiny model (one input value, one score): admission
/// limits (503 with Retry-After), no accepted request lost, /health while clients that never read hold streams, batch
/// streams that end with an error line, every row checked, reloads that never escape, and the score command's errors.
/// </summary>
public sealed class ServingHardeningTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("mlnetdeep-serving-hardening-").FullName;
    private readonly MLContext _ml = new(seed: 1);

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string SaveModel(string name = "model.zip")
    {
        var data = TestData.Sine(_ml, 64);
        using var model = _ml.Regression.Trainers.NeuralNetwork(new NeuralNetworkRegressorOptions { Network = Networks.Networks.Mlp(4), Epochs = 1 }).Fit(data);
        var path = Path.Combine(_folder, name);
        _ml.Model.SaveDeep(model, data.Schema, path);
        return path;
    }

    private static Task<ScoringServer> Start(string path, Action<ServingOptions>? configure = null, List<string>? log = null)
    {
        var options = new ServingOptions { ModelPath = path, ReloadCheckInterval = TimeSpan.Zero };
        configure?.Invoke(options);
        return ScoringServer.StartAsync(options, "http://127.0.0.1:0", logging: b =>
        {
            if (log is not null) b.AddProvider(new ListLogger(log));
        });
    }

    private static string Row(float x) => JsonSerializer.Serialize(new { Features = new[] { x } });

    private static async Task<(HttpStatusCode Status, string Body, HttpResponseMessage Response)> Post(HttpClient client, string route, string body, string type = "application/json")
    {
        var content = new StringContent(body, Encoding.UTF8);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(type);
        var response = await client.PostAsync(route, content);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(), response);
    }

    private static string Error(string body) => JsonDocument.Parse(body).RootElement.GetProperty("error").GetString()!;

    // ---- admission ---------------------------------------------------------------------------------------------------

    [Fact]
    public async Task RequestsBeyondTheConcurrencyLimitGet503WithRetryAfterWhileHealthAnswers()
    {
        var path = SaveModel();
        await using var server = await Start(path, o => { o.MaxConcurrentRequests = 1; o.MaxConcurrentBatchRequests = 1; o.RequestQueueLimit = 0; });
        var uri = new Uri(server.Urls[0]);
        using var client = new HttpClient { BaseAddress = uri };

        // One request holds the only /predict slot (its body never finishes), one the only /predict/batch slot.
        using var holder = await RawHttp.Open(uri, "/predict", "application/json", contentLength: 1000, firstBytes: "{\"Features\": ["u8.ToArray());
        using var batchHolder = await RawHttp.Open(uri, "/predict/batch", "application/x-ndjson", contentLength: 1000, firstBytes: "{\"Features\": ["u8.ToArray());
        var refused = await Eventually(async () => await Post(client, "/predict", Row(0.5f)), r => r.Status == HttpStatusCode.ServiceUnavailable);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.Status);
        Assert.Equal(TimeSpan.FromSeconds(1), refused.Response.Headers.RetryAfter?.Delta);
        Assert.Contains("busy", Error(refused.Body));
        var batchRefused = await Eventually(async () => await Post(client, "/predict/batch", Row(0.5f), "application/x-ndjson"), r => r.Status == HttpStatusCode.ServiceUnavailable);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, batchRefused.Status);
        Assert.NotNull(batchRefused.Response.Headers.RetryAfter);

        // /health and /model are not behind the limit.
        var clock = Stopwatch.StartNew();
        using (var health = await client.GetAsync("/health")) Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"/health took {clock.Elapsed}");

        // The slot comes back when its client goes.
        holder.Dispose();
        var served = await Eventually(async () => await Post(client, "/predict", Row(0.5f)), r => r.Status == HttpStatusCode.OK);
        Assert.Equal(HttpStatusCode.OK, served.Status);
    }

    [Fact]
    public async Task ConnectionsBeyondTheLimitAreClosed()
    {
        var path = SaveModel();
        await using var server = await Start(path, o => o.MaxConnections = 2);
        var uri = new Uri(server.Urls[0]);
        static async Task<Socket> Connect(Uri uri)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(uri.Host, uri.Port);
            return socket;
        }
        static async Task<string> Health(Socket socket)
        {
            await socket.SendAsync(Encoding.ASCII.GetBytes("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
            var buffer = new byte[4096];
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try { return Encoding.ASCII.GetString(buffer, 0, await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)); }
            catch (SocketException) { return ""; } // reset
        }
        using var first = await Connect(uri);
        using var second = await Connect(uri);
        await Task.Delay(200);
        using (var third = await Connect(uri)) Assert.Equal("", await Health(third));
        first.Dispose();
        var answer = await Eventually(async () => { using var again = await Connect(uri); return await Health(again); }, a => a.StartsWith("HTTP/1.1 200"));
        Assert.StartsWith("HTTP/1.1 200", answer);
    }

    [Fact]
    public async Task UnderMoreClientsThanTheLimitsEveryAnswerIsRightOrA503()
    {
        var path = SaveModel();
        await using var server = await Start(path, o => { o.MaxConcurrentRequests = 2; o.RequestQueueLimit = 2; });
        using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 64 }) { BaseAddress = new Uri(server.Urls[0]) };
        var inputs = Enumerable.Range(0, 8).Select(i => i * 0.7f - 2.5f).ToArray();
        var reference = new float[inputs.Length];
        for (int i = 0; i < inputs.Length; i++)
        {
            var (status, body, _) = await Post(client, "/predict", Row(inputs[i]));
            Assert.Equal(HttpStatusCode.OK, status);
            reference[i] = JsonDocument.Parse(body).RootElement.GetProperty("predictions")[0].GetProperty("Score").GetSingle();
        }
        int ok = 0, busy = 0;
        var wrong = new List<string>();
        await Task.WhenAll(Enumerable.Range(0, 24).Select(c => Task.Run(async () =>
        {
            for (int r = 0; r < 6; r++)
            {
                int i = (c + r) % inputs.Length;
                var (status, body, response) = await Post(client, "/predict", Row(inputs[i]));
                if (status == HttpStatusCode.ServiceUnavailable && response.Headers.RetryAfter is not null) { Interlocked.Increment(ref busy); continue; }
                float score = status == HttpStatusCode.OK ? JsonDocument.Parse(body).RootElement.GetProperty("predictions")[0].GetProperty("Score").GetSingle() : float.NaN;
                if (status == HttpStatusCode.OK && Math.Abs(score - reference[i]) <= 1e-5f) Interlocked.Increment(ref ok);
                else lock (wrong) wrong.Add($"{(int)status}: {body}");
            }
        })));
        Assert.Empty(wrong);
        Assert.Equal(24 * 6, ok + busy);
        Assert.True(ok > 0);
    }

    [Fact]
    public async Task TheMicroBatchQueueIsBounded()
    {
        var path = SaveModel();
        var options = new ServingOptions { ModelPath = path, ReloadCheckInterval = TimeSpan.Zero, MicroBatchQueueLimit = 2, MicroBatchMaxDelay = TimeSpan.FromMilliseconds(400) };
        using var host = new ModelHost(path, options, NullLogger.Instance);
        using var metrics = new ServingMetrics();
        await using var batcher = new MicroBatcher(options, metrics, () => 100); // as if many requests were active: the batch waits its full delay
        using var lease = host.Acquire();
        RowBatch Rows() => RowBatch.FromJson([JsonDocument.Parse(Row(0.5f)).RootElement], lease.Model.Schema);
        var first = batcher.ScoreAsync(lease.Model, Rows(), CancellationToken.None);
        var second = batcher.ScoreAsync(lease.Model, Rows(), CancellationToken.None);
        var full = Assert.Throws<ServiceBusyException>(() => { _ = batcher.ScoreAsync(lease.Model, Rows(), CancellationToken.None); });
        Assert.Contains("queue is full (2 requests waiting)", full.Message);
        Assert.Single(await first);
        Assert.Single(await second);
        await Eventually(() => Task.FromResult(batcher.Waiting), n => n == 0);
        Assert.Single(await batcher.ScoreAsync(lease.Model, Rows(), CancellationToken.None));
    }

    // ---- slow clients and streams that cannot finish ---------------------------------------------------------------

    [Fact]
    public async Task HealthAnswersWhileClientsThatNeverReadHoldBatchStreams()
    {
        // A model with a wide output (a 512-value latent column, about 6 KB of JSON a row), so that a stream's answer is
        // several times what the kernel's socket buffers can hold (Linux grows a send buffer up to tcp_wmem's maximum,
        // 4 MiB by default): every stream must stall on its client, however the machine sizes its buffers.
        var data = TestData.Sine(_ml, 64);
        using (var wide = _ml.Transforms.Autoencoder(new Models.Autoencoders.AutoencoderOptions
        {
            FeatureColumnName = "Features", LatentSize = 512, Epochs = 1,
            Encoder = Models.Autoencoders.AutoencoderNetworks.TinyEncoder, Decoder = Models.Autoencoders.AutoencoderNetworks.TinyDecoder,
        }).Fit(data))
            _ml.Model.SaveDeep(wide, data.Schema, Path.Combine(_folder, "wide.zip"));
        var path = Path.Combine(_folder, "wide.zip");
        long buffers = 4L << 20;
        try { buffers = long.Parse(File.ReadAllText("/proc/sys/net/ipv4/tcp_wmem").Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[2]); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException) { }
        int rows = (int)Math.Max(4_000, 4 * buffers / 6_000);
        var log = new List<string>();
        await using var server = await Start(path, o => { o.MaxConcurrentBatchRequests = 32; o.MinDataRateGracePeriod = TimeSpan.FromSeconds(30); }, log);
        var uri = new Uri(server.Urls[0]);
        var upload = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Range(0, rows).Select(i => "{\"Features\":[0.5]}\n")));
        var slow = new List<RawHttp>();
        try
        {
            for (int c = 0; c < 24; c++)
            {
                var raw = await RawHttp.Open(uri, "/predict/batch", "application/x-ndjson", upload.Length, firstBytes: [], receiveBuffer: 4096);
                raw.SendInBackground(upload); // and never reads
                slow.Add(raw);
            }
            await Task.Delay(1500); // the streams fill every buffer on the way and stall
            // The scenario holds: no stream could finish, every one waits on its client.
            Assert.DoesNotContain(Snapshot(log), l => l.Contains("predict/batch 200"));
            using var client = new HttpClient { BaseAddress = uri, Timeout = TimeSpan.FromSeconds(30) };
            for (int i = 0; i < 3; i++)
            {
                var clock = Stopwatch.StartNew();
                using var health = await client.GetAsync("/health");
                Assert.Equal(HttpStatusCode.OK, health.StatusCode);
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"/health took {clock.Elapsed.TotalMilliseconds:F0} ms with 24 clients that never read");
                var (status, _, _) = await Post(client, "/predict", Row(0.25f));
                Assert.Equal(HttpStatusCode.OK, status);
            }
        }
        finally
        {
            foreach (var raw in slow) raw.Dispose();
        }
    }

    [Fact]
    public async Task ABatchStreamCutByTheTimeoutEndsWithAnErrorLineAndIsLoggedAsAFailure()
    {
        var path = SaveModel();
        var log = new List<string>();
        await using var server = await Start(path, o => o.RequestTimeout = TimeSpan.FromSeconds(1), log);
        // An upload that goes on for longer than the timeout, whatever the speed of the machine.
        var block = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Range(0, 10_000).Select(i => "{\"Features\":[0.5]}\n")));
        using var raw = await RawHttp.Open(new Uri(server.Urls[0]), "/predict/batch", "application/x-ndjson", 1_000_000_000, firstBytes: []);
        raw.SendInBackground(block, times: 1_000_000_000 / block.Length);
        var response = await raw.ReadResponseAsync();
        // No scoring pass outlives its request.
        Assert.Equal(0, server.ScoringInFlight);

        Assert.Equal(200, response.Status);
        var lines = response.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length >= 2, response.Text[..Math.Min(300, response.Text.Length)]);
        var last = JsonDocument.Parse(lines[^1]).RootElement;
        Assert.True(last.TryGetProperty("error", out var error), $"no error line at the end of {lines.Length} lines; log:\n{string.Join("\n", Snapshot(log).TakeLast(10))}");
        Assert.Contains("longer than the 1 s limit", error.GetString());
        Assert.Equal(lines.Length - 1, last.GetProperty("rowsWritten").GetInt64());
        Assert.Equal(504, last.GetProperty("status").GetInt32());
        Assert.All(lines[..^1], l => Assert.True(JsonDocument.Parse(l).RootElement.TryGetProperty("Score", out _)));
        await Eventually(() => Task.FromResult(Snapshot(log)), l => l.Any(x => x.Contains("predict/batch 504: stream cut after")));
        Assert.DoesNotContain(Snapshot(log), l => l.Contains("predict/batch 200"));
    }

    // ---- every row checked -----------------------------------------------------------------------------------------

    [Fact]
    public async Task EveryRowIsCheckedAndErrorsNameTheRowAndField()
    {
        var path = SaveModel();
        await using var server = await Start(path);
        using var client = new HttpClient { BaseAddress = new Uri(server.Urls[0]) };

        // JSON rows: a misspelt column in the second row, a column given twice.
        var (status, body, _) = await Post(client, "/predict", "[{\"Features\": [0.5]}, {\"Features\": [0.5], \"Featurs\": [1]}]");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("Row 1 has column 'Featurs'", Error(body));
        Assert.Equal("Featurs", JsonDocument.Parse(body).RootElement.GetProperty("field").GetString());
        (status, body, _) = await Post(client, "/predict", "{\"Features\": [0.5], \"Features\": [2]}");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("Row 0 has column 'Features' twice", Error(body));

        // JSON lines: counted as lines, from 1, blank lines included.
        (status, body, _) = await Post(client, "/predict/batch", Row(0.1f) + "\n\n" + "{\"Features\": [0.5], \"Label\": 1, \"Colour\": 2}\n", "application/x-ndjson");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("Line 3 has column 'Colour'", Error(body));
        (status, body, _) = await Post(client, "/predict/batch", Row(0.1f) + "\n{\"Features\": [\n", "application/x-ndjson");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("Line 2 is not valid JSON", Error(body));

        // CSV: the header with the rows' quoting rules; short rows, extra values, unparsable values and duplicate columns refused.
        var (_, expected, _) = await Post(client, "/predict", Row(0.5f));
        float score = JsonDocument.Parse(expected).RootElement.GetProperty("predictions")[0].GetProperty("Score").GetSingle();
        (status, body, _) = await Post(client, "/predict/batch", "\"Name, with comma\",Features.0\n\"a, b\",0.5\n", "text/csv");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(score, JsonDocument.Parse(body.Trim()).RootElement.GetProperty("Score").GetSingle(), 1e-5f);
        foreach (var (csv, message) in new[]
        {
            ("Id,Features.0\n1,0.5\n2\n", "Line 3 has 1 values; the header has 2 columns"),
            ("Id,Features.0\n1,0.5,7\n", "Line 2 has 3 values; the header has 2 columns"),
            ("Id,Features.0\n1,0.5\n2,abc\n", "Line 3: 'Features.0' is 'abc', not a finite number"),
            ("Id,Features.0\n1,\n", "Line 2: 'Features.0' is empty"),
            ("Features.0,Id,Features.0\n0.5,1,0.5\n", "names column 'Features.0' twice"),
            ("Id,Features.0\n1,\"0.5\n", "Line 2: a quoted value is not closed"),
        })
        {
            (status, body, _) = await Post(client, "/predict/batch", csv, "text/csv");
            Assert.True(status == HttpStatusCode.BadRequest, $"{csv}: {(int)status} {body}");
            Assert.Contains(message, Error(body));
        }

        // A bad row after the stream has started: the rows before it, then an error line naming it.
        var rows = new StringBuilder("Features.0\n");
        for (int i = 0; i < 300; i++) rows.Append(i == 280 ? "x" : "0.5").Append('\n');
        (status, body, _) = await Post(client, "/predict/batch", rows.ToString(), "text/csv");
        Assert.Equal(HttpStatusCode.OK, status);
        var lines = body.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var last = JsonDocument.Parse(lines[^1]).RootElement;
        Assert.Contains("Line 282: 'Features.0' is 'x'", last.GetProperty("error").GetString());
        Assert.Equal(ScoringServer.BatchChunkRows, last.GetProperty("rowsWritten").GetInt64());
        Assert.Equal(ScoringServer.BatchChunkRows + 1, lines.Length);
    }

    [Fact]
    public async Task ModelShowsTheFileNameAndTheBatchRouteHasItsOwnBodyLimit()
    {
        var path = SaveModel();
        await using var server = await Start(path, o => { o.MaxRequestBodyBytes = 1024; o.MaxBatchRequestBodyBytes = 200 * 1024; });
        using var client = new HttpClient { BaseAddress = new Uri(server.Urls[0]) };
        var text = await client.GetStringAsync("/model");
        Assert.DoesNotContain(_folder, text);
        var model = JsonDocument.Parse(text).RootElement;
        Assert.Equal("model.zip", model.GetProperty("file").GetString());
        Assert.Equal(200 * 1024, model.GetProperty("limits").GetProperty("maxBatchRequestBodyBytes").GetInt64());

        var upload = string.Concat(Enumerable.Range(0, 3000).Select(_ => Row(0.5f) + "\n")); // ~60 KB: over the /predict limit, under the batch one
        var (status, body, _) = await Post(client, "/predict/batch", upload, "application/x-ndjson");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(3000, body.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        (status, _, _) = await Post(client, "/predict", "{\"rows\": [" + string.Join(",", Enumerable.Repeat(Row(0.5f), 100)) + "]}");
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        (status, body, _) = await Post(client, "/predict/batch", upload + upload + upload + upload, "application/x-ndjson");
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Contains("204,800-byte limit", Error(body));
    }

    // ---- reloads ---------------------------------------------------------------------------------------------------

    /// <summary>A saved-model format whose network cannot be built: as libtorch failing (or any other exception of a registered format).</summary>
    private sealed class FailingFormat(string kind, Exception error) : NetworkModelFormat
    {
        public override string Kind => kind;
        public override nn.Module BuildModule(TransformerRecord record) => throw error;
        public override ITransformer Create(TransformerRecord record, nn.Module module, Device device) => throw error;
    }

    [Fact]
    public async Task AReloadFailingWithAnyExceptionKeepsTheModelAndHealthReportsIt()
    {
        var path = SaveModel();
        var good = File.ReadAllBytes(path);
        var log = new List<string>();
        await using var server = await Start(path, log: log);
        using var client = new HttpClient { BaseAddress = new Uri(server.Urls[0]) };
        string version = server.Host.Current.Version;

        DeepModelFile.Register(new FailingFormat("ServingReloadFailure", new ExternalException("CUDA error: an illegal memory access")));
        File.WriteAllBytes(path, WithKind(good, "ServingReloadFailure"));
        Assert.False(server.Host.CheckForNewFile());
        Assert.Equal(version, server.Host.Current.Version);
        var health = JsonDocument.Parse(await client.GetStringAsync("/health")).RootElement;
        Assert.Equal("degraded", health.GetProperty("status").GetString());
        Assert.Contains("CUDA error: an illegal memory access", health.GetProperty("lastReloadError").GetString());
        var (status, _, _) = await Post(client, "/predict", Row(0.5f));
        Assert.Equal(HttpStatusCode.OK, status);

        // A missing file: one log line, not one per check, and no stack trace.
        File.Delete(path);
        for (int i = 0; i < 4; i++) Assert.False(server.Host.CheckForNewFile());
        var missing = Snapshot(log).Where(l => l.Contains("is missing")).ToList();
        Assert.Single(missing);
        Assert.DoesNotContain(Snapshot(log), l => l.Contains(" at MlNetDeep") || l.Contains("EXCEPTION"));
        Assert.Contains("is missing", JsonDocument.Parse(await client.GetStringAsync("/health")).RootElement.GetProperty("lastReloadError").GetString());

        // The good file back: healthy again, same model.
        File.WriteAllBytes(path, good);
        Assert.False(server.Host.CheckForNewFile());
        health = JsonDocument.Parse(await client.GetStringAsync("/health")).RootElement;
        Assert.Equal("ok", health.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, health.GetProperty("lastReloadError").ValueKind);
        Assert.Equal(0, server.Host.Reloads);
    }

    [Fact]
    public async Task AModelFileOverTheCapIsRefusedBeforeItIsRead()
    {
        var path = SaveModel();
        var error = await Assert.ThrowsAsync<InvalidDataException>(() => Start(path, o => o.MaxModelBytes = 1024));
        Assert.Contains("the limit is", error.Message);
        Assert.Contains("--max-model-mb", error.Message);
    }

    [Fact]
    public async Task AReloadAfterDisposeLoadsNothing()
    {
        var path = SaveModel();
        var second = SaveModel("second.zip");
        var host = new ModelHost(path, new ServingOptions { ModelPath = path, ReloadCheckInterval = TimeSpan.Zero }, NullLogger.Instance);
        var first = host.Current;
        File.Copy(second, path, overwrite: true);
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddMinutes(1));
        // Dispose and a reload racing it: whichever wins, no model is left loaded and unreleased.
        var reload = Task.Run(host.CheckForNewFile);
        host.Dispose();
        await reload;
        Assert.False(host.CheckForNewFile());
        Assert.Throws<ObjectDisposedException>(() => host.Acquire());
        Assert.False(host.Current.TryAcquire(), "the model in place after Dispose is still held");
        Assert.False(first.TryAcquire(), "the first model is still held");
    }

    // ---- the score command -----------------------------------------------------------------------------------------

    [Fact]
    public void ScoreRefusesMalformedRowsNamingTheLine()
    {
        var path = SaveModel();
        var output = Path.Combine(_folder, "out.csv");
        string Score(string csv)
        {
            var input = Path.Combine(_folder, "in.csv");
            File.WriteAllText(input, csv);
            return Assert.Throws<RequestException>(() => BatchScorer.Score(path, input, output)).Message;
        }
        Assert.Contains("Line 3 has 1 values; the header has 2 columns", Score("Id,Features.0\n1,0.5\n2\n"));
        Assert.Contains("Line 2: 'Features.0' is 'abc'", Score("Id,Features.0\nabc,abc\n"));
        Assert.Contains("names column 'Id' twice", Score("Id,Id,Features.0\n1,1,0.5\n"));
        Assert.Contains("The CSV is empty", Score(""));
        Assert.False(File.Exists(output));
        Assert.Empty(Directory.GetFiles(_folder, "*.tmp"));

        // A cancelled job leaves no temporary file.
        var big = Path.Combine(_folder, "big.csv");
        File.WriteAllText(big, "Features.0\n" + string.Concat(Enumerable.Repeat("0.5\n", 5000)));
        using var cancel = new CancellationTokenSource();
        var progress = new SyncProgress(n => cancel.Cancel());
        Assert.ThrowsAny<OperationCanceledException>(() => BatchScorer.Score(path, big, output, progress, cancel.Token));
        Assert.False(File.Exists(output));
        Assert.Empty(Directory.GetFiles(_folder, ".*.tmp"));
        Assert.Equal(5000, BatchScorer.Score(path, big, output));
    }

    private sealed class SyncProgress(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }

    [Fact]
    public void ScoreCommandErrorsAreOneLineAndAnInterruptedJobLeavesNoTemporaryFile()
    {
        var path = SaveModel();
        var duplicate = Path.Combine(_folder, "dup.csv");
        File.WriteAllText(duplicate, "Features.0,Features.0\n0.5,0.5\n");
        var empty = Path.Combine(_folder, "empty.csv");
        File.WriteAllText(empty, "");
        var blocker = Path.Combine(_folder, "a-file");
        File.WriteAllText(blocker, "");
        foreach (var (args, message) in new[]
        {
            (new[] { "--input", duplicate }, "names column 'Features.0' twice"),
            (["--input", empty], "The CSV is empty"),
            (["--input", duplicate.Replace("dup", "short"), "--output", Path.Combine(blocker, "out.csv")], ""),
        })
        {
            if (args[1].Contains("short")) File.WriteAllText(args[1], "Features.0\n0.5\n");
            var (code, errors) = RunTool(["score", "--model", path, .. args]);
            Assert.True(code == 1, $"exit code {code}: {string.Join("\n", errors)}");
            var line = Assert.Single(errors);
            Assert.StartsWith("error: ", line);
            Assert.DoesNotContain("unexpected", line);
            Assert.Contains(message, line);
        }

        if (!OperatingSystem.IsLinux()) return;
        var big = Path.Combine(_folder, "big.csv");
        using (var writer = new StreamWriter(big))
        {
            writer.WriteLine("Features.0");
            for (int i = 0; i < 3_000_000; i++) writer.WriteLine("0.5");
        }
        var output = Path.Combine(_folder, "scored", "predictions.csv");
        var (exit, lines) = RunTool(["score", "--model", path, "--input", big, "--output", output], process =>
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (DateTime.UtcNow < deadline && !(Directory.Exists(Path.GetDirectoryName(output)) && Directory.GetFiles(Path.GetDirectoryName(output)!, ".*.tmp").Length > 0))
                Thread.Sleep(20);
            Assert.True(Directory.GetFiles(Path.GetDirectoryName(output)!, ".*.tmp").Length > 0, "the job never started writing");
            Assert.Equal(0, kill(process.Id, Signals.Interrupt.Signal));
        });
        Assert.Equal(Signals.Interrupt.ExitCode, exit);
        Assert.Equal([Signals.Interrupt.Line], lines);
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(output)!, ".*.tmp"));
        Assert.False(File.Exists(output));
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    private (int ExitCode, string[] Errors) RunTool(IEnumerable<string> args, Action<Process>? whileRunning = null)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        var start = new ProcessStartInfo(dotnet) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = _folder };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "MlNetDeep.Cli.dll"));
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        var errors = process.StandardError.ReadToEndAsync();
        try
        {
            whileRunning?.Invoke(process);
            if (!process.WaitForExit(TimeSpan.FromSeconds(60))) Assert.Fail("the tool was still running after 60 s");
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        process.WaitForExit();
        return (process.ExitCode, errors.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    // ---- helpers ---------------------------------------------------------------------------------------------------

    private static List<string> Snapshot(List<string> log)
    {
        lock (log) return [.. log];
    }

    private static async Task<T> Eventually<T>(Func<Task<T>> attempt, Func<T, bool> done, double seconds = 10)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            var result = await attempt();
            if (done(result) || DateTime.UtcNow > deadline) return result;
            await Task.Delay(50);
        }
    }

    /// <summary>A saved model whose deep stage's record names another kind (the manifest's hash recomputed).</summary>
    private static byte[] WithKind(byte[] model, string kind)
    {
        var entries = new List<(string Name, byte[] Data)>();
        using (var archive = new ZipArchive(new MemoryStream(model), ZipArchiveMode.Read))
            foreach (var entry in archive.Entries)
            {
                using var s = entry.Open();
                var data = new MemoryStream();
                s.CopyTo(data);
                entries.Add((entry.FullName, data.ToArray()));
            }
        byte[] Get(string name) => entries.Single(e => e.Name == name).Data;
        void Set(string name, byte[] data) => entries[entries.FindIndex(e => e.Name == name)] = (name, data);
        var manifest = JsonNode.Parse(Get("mlnetdeep.json"))!.AsObject();
        var stage = manifest["Stages"]!.AsArray().First(s => s!["Type"]!.GetValue<string>() == "deep")!.AsObject();
        string folder = stage["Entry"]!.GetValue<string>();
        var record = JsonNode.Parse(Get(folder + "/transformer.json"))!.AsObject();
        record["Kind"] = kind;
        Set(folder + "/transformer.json", Encoding.UTF8.GetBytes(record.ToJsonString()));
        static string Hash(byte[] bytes) => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(bytes));
        stage["Sha256"] = Hash(Get(folder + "/transformer.json")) + ":" + Hash(Get(folder + "/weights.bin"));
        Set("mlnetdeep.json", Encoding.UTF8.GetBytes(manifest.ToJsonString()));
        var output = new MemoryStream();
        using (var archive = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true))
            foreach (var (name, data) in entries)
            {
                using var s = archive.CreateEntry(name).Open();
                s.Write(data);
            }
        return output.ToArray();
    }

    private sealed class ListLogger(List<string> lines) : ILoggerProvider, ILogger
    {
        public ILogger CreateLogger(string categoryName) => this;
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (lines) lines.Add($"{logLevel}: {formatter(state, exception)}{(exception is null ? "" : " EXCEPTION " + exception)}");
        }

        public void Dispose() { }
    }

    /// <summary>An HTTP/1.1 request over a raw socket: a client that sends slowly, stops, or never reads.</summary>
    private sealed class RawHttp : IDisposable
    {
        private readonly Socket _socket;
        private readonly NetworkStream _stream;
        private readonly CancellationTokenSource _stop = new();

        private RawHttp(Socket socket)
        {
            _socket = socket;
            _stream = new NetworkStream(socket, ownsSocket: false);
        }

        public static async Task<RawHttp> Open(Uri server, string path, string type, long contentLength, byte[] firstBytes, int receiveBuffer = 0)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            if (receiveBuffer > 0) socket.ReceiveBufferSize = receiveBuffer;
            await socket.ConnectAsync(server.Host, server.Port);
            var raw = new RawHttp(socket);
            var head = $"POST {path} HTTP/1.1\r\nHost: {server.Host}:{server.Port}\r\nContent-Type: {type}\r\nContent-Length: {contentLength}\r\nConnection: close\r\n\r\n";
            await raw._stream.WriteAsync(Encoding.ASCII.GetBytes(head).Concat(firstBytes).ToArray());
            return raw;
        }

        public void SendInBackground(byte[] body, int times = 1) => _ = Task.Run(async () =>
        {
            try
            {
                for (int i = 0; i < times; i++) await _stream.WriteAsync(body, _stop.Token);
            }
            catch (Exception) { } // the server may close the connection first
        });

        public async Task<(int Status, string Text)> ReadResponseAsync()
        {
            // To the end of a chunked answer (its last, empty chunk), or of the connection.
            var all = new MemoryStream();
            var block = new byte[64 * 1024];
            try
            {
                int read;
                while ((read = await _stream.ReadAsync(block)) > 0)
                {
                    all.Write(block, 0, read);
                    if (all.Length >= 5 && all.GetBuffer().AsSpan(0, (int)all.Length).EndsWith("\r\n0\r\n\r\n"u8)) break;
                }
            }
            catch (IOException) { } // a reset after the last bytes
            _stop.Cancel();
            var bytes = all.ToArray();
            int end = bytes.AsSpan().IndexOf("\r\n\r\n"u8);
            var head = Encoding.ASCII.GetString(bytes, 0, end);
            int status = int.Parse(head.Split(' ')[1]);
            var body = bytes.AsSpan(end + 4).ToArray();
            if (head.Contains("Transfer-Encoding: chunked", StringComparison.OrdinalIgnoreCase))
            {
                var plain = new MemoryStream();
                int at = 0;
                while (at < body.Length)
                {
                    int lineEnd = body.AsSpan(at).IndexOf("\r\n"u8);
                    if (lineEnd < 0) break;
                    int size = Convert.ToInt32(Encoding.ASCII.GetString(body, at, lineEnd), 16);
                    if (size == 0) break;
                    at += lineEnd + 2;
                    plain.Write(body, at, Math.Min(size, body.Length - at));
                    at += size + 2;
                }
                body = plain.ToArray();
            }
            return (status, Encoding.UTF8.GetString(body));
        }

        public void Dispose()
        {
            _stop.Cancel();
            _stream.Dispose();
            _socket.Dispose();
        }
    }
}
