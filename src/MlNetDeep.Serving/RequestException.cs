namespace MlNetDeep.Serving;

/// <summary>
/// A request or input file the service refuses (HTTP 400; the command line's one-line error): the message names the
/// row and field at fault. It is a <see cref="FormatException"/>: the input is not in the form the model reads.
/// </summary>
public sealed class RequestException(string message, string? field = null) : FormatException(message)
{
    /// <summary>The column (or request part) at fault, when there is one.</summary>
    public string? Field { get; } = field;
}

/// <summary>The service is full (its request queue, micro-batch queue or connection limit): HTTP 503 with Retry-After.</summary>
internal sealed class ServiceBusyException(string message) : Exception(message);
