using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace MlNetDeep.Cluster.Tests;

/// <summary>
/// Two silos (two hosts, as two machines would run them) whose membership and job state are in a real Redis
/// (<c>MLNETDEEP_TEST_REDIS=host:port</c>, started by .ci/run), and a client that finds them there.
/// </summary>
public sealed class RedisClusterTests(ScoringData data, ITestOutputHelper output) : IClassFixture<ScoringData>
{
    public const string RedisVariable = "MLNETDEEP_TEST_REDIS";

    /// <summary>The Redis of the tests, or null (outside CI only) when none is configured: the test says it did not run.</summary>
    private async Task<string?> Redis()
    {
        var redis = Environment.GetEnvironmentVariable(RedisVariable);
        if (string.IsNullOrWhiteSpace(redis))
        {
            // .ci/run starts Debian's redis-server and sets the variable; outside CI a machine without Redis skips this test, saying so.
            Assert.False(Environment.GetEnvironmentVariable("CI") == "true", $"{RedisVariable} is not set: .ci/run should have started redis-server");
            output.WriteLine($"SKIPPED: {RedisVariable} is not set (host:port of a Redis server), so the Redis test did not run.");
            return null;
        }
        await ClusterHosting.CheckRedisAsync(redis);
        return redis;
    }

    [Fact]
    public async Task TwoSilosWithRedisMembershipScoreAJobAsOneProcessDoesAndFinishWithOneStopped()
    {
        if (await Redis() is not { } redis) return;

        // A cluster id of its own: membership rows of earlier runs in the same Redis are not this cluster's.
        string clusterId = "mlnetdeep-test-" + Guid.NewGuid().ToString("N")[..8];
        var folder = Directory.CreateDirectory(Path.Combine(data.Folder, "redis-" + clusterId)).FullName;
        var state = Path.Combine(folder, "state");
        using var silo0 = await StartSilo(redis, clusterId, state);
        using var silo1 = await StartSilo(redis, clusterId, state);
        using var client = await StartClient(redis, clusterId);
        var cluster = client.Services.GetRequiredService<IClusterClient>();
        await WaitForActiveSilos(cluster, 2);

        // A job across both silos: the lines of a single-process `score`.
        var first = new JobRequest { ModelPath = data.ModelPath, InputPath = data.InputPath, OutputPath = Path.Combine(folder, "first.csv"), Shards = 8 };
        await cluster.GetGrain<IScoringJobGrain>("redis-first").Submit(first);
        var status = await ScoringData.WaitFor(cluster, "redis-first", s => s.State.Phase != JobPhase.Running);
        Assert.True(status.State.Phase == JobPhase.Completed, status.ToString());
        Assert.Equal(data.Expected, File.ReadAllLines(first.OutputPath));
        Assert.Equal(2, status.State.Shards.Select(s => s.Silo).Distinct().Count()); // both silos scored
        output.WriteLine($"first job: {status}");

        // A second job, and one silo stopped once it is under way: the job completes on the other, the same lines.
        var second = new JobRequest { ModelPath = data.ModelPath, InputPath = data.InputPath, OutputPath = Path.Combine(folder, "second.csv"), Shards = 12 };
        await cluster.GetGrain<IScoringJobGrain>("redis-second").Submit(second);
        var underway = await ScoringData.WaitFor(cluster, "redis-second", s => s.State.Phase != JobPhase.Running || s.State.Shards.Count(x => x.Done) >= 2);
        output.WriteLine($"stopping silo 1 at: {underway}");
        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30))) await silo1.StopAsync(stop.Token);
        status = await ScoringData.WaitFor(cluster, "redis-second", s => s.State.Phase != JobPhase.Running);
        Assert.True(status.State.Phase == JobPhase.Completed, status.ToString());
        Assert.Equal(data.Expected, File.ReadAllLines(second.OutputPath));
        output.WriteLine($"second job: {status}");

        // After the stop: a third job, all on the remaining silo (the membership in Redis no longer lists the stopped one).
        var third = new JobRequest { ModelPath = data.ModelPath, InputPath = data.InputPath, OutputPath = Path.Combine(folder, "third.csv"), Shards = 4 };
        await cluster.GetGrain<IScoringJobGrain>("redis-third").Submit(third);
        status = await ScoringData.WaitFor(cluster, "redis-third", s => s.State.Phase != JobPhase.Running);
        Assert.True(status.State.Phase == JobPhase.Completed, status.ToString());
        Assert.Equal(data.Expected, File.ReadAllLines(third.OutputPath));
        Assert.Single(status.State.Shards.Select(s => s.Silo).Distinct());

        // The jobs' state is in Redis, not in a folder.
        Assert.False(Directory.Exists(state) && Directory.EnumerateFileSystemEntries(state).Any(), "job state was written to the folder, not to Redis");

        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10))) await client.StopAsync(stop.Token);
        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30))) await silo0.StopAsync(stop.Token);
    }

    [Fact]
    public async Task AJobWhoseStateIsInRedisResumesAfterTheWholeClusterRestarts()
    {
        if (await Redis() is not { } redis) return;
        string clusterId = "mlnetdeep-test-" + Guid.NewGuid().ToString("N")[..8];
        var folder = Directory.CreateDirectory(Path.Combine(data.Folder, "redis-restart-" + clusterId)).FullName;
        var state = Path.Combine(folder, "state");
        var request = new JobRequest { ModelPath = data.ModelPath, InputPath = data.InputPath, OutputPath = Path.Combine(folder, "restart.csv"), Shards = 16 };
        JobStatus before;
        {
            // Slow shards, so that the cluster goes down with the job part-way.
            using var silo0 = await StartSilo(redis, clusterId, state, TimeSpan.FromSeconds(1));
            using var silo1 = await StartSilo(redis, clusterId, state, TimeSpan.FromSeconds(1));
            using var client = await StartClient(redis, clusterId);
            var cluster = client.Services.GetRequiredService<IClusterClient>();
            await WaitForActiveSilos(cluster, 2);
            await cluster.GetGrain<IScoringJobGrain>("redis-restart").Submit(request);
            before = await ScoringData.WaitFor(cluster, "redis-restart", s => s.State.Phase != JobPhase.Running || s.ShardsDone >= 3);
            Assert.Equal(JobPhase.Running, before.State.Phase);
            using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10))) await client.StopAsync(stop.Token);
            using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30))) await Task.WhenAll(silo0.StopAsync(stop.Token), silo1.StopAsync(stop.Token));
        }
        output.WriteLine($"cluster stopped at: {before}");

        // A new cluster under the same id: the job is read back from Redis and finishes; the shards done before are not scored again.
        using var again = await StartSilo(redis, clusterId, state);
        using var newClient = await StartClient(redis, clusterId);
        var restarted = newClient.Services.GetRequiredService<IClusterClient>();
        var status = await ScoringData.WaitFor(restarted, "redis-restart", s => s.State.Phase != JobPhase.Running);
        output.WriteLine($"after the restart: {status}");
        Assert.True(status.State.Phase == JobPhase.Completed, status.ToString());
        Assert.Equal(data.Expected, File.ReadAllLines(request.OutputPath));
        Assert.Equal(before.State.SubmittedUtc, status.State.SubmittedUtc);
        foreach (var done in before.State.Shards.Where(s => s.Done))
            Assert.Equal(done.Attempts, status.State.Shards[done.Index].Attempts);
        Assert.False(Directory.Exists(state), "job state was written to the folder, not to Redis");

        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10))) await newClient.StopAsync(stop.Token);
        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30))) await again.StopAsync(stop.Token);
    }

    [Fact]
    public async Task ARedisThatDoesNotAnswerIsOneLineNamingTheAddress()
    {
        int port = FreePort(); // nothing listens there
        var error = await Assert.ThrowsAsync<IOException>(() => ClusterHosting.CheckRedisAsync($"127.0.0.1:{port}"));
        Assert.StartsWith($"Redis at 127.0.0.1:{port} did not answer", error.Message);
        Assert.DoesNotContain('\n', error.Message);
        Assert.Throws<ArgumentException>(() => ClusterHosting.RedisOptions(""));
    }

    private static async Task<IHost> StartSilo(string redis, string clusterId, string state, TimeSpan? shardDelay = null)
    {
        var host = new HostBuilder()
            .ConfigureLogging(l => l.SetMinimumLevel(LogLevel.Warning))
            .UseOrleans(silo => silo.UseRedisCluster(redis, FreePort(), FreePort(), clusterId: clusterId).UseQuickFailureDetection()
                .AddScoringJobs(new ClusterScoringOptions
                {
                    StateFolder = state, StateRedis = redis, WorkersPerSilo = 2, ShardDelay = shardDelay ?? TimeSpan.FromMilliseconds(50), RetryDelay = TimeSpan.FromMilliseconds(200),
                }))
            .Build();
        await host.StartAsync();
        return host;
    }

    private static async Task<IHost> StartClient(string redis, string clusterId)
    {
        var host = new HostBuilder().UseOrleansClient(client => client.UseRedisCluster(redis, clusterId)).Build();
        await host.StartAsync();
        return host;
    }

    private static async Task WaitForActiveSilos(IClusterClient client, int count)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        var management = client.GetGrain<IManagementGrain>(0);
        while ((await management.GetHosts(onlyActive: true)).Count < count)
        {
            Assert.True(DateTime.UtcNow < deadline, $"fewer than {count} silos active after 60 s");
            await Task.Delay(200);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
