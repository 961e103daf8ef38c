using System.Text.Json;

namespace MlNetDeep.Serving;

/// <summary>The answer to one <c>POST /predict</c>: the version of the model that scored every row, and one JSON object per row.</summary>
public sealed record PredictResult(string ModelVersion, IReadOnlyList<ReadOnlyMemory<byte>> Predictions);

/// <summary>
/// Where the rows of a <c>POST /predict</c> are scored, when not by the service's own model (e.g. by the model grains
/// of a cluster). Every row of one call must be scored by one model version. A <see cref="RequestException"/> is
/// answered with 400 and its field; other failures with 500.
/// </summary>
public interface IPredictBackend
{
    Task<PredictResult> PredictAsync(IReadOnlyList<JsonElement> rows, CancellationToken cancellation);
}

/// <summary>What a host of the scoring service may add: its own services (a co-hosted silo) and where <c>/predict</c> is scored.</summary>
public sealed class ServingHooks
{
    /// <summary>Called on the web application's builder before it is built (e.g. to add an Orleans silo to the same host).</summary>
    public Action<Microsoft.AspNetCore.Builder.WebApplicationBuilder>? ConfigureBuilder { get; init; }

    /// <summary>Makes the backend of <c>/predict</c> from the application's services; null: the service's own model.</summary>
    public Func<IServiceProvider, IPredictBackend>? Predict { get; init; }
}

/// <summary>Scores rows given as JSON with a loaded model (what <c>/predict</c> does with its own model).</summary>
public static class JsonRowScoring
{
    /// <summary>Checks and scores <paramref name="rows"/> (JSON row objects) with <paramref name="model"/>; a bad row throws <see cref="RequestException"/>.</summary>
    public static IReadOnlyList<ReadOnlyMemory<byte>> Score(LoadedModel model, IReadOnlyList<JsonElement> rows, CancellationToken cancellation = default) =>
        OutputWriter.Score(model, RowBatch.FromJson(rows, model.Schema), cancellation);
}
