namespace MlNetDeep.Serving;

/// <summary>Settings of the scoring service.</summary>
public sealed class ServingOptions
{
    /// <summary>The model file (saved with SaveDeep).</summary>
    public string ModelPath { get; set; } = "";

    /// <summary>Largest model file in bytes; a larger one is refused before it is read (at start and on reload).</summary>
    public long MaxModelBytes { get; set; } = 2048L << 20;

    /// <summary>Largest body of a <c>POST /predict</c> request in bytes; a larger one is refused with 413.</summary>
    public long MaxRequestBodyBytes { get; set; } = 16 << 20;

    /// <summary>Largest body of a <c>POST /predict/batch</c> upload in bytes (read and scored as it streams in); a larger one is cut with 413 or a last error line.</summary>
    public long MaxBatchRequestBodyBytes { get; set; } = 1024L << 20;

    /// <summary>Most rows in one <c>POST /predict</c>.</summary>
    public int MaxRowsPerRequest { get; set; } = 10_000;

    /// <summary>Most rows in one <c>POST /predict/batch</c> upload.</summary>
    public int MaxRowsPerBatchRequest { get; set; } = 1_000_000;

    /// <summary>A request still scoring after this long is stopped with 504 (a batch stream already under way ends with an error line).</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Most <c>/predict</c> requests handled at once; more wait in a queue of <see cref="RequestQueueLimit"/>, and beyond that get 503 with Retry-After.</summary>
    public int MaxConcurrentRequests { get; set; } = 64;

    /// <summary>Most <c>/predict/batch</c> uploads handled at once; more wait in a queue of <see cref="RequestQueueLimit"/>, and beyond that get 503 with Retry-After.</summary>
    public int MaxConcurrentBatchRequests { get; set; } = 4;

    /// <summary>Most requests of each route waiting for their turn; one more gets 503 with Retry-After.</summary>
    public int RequestQueueLimit { get; set; } = 128;

    /// <summary>Most open TCP connections (Kestrel's limit); further connections are closed at once. /health and /model are not limited otherwise.</summary>
    public int MaxConnections { get; set; } = 1024;

    /// <summary>
    /// Slowest a client may send its body or read its answer, in bytes per second, after a grace of
    /// <see cref="MinDataRateGracePeriod"/> (Kestrel's MinRequestBodyDataRate and MinResponseDataRate): a slower
    /// connection is closed, so that clients that never read cannot hold the service.
    /// </summary>
    public double MinDataRateBytesPerSecond { get; set; } = 240;

    /// <summary>How long a connection may stay under <see cref="MinDataRateBytesPerSecond"/> before it is closed (at least 1 s).</summary>
    public TimeSpan MinDataRateGracePeriod { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Score the rows of concurrent <c>/predict</c> requests together in one forward pass.</summary>
    public bool MicroBatching { get; set; } = true;

    /// <summary>Most rows a micro-batch gathers before it is scored.</summary>
    public int MicroBatchMaxRows { get; set; } = 256;

    /// <summary>Longest a request waits for others to join its micro-batch.</summary>
    public TimeSpan MicroBatchMaxDelay { get; set; } = TimeSpan.FromMilliseconds(2);

    /// <summary>Most requests waiting in the micro-batcher (queued or being scored); one more gets 503 with Retry-After.</summary>
    public int MicroBatchQueueLimit { get; set; } = 1024;

    /// <summary>How often the model file is checked for a new version (zero: never).</summary>
    public TimeSpan ReloadCheckInterval { get; set; } = TimeSpan.FromSeconds(2);

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(ModelPath)) throw new ArgumentException("ModelPath must name a model file saved with SaveDeep.", nameof(ModelPath));
        Positive(MaxModelBytes, nameof(MaxModelBytes));
        Positive(MaxRequestBodyBytes, nameof(MaxRequestBodyBytes));
        Positive(MaxBatchRequestBodyBytes, nameof(MaxBatchRequestBodyBytes));
        Positive(MaxRowsPerRequest, nameof(MaxRowsPerRequest));
        Positive(MaxRowsPerBatchRequest, nameof(MaxRowsPerBatchRequest));
        if (RequestTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(RequestTimeout), RequestTimeout, "RequestTimeout must be positive.");
        Positive(MaxConcurrentRequests, nameof(MaxConcurrentRequests));
        Positive(MaxConcurrentBatchRequests, nameof(MaxConcurrentBatchRequests));
        if (RequestQueueLimit < 0) throw new ArgumentOutOfRangeException(nameof(RequestQueueLimit), RequestQueueLimit, "RequestQueueLimit must not be negative.");
        Positive(MaxConnections, nameof(MaxConnections));
        if (!(MinDataRateBytesPerSecond > 0) || !double.IsFinite(MinDataRateBytesPerSecond))
            throw new ArgumentOutOfRangeException(nameof(MinDataRateBytesPerSecond), MinDataRateBytesPerSecond, "MinDataRateBytesPerSecond must be a positive number.");
        if (MinDataRateGracePeriod < TimeSpan.FromSeconds(1))
            throw new ArgumentOutOfRangeException(nameof(MinDataRateGracePeriod), MinDataRateGracePeriod, "MinDataRateGracePeriod must be at least 1 s.");
        Positive(MicroBatchMaxRows, nameof(MicroBatchMaxRows));
        if (MicroBatchMaxDelay < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(MicroBatchMaxDelay), MicroBatchMaxDelay, "MicroBatchMaxDelay must not be negative.");
        Positive(MicroBatchQueueLimit, nameof(MicroBatchQueueLimit));
        if (ReloadCheckInterval < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(ReloadCheckInterval), ReloadCheckInterval, "ReloadCheckInterval must not be negative.");
    }

    private static void Positive(long value, string name)
    {
        if (value <= 0) throw new ArgumentOutOfRangeException(name, value, $"{name} must be positive.");
    }
}
