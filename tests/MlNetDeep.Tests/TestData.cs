using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;

namespace MlNetDeep.Tests;

/// <summary>The MNIST subset kept in the repository (2,000 training and 500 test images, gzipped IDX) and small helpers.</summary>
public static class TestData
{
    public static string MnistFolder => Path.Combine(AppContext.BaseDirectory, "data", "mnist");

    public static IDataView MnistTrain(MLContext ml, int rows = 2000) =>
        ml.Data.LoadMnist(Path.Combine(MnistFolder, "train-images-idx3-ubyte.gz"), Path.Combine(MnistFolder, "train-labels-idx1-ubyte.gz"), rows);

    public static IDataView MnistTest(MLContext ml, int rows = 500) =>
        ml.Data.LoadMnist(Path.Combine(MnistFolder, "t10k-images-idx3-ubyte.gz"), Path.Combine(MnistFolder, "t10k-labels-idx1-ubyte.gz"), rows);

    public static float[][] Column(IDataView data, string name) =>
        data.GetColumn<VBuffer<float>>(name).Select(v => v.DenseValues().ToArray()).ToArray();

    public static string TempFile(string extension = ".zip") => Path.Combine(Path.GetTempPath(), "mlnetdeep-test-" + Guid.NewGuid().ToString("N") + extension);

    /// <summary>y = sin(x) style regression rows.</summary>
    public sealed class XY
    {
        [VectorType(1)] public float[] Features { get; set; } = [];
        public float Label { get; set; }
    }

    public static IDataView Sine(MLContext ml, int n = 256, int seed = 0)
    {
        var rand = new Random(seed);
        return ml.Data.LoadFromEnumerable(Enumerable.Range(0, n).Select(_ =>
        {
            float x = (float)(rand.NextDouble() * 6 - 3);
            return new XY { Features = [x], Label = MathF.Sin(x) };
        }).ToList());
    }
}
