using System.Runtime.InteropServices;
using SkiaSharp;

namespace MlNetDeep.Data;

/// <summary>Writes images as PNG files: single images from pixel arrays, and MNIST as a folder-per-class set.</summary>
public static class ImageFiles
{
    /// <summary>
    /// Writes one image given channels first ([channels, height, width], values in [0, 1]) as a PNG: one channel gives
    /// an 8-bit grey PNG, three an RGB one. The file is written to a temporary name and renamed, so a reader never sees half of it.
    /// </summary>
    public static void SavePng(string path, ReadOnlySpan<float> pixels, int channels, int height, int width)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "A PNG is written from 1 (grey) or 3 (RGB) channels.");
        if (height <= 0 || width <= 0) throw new ArgumentOutOfRangeException(nameof(height), $"The size {width}x{height} must be positive.");
        long plane = (long)height * width;
        if (pixels.Length != channels * plane)
            throw new ArgumentException($"{pixels.Length} values do not make a [{channels}, {height}, {width}] image ({channels * plane} values).", nameof(pixels));

        var info = new SKImageInfo(width, height, channels == 1 ? SKColorType.Gray8 : SKColorType.Rgba8888, SKAlphaType.Opaque);
        var bytes = new byte[info.BytesSize];
        for (long i = 0; i < plane; i++)
        {
            if (channels == 1) bytes[i] = ToByte(pixels[(int)i]);
            else
            {
                bytes[4 * i] = ToByte(pixels[(int)i]);
                bytes[4 * i + 1] = ToByte(pixels[(int)(plane + i)]);
                bytes[4 * i + 2] = ToByte(pixels[(int)(2 * plane + i)]);
                bytes[4 * i + 3] = 255;
            }
        }
        var handle = GCHandle.Alloc(bytes, GCHandleType.Pinned);
        try
        {
            using var image = SKImage.FromPixels(info, handle.AddrOfPinnedObject(), info.RowBytes);
            using var png = image.Encode(SKEncodedImageFormat.Png, 100)
                ?? throw new InvalidOperationException($"SkiaSharp could not encode a {width}x{height} PNG for '{path}'.");
            var folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
            Directory.CreateDirectory(folder);
            var temporary = Path.Combine(folder, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
            try
            {
                using (var file = File.Create(temporary)) png.SaveTo(file);
                File.Move(temporary, path, overwrite: true);
            }
            finally { File.Delete(temporary); }
        }
        finally { handle.Free(); }
    }

    private static byte ToByte(float value) => (byte)Math.Clamp(MathF.Round(value * 255), 0, 255);

    /// <summary>
    /// Writes MNIST images as a folder-per-class set of grey PNGs (<c>root/&lt;digit&gt;/&lt;index&gt;.png</c>, Model Builder's
    /// layout), the same pixels as the IDX files; an image already written is left alone, so an interrupted export resumes.
    /// Returns the number of images written now.
    /// </summary>
    public static int WriteMnistFolders(IReadOnlyList<MnistImage> images, string root, IProgress<int>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        int written = 0, done = 0;
        Parallel.For(0, images.Count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            var image = images[i];
            var path = Path.Combine(root, image.Label.ToString(System.Globalization.CultureInfo.InvariantCulture), $"{i:D5}.png");
            if (!File.Exists(path))
            {
                SavePng(path, image.Pixels, 1, Mnist.Side, Mnist.Side);
                Interlocked.Increment(ref written);
            }
            int count = Interlocked.Increment(ref done);
            if (count % 1000 == 0 || count == images.Count) progress?.Report(count);
        });
        return written;
    }
}
