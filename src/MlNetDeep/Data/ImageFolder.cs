using System.Collections.Concurrent;
using Microsoft.ML;
using Microsoft.ML.Runtime;
using SkiaSharp;

namespace MlNetDeep.Data;

/// <summary>What a folder scan does with a file that is not a readable image (corrupt, truncated, empty, too large).</summary>
public enum InvalidImageHandling
{
    /// <summary>Leave it out; <see cref="ImageFolder.Skipped"/> lists it with the reason and the MLContext log says how many.</summary>
    Skip,

    /// <summary>Fail the scan with an <see cref="InvalidDataException"/> naming the first such file and why.</summary>
    Throw,
}

/// <summary>How <see cref="ImageFolder.Scan"/> reads a folder-per-class image set.</summary>
public sealed class ImageFolderOptions
{
    /// <summary>File extensions taken as images (case-insensitive); other files are ignored.</summary>
    public IReadOnlyCollection<string> Extensions { get; set; } = [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"];

    /// <summary>Decode every image once while scanning, so that a corrupt or truncated file is found here rather than mid-training.</summary>
    public bool VerifyImages { get; set; } = true;

    /// <summary>What to do with an unreadable image.</summary>
    public InvalidImageHandling InvalidImages { get; set; } = InvalidImageHandling.Skip;

    /// <summary>Largest image accepted, in pixels (width x height), checked from the file's header before anything is decoded.</summary>
    public long MaxPixelsPerImage { get; set; } = 40_000_000;

    /// <summary>Fewest classes (subfolders with images) a set must have.</summary>
    public int MinimumClasses { get; set; } = 2;

    /// <summary>Fewest readable images each class must have (2 lets a split keep one for training and one for testing).</summary>
    public int MinimumImagesPerClass { get; set; } = 1;

    /// <summary>The output column of the image's full path.</summary>
    public string ImagePathColumnName { get; set; } = "ImagePath";

    /// <summary>The output column of the class (the subfolder's name, text).</summary>
    public string LabelColumnName { get; set; } = "Label";

    internal void Validate()
    {
        if (Extensions is null || Extensions.Count == 0) throw new ArgumentException("Extensions must name at least one file extension.", nameof(Extensions));
        if (MaxPixelsPerImage <= 0) throw new ArgumentOutOfRangeException(nameof(MaxPixelsPerImage), MaxPixelsPerImage, "MaxPixelsPerImage must be positive.");
        if (MinimumClasses < 1) throw new ArgumentOutOfRangeException(nameof(MinimumClasses), MinimumClasses, "MinimumClasses must be at least 1.");
        if (MinimumImagesPerClass < 1) throw new ArgumentOutOfRangeException(nameof(MinimumImagesPerClass), MinimumImagesPerClass, "MinimumImagesPerClass must be at least 1.");
        if (string.IsNullOrWhiteSpace(ImagePathColumnName) || string.IsNullOrWhiteSpace(LabelColumnName) || ImagePathColumnName == LabelColumnName)
            throw new ArgumentException("ImagePathColumnName and LabelColumnName must be two different column names.");
    }
}

/// <summary>One image of a folder-per-class set.</summary>
public sealed record ImageFile(string Path, string Label, int Width, int Height);

/// <summary>A file left out of a scan and why.</summary>
public sealed record SkippedImage(string Path, string Reason);

/// <summary>
/// A folder-per-class image set, Model Builder's image-classification layout: <c>root/&lt;class&gt;/**/&lt;image&gt;</c>, the
/// subfolder's name being the label. <see cref="Scan"/> lists and checks the images; <see cref="ToDataView"/> gives ML.NET
/// rows of ImagePath + Label; <see cref="PixelPipeline"/> is ML.NET's own LoadImages -> ResizeImages -> ExtractPixels for a
/// convolutional trainer, with <see cref="InputShape"/> the [channels, height, width] it produces.
/// </summary>
public sealed class ImageFolder
{
    private readonly ImageFolderOptions _options;

    private ImageFolder(string root, ImageFolderOptions options, List<ImageFile> images, List<SkippedImage> skipped)
    {
        Root = root;
        _options = options;
        Images = images;
        Skipped = skipped;
        Classes = images.Select(i => i.Label).Distinct().Order(StringComparer.Ordinal).ToList();
        var sizes = images.Where(i => i.Width > 0).Select(i => (i.Width, i.Height)).Distinct().Take(2).ToList();
        CommonSize = options.VerifyImages && sizes.Count == 1 ? sizes[0] : null;
    }

    /// <summary>The folder that was scanned (full path).</summary>
    public string Root { get; }

    /// <summary>The images, sorted by class and path.</summary>
    public IReadOnlyList<ImageFile> Images { get; }

    /// <summary>The class names (subfolder names), sorted ordinally.</summary>
    public IReadOnlyList<string> Classes { get; }

    /// <summary>Files left out (not readable images, or not inside a class folder).</summary>
    public IReadOnlyList<SkippedImage> Skipped { get; }

    /// <summary>The one size every image has, when the scan decoded them and they agree; null for mixed sizes.</summary>
    public (int Width, int Height)? CommonSize { get; }

    /// <summary>Images per class, in <see cref="Classes"/> order.</summary>
    public IReadOnlyDictionary<string, int> CountsByClass => Images.GroupBy(i => i.Label).ToDictionary(g => g.Key, g => g.Count());

    /// <summary>Lists and checks the images under <paramref name="root"/>.</summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="InvalidDataException">No images, too few classes, or (with <see cref="InvalidImageHandling.Throw"/>) an unreadable image.</exception>
    public static ImageFolder Scan(string root, ImageFolderOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        options ??= new ImageFolderOptions();
        options.Validate();
        var full = Path.GetFullPath(root);
        if (!Directory.Exists(full)) throw new DirectoryNotFoundException($"The image folder '{full}' does not exist.");
        var extensions = options.Extensions.Select(e => e.StartsWith('.') ? e : "." + e).ToHashSet(StringComparer.OrdinalIgnoreCase);

        var skipped = new ConcurrentBag<SkippedImage>();
        foreach (var file in Directory.EnumerateFiles(full).Where(f => extensions.Contains(Path.GetExtension(f))))
            skipped.Add(new SkippedImage(file, "not inside a class folder (the layout is root/<class>/<image>)"));

        var candidates = new List<(string Path, string Label)>();
        foreach (var folder in Directory.EnumerateDirectories(full))
        {
            var label = Path.GetFileName(folder);
            candidates.AddRange(Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
                .Where(f => extensions.Contains(Path.GetExtension(f))).Select(f => (f, label)));
        }
        if (candidates.Count == 0)
            throw new InvalidDataException($"The image folder '{full}' holds no images in class subfolders (looked for {string.Join(", ", extensions)} " +
                "under root/<class>/). Model Builder's layout: one subfolder per class, named after it, holding that class's images.");

        var images = new ConcurrentBag<ImageFile>();
        Parallel.ForEach(candidates, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, candidate =>
        {
            if (!options.VerifyImages) { images.Add(new ImageFile(candidate.Path, candidate.Label, 0, 0)); return; }
            var (width, height, problem) = Inspect(candidate.Path, options.MaxPixelsPerImage);
            if (problem is null) images.Add(new ImageFile(candidate.Path, candidate.Label, width, height));
            else skipped.Add(new SkippedImage(candidate.Path, problem));
        });

        var invalid = skipped.Where(s => candidates.Any(c => c.Path == s.Path)).OrderBy(s => s.Path, StringComparer.Ordinal).ToList();
        if (options.InvalidImages == InvalidImageHandling.Throw && invalid.Count > 0)
            throw new InvalidDataException($"{invalid.Count} of {candidates.Count} images under '{full}' cannot be read; the first: '{invalid[0].Path}': {invalid[0].Reason}. " +
                "Remove or fix them, or set InvalidImages = InvalidImageHandling.Skip to leave them out.");

        var sorted = images.OrderBy(i => i.Label, StringComparer.Ordinal).ThenBy(i => i.Path, StringComparer.Ordinal).ToList();
        if (sorted.Count == 0)
            throw new InvalidDataException($"None of the {candidates.Count} images under '{full}' can be read; the first: '{invalid[0].Path}': {invalid[0].Reason}.");
        var result = new ImageFolder(full, options, sorted, skipped.OrderBy(s => s.Path, StringComparer.Ordinal).ToList());
        if (result.Classes.Count < options.MinimumClasses)
            throw new InvalidDataException($"The image folder '{full}' has {result.Classes.Count} class(es) with readable images ({string.Join(", ", result.Classes.Select(c => $"'{c}'"))}); " +
                $"classification needs at least {options.MinimumClasses}: add one subfolder of images per class.");
        var few = result.CountsByClass.Where(c => c.Value < options.MinimumImagesPerClass).ToList();
        if (few.Count > 0)
            throw new InvalidDataException($"The image folder '{full}' has classes with fewer than {options.MinimumImagesPerClass} readable images " +
                $"({string.Join(", ", few.Select(c => $"'{c.Key}': {c.Value}"))}): add images, or remove the class's subfolder.");
        return result;
    }

    /// <summary>Reads a file's header (size) and, with full verification, decodes it; returns the problem in words or null.</summary>
    private static (int Width, int Height, string? Problem) Inspect(string path, long maxPixels)
    {
        try
        {
            if (new FileInfo(path).Length == 0) return (0, 0, "the file is empty");
            using var codec = SKCodec.Create(path, out var result);
            if (codec is null) return (0, 0, $"not a readable image ({result})");
            var info = codec.Info;
            if (info.Width <= 0 || info.Height <= 0) return (0, 0, $"the header gives a size of {info.Width}x{info.Height}");
            if ((long)info.Width * info.Height > maxPixels)
                return (0, 0, $"{info.Width}x{info.Height} pixels is more than MaxPixelsPerImage ({maxPixels:N0})");
            using var bitmap = new SKBitmap(new SKImageInfo(info.Width, info.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
            var decoded = codec.GetPixels(bitmap.Info, bitmap.GetPixels());
            return decoded == SKCodecResult.Success ? (info.Width, info.Height, null) : (0, 0, $"the image data is damaged or cut short ({decoded})");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return (0, 0, $"cannot be read: {e.Message}");
        }
    }

    /// <summary>The images as ML.NET rows: <see cref="ImageFolderOptions.ImagePathColumnName"/> and <see cref="ImageFolderOptions.LabelColumnName"/> (text).</summary>
    public IDataView ToDataView(DataOperationsCatalog catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var rows = catalog.LoadFromEnumerable(Images.Select(i => new ImageRow { ImagePath = i.Path, Label = i.Label }));
        if (_options.ImagePathColumnName == "ImagePath" && _options.LabelColumnName == "Label") return rows;
        var ml = new MLContext(seed: 0);
        return ml.Transforms.CopyColumns(_options.ImagePathColumnName, "ImagePath")
            .Append(ml.Transforms.CopyColumns(_options.LabelColumnName, "Label"))
            .Append(ml.Transforms.DropColumns("ImagePath", "Label"))
            .Fit(rows).Transform(rows);
    }

    /// <summary>
    /// ML.NET's own image transforms, from the path column to a float vector column for a convolutional trainer:
    /// LoadImages -> ResizeImages -> (ConvertToGrayscale) -> ExtractPixels, in [0, 1], channels first. Without
    /// <paramref name="width"/> and <paramref name="height"/> the images' common size is kept; mixed sizes are an error.
    /// </summary>
    public IEstimator<ITransformer> PixelPipeline(MLContext ml, int? width = null, int? height = null, bool grayscale = false, string outputColumnName = "Pixels")
    {
        ArgumentNullException.ThrowIfNull(ml);
        var (w, h) = TargetSize(width, height);
        var pathColumn = _options.ImagePathColumnName;
        const string image = "__Image";
        IEstimator<ITransformer> chain = ml.Transforms.LoadImages(image, imageFolder: null, inputColumnName: pathColumn)
            .Append(ml.Transforms.ResizeImages(image, w, h, inputColumnName: image));
        if (grayscale) chain = chain.Append(ml.Transforms.ConvertToGrayscale(image, image));
        return chain
            .Append(ml.Transforms.ExtractPixels(outputColumnName, image,
                colorsToExtract: grayscale ? Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorBits.Red : Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorBits.Rgb,
                scaleImage: 1f / 255))
            .Append(ml.Transforms.DropColumns(image));
    }

    /// <summary>The [channels, height, width] that <see cref="PixelPipeline"/> produces with the same arguments.</summary>
    public int[] InputShape(int? width = null, int? height = null, bool grayscale = false)
    {
        var (w, h) = TargetSize(width, height);
        return [grayscale ? 1 : 3, h, w];
    }

    private (int Width, int Height) TargetSize(int? width, int? height)
    {
        if (width is { } w && height is { } h)
        {
            if (w <= 0 || h <= 0) throw new ArgumentOutOfRangeException(nameof(width), $"The resize target {w}x{h} must be positive.");
            return (w, h);
        }
        if (width is not null || height is not null) throw new ArgumentException("Give both width and height to resize, or neither to keep the images' own size.");
        if (CommonSize is { } size) return size;
        if (!_options.VerifyImages)
            throw new InvalidOperationException("The images' size is unknown (the scan did not decode them, VerifyImages = false): give width and height to resize them.");
        var sizes = Images.GroupBy(i => (i.Width, i.Height)).OrderByDescending(g => g.Count()).Take(4)
            .Select(g => $"{g.Key.Width}x{g.Key.Height} ({g.Count()} images, e.g. '{g.First().Path}')");
        throw new InvalidOperationException($"The images under '{Root}' have different sizes: {string.Join(", ", sizes)}. " +
            "A network needs one input size: give width and height so that ResizeImages brings them to one size.");
    }

    private sealed class ImageRow
    {
        public string ImagePath { get; set; } = "";
        public string Label { get; set; } = "";
    }
}

/// <summary>Folder-per-class image sets on <c>mlContext.Data</c>.</summary>
public static class ImageFolderCatalog
{
    /// <summary>
    /// Scans a folder-per-class image set (Model Builder's layout: <c>root/&lt;class&gt;/&lt;image&gt;</c>) into rows of
    /// ImagePath + Label (text; MapValueToKey it for a trainer). Unreadable images are skipped (or fail the call, as
    /// <see cref="ImageFolderOptions.InvalidImages"/> says) and counted in the MLContext's log.
    /// </summary>
    public static IDataView LoadImageFolder(this DataOperationsCatalog catalog, string folder, ImageFolderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var scan = ImageFolder.Scan(folder, options);
        if (scan.Skipped.Count > 0)
        {
            var env = Native.HostEnvironments.Of(catalog);
            using var channel = env.Start("ImageFolder");
            channel.Warning(MessageSensitivity.None, $"{scan.Skipped.Count} file(s) under '{scan.Root}' left out, e.g. '{scan.Skipped[0].Path}': {scan.Skipped[0].Reason}.");
        }
        return scan.ToDataView(catalog);
    }
}
