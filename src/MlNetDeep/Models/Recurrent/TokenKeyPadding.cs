using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Models.Common;
using MlNetDeep.Persistence;

namespace MlNetDeep.Models.Recurrent;

/// <summary>
/// Token keys of any length (ML.NET's <c>TokenizeIntoWords</c> then <c>MapValueToKey</c>, a vector of keys) to a fixed
/// row of <see cref="MaxLength"/> ids for a <see cref="Networks.SequenceEncoder"/>: the first MaxLength tokens, key k
/// as id k + 1, a missing key (a token the key map never saw) as id 1, and 0 after the last token (padding).
/// </summary>
public sealed class TokenKeyPaddingTransformer : RowMappingTransformer, IPersistentTransformer
{
    internal const string KindName = "TokenKeyPadding";

    /// <summary>Longest row a saved transform may ask for.</summary>
    internal const int MaxMaxLength = 1_000_000;

    internal TokenKeyPaddingTransformer(string outputColumnName, string inputColumnName, int maxLength, int keyCount)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(outputColumnName);
        ArgumentException.ThrowIfNullOrWhiteSpace(inputColumnName);
        if (maxLength is < 1 or > MaxMaxLength) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, $"MaxLength must be 1 to {MaxMaxLength:N0} tokens.");
        if (keyCount is < 1 or > (1 << 24) - 2) throw new ArgumentOutOfRangeException(nameof(keyCount), keyCount, $"The token keys must number 1 to {(1 << 24) - 2:N0}.");
        OutputColumnName = outputColumnName;
        InputColumnName = inputColumnName;
        MaxLength = maxLength;
        KeyCount = keyCount;
    }

    public string OutputColumnName { get; }
    public string InputColumnName { get; }
    public int MaxLength { get; }

    /// <summary>The number of token keys of the column it was fitted on.</summary>
    public int KeyCount { get; }

    /// <summary>Ids the rows hold: padding, the unknown token and one per key.</summary>
    public int Vocabulary => KeyCount + 2;

    /// <summary>The number of token keys of a key-vector column, or an error naming the column.</summary>
    internal static int KeyCountOf(DataViewSchema schema, string column)
    {
        var view = ColumnChecks.Find(schema, column, "token");
        if (schema[column].Type is not VectorDataViewType { ItemType: KeyDataViewType key } || key.RawType != typeof(uint))
            throw new ArgumentOutOfRangeException(column, $"The token column '{column}' must be a vector of keys (TokenizeIntoWords then MapValueToKey), but is {view.TypeText}.");
        if (key.Count == 0) throw new ArgumentOutOfRangeException(column, $"The token column '{column}' has keys without a known count.");
        // Ids travel as floats: beyond 2^24 they would not be exact.
        if (key.Count > (1 << 24) - 2) throw new ArgumentOutOfRangeException(column, $"The token column '{column}' has {key.Count:N0} keys; at most {(1 << 24) - 2:N0} are supported (limit MapValueToKey's maximumNumberOfKeys).");
        return (int)key.Count;
    }

    /// <summary>The ids of one row of keys.</summary>
    public float[] Pad(ReadOnlySpan<uint> keys)
    {
        var ids = new float[MaxLength];
        int n = Math.Min(keys.Length, MaxLength);
        for (int i = 0; i < n; i++) ids[i] = keys[i] == 0 || keys[i] > KeyCount ? 1 : keys[i] + 1;
        return ids;
    }

    string IPersistentTransformer.Kind => KindName;

    JsonObject IPersistentTransformer.Settings() => new()
    {
        ["output"] = OutputColumnName, ["input"] = InputColumnName, ["maxLength"] = MaxLength, ["keyCount"] = KeyCount,
    };

    private sealed class KeysRow
    {
        public VBuffer<uint> Keys { get; set; }
    }

    private sealed class IdsRow
    {
        public float[] Ids { get; set; } = [];
    }

    private protected override ITransformer Mapper(DataViewSchema schema)
    {
        int keys = KeyCountOf(schema, InputColumnName);
        if (keys != KeyCount)
            throw new ArgumentOutOfRangeException(InputColumnName, $"The token column '{InputColumnName}' has {keys} keys, but the model was trained on {KeyCount}: " +
                "use the key map fitted with the model (the same MapValueToKey transformer).");
        var input = SchemaDefinition.Create(typeof(KeysRow));
        var keysColumn = input[nameof(KeysRow.Keys)];
        keysColumn.ColumnName = InputColumnName;
        keysColumn.ColumnType = schema[InputColumnName].Type;
        var output = SchemaDefinition.Create(typeof(IdsRow));
        var idsColumn = output[nameof(IdsRow.Ids)];
        idsColumn.ColumnName = OutputColumnName;
        idsColumn.ColumnType = new VectorDataViewType(NumberDataViewType.Single, MaxLength);
        var ml = new MLContext(seed: 0);
        var mapping = ml.Transforms.CustomMapping<KeysRow, IdsRow>((row, result) =>
        {
            var values = row.Keys.DenseValues().ToArray();
            result.Ids = Pad(values);
        }, contractName: null, input, output);
        return mapping.Fit(ml.Data.LoadFromEnumerable(new List<KeysRow>(), input));
    }
}

/// <summary>How a saved <see cref="TokenKeyPaddingTransformer"/> is read back.</summary>
internal sealed class TokenKeyPaddingFormat : TransformModelFormat
{
    public override string Kind => TokenKeyPaddingTransformer.KindName;

    public override ITransformer Create(JsonObject settings) =>
        new TokenKeyPaddingTransformer((string?)settings["output"] ?? throw new InvalidDataException("its output column is missing."),
            (string?)settings["input"] ?? throw new InvalidDataException("its input column is missing."),
            (int?)settings["maxLength"] ?? throw new InvalidDataException("its maxLength is missing."),
            (int?)settings["keyCount"] ?? throw new InvalidDataException("its keyCount is missing."));
}
