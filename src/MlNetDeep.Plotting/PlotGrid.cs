using ScottPlot;
using SkiaSharp;

namespace MlNetDeep.Plotting;

/// <summary>Several ScottPlot plots side by side in one PNG (a grid of panels), with an optional title on top.</summary>
public static class PlotGrid
{
    /// <summary>Saves <paramref name="plots"/> in rows of <paramref name="columns"/> panels, each <paramref name="panelWidth"/> x <paramref name="panelHeight"/> pixels.</summary>
    public static void Save(string path, IReadOnlyList<Plot> plots, int columns, int panelWidth = 420, int panelHeight = 380, string? title = null)
    {
        if (plots.Count == 0) throw new ArgumentException("No plots to draw.", nameof(plots));
        columns = Math.Max(1, Math.Min(columns, plots.Count));
        int rows = (plots.Count + columns - 1) / columns, titleHeight = title is null ? 0 : 34;
        using var bitmap = new SKBitmap(columns * panelWidth, titleHeight + rows * panelHeight);
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        if (title is not null)
        {
            using var font = new SKFont(SKTypeface.Default, 18);
            using var paint = new SKPaint { Color = SKColors.Black, IsAntialias = true };
            canvas.DrawText(title, 10, 23, font, paint);
        }
        for (int i = 0; i < plots.Count; i++)
        {
            var bytes = plots[i].GetImageBytes(panelWidth, panelHeight, ImageFormat.Png);
            using var panel = SKBitmap.Decode(bytes);
            canvas.DrawBitmap(panel, (i % columns) * panelWidth, titleHeight + (i / columns) * panelHeight);
        }
        Charts.EnsureFolder(path);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        data.SaveTo(file);
    }
}
