using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Text;

namespace MlNetDeep.Models.Recurrent;

/// <summary>What a token of a language model is.</summary>
public enum TextLevel
{
    /// <summary>One character (a UTF-16 code unit), read with ML.NET's <c>TokenizeIntoCharactersAsKeys</c>.</summary>
    Character,
    /// <summary>A word or a punctuation mark, read with ML.NET's <c>NormalizeText</c> and <c>TokenizeIntoWords</c>.</summary>
    Word,
}

/// <summary>
/// A language model's tokens: how text is cut into them (<see cref="Level"/>, <see cref="Lowercase"/>) and the ids of
/// the most frequent ones. Id 0 is <see cref="UnknownToken"/>, which stands for every token outside the vocabulary (in
/// text to score or a prompt); generation never draws it. Saved with the model.
/// </summary>
public sealed partial class Vocabulary
{
    /// <summary>The token for everything the vocabulary does not hold (id 0).</summary>
    public const string UnknownToken = "<unk>";

    /// <summary>Most tokens a saved vocabulary may hold.</summary>
    internal const int MaxSize = 1_000_000;

    /// <summary>Longest token a saved vocabulary may hold.</summary>
    internal const int MaxTokenLength = 1_000;

    private readonly Dictionary<string, int> _ids;
    private readonly Lazy<ITransformer> _tokenizer;

    private Vocabulary(TextLevel level, bool lowercase, IReadOnlyList<string> tokens)
    {
        Level = level;
        Lowercase = lowercase;
        Tokens = tokens;
        _ids = new Dictionary<string, int>(tokens.Count, StringComparer.Ordinal);
        for (int i = 0; i < tokens.Count; i++)
            if (!_ids.TryAdd(tokens[i], i)) throw new InvalidDataException($"The vocabulary holds the token '{tokens[i]}' twice (ids {_ids[tokens[i]]} and {i}).");
        _tokenizer = new Lazy<ITransformer>(CreateTokenizer, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    public TextLevel Level { get; }

    /// <summary>Whether text is lowercased before it is cut into tokens.</summary>
    public bool Lowercase { get; }

    /// <summary>The tokens by id; <see cref="UnknownToken"/> first.</summary>
    public IReadOnlyList<string> Tokens { get; }

    public int Size => Tokens.Count;

    /// <summary>
    /// The vocabulary of <paramref name="text"/>: the <paramref name="maxSize"/> - 1 most frequent tokens (ties in ordinal
    /// order) after <see cref="UnknownToken"/>.
    /// </summary>
    public static Vocabulary Build(string text, TextLevel level, bool lowercase, int maxSize) => BuildAndEncode(text, level, lowercase, maxSize).Vocabulary;

    /// <summary><see cref="Build"/>, and the ids of <paramref name="text"/>'s tokens in it, from one pass of the tokenizer.</summary>
    internal static (Vocabulary Vocabulary, int[] Ids) BuildAndEncode(string text, TextLevel level, bool lowercase, int maxSize)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (maxSize < 2) throw new ArgumentOutOfRangeException(nameof(maxSize), maxSize, "The vocabulary limit must be at least 2 (the unknown token and one more).");
        var probe = new Vocabulary(level, lowercase, [UnknownToken]);
        var tokens = probe.Tokenize(text);
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var token in tokens) counts[token] = counts.GetValueOrDefault(token) + 1;
        counts.Remove(UnknownToken);
        // A character outside the Basic Multilingual Plane is two UTF-16 halves; neither is a character of its own (nor
        // survives a JSON round trip alone), so both stand as the unknown token.
        if (level == TextLevel.Character) foreach (var token in counts.Keys.Where(t => char.IsSurrogate(t[0])).ToList()) counts.Remove(token);
        if (counts.Count == 0) throw new InvalidDataException("The text holds no tokens: it is empty or only white space.");
        var kept = counts.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal).Take(maxSize - 1).Select(kv => kv.Key);
        var vocabulary = new Vocabulary(level, lowercase, [UnknownToken, .. kept]);
        return (vocabulary, tokens.Select(vocabulary.Id).ToArray());
    }

    /// <summary>A vocabulary read back from a saved model: checked before use (size, lengths, duplicates, the unknown token first).</summary>
    internal static Vocabulary FromSaved(TextLevel level, bool lowercase, IReadOnlyList<string>? tokens)
    {
        if (tokens is null || tokens.Count < 2) throw new InvalidDataException("the saved vocabulary holds fewer than 2 tokens.");
        if (tokens.Count > MaxSize) throw new InvalidDataException($"the saved vocabulary holds {tokens.Count:N0} tokens, more than {MaxSize:N0}.");
        if (tokens[0] != UnknownToken) throw new InvalidDataException($"the saved vocabulary does not start with {UnknownToken}.");
        if (!Enum.IsDefined(level)) throw new InvalidDataException($"the saved text level {(int)level} is unknown.");
        for (int i = 1; i < tokens.Count; i++)
        {
            var token = tokens[i];
            if (string.IsNullOrEmpty(token) || token.Length > MaxTokenLength || (level == TextLevel.Character && (token.Length != 1 || char.IsSurrogate(token[0]))))
                throw new InvalidDataException($"the saved vocabulary's token {i} is empty, too long or not one character for a character model.");
        }
        return new Vocabulary(level, lowercase, tokens.ToArray());
    }

    /// <summary>The id of <paramref name="token"/>; 0 (<see cref="UnknownToken"/>) when the vocabulary lacks it.</summary>
    public int Id(string token) => _ids.GetValueOrDefault(token);

    /// <summary>The tokens of <paramref name="text"/>, cut as the model cuts them (lowercased first when <see cref="Lowercase"/>).</summary>
    public IReadOnlyList<string> Tokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0) return [];
        var ml = new MLContext(seed: 0);
        var row = ml.Data.LoadFromEnumerable([new Datasets.TextRow { Text = Prepare(text) }]);
        var output = _tokenizer.Value.Transform(row);
        if (Level == TextLevel.Character)
        {
            // ML.NET's key for a character is its UTF-16 code (key 0, the missing value, only for U+0000).
            var keys = output.GetColumn<VBuffer<ushort>>("Tokens").Single();
            var tokens = new string[keys.Length];
            int i = 0;
            foreach (var key in keys.DenseValues()) tokens[i++] = key == 0 ? UnknownToken : ((char)key).ToString();
            return tokens;
        }
        var words = output.GetColumn<VBuffer<ReadOnlyMemory<char>>>("Tokens").Single();
        return words.DenseValues().Select(w => w.ToString()).ToArray();
    }

    /// <summary>The ids of <paramref name="text"/>'s tokens (0 for tokens the vocabulary lacks).</summary>
    public int[] Encode(string text) => Tokenize(text).Select(Id).ToArray();

    /// <summary>
    /// Text from token ids: characters joined as they are; words joined by spaces, with none before closing punctuation,
    /// none after an opening bracket or quote (double quotes alternate opening and closing) and none around a hyphen.
    /// </summary>
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var tokens = ids.Select(id => id >= 0 && id < Size ? Tokens[id] : throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token ids run from 0 to {Size - 1}."));
        if (Level == TextLevel.Character) return string.Concat(tokens);
        var sb = new StringBuilder();
        bool quoteOpen = false, glueNext = true;
        foreach (var token in tokens)
        {
            bool closing = token.Length == 1 && (".,;:!?)]}'-".Contains(token[0]) || (token[0] == '"' && quoteOpen));
            if (!closing && !glueNext) sb.Append(' ');
            sb.Append(token);
            glueNext = token is "(" or "[" or "{" or "-" || (token == "\"" && !quoteOpen);
            if (token == "\"") quoteOpen = !quoteOpen;
        }
        return sb.ToString();
    }

    private string Prepare(string text)
    {
        if (Lowercase) text = text.ToLowerInvariant();
        // Punctuation becomes tokens of its own: "said," is "said" and ",". Apostrophes inside words stay ("don't").
        return Level == TextLevel.Word ? Punctuation().Replace(text, " $1 ") : text;
    }

    [GeneratedRegex(@"((?<!\w)'|'(?!\w)|[\p{P}-[']])")]
    private static partial Regex Punctuation();

    private ITransformer CreateTokenizer()
    {
        var ml = new MLContext(seed: 0);
        var empty = ml.Data.LoadFromEnumerable(new List<Datasets.TextRow>());
        IEstimator<ITransformer> pipeline = Level == TextLevel.Character
            ? ml.Transforms.Text.TokenizeIntoCharactersAsKeys("Tokens", "Text", useMarkerCharacters: false)
            : ml.Transforms.Text.NormalizeText("Normalized", "Text", TextNormalizingEstimator.CaseMode.None, keepDiacritics: true, keepPunctuations: true, keepNumbers: true)
                .Append(ml.Transforms.Text.TokenizeIntoWords("Tokens", "Normalized", [' ', '\n', '\t', '\r']));
        return pipeline.Fit(empty);
    }

}
