using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.ML;

namespace MlNetDeep.Serving;

/// <summary>
/// The scoring service: an ASP.NET Core minimal API over a model saved with SaveDeep.
/// <list type="bullet">
/// <item><c>POST /predict</c>: a JSON row, an array of rows or <c>{"rows": [...]}</c> -> <c>{"modelVersion", "predictions": [...]}</c>.</item>
/// <item><c>POST /predict/batch</c>: CSV (<c>text/csv</c>) or JSON lines (<c>application/x-ndjson</c>) -> JSON lines, streamed.</item>
/// <item><c>GET /health</c>, <c>GET /model</c> (inputs, outputs, version, stages, limits).</item>
/// </list>
/// A bad request is a 400 whose JSON names the field; a body over the limit 413; a request over its time 504.
/// </summary>
public sealed class ScoringServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ServingOptions _options;
    private readonly ServingMetrics _metrics = new();
    private readonly MicroBatcher? _batcher;
    private readonly ILogger _logger;
    private int _activePredictions;

    private ScoringServer(WebApplication app, ModelHost host, ServingOptions options)
    {
        _app = app;
        Host = host;
        _options = options;
        _logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("MlNetDeep.Serving");
        if (options.MicroBatching) _batcher = new MicroBatcher(options, _metrics, () => Volatile.Read(ref _activePredictions));
        Map(app);
    }

    /// <summary>The model holder (current version, reloads).</summary>
    public ModelHost Host { get; }

    /// <summary>The addresses the server listens on (with the real port when 0 was asked for).</summary>
    public IReadOnlyList<string> Urls => _app.Urls.ToList();

    /// <summary>Loads the model and starts listening on <paramref name="url"/> (e.g. http://127.0.0.1:5000; port 0 picks a free one).</summary>
    public static async Task<ScoringServer> StartAsync(ServingOptions options, string url, Action<ILoggingBuilder>? logging = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(url);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes);
        builder.Logging.ClearProviders();
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        if (logging is null) builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
        else logging(builder.Logging);
        var app = builder.Build();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("MlNetDeep.Serving");
        var host = new ModelHost(options.ModelPath, options, logger);
        var server = new ScoringServer(app, host, options);
        try
        {
            await app.StartAsync(cancellation).ConfigureAwait(false);
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        logger.LogInformation("Serving {Path} on {Urls} (micro-batching {MicroBatching})", options.ModelPath, string.Join(", ", app.Urls), options.MicroBatching);
        return server;
    }

    /// <summary>Waits until the host stops (Ctrl+C or SIGTERM).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellation = default) => Microsoft.Extensions.Hosting.HostingAbstractionsHostExtensions.WaitForShutdownAsync(_app, cancellation);

    private void Map(WebApplication app)
    {
        app.MapGet("/health", (HttpContext context) => Handle(context, "health", async _ =>
        {
            var model = Host.Current;
            await WriteJson(context, 200, w =>
            {
                w.WriteString("status", "ok");
                w.WriteString("modelVersion", model.Version);
                w.WriteNumber("reloads", Host.Reloads);
            });
            return 0;
        }));
        app.MapGet("/model", (HttpContext context) => Handle(context, "model", async _ =>
        {
            var model = Host.Current;
            await WriteJson(context, 200, w =>
            {
                w.WriteString("path", model.Path);
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
                w.WriteNumber("maxRowsPerRequest", _options.MaxRowsPerRequest);
                w.WriteNumber("maxRowsPerBatchRequest", _options.MaxRowsPerBatchRequest);
                w.WriteNumber("requestTimeoutSeconds", _options.RequestTimeout.TotalSeconds);
                w.WriteEndObject();
                w.WriteBoolean("microBatching", _options.MicroBatching);
            });
            return 0;
        }));
        app.MapPost("/predict", async (HttpContext context) =>
        {
            Interlocked.Increment(ref _activePredictions);
            try { await Handle(context, "predict", cancellation => PredictAsync(context, cancellation)); }
            finally { Interlocked.Decrement(ref _activePredictions); }
        });
        app.MapPost("/predict/batch", (HttpContext context) => Handle(context, "predict/batch", cancellation => BatchAsync(context, cancellation)));
    }

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web);

    private async Task<int> PredictAsync(HttpContext context, CancellationToken cancellation)
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

        using var lease = Host.Acquire();
        var batch = RowBatch.FromJson(rows, lease.Model.Schema);
        var outputs = _batcher is not null
            ? await _batcher.ScoreAsync(lease.Model, batch, cancellation)
            : await Task.Run(() => OutputWriter.Score(lease.Model, batch, cancellation), cancellation);
        _metrics.Rows.Add(outputs.Count);
        await WriteJson(context, 200, w =>
        {
            w.WriteString("modelVersion", lease.Model.Version);
            w.WriteStartArray("predictions");
            foreach (var row in outputs) w.WriteRawValue(row.Span, skipInputValidation: true);
            w.WriteEndArray();
        });
        return outputs.Count;
    }

    private async Task<int> BatchAsync(HttpContext context, CancellationToken cancellation)
    {
        var type = context.Request.ContentType ?? "";
        bool csv = type.StartsWith("text/csv", StringComparison.OrdinalIgnoreCase);
        bool lines = type.StartsWith("application/x-ndjson", StringComparison.OrdinalIgnoreCase) || type.StartsWith("application/jsonl", StringComparison.OrdinalIgnoreCase)
            || type.StartsWith("application/json-lines", StringComparison.OrdinalIgnoreCase);
        if (!csv && !lines)
            throw new RequestException($"Content-Type '{type}' is not accepted here: send text/csv or application/x-ndjson (one JSON row per line).", "Content-Type");

        using var lease = Host.Acquire();
        var model = lease.Model;
        string? temporary = null;
        try
        {
            IDataView data;
            if (csv)
            {
                // ML.NET's TextLoader reads files: the upload (bounded by the body limit) goes to a temporary file first.
                temporary = Path.Combine(Path.GetTempPath(), $"mlnetdeep-batch-{Guid.NewGuid():N}.csv");
                await using (var file = File.Create(temporary)) await context.Request.Body.CopyToAsync(file, cancellation);
                data = CsvRows.Load(new MLContext(seed: 1), temporary, model.Schema);
            }
            else data = await ReadJsonLines(context.Request.Body, model.Schema, cancellation);

            // Score on a worker thread; rows reach the response as they are scored, through a bounded channel.
            var channel = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(1024) { SingleReader = true, SingleWriter = true });
            long limit = _options.MaxRowsPerBatchRequest;
            var producer = Task.Run(() =>
            {
                long count = 0;
                try
                {
                    OutputWriter.ForEachRow(model, data, row =>
                    {
                        if (++count > limit) throw new RequestException($"The upload holds more than {limit} rows.", "rows");
                        var line = new byte[row.Length + 1];
                        row.CopyTo(line);
                        line[^1] = (byte)'\n';
                        channel.Writer.WriteAsync(line, cancellation).AsTask().GetAwaiter().GetResult();
                    }, cancellation);
                    channel.Writer.TryComplete();
                }
                catch (Exception e)
                {
                    channel.Writer.TryComplete(e);
                }
                return count;
            }, cancellation);

            int rows = 0;
            bool started = false;
            try
            {
                await foreach (var line in channel.Reader.ReadAllAsync(cancellation))
                {
                    if (!started)
                    {
                        context.Response.StatusCode = 200;
                        context.Response.ContentType = "application/x-ndjson";
                        started = true;
                    }
                    await context.Response.Body.WriteAsync(line, cancellation);
                    rows++;
                }
            }
            catch (Exception e) when (started && e is not OperationCanceledException)
            {
                // The status is sent: the error goes out as a last line, and the stream ends.
                var error = JsonSerializer.SerializeToUtf8Bytes(new { error = e.Message, afterRows = rows });
                await context.Response.Body.WriteAsync(error, cancellation);
                await context.Response.Body.WriteAsync("\n"u8.ToArray(), cancellation);
                _logger.LogWarning("Batch request stopped after {Rows} rows: {Error}", rows, e.Message);
            }
            await producer;
            if (!started) context.Response.StatusCode = 200;
            _metrics.Rows.Add(rows);
            return rows;
        }
        finally
        {
            if (temporary is not null) File.Delete(temporary);
        }
    }

    private static async Task<IDataView> ReadJsonLines(Stream body, ModelSchema schema, CancellationToken cancellation)
    {
        using var reader = new StreamReader(body, Encoding.UTF8);
        var documents = new List<JsonDocument>();
        try
        {
            int number = 0;
            while (await reader.ReadLineAsync(cancellation) is { } line)
            {
                if (string.IsNullOrWhiteSpace(line)) { number++; continue; }
                try { documents.Add(JsonDocument.Parse(line)); }
                catch (JsonException e) { throw new RequestException($"Line {number + 1} is not valid JSON: {e.Message}", "body"); }
                number++;
            }
            if (documents.Count == 0) throw new RequestException("The upload holds no rows.", "rows");
            return RowBatch.FromJson(documents.Select(d => d.RootElement).ToList(), schema);
        }
        finally
        {
            foreach (var document in documents) document.Dispose();
        }
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

    /// <summary>Runs a handler with the request timeout, maps errors to status codes with a JSON message, and records metrics and a log line.</summary>
    private async Task Handle(HttpContext context, string route, Func<CancellationToken, Task<int>> handler)
    {
        var clock = Stopwatch.StartNew();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        timeout.CancelAfter(_options.RequestTimeout);
        int rows = 0;
        try
        {
            rows = await handler(timeout.Token);
        }
        catch (RequestException e)
        {
            await Error(context, 400, e.Message, e.Field);
        }
        catch (BadHttpRequestException e)
        {
            await Error(context, e.StatusCode, e.Message, "body");
        }
        catch (OperationCanceledException) when (!context.RequestAborted.IsCancellationRequested)
        {
            await Error(context, 504, $"The request took longer than the {_options.RequestTimeout.TotalSeconds:G} s limit.", null);
        }
        catch (OperationCanceledException)
        {
            context.Abort();
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or ObjectDisposedException or NotSupportedException or FormatException)
        {
            _logger.LogError(e, "Scoring failed on {Route}", route);
            await Error(context, 500, $"The model could not score the request: {e.Message}", null);
        }
        var status = context.Response.StatusCode;
        _metrics.Requests.Add(1, new KeyValuePair<string, object?>("route", route), new KeyValuePair<string, object?>("status", status));
        _metrics.Latency.Record(clock.Elapsed.TotalMilliseconds, new KeyValuePair<string, object?>("route", route));
        _logger.LogInformation("{Route} {Status}: {Rows} rows in {ElapsedMs:F1} ms", route, status, rows, clock.Elapsed.TotalMilliseconds);
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
