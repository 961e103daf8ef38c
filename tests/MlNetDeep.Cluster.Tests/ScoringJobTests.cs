using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;

namespace MlNetDeep.Cluster.Tests;

/// <summary>Scoring jobs on an in-memory cluster of 3 silos (Orleans' TestingHost).</summary>
public sealed class ScoringJobTests(ScoringData data) : IClassFixture<ScoringData>
{
    private string NewFolder(string name) => Directory.CreateDirectory(Path.Combine(data.Folder, name + "-" + Guid.NewGuid().ToString("N")[..8])).FullName;

    private JobRequest Request(string folder, string? input = null, int shards = 12) => new()
    {
        ModelPath = data.ModelPath, InputPath = input ?? data.InputPath, OutputPath = Path.Combine(folder, "out.csv"), Shards = shards,
    };

    [Fact]
    public void CutsAtRowBoundariesCoveringEveryByteOnce()
    {
        var shards = ShardScoring.Cut(data.InputPath, 7);
        Assert.Equal(7, shards.Count);
        var bytes = File.ReadAllBytes(data.InputPath);
        int header = Array.IndexOf(bytes, (byte)'\n') + 1;
        Assert.Equal(header, shards[0].Start);
        Assert.Equal(bytes.Length, shards[^1].End);
        long lines = 2;
        for (int i = 0; i < shards.Count; i++)
        {
            if (i > 0) Assert.Equal(shards[i - 1].End, shards[i].Start);
            Assert.Equal((byte)'\n', bytes[shards[i].Start - 1]);
            Assert.Equal(lines, shards[i].FirstLine);
            lines += bytes.AsSpan((int)shards[i].Start, (int)(shards[i].End - shards[i].Start)).Count((byte)'\n');
        }
        Assert.Equal(ScoringData.RowCount + 2, lines);
        // Every shard but the last starts at a whole number of score's 1,024-row chunks: the same batches, the same bits.
        Assert.All(shards, s => Assert.Equal(0, (s.FirstLine - 2) % 1024));
        Assert.Single(ShardScoring.Cut(data.InputPath, 1));
        Assert.Equal(24, ShardScoring.Cut(data.InputPath, 24).Count);
        Assert.Equal(25, ShardScoring.Cut(data.InputPath, 100).Count); // no more shards than chunks
    }

    [Fact]
    public void CutsOnlyBetweenRecordsAsTheCsvReaderSeesThem()
    {
        // Quoted fields holding line breaks, commas and escaped quotes; blank lines; a quote inside an unquoted field.
        var folder = NewFolder("records");
        var path = Path.Combine(folder, "text.csv");
        var text = new System.Text.StringBuilder("Id,Text\n");
        var starts = new List<long>();
        for (int r = 0; r < 40; r++)
        {
            starts.Add(System.Text.Encoding.UTF8.GetByteCount(text.ToString()));
            if (r % 7 == 3) text.Append("\n  \n"); // blank lines before the record: not records
            text.Append((r % 5) switch
            {
                0 => $"{r},\"line one\nline \"\"two\"\",\r\nthree\"\n",
                1 => $"{r}, \"quoted, after a space\"\r\n",
                2 => $"{r},a \"literal\" quote\n",
                _ => $"{r},plain\n",
            });
        }
        File.WriteAllText(path, text.ToString());
        var shards = ShardScoring.Cut(path, 1000, alignRows: 1);
        Assert.Equal(40, shards.Count);
        Assert.Equal(starts, shards.Select(s => s.Start));
        var bytes = File.ReadAllBytes(path);
        for (int i = 0; i < shards.Count; i++)
            Assert.Equal(1 + bytes.AsSpan(0, (int)shards[i].Start).Count((byte)'\n'), shards[i].FirstLine);
        Assert.Equal(8, ShardScoring.Cut(path, 1000, alignRows: 5).Count);
    }

    [Fact]
    public async Task ThreeSilosScoreAJobExactlyAsOneProcessDoes()
    {
        var folder = NewFolder("three");
        var cluster = await ScoringData.StartCluster(3, Path.Combine(folder, "state"), TimeSpan.Zero);
        await using var _ = cluster;
        var job = cluster.Client.GetGrain<IScoringJobGrain>("three");
        var request = Request(folder);
        await job.Submit(request);
        var status = await ScoringData.WaitFor(cluster.Client, "three", s => s.State.Phase != JobPhase.Running);

        Assert.True(status.State.Phase == JobPhase.Completed, status.ToString());
        Assert.Equal(ScoringData.RowCount, status.State.Rows);
        Assert.Equal(data.Expected, File.ReadAllLines(request.OutputPath));
        Assert.Equal(12, status.State.Shards.Count);
        Assert.Equal(3, status.State.Shards.Select(s => s.Silo).Distinct().Count()); // every silo scored
        Assert.False(Directory.Exists(request.OutputPath + ".shards"));
        foreach (var silo in cluster.Silos)
            Assert.Equal(1, silo.ServiceProvider.GetRequiredService<ModelCache>().Loads); // each silo loaded the model once

        // The same request under the same name is the same job; another request under that name is refused.
        var again = await job.Submit(request);
        Assert.Equal(JobPhase.Completed, again.State.Phase);
        Assert.Equal(status.State.SubmittedUtc, again.State.SubmittedUtc);
        var other = Request(folder);
        other.OutputPath = Path.Combine(folder, "other.csv");
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => job.Submit(other));
        Assert.Contains("already exists", refused.Message);
        Assert.False(File.Exists(other.OutputPath));

        var listed = await cluster.Client.GetGrain<IJobIndexGrain>(0).List();
        Assert.Contains("three", listed);
    }

    [Fact]
    public async Task ARowThatDoesNotParseFailsItsShardWithFileLineAndCauseWhileTheOthersFinish()
    {
        var folder = NewFolder("bad");
        var input = Path.Combine(folder, "bad.csv");
        ScoringData.WriteCsv(input, 6 * 1024 + 500, seed: 2, (r, line) => r == 4500 ? "4500,0.5,abc,0.1,0.2" : line);
        var cluster = await ScoringData.StartCluster(3, Path.Combine(folder, "state"), TimeSpan.Zero);
        await using var _ = cluster;
        var request = Request(folder, input, shards: 6);
        await cluster.Client.GetGrain<IScoringJobGrain>("bad").Submit(request);
        var status = await ScoringData.WaitFor(cluster.Client, "bad", s => s.State.Phase != JobPhase.Running);

        Assert.Equal(JobPhase.Failed, status.State.Phase);
        Assert.Contains($"{input}: Line 4502: 'Features.1' is 'abc', not a finite number", status.State.Error);
        Assert.Single(status.State.Shards, s => s.Error is not null);
        Assert.Equal(5, status.ShardsDone);
        Assert.Equal(1, status.State.Shards.Single(s => s.Error is not null).Attempts); // a data error is not retried
        Assert.False(File.Exists(request.OutputPath));
        Assert.Equal(5, Directory.GetFiles(request.OutputPath + ".shards", "*.csv").Length);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ASiloKilledMidJobLosesAndDuplicatesNoRow(bool killTheJobsSilo)
    {
        var folder = NewFolder("kill");
        var cluster = await ScoringData.StartCluster(3, Path.Combine(folder, "state"), TimeSpan.FromSeconds(1));
        await using var _ = cluster;
        string name = killTheJobsSilo ? "kill-job-silo" : "kill-worker-silo";
        var job = cluster.Client.GetGrain<IScoringJobGrain>(name);
        var request = Request(folder);
        await job.Submit(request);
        var midway = await ScoringData.WaitFor(cluster.Client, name, s => s.ShardsDone >= 2);
        Assert.Equal(JobPhase.Running, midway.State.Phase);

        Assert.True(cluster.TryGetGrainContext(job.GetGrainId(), out var context));
        var jobSilo = context!.Address.SiloAddress;
        var busy = midway.State.Shards.Where(s => !s.Done).Select(s => s.Silo).ToHashSet();
        var victim = cluster.Silos.First(s => (s.SiloAddress == jobSilo) == killTheJobsSilo && busy.Contains(s.SiloAddress.ToParsableString()));
        await cluster.KillSiloAsync(victim);

        var status = await ScoringData.WaitFor(cluster.Client, name, s => s.State.Phase != JobPhase.Running, TimeSpan.FromSeconds(120));
        Assert.True(status.State.Phase == JobPhase.Completed, status.ToString());
        Assert.Equal(data.Expected, File.ReadAllLines(request.OutputPath));
        if (killTheJobsSilo)
        {
            // The job answered from an activation on another silo, made from its stored state. (In one process a killed
            // silo's code may still run: what it wrote is checked by the storage's ETag, and the rows are right either way.)
            Assert.True(cluster.TryGetGrainContext(job.GetGrainId(), out var now));
            Assert.NotEqual(victim.SiloAddress, now!.Address.SiloAddress);
        }
        else Assert.True(status.State.Retries >= 1, status.ToString()); // the victim's shards were handed out again
    }

    [Fact]
    public async Task AJobResumesFromItsStoredStateAfterTheWholeClusterRestarts()
    {
        var folder = NewFolder("restart");
        string state = Path.Combine(folder, "state");
        var request = Request(folder, shards: 24);
        JobStatus before;
        var first = await ScoringData.StartCluster(3, state, TimeSpan.FromSeconds(2));
        try
        {
            await first.Client.GetGrain<IScoringJobGrain>("restart").Submit(request);
            before = await ScoringData.WaitFor(first.Client, "restart", s => s.ShardsDone >= 3);
            Assert.Equal(JobPhase.Running, before.State.Phase);
        }
        finally { await first.DisposeAsync(); }

        var second = await ScoringData.StartCluster(3, state, TimeSpan.Zero);
        await using var _ = second;
        var status = await ScoringData.WaitFor(second.Client, "restart", s => s.State.Phase != JobPhase.Running);
        Assert.True(status.State.Phase == JobPhase.Completed, status.ToString());
        Assert.Equal(data.Expected, File.ReadAllLines(request.OutputPath));
        Assert.Equal(before.State.SubmittedUtc, status.State.SubmittedUtc);
        foreach (var done in before.State.Shards.Where(s => s.Done))
            Assert.Equal(done.Attempts, status.State.Shards[done.Index].Attempts); // not scored again after the restart
        var silosAfter = second.Silos.Select(s => s.SiloAddress.ToParsableString()).ToHashSet();
        Assert.Contains(status.State.Shards, s => silosAfter.Contains(s.Silo!)); // the rest was scored by the new cluster
    }

    [Fact]
    public async Task ASiloThatCannotReadTheModelLeavesItsShardsToTheOthersAndIsNamed()
    {
        var folder = NewFolder("unreadable");
        var names = new List<string>();
        var cluster = await ScoringData.StartCluster(3, Path.Combine(folder, "state"), TimeSpan.FromMilliseconds(100), (name, silo) =>
        {
            names.Add(name);
            if (names.Count != 3) return; // the third silo
            // This silo's copy of the shared volume does not let it read the model (as a mount missing on one machine would).
            silo.Services.AddSingleton(new ModelCache { Load = path => throw new UnauthorizedAccessException($"Access to the path '{path}' is denied.") });
        });
        await using var _ = cluster;
        string bad = cluster.Silos.Single(s => s.Name == names[2]).SiloAddress.ToParsableString();

        // The job grain may itself land on that silo: then the submission fails, naming the cause; another name lands elsewhere.
        JobStatus? status = null;
        var request = Request(folder, shards: 12);
        for (int attempt = 0; attempt < 12 && status is null; attempt++)
        {
            try { status = await cluster.Client.GetGrain<IScoringJobGrain>($"unreadable-{attempt}").Submit(request); }
            catch (UnauthorizedAccessException e) { Assert.Contains("is denied", e.Message); }
        }
        Assert.NotNull(status);
        status = await ScoringData.WaitFor(cluster.Client, status.Name, s => s.State.Phase != JobPhase.Running);

        Assert.True(status.State.Phase == JobPhase.Completed, status.ToString());
        Assert.Equal(data.Expected, File.ReadAllLines(request.OutputPath));
        Assert.DoesNotContain(status.State.Shards, s => s.Silo == bad); // every shard was scored elsewhere
        var refused = status.State.Shards.Where(s => s.FailedOn.Count > 0).ToList();
        Assert.NotEmpty(refused); // the silo was given shards, and each went elsewhere
        Assert.All(refused.SelectMany(s => s.FailedOn), f => Assert.StartsWith($"{bad}: UnauthorizedAccessException: Access to the path", f));
        Assert.All(refused, s => Assert.Single(s.FailedOn)); // not given the same shard twice
    }
}
