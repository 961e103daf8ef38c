using Microsoft.ML;
using Microsoft.ML.Data;

namespace MlNetDeep.Data;

/// <summary>
/// The Breast Cancer Wisconsin (Diagnostic) set (UCI; Wolberg, Street and Mangasarian, 1995): 569 tumours, 30
/// measurements of their cell nuclei, 212 malignant. A small real tabular set for binary classification, shipped inside
/// the library (the same file as <c>data/breast-cancer/wdbc.csv</c>).
/// </summary>
public static class BreastCancer
{
    /// <summary>Rows in the set.</summary>
    public const int Rows = 569;

    /// <summary>Measurements per row.</summary>
    public const int FeatureCount = 30;

    private const string ResourceName = "MlNetDeep.Data.wdbc.csv";

    /// <summary>
    /// The set as an IDataView: <c>Features</c> (vector&lt;float&gt;[30], raw measurements in their own units, so
    /// standardise them before a neural network) and <c>Label</c> (Boolean, true for malignant).
    /// </summary>
    public static IDataView LoadBreastCancer(this DataOperationsCatalog catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var loader = catalog.CreateTextLoader(new TextLoader.Options
        {
            Separators = [','], HasHeader = true,
            Columns =
            [
                new TextLoader.Column("Features", DataKind.Single, 0, FeatureCount - 1),
                new TextLoader.Column("Label", DataKind.Boolean, FeatureCount),
            ],
        });
        return loader.Load(new ResourceSource());
    }

    /// <summary>The CSV text (a header row, then 30 measurements and Malignant true/false per row).</summary>
    public static Stream OpenCsv() =>
        typeof(BreastCancer).Assembly.GetManifestResourceStream(ResourceName)
        ?? throw new InvalidOperationException($"The embedded resource {ResourceName} is missing from {typeof(BreastCancer).Assembly.GetName().Name}.");

    /// <summary>The embedded CSV as ML.NET's loaders read files.</summary>
    private sealed class ResourceSource : IMultiStreamSource
    {
        public int Count => 1;
        public string? GetPathOrNull(int index) => null;
        public Stream Open(int index) => index == 0 ? OpenCsv() : throw new ArgumentOutOfRangeException(nameof(index));
        public TextReader OpenTextReader(int index) => new StreamReader(Open(index));
    }
}
