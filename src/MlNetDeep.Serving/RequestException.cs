namespace MlNetDeep.Serving;

/// <summary>A request the service refuses (HTTP 400): the message names the row and field at fault.</summary>
public sealed class RequestException(string message, string? field = null) : Exception(message)
{
    /// <summary>The column (or request part) at fault, when there is one.</summary>
    public string? Field { get; } = field;
}
