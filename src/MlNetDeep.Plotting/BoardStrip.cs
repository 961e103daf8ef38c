using SkiaSharp;

namespace MlNetDeep.Plotting;

/// <summary>Draws a game as a strip of small square boards (e.g. Flippers' 3x3 tiles), a dot on each set tile, a caption under each board.</summary>
public static class BoardStrip
{
    /// <summary>
    /// Saves <paramref name="boards"/> (each <paramref name="size"/> x <paramref name="size"/> tiles, row by row, true for a dot)
    /// left to right; <paramref name="highlights"/> (one per board, or -1) frames the tile the next move flips.
    /// </summary>
    public static void Save(string path, IReadOnlyList<bool[]> boards, int size, IReadOnlyList<string>? captions = null, IReadOnlyList<int>? highlights = null,
        string? title = null, int tile = 36)
    {
        ArgumentNullException.ThrowIfNull(boards);
        if (boards.Count == 0) throw new ArgumentException("No boards to draw.", nameof(boards));
        if (size < 1 || tile < 4) throw new ArgumentOutOfRangeException(nameof(size), "Boards need at least one tile of at least 4 pixels.");
        foreach (var board in boards)
            if (board.Length != size * size) throw new ArgumentException($"A board has {board.Length} tiles; expected {size}x{size}.", nameof(boards));
        int gap = 24, titleHeight = title is null ? 0 : 28, captionHeight = 20, side = size * tile;
        using var font = new SKFont(SKTypeface.Default, 13);
        int titleWidth = title is null ? 0 : (int)Math.Ceiling(font.MeasureText(title)) + gap;
        int width = Math.Max(gap + boards.Count * (side + gap), titleWidth), height = titleHeight + gap + side + captionHeight + gap / 2;
        using var bitmap = new SKBitmap(width, height);
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        using var text = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        using var grid = new SKPaint { Color = SKColors.Gray, IsStroke = true, StrokeWidth = 1 };
        using var frame = new SKPaint { Color = SKColors.OrangeRed, IsStroke = true, StrokeWidth = 3 };
        using var dot = new SKPaint { Color = new SKColor(30, 60, 160), IsAntialias = true };
        using var arrow = new SKPaint { Color = SKColors.DimGray, IsAntialias = true, StrokeWidth = 2 };
        if (title is not null) canvas.DrawText(title, gap / 2, 19, font, text);
        for (int b = 0; b < boards.Count; b++)
        {
            int x0 = gap + b * (side + gap), y0 = titleHeight + gap / 2;
            for (int i = 0; i < size * size; i++)
            {
                int r = i / size, c = i % size;
                var cell = new SKRect(x0 + c * tile, y0 + r * tile, x0 + (c + 1) * tile, y0 + (r + 1) * tile);
                canvas.DrawRect(cell, grid);
                if (boards[b][i]) canvas.DrawCircle(cell.MidX, cell.MidY, tile * 0.3f, dot);
                if (highlights is not null && b < highlights.Count && highlights[b] == i)
                    canvas.DrawRect(SKRect.Inflate(cell, -2, -2), frame);
            }
            if (captions is not null && b < captions.Count) canvas.DrawText(captions[b], x0, y0 + side + 16, font, text);
            if (b < boards.Count - 1)
                canvas.DrawLine(x0 + side + 5, y0 + side / 2f, x0 + side + gap - 5, y0 + side / 2f, arrow);
        }
        Charts.EnsureFolder(path);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        data.SaveTo(file);
    }
}
