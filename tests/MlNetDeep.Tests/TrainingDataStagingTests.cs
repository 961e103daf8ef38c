using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

/// <summary>Staging in-memory data on the training device: training data first, then validation data, all within MaxStagedBytes.</summary>
public class TrainingDataStagingTests
{
    /// <summary>Data of a given size that says it lives on the CPU; its copy (made without touching any device) records where it was asked to go.</summary>
    private sealed class Sized(long bytes) : IStageableData
    {
        public Device? CopiedTo;
        public long Count => 1;
        public Device Device => CPU;
        public long Bytes => bytes;
        public IStageableData CopyTo(Device device)
        {
            CopiedTo = device;
            return new Sized(bytes);
        }
        public IEpochBatches Epoch(int batchSize, bool shuffle, Generator? generator, Device device) => throw new NotSupportedException();
        public void Dispose() { }
    }

    private static readonly Device Gpu = new(DeviceType.CUDA, 0); // a name only: nothing is allocated on it

    [Theory]
    [InlineData(2000, true, true)]    // both fit
    [InlineData(1100, true, true)]    // exactly: 500 left for the validation data's 500
    [InlineData(1099, true, false)]   // 499 left: the validation data moves batch by batch
    [InlineData(599, false, true)]    // the training data does not fit; the validation data does
    [InlineData(0, false, false)]
    public void ValidationDataIsStagedWithinWhatTheTrainingDataLeaves(long maxBytes, bool trainStaged, bool validationStaged)
    {
        var train = new Sized(600);
        var validation = new Sized(500);
        long budget = maxBytes;
        using var stagedTrain = TrainingLoop.Stage(train, Gpu, ref budget);
        using var stagedValidation = TrainingLoop.Stage(validation, Gpu, ref budget);
        Assert.Equal(trainStaged, stagedTrain is not null);
        Assert.Equal(validationStaged, stagedValidation is not null);
        Assert.Equal(maxBytes - (trainStaged ? 600 : 0) - (validationStaged ? 500 : 0), budget);
        if (trainStaged) Assert.Equal(DeviceType.CUDA, train.CopiedTo!.type);
        Assert.Null(TrainingLoop.Stage(new Sized(1), CPU, ref budget)); // data already on the training device is read where it is
    }

    [Fact]
    public void TensorDataCountsItsInputsAndTargetsOnceAndCopiesAnAutoencodersTargetsOnce()
    {
        Native.TorchRuntime.EnsureLoaded();
        using var labelled = new TensorData(zeros(10, 3), zeros(10, dtype: int64));
        Assert.Equal(10 * 3 * 4 + 10 * 8, ((IStageableData)labelled).Bytes);
        var inputs = ones(10, 3);
        using var own = new TensorData(inputs, inputs);
        Assert.Equal(10 * 3 * 4, ((IStageableData)own).Bytes);
        using var copy = own.To(CPU);
        Assert.Same(copy.Inputs, copy.Targets);
        Assert.Equal(own.Inputs.data<float>().ToArray(), copy.Inputs.data<float>().ToArray());
    }
}
