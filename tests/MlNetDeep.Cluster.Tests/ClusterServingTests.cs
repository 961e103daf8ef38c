using Orleans;
using Microsoft.Extensions.DependencyInjection;
using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.ML;
using MlNetDeep.Models.Classification;
using MlNetDeep.Serving;
using Orleans.Hosting;
using Orleans.TestingHost;

namespace MlNetDeep.Cluster.Tests;

/// <summary>
/// <c>/predict</c> served by the model grains of an in-memory cluster of 3 silos (the HTTP service of silo 0 sends each
/// request to one silo): a model file replaced under a stream of requests, and a silo stopped or killed under one.
/// </summary>
public sealed class ClusterServingTests(ScoringData data, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<ScoringData>
{
    private static readonly PredictRetryPolicy Retry = new() { MaxAttempts = 5, Delay = TimeSpan.FromMilliseconds(100), AvoidFor = TimeSpan.FromSeconds(10) };

    /// <summary>A second model of the same shape (another seed): other predictions, another version.</summary>
    private static void TrainOther(string path) => ScoringData.TrainModel(path, dataSeed: 5, seed: 7);

    private static string RowsJson(int seed, int count)
    {
        var rand = new Random(seed);
        return "[" + string.Join(",", Enumerable.Range(0, count).Select(_ =>
            "{\"Features\":[" + string.Join(",", Enumerable.Range(0, 4).Select(_ => ((float)(rand.NextDouble() * 2 - 1)).ToString("R", CultureInfo.InvariantCulture))) + "]}")) + "]";
    }

    private sealed class Serving : IAsyncDisposable
    {
        public required InProcessTestCluster Cluster { get; init; }
        public required ScoringServer Server { get; init; }
        public required ClusterPredictor Predictor { get; init; }
        public required HttpClient Http { get; init; }

        public async Task<(HttpStatusCode Status, string Body)> Predict(string rows)
        {
            using var response = await Http.PostAsync("/predict", new StringContent(rows, Encoding.UTF8, "application/json"));
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }

        public async ValueTask DisposeAsync()
        {
            Http.Dispose();
            await Server.DisposeAsync();
            await Cluster.DisposeAsync();
        }
    }

    private static async Task<Serving> Start(string modelPath, bool staleView = false)
    {
        var builder = new InProcessTestClusterBuilder(3);
        builder.ConfigureSilo((_, silo) => silo.AddModelServing(new ModelServingOptions { ReloadCheckInterval = TimeSpan.FromMilliseconds(100) }).UseQuickFailureDetection());
        var cluster = builder.Build();
        await cluster.DeployAsync();
        var services = cluster.Silos[0].ServiceProvider;
        var live = ClusterPredictor.ActiveSilosOf(services.GetRequiredService<Orleans.Runtime.IClusterMembershipService>());
        // A stale view: the silos as they were at the start, as a front whose membership has not caught up with a death yet.
        var atStart = live();
        var predictor = new ClusterPredictor(services.GetRequiredService<IGrainFactory>(), staleView ? () => atStart : live, modelPath, Retry);
        var server = await ScoringServer.StartAsync(new ServingOptions { ModelPath = modelPath, ReloadCheckInterval = TimeSpan.FromMilliseconds(100) },
            "http://127.0.0.1:0", new ServingHooks { Predict = _ => predictor }, _ => { });
        return new Serving { Cluster = cluster, Server = server, Predictor = predictor, Http = new HttpClient { BaseAddress = new Uri(server.Urls[0]) } };
    }

    /// <summary>Sends the same rows from <paramref name="clients"/> loops until <paramref name="stop"/>; every answer is recorded.</summary>
    private static async Task<List<(HttpStatusCode Status, string Body)>> Stream(Serving serving, string rows, int clients, CancellationToken stop)
    {
        var answers = new ConcurrentQueue<(HttpStatusCode, string)>();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
        {
            while (!stop.IsCancellationRequested) answers.Enqueue(await serving.Predict(rows));
        }));
        return answers.ToList();
    }

    private static string VersionOf(string body) => JsonDocument.Parse(body).RootElement.GetProperty("modelVersion").GetString()!;

    [Fact]
    public async Task ANewModelRollsOutUnderAStreamOfRequestsWithoutAFailedOrMixedAnswer()
    {
        string folder = Directory.CreateTempSubdirectory("mlnetdeep-serve-").FullName;
        string served = Path.Combine(folder, "served.zip"), other = Path.Combine(folder, "other.zip");
        File.Copy(data.ModelPath, served);
        TrainOther(other);
        await using var serving = await Start(served);
        string rows = RowsJson(3, 16);

        // The answer of each version, whole: every answer during the rollout must be one of these, byte for byte.
        var (status, oldAnswer) = await serving.Predict(rows);
        Assert.Equal(HttpStatusCode.OK, status);
        string oldVersion = VersionOf(oldAnswer), newVersion = ModelCache.VersionOf(other);
        Assert.NotEqual(oldVersion, newVersion);

        using var stop = new CancellationTokenSource();
        var stream = Stream(serving, rows, clients: 4, stop.Token);
        await Task.Delay(700);
        File.Copy(other, served + ".tmp");
        File.Move(served + ".tmp", served, overwrite: true); // replaced atomically, as a deployment would
        // Until every silo answered with the new version several times.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
            var (s, b) = await serving.Predict(rows);
            Assert.Equal(HttpStatusCode.OK, s);
            if (VersionOf(b) == newVersion && serving.Cluster.Silos.All(silo => silo.ServiceProvider.GetRequiredService<ServedModels>().Host(served).Current.Version == newVersion)) break;
        }
        await Task.Delay(500);
        stop.Cancel();
        var answers = await stream;

        var (_, newAnswer) = await serving.Predict(rows);
        Assert.Equal(newVersion, VersionOf(newAnswer));
        Assert.NotEqual(JsonDocument.Parse(oldAnswer).RootElement.GetProperty("predictions").GetRawText(),
            JsonDocument.Parse(newAnswer).RootElement.GetProperty("predictions").GetRawText());
        Assert.True(answers.Count > 20, $"only {answers.Count} answers");
        Assert.All(answers, a => Assert.Equal(HttpStatusCode.OK, a.Status));
        Assert.All(answers, a => Assert.True(a.Body == oldAnswer || a.Body == newAnswer, a.Body)); // one version per answer, never a mix
        Assert.Contains(answers, a => a.Body == oldAnswer);
        Assert.Contains(answers, a => a.Body == newAnswer);
        Assert.Equal(3, serving.Predictor.AnsweredBy.Count); // every silo served
        try { Directory.Delete(folder, recursive: true); } catch (IOException) { }
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public async Task ASiloStoppedOrKilledUnderAStreamOfRequestsFailsNoRequestAfterRetries(bool kill, bool staleView)
    {
        await using var serving = await Start(data.ModelPath, staleView);
        string rows = RowsJson(4, 8);
        var (status, answer) = await serving.Predict(rows);
        Assert.Equal(HttpStatusCode.OK, status);

        using var stop = new CancellationTokenSource();
        var stream = Stream(serving, rows, clients: 4, stop.Token);
        await Task.Delay(1000);
        var victim = serving.Cluster.Silos[2];
        string victimKey = victim.SiloAddress.ToParsableString();
        int servedByVictim = serving.Predictor.AnsweredBy.GetValueOrDefault(victimKey);
        if (kill) await serving.Cluster.KillSiloAsync(victim);
        else await serving.Cluster.StopSiloAsync(victim);
        int atStop = serving.Predictor.AnsweredBy.Values.Sum();
        await Task.Delay(kill ? 4000 : 2000);
        stop.Cancel();
        var answers = await stream;

        Assert.True(servedByVictim > 0, "the victim answered nothing before it went");
        Assert.True(serving.Predictor.AnsweredBy.Values.Sum() > atStop + 10, "too few answers after the silo went");
        Assert.All(answers, a => Assert.Equal(HttpStatusCode.OK, a.Status));
        Assert.All(answers, a => Assert.Equal(answer, a.Body));
        if (staleView) Assert.True(serving.Predictor.Retries >= 1, "the calls to the dead silo were not sent again");
        // Whether a call reached the silo as it went (and was sent again) depends on the timing: the count is reported, not asserted.
        output.WriteLine($"{(kill ? "killed" : "stopped")}{(staleView ? ", stale view" : "")}: {answers.Count} answers, {serving.Predictor.Retries} retries, by silo: {string.Join(", ", serving.Predictor.AnsweredBy.Select(p => $"{p.Key}={p.Value}"))}");
    }

    [Fact]
    public async Task ConcurrentRequestsOnASiloAreScoredInOneBatchWithTheAnswersOfEachAlone()
    {
        // The silo's batches, as its meter records them (rows per forward pass).
        long largest = 0;
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == ServingMetrics.MeterName && instrument.Name == "mlnetdeep.serving.microbatch.rows") l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) => { long seen; while (value > (seen = Interlocked.Read(ref largest)) && Interlocked.CompareExchange(ref largest, value, seen) != seen) { } });
        listener.Start();
        using var models = new ServedModels(Microsoft.Extensions.Options.Options.Create(new ModelServingOptions
        {
            ReloadCheckInterval = TimeSpan.Zero, MicroBatchMaxDelay = TimeSpan.FromMilliseconds(200), MicroBatchMaxRows = 1000,
        }));
        using var lease = models.Host(data.ModelPath).Acquire();
        var requests = Enumerable.Range(0, 8).Select(i => JsonDocument.Parse(RowsJson(100 + i, 3)).RootElement.EnumerateArray().ToList()).ToList();
        var alone = requests.Select(r => JsonRowScoring.Score(lease.Model, r).Select(p => Encoding.UTF8.GetString(p.Span)).ToList()).ToList();

        using var start = new Barrier(requests.Count);
        var together = await Task.WhenAll(requests.Select(r => Task.Factory.StartNew(() => { start.SignalAndWait(); return models.ScoreAsync(lease.Model, r); },
            CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap()));
        for (int i = 0; i < requests.Count; i++)
            Assert.Equal(alone[i], together[i].Select(p => Encoding.UTF8.GetString(p.Span)).ToList());
        Assert.True(Interlocked.Read(ref largest) > 3, $"no batch held more than one request's 3 rows (largest {largest})");

        // A bad row is refused with its field before it joins a batch.
        var bad = JsonDocument.Parse("[{\"Features\":[1,2]}]").RootElement.EnumerateArray().ToList();
        var error = await Assert.ThrowsAsync<RequestException>(() => models.ScoreAsync(lease.Model, bad));
        Assert.Equal("Features", error.Field);
    }
}
