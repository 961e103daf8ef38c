using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using System.IO.Compression;

namespace MlNetDeep.Tests;

public class IdxReaderTests
{
    [Fact]
    public void ReadsTheMnistSubset()
    {
        var images = IdxReader.Read(Path.Combine(TestData.MnistFolder, "train-images-idx3-ubyte.gz"));
        Assert.Equal(new[] { 2000, 28, 28 }, images.Shape);
        Assert.Equal(2000 * 784, images.Data.Length);
        var labels = IdxReader.Read(Path.Combine(TestData.MnistFolder, "train-labels-idx1-ubyte.gz"));
        Assert.Equal(new[] { 2000 }, labels.Shape);
        Assert.Equal(5, labels.Data[0]); // MNIST's first training digit is a 5
        Assert.All(labels.Data, d => Assert.InRange(d, (byte)0, (byte)9));
    }

    [Fact]
    public void RoundTripsPlainAndGzip()
    {
        var array = new IdxArray([3, 2, 2], Enumerable.Range(0, 12).Select(i => (byte)i).ToArray());
        foreach (var ext in new[] { ".idx", ".idx.gz" })
        {
            var path = TestData.TempFile(ext);
            IdxReader.Write(path, array);
            var back = IdxReader.Read(path);
            Assert.Equal(array.Shape, back.Shape);
            Assert.Equal(array.Data, back.Data);
            File.Delete(path);
        }
    }

    [Fact]
    public void TruncatedAndForeignFilesGiveClearErrors()
    {
        var path = TestData.TempFile(".idx");
        IdxReader.Write(path, new IdxArray([10, 4], new byte[40]));
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..20]);
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => IdxReader.Read(path)).Message);
        File.WriteAllText(path, "hello, not an idx file");
        Assert.Contains("not an IDX file", Assert.Throws<InvalidDataException>(() => IdxReader.Read(path)).Message);
        File.Delete(path);
        Assert.Throws<FileNotFoundException>(() => IdxReader.Read(path));
    }

    /// <summary>An IDX file of unsigned bytes whose header declares <paramref name="shape"/>, followed by <paramref name="data"/> bytes only.</summary>
    private static string CraftedIdx(int[] shape, int data, bool gzip = false)
    {
        var header = new List<byte> { 0, 0, 0x08, (byte)shape.Length };
        foreach (var d in shape) header.AddRange([(byte)(d >> 24), (byte)(d >> 16), (byte)(d >> 8), (byte)d]);
        var bytes = header.Concat(new byte[data]).ToArray();
        var path = TestData.TempFile(gzip ? ".idx.gz" : ".idx");
        if (!gzip) File.WriteAllBytes(path, bytes);
        else using (var gz = new GZipStream(File.Create(path), CompressionLevel.Fastest)) gz.Write(bytes);
        return path;
    }

    private static InvalidDataException CraftedHeaderError(int[] shape, int data, bool gzip = false)
    {
        var path = CraftedIdx(shape, data, gzip);
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        try { return Assert.Throws<InvalidDataException>(() => IdxReader.Read(path)); }
        finally
        {
            File.Delete(path);
            Assert.True(GC.GetAllocatedBytesForCurrentThread() - allocated < 64 << 20, "a crafted header made the reader allocate its declared size");
        }
    }

    [Fact]
    public void HeaderAskingForMoreThanTheCapIsRefusedBeforeAllocating()
    {
        var ex = CraftedHeaderError([60000, 60000, 1], 16);
        Assert.Contains("[60000, 60000, ...] ask for more than the 1,073,741,824 data bytes", ex.Message);
    }

    [Fact]
    public void HeaderWhoseSizesOverflowIsRefused()
    {
        // 65536^4 wraps a 64-bit product to 0: the reader stops at the second size, long before it could overflow.
        var ex = CraftedHeaderError([65536, 65536, 65536, 65536], 16);
        Assert.Contains("[65536, 65536, ...] ask for more than", ex.Message);
    }

    [Fact]
    public void HeaderDeclaringMoreDataThanTheFileHoldsIsTruncatedNotAllocated()
    {
        var plain = CraftedHeaderError([1000, 1000, 1000], 4);
        Assert.Contains("is truncated: its header declares 1,000,000,000 data bytes, but only 4 follow", plain.Message);
        var gzip = CraftedHeaderError([1000, 1000, 1000], 4, gzip: true);
        Assert.Contains("is truncated: expected 1,000,000,000 data bytes, got 4", gzip.Message);
    }

    [Fact]
    public void MnistDataViewHasKeyLabelsAndScaledPixels()
    {
        var ml = new MLContext(1);
        var data = TestData.MnistTest(ml, 50);
        var label = data.Schema["Label"];
        Assert.Equal(10UL, ((KeyDataViewType)label.Type).Count);
        var pixels = data.Schema["Pixels"];
        Assert.Equal(784, ((VectorDataViewType)pixels.Type).Size);
        VBuffer<uint> keys = default;
        label.GetKeyValues(ref keys);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (uint)i), keys.DenseValues());
        var values = TestData.Column(data, "Pixels");
        Assert.Equal(50, values.Length);
        Assert.All(values.SelectMany(v => v), v => Assert.InRange(v, 0f, 1f));
        Assert.Contains(values.SelectMany(v => v), v => v > 0.99f);
    }

    [Fact]
    public void MissingMnistWithoutDownloadSaysWhereToPutIt()
    {
        var folder = Path.Combine(Path.GetTempPath(), "mlnetdeep-empty-" + Guid.NewGuid().ToString("N"));
        var ex = Assert.Throws<FileNotFoundException>(() => Mnist.Read(MnistSplit.Test, folder, download: false));
        Assert.Contains(folder, ex.Message);
    }
}
