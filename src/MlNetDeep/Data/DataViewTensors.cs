using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Data;

/// <summary>
/// Reads a float feature column row by row into flat float arrays through one reused VBuffer. Used for training (whole
/// data), scoring (batches) and single-row prediction alike. With <c>finiteOnly</c> (training) every value must be
/// finite; scoring passes NaN and infinities on to the network, so such a row gets NaN scores as in ML.NET.
/// </summary>
internal sealed class FeatureRowReader
{
    private readonly ValueGetter<VBuffer<float>>? _vectorGetter;
    private readonly ValueGetter<float>? _scalarGetter;
    private readonly bool _finiteOnly;
    private VBuffer<float> _buffer;
    private float _scalar;

    public FeatureRowReader(DataViewRow row, DataViewSchema.Column column, int size, bool finiteOnly = true)
    {
        Column = column;
        Size = size;
        _finiteOnly = finiteOnly;
        if (column.Type is VectorDataViewType) _vectorGetter = row.GetGetter<VBuffer<float>>(column);
        else _scalarGetter = row.GetGetter<float>(column);
    }

    public DataViewSchema.Column Column { get; }
    public int Size { get; }

    /// <summary>Copies the current row's features into <paramref name="destination"/> (length <see cref="Size"/>).</summary>
    public void Read(Span<float> destination, long row)
    {
        if (_scalarGetter is not null)
        {
            _scalarGetter(ref _scalar);
            destination[0] = _scalar;
        }
        else
        {
            _vectorGetter!(ref _buffer);
            if (_buffer.Length != Size)
                throw new InvalidOperationException($"Column '{Column.Name}' row {row} has {_buffer.Length} values; expected {Size}.");
            _buffer.CopyTo(destination);
        }
        for (int i = 0; _finiteOnly && i < destination.Length; i++)
        {
            if (!float.IsFinite(destination[i]))
                throw new InvalidOperationException($"Column '{Column.Name}' row {row} slot {i} holds {destination[i]}; deep models need finite features. " +
                    "Replace missing values (mlContext.Transforms.ReplaceMissingValues) or filter those rows first.");
        }
    }
}

/// <summary>
/// How a label column becomes a training target; <see cref="Inputs"/> means the features are their own target
/// (autoencoders: a clean copy stays the target when the training inputs are corrupted); <see cref="Boolean"/> reads a
/// Boolean label as a float target, 1 for true and 0 for false.
/// </summary>
internal enum LabelKind { None, ClassIndex, Float, Inputs, Boolean }

/// <summary>Whole columns read into memory: features [rows x size] and the labels as class indices or floats.</summary>
internal sealed class LoadedColumns
{
    public required float[] Features { get; init; }
    public required int Rows { get; init; }
    public required int FeatureSize { get; init; }
    public long[]? ClassIndices { get; init; }
    public float[]? Targets { get; init; }

    /// <summary>True when the features are also the targets (<see cref="LabelKind.Inputs"/>).</summary>
    public bool InputsAreTargets { get; init; }

    /// <summary>Rows left out because their label was missing (key 0, or a NaN or infinite float label).</summary>
    public long SkippedRows { get; init; }

    /// <summary>The label column read, if any.</summary>
    public string? LabelColumnName { get; init; }

    /// <summary>Tensors on the CPU: inputs shaped [rows, ...sampleShape], targets int64 class indices or float.</summary>
    public Training.TensorData ToTensorData(int[] sampleShape)
    {
        var inputs = tensor(Features, [Rows, .. sampleShape.Select(d => (long)d)]);
        if (InputsAreTargets) return new Training.TensorData(inputs, inputs);
        Tensor? targets = ClassIndices is not null ? tensor(ClassIndices, [Rows]) : Targets is not null ? tensor(Targets, [Rows]) : null;
        return new Training.TensorData(inputs, targets);
    }
}

/// <summary>IDataView to tensors: one pass with a cursor over the feature (and label) column.</summary>
internal static class DataViewTensors
{
    /// <summary>
    /// Reads the feature column (and the label) into memory. Rows whose label is missing are skipped, as ML.NET's
    /// trainers skip them: a key label of 0 (any key type: Byte, UInt16, UInt32 or UInt64 values), or a float label
    /// that is NaN or infinite. <see cref="LoadedColumns.SkippedRows"/> counts them (<see cref="ReportSkipped"/> logs
    /// the count); a data set whose every label is missing is an error.
    /// </summary>
    public static LoadedColumns Load(IDataView data, string featureColumn, int featureSize, string? labelColumn, LabelKind labelKind, int classCount = 0)
    {
        var features = data.Schema[featureColumn];
        var label = labelColumn is null ? (DataViewSchema.Column?)null : data.Schema[labelColumn];
        var active = label is null ? new[] { features } : new[] { features, label.Value };
        long? known = data.GetRowCount();
        int capacity = (int)Math.Min(known ?? 1024, int.MaxValue / Math.Max(featureSize, 1));
        var x = new float[(long)Math.Max(capacity, 1) * featureSize];
        long[]? classes = labelKind == LabelKind.ClassIndex ? new long[Math.Max(capacity, 1)] : null;
        float[]? targets = labelKind is LabelKind.Float or LabelKind.Boolean ? new float[Math.Max(capacity, 1)] : null;

        using var cursor = data.GetRowCursor(active);
        var reader = new FeatureRowReader(cursor, features, featureSize);
        Func<ulong>? keyGetter = labelKind == LabelKind.ClassIndex ? KeyReader(cursor, label!.Value) : null;
        ValueGetter<float>? floatGetter = labelKind == LabelKind.Float ? cursor.GetGetter<float>(label!.Value) : null;
        ValueGetter<bool>? boolGetter = labelKind == LabelKind.Boolean ? cursor.GetGetter<bool>(label!.Value) : null;
        float value = 0;
        bool flag = false;
        int rows = 0;
        long row = -1, skipped = 0;
        while (cursor.MoveNext())
        {
            row++;
            long key = 0;
            if (keyGetter is not null)
            {
                ulong raw = keyGetter();
                if (raw == 0) { skipped++; continue; }
                if (classCount > 0 && raw > (ulong)classCount) throw new InvalidOperationException($"Label column '{labelColumn}' row {row} has key {raw}, beyond its {classCount} classes.");
                key = (long)(raw - 1);
            }
            else if (floatGetter is not null)
            {
                floatGetter(ref value);
                if (!float.IsFinite(value)) { skipped++; continue; }
            }
            else boolGetter?.Invoke(ref flag);

            if ((long)(rows + 1) * featureSize > x.Length)
            {
                long grown = Math.Min((long)x.Length * 2, (long)int.MaxValue / featureSize * featureSize);
                if (grown <= x.Length) throw new InvalidOperationException($"Column '{featureColumn}' holds more rows than fit in one array.");
                Array.Resize(ref x, (int)grown);
                if (classes is not null) Array.Resize(ref classes, (int)(grown / featureSize));
                if (targets is not null) Array.Resize(ref targets, (int)(grown / featureSize));
            }
            reader.Read(x.AsSpan(rows * featureSize, featureSize), row);
            if (classes is not null) classes[rows] = key;
            else if (targets is not null) targets[rows] = floatGetter is not null ? value : flag ? 1f : 0f;
            rows++;
        }
        if (rows == 0 && skipped > 0)
            throw new InvalidOperationException($"Every row's label is missing: all {skipped:N0} rows of label column '{labelColumn}' hold " +
                (labelKind == LabelKind.ClassIndex ? "key 0 (a value the key mapping did not know)" : "NaN or an infinite value") +
                ", so there is nothing to train on. Check the label column and how it was mapped.");
        if (rows == 0) throw new InvalidOperationException($"The data has no rows: nothing to train on (column '{featureColumn}').");
        if ((long)rows * featureSize != x.Length) Array.Resize(ref x, rows * featureSize);
        if (classes is not null && classes.Length != rows) Array.Resize(ref classes, rows);
        if (targets is not null && targets.Length != rows) Array.Resize(ref targets, rows);
        return new LoadedColumns { Features = x, Rows = rows, FeatureSize = featureSize, ClassIndices = classes, Targets = targets,
            InputsAreTargets = labelKind == LabelKind.Inputs, SkippedRows = skipped, LabelColumnName = labelColumn };
    }

    /// <summary>Reads a key column of any of ML.NET's key types (Byte, UInt16, UInt32 or UInt64 values) as a ulong; 0 is a missing key.</summary>
    private static Func<ulong> KeyReader(DataViewRow row, DataViewSchema.Column column)
    {
        var raw = column.Type.RawType;
        if (raw == typeof(uint)) return Reader<uint>(row, column, v => v);
        if (raw == typeof(byte)) return Reader<byte>(row, column, v => v);
        if (raw == typeof(ushort)) return Reader<ushort>(row, column, v => v);
        if (raw == typeof(ulong)) return Reader<ulong>(row, column, v => v);
        throw new ArgumentOutOfRangeException("LabelColumnName", $"The label column '{column.Name}' must be a key type (of Byte, UInt16, UInt32 or UInt64 values), but is {column.Type}.");

        static Func<ulong> Reader<T>(DataViewRow row, DataViewSchema.Column column, Func<T, ulong> widen)
        {
            var getter = row.GetGetter<T>(column);
            T value = default!;
            return () =>
            {
                getter(ref value);
                return widen(value);
            };
        }
    }

    /// <summary>
    /// Logs how many rows <see cref="Load"/> skipped for a missing label as a warning on <paramref name="env"/>'s log
    /// (<c>MLContext.Log</c>), as ML.NET's trainers do; nothing when none was skipped.
    /// </summary>
    public static void ReportSkipped(IHostEnvironment env, string name, LoadedColumns loaded, string dataName)
    {
        if (loaded.SkippedRows == 0) return;
        using var channel = env.Register(name).Start("Reading " + dataName);
        channel.Warning(MessageSensitivity.None, $"Skipped {loaded.SkippedRows:N0} of {loaded.SkippedRows + loaded.Rows:N0} rows of the {dataName} " +
            $"whose label '{loaded.LabelColumnName}' is missing (key 0, or a NaN or infinite float); trained on the other {loaded.Rows:N0}.");
    }

    /// <summary>Splits rows into (train, validation) after a seeded shuffle; <paramref name="fraction"/> of the rows validate.</summary>
    public static (Training.TensorData Train, Training.TensorData Validation) Split(Training.TensorData data, double fraction, int seed)
    {
        long n = data.Count;
        long validationRows = (long)Math.Round(n * fraction);
        if (validationRows < 1 || validationRows >= n)
            throw new InvalidOperationException($"ValidationFraction {fraction} of {n} rows leaves no rows for training or validation.");
        using var generator = new Generator((ulong)(uint)seed);
        using var order = randperm(n, generator: generator);
        using var trainIndex = order.slice(0, 0, n - validationRows, 1);
        using var validationIndex = order.slice(0, n - validationRows, n, 1);
        var (tx, ty) = data.Select(trainIndex);
        var (vx, vy) = data.Select(validationIndex);
        return (new Training.TensorData(tx, ty), new Training.TensorData(vx, vy));
    }
}
