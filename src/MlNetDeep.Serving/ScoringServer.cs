using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MlNetDeep.Serving;

/// <summary>
/// The scoring service: an ASP.NET Core minimal API over a model saved with SaveDeep.
/// <list type="bullet">
/// <item><c>POST /predict</c>: a JSON row, an array of rows or <c>{"rows": [...]}</c> -> <c>{"modelVersion", "predictions": [...]}</c>.</item>
/// <item><c>POST /predict/batch</c>: CSV (<c>text/csv</c>) or JSON lines (<c>application/x-ndjson</c>) -> JSON lines, streamed.</item>
/// <item><c>GET /health</c>, <c>GET /model</c> (inputs, outputs, version, stages, limits).</item>
/// </list>
/// A bad request is a 400 whose JSON names the field; a body over the limit 413; a request over its time 504; a
/// request beyond the admission limits (concurrent requests and their queue, the micro-batch queue) 503 with
/// Retry-After. A batch stream that cannot finish (bad row, timeout, body over its limit) ends with an error line
/// <c>{"error": "...", "rowsWritten": n, "status": s}</c>; the log and the metrics record it as the failure it is.
/// Nothing a request starts outlives it: scoring is awaited by the request, cancelled with it, and no thread waits on
/// a slow client.
/// </summary>
public sealed class ScoringServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ServingOptions _options;
    private readonly ServingMetrics _metrics = new();
    private readonly MicroBatcher? _batcher;
    private readonly ILogger _logger;
    private readonly IPredictBackend? _backend;
    private int _activePredictions;

    private ScoringServer(WebApplication app, ModelHost host, ServingOptions options, IPredictBackend? backend)
    {
        _app = app;
        _backend = backend;
        Host = host;
        _options = options;
        _logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("MlNetDeep.Serving");
        if (options.MicroBatching) _batcher = new MicroBatcher(options, _metrics, () => Volatile.Read(ref _activePredictions));
        Map(app);
    }

    /// <summary>The model holder (current version, reloads).</summary>
    public ModelHost Host { get; }

    /// <summary>The application's services (those of a co-hosted silo too).</summary>
    public IServiceProvider Services => _app.Services;

    /// <summary>The addresses the server listens on (with the real port when 0 was asked for).</summary>
    public IReadOnlyList<string> Urls => _app.Urls.ToList();

    /// <summary>Loads the model and starts listening on <paramref name="url"/> (e.g. http://127.0.0.1:5000; port 0 picks a free one).</summary>
    public static Task<ScoringServer> StartAsync(ServingOptions options, string url, Action<ILoggingBuilder>? logging = null, CancellationToken cancellation = default) =>
        StartAsync(options, url, hooks: null, logging, cancellation);

    /// <summary>
    /// Loads the model and starts listening on <paramref name="url"/>, with what <paramref name="hooks"/> adds to the
    /// host (a co-hosted silo) and, when it names one, the backend <c>/predict</c> is scored by.
    /// </summary>
    public static async Task<ScoringServer> StartAsync(ServingOptions options, string url, ServingHooks? hooks, Action<ILoggingBuilder>? logging = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(url);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            var limits = kestrel.Limits;
            limits.MaxRequestBodySize = options.MaxRequestBodyBytes; // /predict/batch raises it for its own requests
            limits.MaxConcurrentConnections = options.MaxConnections;
            limits.MaxConcurrentUpgradedConnections = 0; // no route upgrades a connection
            limits.MinRequestBodyDataRate = new Microsoft.AspNetCore.Server.Kestrel.Core.MinDataRate(options.MinDataRateBytesPerSecond, options.MinDataRateGracePeriod);
            limits.MinResponseDataRate = new Microsoft.AspNetCore.Server.Kestrel.Core.MinDataRate(options.MinDataRateBytesPerSecond, options.MinDataRateGracePeriod);
        });
        builder.Services.AddSingleton<Rejections>();
        builder.Services.AddRateLimiter(limiter =>
        {
            limiter.AddConcurrencyLimiter(PredictPolicy, o =>
            {
                o.PermitLimit = options.MaxConcurrentRequests;
                o.QueueLimit = options.RequestQueueLimit;
                o.QueueProcessingOrder = QueueProcessingOrder.OldestFirst;
            });
            limiter.AddConcurrencyLimiter(BatchPolicy, o =>
            {
                o.PermitLimit = options.MaxConcurrentBatchRequests;
                o.QueueLimit = options.RequestQueueLimit;
                o.QueueProcessingOrder = QueueProcessingOrder.OldestFirst;
            });
            limiter.RejectionStatusCode = StatusCodes.Status503ServiceUnavailable;
            limiter.OnRejected = (rejected, _) => rejected.HttpContext.RequestServices.GetRequiredService<Rejections>().Reject(rejected.HttpContext);
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        if (logging is null) builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
        else logging(builder.Logging);
        hooks?.ConfigureBuilder?.Invoke(builder);
        var app = builder.Build();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("MlNetDeep.Serving");
        ModelHost host;
        try { host = new ModelHost(options.ModelPath, options, logger); }
        catch
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        ScoringServer server;
        try { server = new ScoringServer(app, host, options, hooks?.Predict?.Invoke(app.Services)); }
        catch
        {
            host.Dispose();
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        app.Services.GetRequiredService<Rejections>().Server = server;
        try
        {
            await app.StartAsync(cancellation).ConfigureAwait(false);
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        logger.LogInformation("Serving {Path} on {Urls} (micro-batching {MicroBatching}; at most {Requests} requests and {Batches} batch uploads at once, {Queue} queued each, {Connections} connections)",
            options.ModelPath, string.Join(", ", app.Urls), options.MicroBatching, options.MaxConcurrentRequests, options.MaxConcurrentBatchRequests, options.RequestQueueLimit, options.MaxConnections);
        return server;
    }

    /// <summary>Waits until the host stops (Ctrl+C or SIGTERM).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellation = default) => Microsoft.Extensions.Hosting.HostingAbstractionsHostExtensions.WaitForShutdownAsync(_app, cancellation);

    private const string PredictPolicy = "predict", BatchPolicy = "predict-batch";

    /// <summary>Rows scored per forward pass of a batch upload: read, scored and written a chunk at a time.</summary>
    internal const int BatchChunkRows = 256;

    /// <summary>Answers the requests the admission limits turn away: 503, Retry-After, a JSON error, a log line and the metric.</summary>
    private sealed class Rejections
    {
        public ScoringServer? Server { get; set; }

        public ValueTask Reject(HttpContext context) => Server is { } server ? new ValueTask(server.RejectAsync(context)) : ValueTask.CompletedTask;
    }

    private async Task RejectAsync(HttpContext context)
    {
        string route = context.Request.Path.Value?.TrimEnd('/').EndsWith("batch", StringComparison.OrdinalIgnoreCase) == true ? "predict/batch" : "predict";
        int limit = route == "predict" ? _options.MaxConcurrentRequests : _options.MaxConcurrentBatchRequests;
        Record(route, 503, 0);
        _logger.LogWarning("{Route} 503: refused, {Limit} requests running and {Queue} queued", route, limit, _options.RequestQueueLimit);
        context.Response.Headers.RetryAfter = RetryAfterSeconds;
        CloseIfBodyUnread(context);
        await Error(context, 503, $"The service is busy: {limit} {(route == "predict" ? "requests" : "batch uploads")} are running and {_options.RequestQueueLimit} waiting. Retry later.", null);
    }

    private const string RetryAfterSeconds = "1";

    /// <summary>
    /// An answer sent before the request's body was read (a refusal, a batch error): the connection closes after it,
    /// and says so, so that no client reuses a connection whose unread body the server would otherwise drain or drop.
    /// </summary>
    private static void CloseIfBodyUnread(HttpContext context)
    {
        if (context.Request.ContentLength is 0 || context.Response.HasStarted) return;
        if (context.Request.ContentLength is null && !context.Request.Headers.TransferEncoding.Any(t => t?.Contains("chunked", StringComparison.OrdinalIgnoreCase) == true)) return;
        context.Response.Headers.Connection = "close";
    }

    /// <summary>Scoring passes running now (a test hook: none may run once their request has been answered).</summary>
    internal int ScoringInFlight => Volatile.Read(ref _scoring);

    private int _scoring;

    private void Map(WebApplication app)
    {
        app.UseRateLimiter();
        app.MapGet("/health", (HttpContext context) => Handle(context, "health", async (_, _) =>
        {
            var model = Host.Current;
            var error = Host.LastReloadError;
            await WriteJson(context, 200, w =>
            {
                // The service still answers with the model it has: 200, with the reload failure for whoever watches.
                w.WriteString("status", error is null ? "ok" : "degraded");
                w.WriteString("modelVersion", model.Version);
                w.WriteNumber("reloads", Host.Reloads);
                if (error is null) w.WriteNull("lastReloadError");
                else w.WriteString("lastReloadError", error);
            });
        }));
        app.MapGet("/model", (HttpContext context) => Handle(context, "model", async (_, _) =>
        {
            var model = Host.Current;
            await WriteJson(context, 200, w =>
            {
                w.WriteString("file", model.FileName);
                w.WriteString("modelVersion", model.Version);
                w.WriteString("loadedAt", model.LoadedAt);
                w.WriteStartArray("stages");
                foreach (var stage in model.Stages) w.WriteStringValue(stage);
                w.WriteEndArray();
                w.WritePropertyName("inputs");
                JsonSerializer.Serialize(w, model.Schema.Inputs, JsonOptions);
                w.WritePropertyName("outputs");
                JsonSerializer.Serialize(w, model.Schema.Outputs, JsonOptions);
                w.WriteStartObject("limits");
                w.WriteNumber("maxRequestBodyBytes", _options.MaxRequestBodyBytes);
                w.WriteNumber("maxBatchRequestBodyBytes", _options.MaxBatchRequestBodyBytes);
                w.WriteNumber("maxRowsPerRequest", _options.MaxRowsPerRequest);
                w.WriteNumber("maxRowsPerBatchRequest", _options.MaxRowsPerBatchRequest);
                w.WriteNumber("requestTimeoutSeconds", _options.RequestTimeout.TotalSeconds);
                w.WriteNumber("maxConcurrentRequests", _options.MaxConcurrentRequests);
                w.WriteNumber("maxConcurrentBatchRequests", _options.MaxConcurrentBatchRequests);
                w.WriteNumber("requestQueueLimit", _options.RequestQueueLimit);
                w.WriteNumber("maxConnections", _options.MaxConnections);
                w.WriteNumber("microBatchQueueLimit", _options.MicroBatchQueueLimit);
                w.WriteNumber("minDataRateBytesPerSecond", _options.MinDataRateBytesPerSecond);
                w.WriteEndObject();
                w.WriteBoolean("microBatching", _options.MicroBatching);
            });
        }));
        app.MapPost("/predict", async (HttpContext context) =>
        {
            Interlocked.Increment(ref _activePredictions);
            try { await Handle(context, "predict", (state, cancellation) => PredictAsync(context, state, cancellation)); }
            finally { Interlocked.Decrement(ref _activePredictions); }
        }).RequireRateLimiting(PredictPolicy);
        app.MapPost("/predict/batch", (HttpContext context) => Handle(context, "predict/batch", (state, cancellation) => BatchAsync(context, state, cancellation)))
            .RequireRateLimiting(BatchPolicy);
    }

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web);

    /// <summary>What a handler has done so far: rows written, and whether its answer is a stream of lines.</summary>
    private sealed class RequestState
    {
        public long Rows;
        public bool Streaming;
    }

    private async Task PredictAsync(HttpContext context, RequestState state, CancellationToken cancellation)
    {
        using var document = await ReadJson(context.Request.Body, cancellation);
        var root = document.RootElement;
        IReadOnlyList<JsonElement> rows = root.ValueKind switch
        {
            JsonValueKind.Array => root.EnumerateArray().ToList(),
            JsonValueKind.Object when root.TryGetProperty("rows", out var list) =>
                list.ValueKind == JsonValueKind.Array ? list.EnumerateArray().ToList() : throw new RequestException("'rows' must be an array of row objects.", "rows"),
            JsonValueKind.Object => [root],
            _ => throw new RequestException($"The body is a JSON {root.ValueKind}; send a row object, an array of rows or {{\"rows\": [...]}}.", "body"),
        };
        if (rows.Count == 0) throw new RequestException("The request holds no rows.", "rows");
        if (rows.Count > _options.MaxRowsPerRequest)
            throw new RequestException($"The request holds {rows.Count} rows; at most {_options.MaxRowsPerRequest} are scored per request (use /predict/batch for more).", "rows");

        if (_backend is not null)
        {
            var result = await _backend.PredictAsync(rows, cancellation);
            _metrics.Rows.Add(result.Predictions.Count);
            await WriteJson(context, 200, w =>
            {
                w.WriteString("modelVersion", result.ModelVersion);
                w.WriteStartArray("predictions");
                foreach (var row in result.Predictions) w.WriteRawValue(row.Span, skipInputValidation: true);
                w.WriteEndArray();
            });
            state.Rows = result.Predictions.Count;
            return;
        }

        using var lease = Host.Acquire();
        var batch = RowBatch.FromJson(rows, lease.Model.Schema);
        var outputs = _batcher is not null
            ? await _batcher.ScoreAsync(lease.Model, batch, cancellation)
            : await ScoreAsync(lease.Model, batch, cancellation);
        _metrics.Rows.Add(outputs.Count);
        await WriteJson(context, 200, w =>
        {
            w.WriteString("modelVersion", lease.Model.Version);
            w.WriteStartArray("predictions");
            foreach (var row in outputs) w.WriteRawValue(row.Span, skipInputValidation: true);
            w.WriteEndArray();
        });
        state.Rows = outputs.Count;
    }

    /// <summary>Scores one batch on a worker thread, awaited (never left running after its request), with the request's cancellation.</summary>
    private async Task<IReadOnlyList<ReadOnlyMemory<byte>>> ScoreAsync(LoadedModel model, RowBatch batch, CancellationToken cancellation)
    {
        return await Task.Run(() =>
        {
            Interlocked.Increment(ref _scoring);
            try { return OutputWriter.Score(model, batch, cancellation); }
            finally { Interlocked.Decrement(ref _scoring); }
        }, cancellation);
    }

    /// <summary>
    /// A batch upload, streamed both ways a chunk at a time: read up to <see cref="BatchChunkRows"/> rows of the body,
    /// score them, write their lines, and on. Every step is awaited in the request, so a client that stops sending or
    /// reading holds no thread, and a request that ends (answered, timed out, aborted) leaves no work behind.
    /// </summary>
    private async Task BatchAsync(HttpContext context, RequestState state, CancellationToken cancellation)
    {
        var type = context.Request.ContentType ?? "";
        bool csv = type.StartsWith("text/csv", StringComparison.OrdinalIgnoreCase);
        bool lines = type.StartsWith("application/x-ndjson", StringComparison.OrdinalIgnoreCase) || type.StartsWith("application/jsonl", StringComparison.OrdinalIgnoreCase)
            || type.StartsWith("application/json-lines", StringComparison.OrdinalIgnoreCase);
        if (!csv && !lines)
            throw new RequestException($"Content-Type '{type}' is not accepted here: send text/csv or application/x-ndjson (one JSON row per line).", "Content-Type");
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
            bodySize.MaxRequestBodySize = _options.MaxBatchRequestBodyBytes;

        using var lease = Host.Acquire();
        var model = lease.Model;
        using var reader = new StreamReader(context.Request.Body, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 16 * 1024, leaveOpen: true);
        // One row's line may be as long as a whole /predict body.
        int maxLine = (int)Math.Min(_options.MaxRequestBodyBytes, Array.MaxLength / 2);
        IRowSource source = csv
            ? await CsvRows.OpenAsync(reader, model.Schema, maxLine, cancellation)
            : new JsonLinesRows(reader, model.Schema, maxLine);
        long limit = _options.MaxRowsPerBatchRequest;
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(64 * 1024);
        while (await source.ReadAsync(BatchChunkRows, cancellation) is { } batch)
        {
            if (state.Rows + batch.Count > limit) throw new RequestException($"The upload holds more than {limit} rows (MaxRowsPerBatchRequest).", "rows");
            var outputs = await ScoreAsync(model, batch, cancellation);
            buffer.ResetWrittenCount();
            foreach (var row in outputs)
            {
                System.Buffers.BuffersExtensions.Write(buffer, row.Span);
                System.Buffers.BuffersExtensions.Write(buffer, "\n"u8);
            }
            if (!state.Streaming)
            {
                context.Response.StatusCode = 200;
                context.Response.ContentType = "application/x-ndjson";
                // The connection closes after the stream: one cut short leaves an unread upload that is not worth draining.
                context.Response.Headers.Connection = "close";
                state.Streaming = true;
            }
            // Not cancelled by the timeout half-way through (the stream would be left without its last line): a client
            // that does not read is dropped by the minimum data rate instead, and the timeout is seen at the next chunk.
            await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted);
            state.Rows += outputs.Count;
            _metrics.Rows.Add(outputs.Count);
            cancellation.ThrowIfCancellationRequested();
        }
        if (state.Rows == 0) throw new RequestException("The upload holds no rows.", "rows");
    }

    private static async Task<JsonDocument> ReadJson(Stream body, CancellationToken cancellation)
    {
        try
        {
            return await JsonDocument.ParseAsync(body, new JsonDocumentOptions { MaxDepth = 16 }, cancellation);
        }
        catch (JsonException e)
        {
            throw new RequestException($"The body is not valid JSON: {e.Message}", "body");
        }
    }

    /// <summary>
    /// Runs a handler with the request timeout, maps errors to status codes with a JSON message (or, on a stream already
    /// under way, a last error line), and records metrics and a log line with the real outcome.
    /// </summary>
    private async Task Handle(HttpContext context, string route, Func<RequestState, CancellationToken, Task> handler)
    {
        var clock = Stopwatch.StartNew();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        timeout.CancelAfter(_options.RequestTimeout);
        var state = new RequestState();
        int status;
        string? failure = null;
        try
        {
            await handler(state, timeout.Token);
            status = context.Response.StatusCode;
        }
        catch (Exception e)
        {
            (status, failure) = await Fail(context, route, state, e);
        }
        Record(route, status, clock.Elapsed.TotalMilliseconds);
        if (failure is null)
            _logger.LogInformation("{Route} {Status}: {Rows} rows in {ElapsedMs:F1} ms", route, status, state.Rows, clock.Elapsed.TotalMilliseconds);
        else if (state.Streaming)
            _logger.LogWarning("{Route} {Status}: stream cut after {Rows} rows in {ElapsedMs:F1} ms (200 sent, then an error line): {Error}", route, status, state.Rows, clock.Elapsed.TotalMilliseconds, failure);
        else
            _logger.Log(status >= 500 && status != 503 && status != 504 ? LogLevel.Error : LogLevel.Warning,
                "{Route} {Status}: {Error} ({ElapsedMs:F1} ms)", route, status, failure, clock.Elapsed.TotalMilliseconds);
    }

    /// <summary>Status 499: the client closed the connection before its answer (nginx's convention; never sent).</summary>
    internal const int ClientClosedRequest = 499;

    private async Task<(int Status, string Message)> Fail(HttpContext context, string route, RequestState state, Exception e)
    {
        if (context.RequestAborted.IsCancellationRequested)
        {
            context.Abort();
            return (ClientClosedRequest, "The client closed the connection.");
        }
        (int status, string message, string? field) = e switch
        {
            RequestException r => (400, r.Message, r.Field),
            BadHttpRequestException b => (b.StatusCode, b.StatusCode == 413
                ? $"The body is larger than the {(route == "predict/batch" ? _options.MaxBatchRequestBodyBytes : _options.MaxRequestBodyBytes):N0}-byte limit."
                : b.Message, "body"),
            ServiceBusyException busy => (503, busy.Message + " Retry later.", null),
            OperationCanceledException => (504, $"The request took longer than the {_options.RequestTimeout.TotalSeconds:G} s limit.", null),
            ObjectDisposedException when route != "health" => (503, "The service is stopping.", null),
            _ => (500, $"The model could not score the request: {e.Message}", null),
        };
        if (status == 500) _logger.LogError(e, "Scoring failed on {Route}", route);
        if (!context.Response.HasStarted)
        {
            if (status == 503) context.Response.Headers.RetryAfter = RetryAfterSeconds;
            if (status is 503 or 504 || route == "predict/batch") CloseIfBodyUnread(context);
            try { await Error(context, status, message, field); }
            catch (Exception) when (context.RequestAborted.IsCancellationRequested) { }
            return (status, message);
        }
        if (state.Streaming)
        {
            // The status is sent: the error goes out as the last line, so that the client sees the stream did not finish.
            var line = JsonSerializer.SerializeToUtf8Bytes(new ErrorLine(message, state.Rows, status));
            using var grace = new CancellationTokenSource(_options.MinDataRateGracePeriod);
            try
            {
                await context.Response.Body.WriteAsync(line, grace.Token);
                await context.Response.Body.WriteAsync("\n"u8.ToArray(), grace.Token);
            }
            catch (Exception) when (grace.IsCancellationRequested || context.RequestAborted.IsCancellationRequested)
            {
                context.Abort();
            }
        }
        else context.Abort();
        return (status, message);
    }

    /// <summary>The last line of a batch stream that could not finish.</summary>
    private sealed record ErrorLine(
        [property: System.Text.Json.Serialization.JsonPropertyName("error")] string Error,
        [property: System.Text.Json.Serialization.JsonPropertyName("rowsWritten")] long RowsWritten,
        [property: System.Text.Json.Serialization.JsonPropertyName("status")] int Status);

    private void Record(string route, int status, double milliseconds)
    {
        _metrics.Requests.Add(1, new KeyValuePair<string, object?>("route", route), new KeyValuePair<string, object?>("status", status));
        _metrics.Latency.Record(milliseconds, new KeyValuePair<string, object?>("route", route));
    }

    private static async Task Error(HttpContext context, int status, string message, string? field)
    {
        if (context.Response.HasStarted) return;
        await WriteJson(context, status, w =>
        {
            w.WriteString("error", message);
            if (field is not null) w.WriteString("field", field);
        });
    }

    private static async Task WriteJson(HttpContext context, int status, Action<Utf8JsonWriter> body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        await using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            body(writer);
            writer.WriteEndObject();
        }
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        if (_batcher is not null) await _batcher.DisposeAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        Host.Dispose();
        _metrics.Dispose();
    }
}
