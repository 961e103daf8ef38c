using System.Text.Json;
using System.Text.Json.Nodes;
using MlNetDeep.Networks;

namespace MlNetDeep.Persistence;

/// <summary>What a saved deep transformer holds besides its weights: its family, feature column, shape, network and settings.</summary>
public sealed class TransformerRecord
{
    public required string Kind { get; init; }

    /// <summary>The version of the family's record layout (its <see cref="SavedModelFormat.Version"/> when written).</summary>
    public int Version { get; init; } = 1;
    public required string FeatureColumnName { get; init; }
    public required int[] InputShape { get; init; }
    public required NetworkSpec Network { get; init; }
    public int ScoringBatchSize { get; init; } = 1024;

    /// <summary>Family-specific settings (column names, class names, ...).</summary>
    public JsonObject Settings { get; init; } = new();

    public T Get<T>(string key) => Settings[key] is { } node
        ? node.Deserialize<T>() ?? throw new InvalidDataException($"setting '{key}' is empty.")
        : throw new InvalidDataException($"setting '{key}' is missing.");

    public T? GetOrDefault<T>(string key) => Settings[key] is { } node ? node.Deserialize<T>() : default;

    public TransformerRecord With(string key, object? value)
    {
        Settings[key] = value is null ? null : JsonSerializer.SerializeToNode(value, value.GetType());
        return this;
    }
}
