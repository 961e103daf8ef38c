using System.Diagnostics.Metrics;

namespace MlNetDeep.Serving;

/// <summary>
/// The service's metrics on the standard .NET meter <c>MlNetDeep.Serving</c> (read them with dotnet-counters,
/// OpenTelemetry or a MeterListener): requests by route and status, rows scored, request latency (a histogram, from
/// which collectors compute percentiles) and the rows per micro-batch.
/// </summary>
public sealed class ServingMetrics : IDisposable
{
    public const string MeterName = "MlNetDeep.Serving";

    private readonly Meter _meter = new(MeterName, "1.0");

    public ServingMetrics()
    {
        Requests = _meter.CreateCounter<long>("mlnetdeep.serving.requests", "{request}", "Requests by route and HTTP status.");
        Rows = _meter.CreateCounter<long>("mlnetdeep.serving.rows", "{row}", "Rows scored.");
        Latency = _meter.CreateHistogram<double>("mlnetdeep.serving.request.duration", "ms", "Time from a request's arrival to its response.");
        BatchRows = _meter.CreateHistogram<long>("mlnetdeep.serving.microbatch.rows", "{row}", "Rows scored together in one micro-batch.");
    }

    public Counter<long> Requests { get; }
    public Counter<long> Rows { get; }
    public Histogram<double> Latency { get; }
    public Histogram<long> BatchRows { get; }

    public void Dispose() => _meter.Dispose();
}
