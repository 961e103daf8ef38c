using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Persistence;

namespace MlNetDeep.Reinforcement;

/// <summary>
/// A trained Flippers policy as an ML.NET transformer: a column of boards (9 values, 0 blank or 1 dot, row by row) in,
/// <c>Action</c> (the tile to flip, 0-8, the greedy move) and <c>QValues</c> (each move's learned value) out. Works with
/// Transform, PredictionEngine and SaveDeep/LoadDeep (the table is saved). A board value other than 0 or 1 is an error
/// naming it.
/// </summary>
public sealed class FlippersPolicyTransformer : Models.Common.RowMappingTransformer, IPersistentTransformer
{
    internal const string KindName = "FlippersPolicy";

    private readonly double[] _values;

    internal FlippersPolicyTransformer(double[] values, string boardColumnName, string actionColumnName, string valuesColumnName)
    {
        if (values.Length != Flippers.Boards * Flippers.Tiles) throw new ArgumentException($"A Flippers table holds {Flippers.Boards * Flippers.Tiles} values, not {values.Length}.", nameof(values));
        if (values.Any(v => !double.IsFinite(v))) throw new ArgumentException("A Flippers table holds finite values only.", nameof(values));
        foreach (var (name, value) in new[] { ("boardColumnName", boardColumnName), ("actionColumnName", actionColumnName), ("valuesColumnName", valuesColumnName) })
            if (string.IsNullOrWhiteSpace(value)) throw new ArgumentException($"{name} must name a column.", name);
        if (actionColumnName == valuesColumnName) throw new ArgumentException("The action and value columns need two different names.", nameof(valuesColumnName));
        _values = values;
        BoardColumnName = boardColumnName;
        ActionColumnName = actionColumnName;
        ValuesColumnName = valuesColumnName;
    }

    public string BoardColumnName { get; }
    public string ActionColumnName { get; }
    public string ValuesColumnName { get; }

    /// <summary>The greedy move on <paramref name="board"/> (lowest tile on ties).</summary>
    public int Action(int board)
    {
        var q = Values(board);
        int best = 0;
        for (int a = 1; a < q.Length; a++) if (q[a] > q[best]) best = a;
        return best;
    }

    /// <summary>Each move's learned value on <paramref name="board"/>.</summary>
    public double[] Values(int board)
    {
        if (board is < 0 or >= Flippers.Boards) throw new ArgumentOutOfRangeException(nameof(board), board, "A Flippers board is 0 to 511.");
        return _values.AsSpan(board * Flippers.Tiles, Flippers.Tiles).ToArray();
    }

    string IPersistentTransformer.Kind => KindName;

    JsonObject IPersistentTransformer.Settings() => new()
    {
        ["board"] = BoardColumnName, ["action"] = ActionColumnName, ["values"] = ValuesColumnName,
        ["table"] = new JsonArray(_values.Select(v => (JsonNode)JsonValue.Create(v)).ToArray()),
    };

    private sealed class BoardRow
    {
        public float[] Board { get; set; } = [];
    }

    private sealed class MoveRow
    {
        public int Action { get; set; }
        public float[] QValues { get; set; } = [];
    }

    private protected override ITransformer Mapper(DataViewSchema schema)
    {
        var column = ColumnChecks.Find(schema, BoardColumnName, "board");
        int size = ColumnChecks.RequireFloatFeatures(column, "board");
        if (size != Flippers.Tiles) throw new ArgumentOutOfRangeException(BoardColumnName, $"The board column '{BoardColumnName}' has {size} values per row; a Flippers board has 9.");
        var input = SchemaDefinition.Create(typeof(BoardRow));
        var board = input[nameof(BoardRow.Board)];
        board.ColumnName = BoardColumnName;
        board.ColumnType = new VectorDataViewType(NumberDataViewType.Single, Flippers.Tiles);
        var output = SchemaDefinition.Create(typeof(MoveRow));
        var action = output[nameof(MoveRow.Action)];
        action.ColumnName = ActionColumnName;
        var values = output[nameof(MoveRow.QValues)];
        values.ColumnName = ValuesColumnName;
        values.ColumnType = new VectorDataViewType(NumberDataViewType.Single, Flippers.Tiles);
        var ml = new MLContext(seed: 0);
        var mapping = ml.Transforms.CustomMapping<BoardRow, MoveRow>((row, result) =>
        {
            int state = 0;
            for (int i = 0; i < Flippers.Tiles; i++)
            {
                float v = row.Board[i];
                if (v is not (0f or 1f)) throw new InvalidDataException($"Board value {v} at tile {i}: a Flippers board holds 0 (blank) or 1 (dot).");
                if (v == 1f) state |= 1 << i;
            }
            result.Action = Action(state);
            result.QValues = Values(state).Select(q => (float)q).ToArray();
        }, contractName: null, input, output);
        return mapping.Fit(ml.Data.LoadFromEnumerable(new List<BoardRow>(), input));
    }
}

/// <summary>How a saved <see cref="FlippersPolicyTransformer"/> is read back (its table checked: size and finite values).</summary>
internal sealed class FlippersPolicyFormat : TransformModelFormat
{
    public override string Kind => FlippersPolicyTransformer.KindName;

    public override ITransformer Create(JsonObject settings)
    {
        if (settings["table"] is not JsonArray table || table.Count != Flippers.Boards * Flippers.Tiles)
            throw new InvalidDataException($"its table does not hold {Flippers.Boards * Flippers.Tiles} values.");
        var values = table.Select(v => v is JsonValue value && value.TryGetValue<double>(out var d) && double.IsFinite(d) ? d
            : throw new InvalidDataException("its table holds a value that is not a finite number.")).ToArray();
        return new FlippersPolicyTransformer(values, (string?)settings["board"] ?? throw new InvalidDataException("its board column is missing."),
            (string?)settings["action"] ?? throw new InvalidDataException("its action column is missing."),
            (string?)settings["values"] ?? throw new InvalidDataException("its values column is missing."));
    }
}
