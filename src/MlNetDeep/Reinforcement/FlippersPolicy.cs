using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Networks;
using MlNetDeep.Persistence;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Reinforcement;

/// <summary>
/// A trained Flippers policy as an ML.NET transformer: a column of boards (9 values, 0 blank or 1 dot, row by row) in,
/// <c>Action</c> (the tile to flip, 0-8, the greedy move) and <c>QValues</c> (each move's learned value) out. Works with
/// Transform, PredictionEngine and SaveDeep/LoadDeep. A board value other than 0 or 1 is an error naming it. Two forms:
/// a table (<see cref="FlippersPolicyTransformer"/>, from Q-learning or SARSA) and a network
/// (<see cref="FlippersNetworkPolicyTransformer"/>, from a deep Q-network).
/// </summary>
public abstract class FlippersPolicy : Models.Common.RowMappingTransformer, IActionValues
{
    private protected FlippersPolicy(string boardColumnName, string actionColumnName, string valuesColumnName)
    {
        foreach (var (name, value) in new[] { ("boardColumnName", boardColumnName), ("actionColumnName", actionColumnName), ("valuesColumnName", valuesColumnName) })
            if (string.IsNullOrWhiteSpace(value)) throw new ArgumentException($"{name} must name a column.", name);
        if (actionColumnName == valuesColumnName) throw new ArgumentException("The action and value columns need two different names.", nameof(valuesColumnName));
        BoardColumnName = boardColumnName;
        ActionColumnName = actionColumnName;
        ValuesColumnName = valuesColumnName;
    }

    public string BoardColumnName { get; }
    public string ActionColumnName { get; }
    public string ValuesColumnName { get; }

    /// <summary>The greedy move on <paramref name="board"/> (lowest tile on ties).</summary>
    public int Action(int board) => ActionValues.ArgMax(Values(board));

    int IActionValues.Greedy(int state) => Action(state);

    /// <summary>Each move's learned value on <paramref name="board"/>.</summary>
    public abstract double[] Values(int board);

    private protected static void CheckBoard(int board)
    {
        if (board is < 0 or >= Flippers.Boards) throw new ArgumentOutOfRangeException(nameof(board), board, "A Flippers board is 0 to 511.");
    }

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
            var q = Values(state);
            result.Action = ActionValues.ArgMax(q);
            result.QValues = q.Select(v => (float)v).ToArray();
        }, contractName: null, input, output);
        return mapping.Fit(ml.Data.LoadFromEnumerable(new List<BoardRow>(), input));
    }
}

/// <summary>A Flippers policy held as a table of 512 x 9 values (Q-learning, SARSA); SaveDeep/LoadDeep keep the table.</summary>
public sealed class FlippersPolicyTransformer : FlippersPolicy, IPersistentTransformer
{
    internal const string KindName = "FlippersPolicy";

    private readonly double[] _values;

    internal FlippersPolicyTransformer(double[] values, string boardColumnName, string actionColumnName, string valuesColumnName)
        : base(boardColumnName, actionColumnName, valuesColumnName)
    {
        if (values.Length != Flippers.Boards * Flippers.Tiles) throw new ArgumentException($"A Flippers table holds {Flippers.Boards * Flippers.Tiles} values, not {values.Length}.", nameof(values));
        if (values.Any(v => !double.IsFinite(v))) throw new ArgumentException("A Flippers table holds finite values only.", nameof(values));
        _values = values;
    }

    public override double[] Values(int board)
    {
        CheckBoard(board);
        return _values.AsSpan(board * Flippers.Tiles, Flippers.Tiles).ToArray();
    }

    string IPersistentTransformer.Kind => KindName;

    JsonObject IPersistentTransformer.Settings() => new()
    {
        ["board"] = BoardColumnName, ["action"] = ActionColumnName, ["values"] = ValuesColumnName,
        ["table"] = new JsonArray(_values.Select(v => (JsonNode)JsonValue.Create(v)).ToArray()),
    };
}

/// <summary>
/// A Flippers policy held as a Q-network (a deep Q-network's): the board's nine tiles in, nine move values out.
/// SaveDeep/LoadDeep keep the network (its spec and checked weights). Thread-safe.
/// </summary>
public sealed class FlippersNetworkPolicyTransformer : FlippersPolicy, ISavedNetwork, IDisposable
{
    internal const string KindName = "FlippersNetworkPolicy";

    private readonly nn.Module<Tensor, Tensor> _module;
    private readonly Device _device;
    private readonly object _gate = new();
    private bool _disposed;

    internal FlippersNetworkPolicyTransformer(nn.Module<Tensor, Tensor> module, NetworkSpec network, string boardColumnName, string actionColumnName,
        string valuesColumnName, Device device) : base(boardColumnName, actionColumnName, valuesColumnName)
    {
        _module = module;
        _device = device;
        Network = network;
    }

    /// <summary>The network's architecture.</summary>
    public NetworkSpec Network { get; }

    public override double[] Values(int board)
    {
        CheckBoard(board);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var features = new float[Flippers.Tiles];
            for (int i = 0; i < Flippers.Tiles; i++) features[i] = board >> i & 1;
            using var x = tensor(features, [1, Flippers.Tiles]).to(_device);
            return _module.call(x)[0].to(float64).cpu().data<double>().ToArray();
        }
    }

    nn.Module ISavedNetwork.Module => _module;

    TransformerRecord ISavedNetwork.ToRecord() => new TransformerRecord
    {
        Kind = KindName, FeatureColumnName = BoardColumnName, InputShape = [Flippers.Tiles], Network = Network,
    }
        .With("action", ActionColumnName)
        .With("values", ValuesColumnName);

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _module.Dispose();
        }
    }
}

/// <summary>How a saved <see cref="FlippersNetworkPolicyTransformer"/> is read back: nine tiles in, nine move values out.</summary>
internal sealed class FlippersNetworkPolicyFormat : NetworkModelFormat
{
    public override string Kind => FlippersNetworkPolicyTransformer.KindName;

    public override nn.Module BuildModule(TransformerRecord record)
    {
        if (record.InputShape is not [Flippers.Tiles])
            throw new InvalidDataException($"its input shape [{string.Join(", ", record.InputShape ?? [])}] is not a Flippers board of {Flippers.Tiles} tiles.");
        if (record.Network.OutputShape(record.InputShape) is not [Flippers.Tiles])
            throw new InvalidDataException($"its network does not output {Flippers.Tiles} move values.");
        return record.Network.Build(record.InputShape);
    }

    public override ITransformer Create(TransformerRecord record, nn.Module module, Device device) =>
        new FlippersNetworkPolicyTransformer((nn.Module<Tensor, Tensor>)module, record.Network, record.FeatureColumnName,
            record.Get<string>("action"), record.Get<string>("values"), device);
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
