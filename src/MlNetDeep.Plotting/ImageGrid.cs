using SkiaSharp;

namespace MlNetDeep.Plotting;

/// <summary>Draws small grey (or RGB) images, e.g. digits, filters or reconstructions, in a labelled grid PNG.</summary>
public static class ImageGrid
{
    /// <summary>
    /// Saves <paramref name="images"/> (each <paramref name="height"/> x <paramref name="width"/> grey values, or 3 planes of RGB when
    /// <paramref name="channels"/> is 3) in a grid of <paramref name="columns"/> columns, each scaled by <paramref name="scale"/>.
    /// Values are shown from <paramref name="min"/> (black) to <paramref name="max"/> (white); null means each image's own range.
    /// </summary>
    public static void Save(string path, IReadOnlyList<float[]> images, int height, int width, int columns, int scale = 3,
        IReadOnlyList<string>? captions = null, string? title = null, int channels = 1, float? min = 0, float? max = 1)
    {
        if (images.Count == 0) throw new ArgumentException("No images to draw.", nameof(images));
        foreach (var image in images)
            if (image.Length != channels * height * width)
                throw new ArgumentException($"An image has {image.Length} values; expected {channels}x{height}x{width}.", nameof(images));
        columns = Math.Max(1, Math.Min(columns, images.Count));
        int rows = (images.Count + columns - 1) / columns;
        int gap = 4, captionHeight = captions is null ? 0 : 14, titleHeight = title is null ? 0 : 24;
        int cellW = width * scale, cellH = height * scale + captionHeight;
        int totalW = columns * (cellW + gap) + gap, totalH = titleHeight + rows * (cellH + gap) + gap;
        using var bitmap = new SKBitmap(totalW, totalH);
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        using var font = new SKFont(SKTypeface.Default, 12);
        using var paint = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        if (title is not null) canvas.DrawText(title, gap, 17, font, paint);
        for (int i = 0; i < images.Count; i++)
        {
            int r = i / columns, c = i % columns;
            int x0 = gap + c * (cellW + gap), y0 = titleHeight + gap + r * (cellH + gap);
            using var tile = ToBitmap(images[i], height, width, channels, min, max);
            canvas.DrawBitmap(tile, new SKRect(x0, y0, x0 + cellW, y0 + height * scale), new SKPaint { IsAntialias = false });
            if (captions is not null && i < captions.Count)
                canvas.DrawText(captions[i], x0, y0 + height * scale + 12, font, paint);
        }
        Charts.EnsureFolder(path);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        data.SaveTo(file);
    }

    private static SKBitmap ToBitmap(float[] values, int height, int width, int channels, float? min, float? max)
    {
        float lo = min ?? values.Min(), hi = max ?? values.Max();
        float range = hi - lo <= 1e-12f ? 1 : hi - lo;
        var bitmap = new SKBitmap(width, height);
        int plane = height * width;
        for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
        {
            byte Level(int ch) => (byte)Math.Clamp((values[ch * plane + y * width + x] - lo) / range * 255f, 0, 255);
            bitmap.SetPixel(x, y, channels == 3 ? new SKColor(Level(0), Level(1), Level(2)) : new SKColor(Level(0), Level(0), Level(0)));
        }
        return bitmap;
    }
}
