namespace MlNetDeep.Cluster.Tests;

/// <summary>The merge of shard outputs: rows renumbered across shards, and a shard output that is not what was scored refused.</summary>
public sealed class ShardMergeTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("mlnetdeep-merge-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string Shard(string name, string text)
    {
        var path = Path.Combine(_folder, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void MergedRowsAreNumberedAcrossShardsWithTheHeaderOnce()
    {
        var a = Shard("0.csv", "Row,Score.0\n0,0.5\n1,0.25\n");
        var b = Shard("1.csv", "Row,Score.0\n");                       // a shard with no rows
        var c = Shard("2.csv", "Row,Score.0\r\n0,1\r\n1,\"a,b\"\r\n");  // CRLF lines are copied as they are
        var output = Path.Combine(_folder, "out.csv");
        Assert.Equal(4, ShardScoring.Merge([a, b, c], [2, 0, 2], output));
        Assert.Equal("Row,Score.0\n0,0.5\n1,0.25\n2,1\r\n3,\"a,b\"\r\n", File.ReadAllText(output));
    }

    [Theory]
    [InlineData("Row,Score.0\n0,0.5\n2,0.25\n", 2, "line 3 is not row 1")]
    [InlineData("Row,Score.0\n0,0.5\n1,0.25", 2, "ends in the middle of a line")]
    [InlineData("Row,Score.0\n0,0.5\n", 2, "holds 1 rows where 2 were scored")]
    [InlineData("", 0, "is empty")]
    [InlineData("Row,Score.0\nx,0.5\n", 1, "line 2 is not row 0")]
    public void AShardOutputThatIsNotWhatWasScoredIsRefusedAndNothingIsWritten(string text, long rows, string cause)
    {
        var bad = Shard("bad.csv", text);
        var output = Path.Combine(_folder, "out.csv");
        var error = Assert.Throws<InvalidDataException>(() => ShardScoring.Merge([bad], [rows], output));
        Assert.Contains(cause, error.Message);
        Assert.Contains("bad.csv", error.Message);
        Assert.False(File.Exists(output));
        Assert.Equal(["bad.csv"], Directory.GetFiles(_folder).Select(Path.GetFileName)); // no temporary file left
    }
}
