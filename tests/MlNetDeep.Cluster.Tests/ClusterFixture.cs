using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Serving;
using Orleans.TestingHost;

namespace MlNetDeep.Cluster.Tests;

/// <summary>
/// A tiny classifier saved with SaveDeep, a CSV of 24,653 rows (enough for 24 shards of whole 1,024-row chunks), and what
/// one process's <c>score</c> makes of it.
/// </summary>
public sealed class ScoringData : IDisposable
{
    public const int RowCount = 24 * 1024 + 77;

    public sealed class Row
    {
        [VectorType(4)] public float[] Features { get; set; } = [];
        [KeyType(4)] public uint Class { get; set; }
    }

    public string Folder { get; } = Directory.CreateTempSubdirectory("mlnetdeep-cluster-").FullName;
    public string ModelPath => Path.Combine(Folder, "model.zip");
    public string InputPath => Path.Combine(Folder, "rows.csv");
    public string ExpectedPath => Path.Combine(Folder, "expected.csv");
    public string[] Expected { get; }

    public ScoringData()
    {
        TrainModel(ModelPath, dataSeed: 0, seed: 1);

        WriteCsv(InputPath, RowCount, seed: 1);
        Assert.Equal(RowCount, BatchScorer.Score(ModelPath, InputPath, ExpectedPath));
        Expected = File.ReadAllLines(ExpectedPath);
    }

    /// <summary>A CSV of <paramref name="rows"/> rows: Id, Features.0 .. Features.3; <paramref name="edit"/> may change a line (by its 0-based row).</summary>
    public static void WriteCsv(string path, int rows, int seed, Func<int, string, string>? edit = null)
    {
        var rand = new Random(seed);
        using var writer = new StreamWriter(path);
        writer.Write("Id,Features.0,Features.1,Features.2,Features.3\n");
        for (int r = 0; r < rows; r++)
        {
            string line = r + "," + string.Join(",", Enumerable.Range(0, 4).Select(_ => ((float)(rand.NextDouble() * 2 - 1)).ToString("R", CultureInfo.InvariantCulture)));
            writer.Write((edit?.Invoke(r, line) ?? line) + "\n");
        }
    }

    /// <summary>Trains the tiny classifier (4 features, 3 classes, 96 random rows from <paramref name="dataSeed"/>) and saves it at <paramref name="path"/>.</summary>
    public static void TrainModel(string path, int dataSeed, int seed)
    {
        var ml = new MLContext(seed: seed);
        var rand = new Random(dataSeed);
        var rows = Enumerable.Range(0, 96).Select(i => new Row
        {
            Features = Enumerable.Range(0, 4).Select(_ => (float)(rand.NextDouble() * 2 - 1)).ToArray(), Class = (uint)(i % 3 + 1),
        }).ToList();
        var train = ml.Data.LoadFromEnumerable(rows);
        var model = ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Features", LabelColumnName = "Class", Network = Networks.Networks.Mlp(4), Epochs = 1, BatchSize = 16, Seed = seed,
        }).Fit(train);
        ml.Model.SaveDeep(model, train.Schema, path);
        LoadedModelFree(model);
    }

    private static void LoadedModelFree(ITransformer model)
    {
        foreach (var stage in model as IEnumerable<ITransformer> ?? []) (stage as IDisposable)?.Dispose();
        (model as IDisposable)?.Dispose();
    }

    public void Dispose()
    {
        try { Directory.Delete(Folder, recursive: true); } catch (IOException) { }
    }

    /// <summary>An in-memory cluster of <paramref name="silos"/> silos running scoring jobs, their state in <paramref name="stateFolder"/>.</summary>
    /// <param name="configure">More set-up of each silo, given its name (e.g. a different service on one of them).</param>
    public static async Task<InProcessTestCluster> StartCluster(int silos, string stateFolder, TimeSpan shardDelay, Action<string, ISiloBuilder>? configure = null)
    {
        var builder = new InProcessTestClusterBuilder((short)silos);
        builder.ConfigureSilo((options, silo) =>
        {
            silo.AddScoringJobs(new ClusterScoringOptions { StateFolder = stateFolder, WorkersPerSilo = 2, ShardDelay = shardDelay, RetryDelay = TimeSpan.FromMilliseconds(200) })
                .UseQuickFailureDetection();
            configure?.Invoke(options.SiloName, silo);
        });
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return cluster;
    }

    /// <summary>Polls the job until <paramref name="until"/> holds (calls that fail while a silo is being declared dead are retried).</summary>
    public static async Task<JobStatus> WaitFor(IClusterClient client, string job, Func<JobStatus, bool> until, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(90));
        JobStatus? last = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                last = await client.GetGrain<IScoringJobGrain>(job).GetStatus();
                if (until(last)) return last;
            }
            catch (Exception e) when (e is not Xunit.Sdk.XunitException) { }
            await Task.Delay(100);
        }
        throw new TimeoutException($"Job {job} did not get there in time; last: {last}");
    }
}
