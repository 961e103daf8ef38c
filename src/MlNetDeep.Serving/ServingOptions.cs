namespace MlNetDeep.Serving;

/// <summary>Settings of the scoring service.</summary>
public sealed class ServingOptions
{
    /// <summary>The model file (saved with SaveDeep).</summary>
    public string ModelPath { get; set; } = "";

    /// <summary>Largest request body in bytes; a larger one is refused with 413.</summary>
    public long MaxRequestBodyBytes { get; set; } = 16 << 20;

    /// <summary>Most rows in one <c>POST /predict</c>.</summary>
    public int MaxRowsPerRequest { get; set; } = 10_000;

    /// <summary>Most rows in one <c>POST /predict/batch</c> upload.</summary>
    public int MaxRowsPerBatchRequest { get; set; } = 1_000_000;

    /// <summary>A request still scoring after this long is stopped with 504.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Score the rows of concurrent <c>/predict</c> requests together in one forward pass.</summary>
    public bool MicroBatching { get; set; } = true;

    /// <summary>Most rows a micro-batch gathers before it is scored.</summary>
    public int MicroBatchMaxRows { get; set; } = 256;

    /// <summary>Longest a request waits for others to join its micro-batch.</summary>
    public TimeSpan MicroBatchMaxDelay { get; set; } = TimeSpan.FromMilliseconds(2);

    /// <summary>How often the model file is checked for a new version (zero: never).</summary>
    public TimeSpan ReloadCheckInterval { get; set; } = TimeSpan.FromSeconds(2);

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(ModelPath)) throw new ArgumentException("ModelPath must name a model file saved with SaveDeep.", nameof(ModelPath));
        if (MaxRequestBodyBytes <= 0) throw new ArgumentOutOfRangeException(nameof(MaxRequestBodyBytes), MaxRequestBodyBytes, "MaxRequestBodyBytes must be positive.");
        if (MaxRowsPerRequest <= 0) throw new ArgumentOutOfRangeException(nameof(MaxRowsPerRequest), MaxRowsPerRequest, "MaxRowsPerRequest must be positive.");
        if (MaxRowsPerBatchRequest <= 0) throw new ArgumentOutOfRangeException(nameof(MaxRowsPerBatchRequest), MaxRowsPerBatchRequest, "MaxRowsPerBatchRequest must be positive.");
        if (RequestTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(RequestTimeout), RequestTimeout, "RequestTimeout must be positive.");
        if (MicroBatchMaxRows <= 0) throw new ArgumentOutOfRangeException(nameof(MicroBatchMaxRows), MicroBatchMaxRows, "MicroBatchMaxRows must be positive.");
        if (MicroBatchMaxDelay < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(MicroBatchMaxDelay), MicroBatchMaxDelay, "MicroBatchMaxDelay must not be negative.");
        if (ReloadCheckInterval < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(ReloadCheckInterval), ReloadCheckInterval, "ReloadCheckInterval must not be negative.");
    }
}
