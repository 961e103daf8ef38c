using MlNetDeep.Models.Recurrent;
using MlNetDeep.Training;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

/// <summary>
/// Shuffling itself, for both kinds of in-memory training data (rows of tensors, a language model's windows): each
/// epoch reads every row exactly once, epochs differ, a seed repeats its orders, and Shuffle = false keeps the rows' order.
/// </summary>
public class ShufflingTests
{
    private const int Rows = 103, BatchSize = 10; // the last batch is a short one

    /// <summary>Data whose row i has i as its first input value.</summary>
    private static ITrainingData Data(string kind) => kind switch
    {
        "tensors" => ScriptedMetricsStep.Rows(Rows),
        // Tokens 0, 1, 2, ... in windows of 4 every token: window i starts with token i.
        _ => new TokenWindows(Enumerable.Range(0, Rows + 4).ToArray(), length: 4, stride: 1, PredictionTargets.NextToken),
    };

    /// <summary>Each epoch's rows in the order the step was given them.</summary>
    private static List<List<int>> Orders(string kind, int epochs, bool shuffle = true, int seed = 1)
    {
        Native.TorchRuntime.EnsureLoaded();
        var data = Data(kind);
        try
        {
            Assert.Equal(Rows, data.Count);
            using var step = new ScriptedMetricsStep(new() { ["loss"] = [1] });
            TrainingLoop.Run(step, data, null, new LoopSettings { Epochs = epochs, BatchSize = BatchSize, Shuffle = shuffle }, CPU, seed);
            Assert.Equal(epochs * ((Rows + BatchSize - 1) / BatchSize), step.TrainedBatches);
            return step.RowsSeen.Select(order => order.Select(v => (int)v).ToList()).ToList();
        }
        finally
        {
            ((IDisposable)data).Dispose();
        }
    }

    [Theory]
    [InlineData("tensors")]
    [InlineData("token windows")]
    public void EachEpochReadsEveryRowExactlyOnce(string kind)
    {
        var orders = Orders(kind, epochs: 4);
        Assert.Equal(4, orders.Count);
        foreach (var order in orders) Assert.Equal(Enumerable.Range(0, Rows), order.Order());
    }

    [Theory]
    [InlineData("tensors")]
    [InlineData("token windows")]
    public void EveryEpochHasAnOrderOfItsOwn(string kind)
    {
        var orders = Orders(kind, epochs: 4);
        for (int a = 0; a < orders.Count; a++)
        {
            Assert.NotEqual(Enumerable.Range(0, Rows), orders[a]);
            for (int b = a + 1; b < orders.Count; b++) Assert.NotEqual(orders[a], orders[b]);
        }
        // Shuffled, not rotated or reversed: a row's position is unrelated to its index.
        var positions = orders[0].Select((row, position) => (double)(position - row)).ToList();
        Assert.True(positions.Distinct().Count() > Rows / 2, "most rows move by different amounts");
    }

    [Theory]
    [InlineData("tensors")]
    [InlineData("token windows")]
    public void TheSameSeedGivesTheSameOrdersAndAnotherSeedOthers(string kind)
    {
        var first = Orders(kind, epochs: 3, seed: 7);
        var again = Orders(kind, epochs: 3, seed: 7);
        var other = Orders(kind, epochs: 3, seed: 8);
        Assert.Equal(first, again);
        for (int epoch = 0; epoch < 3; epoch++) Assert.NotEqual(first[epoch], other[epoch]);
    }

    [Theory]
    [InlineData("tensors")]
    [InlineData("token windows")]
    public void WithoutShufflingEveryEpochReadsTheRowsInOrder(string kind)
    {
        var orders = Orders(kind, epochs: 3, shuffle: false);
        Assert.Equal(3, orders.Count);
        Assert.All(orders, order => Assert.Equal(Enumerable.Range(0, Rows), order));
    }

    [Fact]
    public void ATrainersShuffleSettingReachesTheLoop()
    {
        Assert.True(LoopSettings.From(TinyFamilies.Classifier()).Shuffle);
        var options = TinyFamilies.Classifier();
        options.Shuffle = false;
        Assert.False(LoopSettings.From(options).Shuffle);
    }
}
