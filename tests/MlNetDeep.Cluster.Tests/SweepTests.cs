using System.Globalization;
using Orleans.TestingHost;

namespace MlNetDeep.Cluster.Tests;

/// <summary>A cross-validated grid sweep of an MLP on a tiny CSV, run as units of work on an in-memory cluster of 3 silos.</summary>
public sealed class SweepTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("mlnetdeep-sweep-").FullName;

    private SweepRequest Request()
    {
        string path = Path.Combine(_folder, "train.csv");
        var rand = new Random(3);
        var lines = new List<string> { "x0,x1,x2,Label" };
        for (int i = 0; i < 60; i++)
        {
            var x = Enumerable.Range(0, 3).Select(_ => rand.NextDouble() * 2 - 1).ToArray();
            string label = x[0] + x[1] > 0.4 ? "hi" : x[0] + x[1] < -0.4 ? "lo" : "mid";
            lines.Add(string.Join(",", x.Select(v => v.ToString("F4", CultureInfo.InvariantCulture))) + "," + label);
        }
        File.WriteAllLines(path, lines);
        return new SweepRequest { DataPath = path, Label = "Label", Trials = SweepRequest.ParseGrid("hidden=4,8;lr=0.01,0.05"), Folds = 3, Epochs = 4, Seed = 1 };
    }

    private static List<(int, double, double, string)> Key(IEnumerable<TrialRow> rows) =>
        rows.Select(r => (r.Trial, r.Accuracy, r.LogLoss, string.Join(" ", r.FoldAccuracies.Select(a => a.ToString("R", CultureInfo.InvariantCulture))))).ToList();

    private async Task<InProcessTestCluster> Start(TimeSpan unitDelay)
    {
        var builder = new InProcessTestClusterBuilder(3);
        builder.ConfigureSilo((_, silo) => silo.AddScoringJobs(new ClusterScoringOptions
        {
            StateFolder = Path.Combine(_folder, "state"), WorkersPerSilo = 1, ShardDelay = unitDelay, RetryDelay = TimeSpan.FromMilliseconds(200),
        }).UseQuickFailureDetection());
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return cluster;
    }

    private static async Task<SweepStatus> WaitFor(IClusterClient client, string name, Func<SweepStatus, bool> until)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        SweepStatus? last = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                last = await client.GetGrain<ISweepGrain>(name).GetStatus();
                if (until(last)) return last;
            }
            catch (Exception e) when (e is not Xunit.Sdk.XunitException) { }
            await Task.Delay(100);
        }
        throw new TimeoutException($"Sweep {name} did not get there in time; last: {last}");
    }

    [Fact]
    public void AGridIsEveryCombination()
    {
        var trials = SweepRequest.ParseGrid("hidden=16,32;lr=0.001,0.01");
        Assert.Equal(["hidden=16, lr=0.001", "hidden=16, lr=0.01", "hidden=32, lr=0.001", "hidden=32, lr=0.01"], trials.Select(t => t.ToString()));
        Assert.Throws<ArgumentException>(() => SweepRequest.ParseGrid("hidden=16;momentum=0.9"));
        Assert.Throws<ArgumentException>(() => SweepRequest.ParseGrid("lr=-1"));
    }

    [Fact]
    public void ARandomSearchDrawsLogUniformlyWithinItsRangesTheSameTrialsForOneSeed()
    {
        var trials = SweepRequest.ParseRandom("hidden=8..128;lr=0.0001..0.1", 200, seed: 3);
        Assert.True(trials.Count > 150, $"{trials.Count} distinct trials of 200 draws");
        Assert.All(trials, t => { Assert.InRange(t.Hidden, 8, 128); Assert.InRange(t.LearningRate, 0.0001 * 0.999, 0.1 * 1.001); });
        // Log-uniform: about as many rates in each decade (3 decades), not most of them in the last one as a uniform draw would put them.
        var decades = trials.GroupBy(t => (int)Math.Floor(Math.Log10(t.LearningRate / 0.0001))).ToDictionary(g => g.Key, g => g.Count());
        Assert.All(new[] { 0, 1, 2 }, d => Assert.InRange(decades.GetValueOrDefault(d), trials.Count / 6, trials.Count / 2));
        Assert.Equal(trials.Select(t => t.ToString()), SweepRequest.ParseRandom("hidden=8..128;lr=0.0001..0.1", 200, seed: 3).Select(t => t.ToString()));
        Assert.NotEqual(trials.Select(t => t.ToString()), SweepRequest.ParseRandom("hidden=8..128;lr=0.0001..0.1", 200, seed: 4).Select(t => t.ToString()));
        Assert.All(SweepRequest.ParseRandom("lr=0.01..0.01", 3, seed: 1), t => Assert.Equal(32, t.Hidden)); // a range left out keeps its default
        Assert.Single(SweepRequest.ParseRandom("lr=0.01..0.01", 3, seed: 1)); // repeated draws kept once
        Assert.Contains("not name=low..high", Assert.Throws<ArgumentException>(() => SweepRequest.ParseRandom("hidden=8-128", 2, 1)).Message);
        Assert.Contains("0 < low <= high", Assert.Throws<ArgumentException>(() => SweepRequest.ParseRandom("lr=0.1..0.01", 2, 1)).Message);
        Assert.Throws<ArgumentException>(() => SweepRequest.ParseRandom("momentum=0.1..0.9", 2, 1));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ASweepOnTheClusterGivesTheTableOfTheSameTrialsInOneProcessAndASiloKilledLosesNoTrial(bool kill)
    {
        var request = Request();
        var expected = SweepTraining.RunInProcess(request);
        Assert.Equal(4, expected.Count);
        Assert.True(expected.Select(r => r.Accuracy).Distinct().Count() > 1 || expected.Select(r => r.LogLoss).Distinct().Count() > 1); // the trials differ

        // Slow units in the kill run, so that the unit the victim was given is still running when it is killed
        // (with 0.8 s, one CI run saw it finish between the status read and the kill: no retry).
        await using var cluster = await Start(kill ? TimeSpan.FromSeconds(2) : TimeSpan.Zero);
        string name = kill ? "sweep-kill" : "sweep";
        await cluster.Client.GetGrain<ISweepGrain>(name).Submit(request);
        if (kill)
        {
            var midway = await WaitFor(cluster.Client, name, s => s.UnitsDone >= 2);
            Assert.Equal(JobPhase.Running, midway.State.Phase);
            Assert.True(cluster.TryGetGrainContext(cluster.Client.GetGrain<ISweepGrain>(name).GetGrainId(), out var context));
            var busy = midway.State.Units.Where(u => !u.Done).Select(u => u.Silo).ToHashSet();
            var victim = cluster.Silos.First(s => s.SiloAddress != context!.Address.SiloAddress && busy.Contains(s.SiloAddress.ToParsableString()));
            await cluster.KillSiloAsync(victim);
        }
        var status = await WaitFor(cluster.Client, name, s => s.State.Phase != JobPhase.Running);

        Assert.True(status.State.Phase == JobPhase.Completed, status.ToString());
        Assert.Equal(12, status.UnitsDone);
        Assert.Equal(Key(expected), Key(status.Table()));
        Assert.True(status.State.Units.Select(u => u.Silo).Distinct().Count() >= 2, "the units were not spread over the silos");
        if (kill) Assert.True(status.State.Retries >= 1, status.ToString());
        // The results are persisted: a new activation (from the stored state) shows the same table.
        Assert.Equal(Key(expected), Key((await cluster.Client.GetGrain<ISweepGrain>(name).Submit(request)).Table()));
    }

    public void Dispose()
    {
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { }
    }
}
