using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;

namespace MlNetDeep.Models.Common;

/// <summary>
/// The lazy output of a deep transformer: the input's rows and columns plus the transformer's output columns, scored
/// batch by batch as a cursor moves. One cursor over the input serves both: a batch of rows is read from it (the
/// features and the values of the input columns asked for), scored in one forward pass, then handed out row by row.
/// So every score belongs to the row it is shown with, even when the input gives different rows on each pass, and
/// chained deep stages read their source once.
/// </summary>
internal sealed class ScoringDataView : IDataView
{
    private readonly IDataView _input;
    private readonly DeepTransformer _transformer;

    public ScoringDataView(IDataView input, DeepTransformer transformer)
    {
        _input = input;
        _transformer = transformer;
        Schema = transformer.GetOutputSchema(input.Schema);
    }

    public bool CanShuffle => _input.CanShuffle;
    public DataViewSchema Schema { get; }
    public long? GetRowCount() => _input.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.Select(c => c.Index).ToHashSet();
        int inputCount = _input.Schema.Count;
        bool scoring = needed.Any(i => i >= inputCount);
        var inputColumns = _input.Schema.Where(c => needed.Contains(c.Index)).ToList();
        if (!scoring) return new PassThroughCursor(this, _input.GetRowCursor(inputColumns, rand), needed);
        var feature = _input.Schema[_transformer.FeatureColumnName];
        var cursor = _input.GetRowCursor(inputColumns.Append(feature).DistinctBy(c => c.Index), rand);
        return new BatchCursor(this, cursor, inputColumns, needed);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    /// <summary>A cursor that reads none of the output columns: the input's cursor as it is.</summary>
    private sealed class PassThroughCursor(ScoringDataView parent, DataViewRowCursor input, HashSet<int> active) : DataViewRowCursor
    {
        public override DataViewSchema Schema => parent.Schema;
        public override long Position => input.Position;
        public override long Batch => input.Batch;
        public override bool MoveNext() => input.MoveNext();
        public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();
        public override bool IsColumnActive(DataViewSchema.Column column) => active.Contains(column.Index);
        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) => column.Index < input.Schema.Count
            ? input.GetGetter<TValue>(input.Schema[column.Index])
            : throw new InvalidOperationException($"Column '{column.Name}' was not requested when this cursor was made.");

        protected override void Dispose(bool disposing)
        {
            if (disposing) input.Dispose();
            base.Dispose(disposing);
        }
    }

    /// <summary>
    /// Reads up to ScoringBatchSize rows ahead from the one input cursor, keeping their input values, and scores them.
    /// If reading or scoring a batch fails, every later MoveNext fails too: the input has moved past rows that were never
    /// handed out, so carrying on would pair rows with the wrong scores.
    /// </summary>
    private sealed class BatchCursor : DataViewRowCursor, IScoredRow
    {
        private readonly ScoringDataView _parent;
        private readonly DataViewRowCursor _input;
        private readonly HashSet<int> _active;
        private readonly FeatureRowReader _reader;
        private readonly Dictionary<int, RowValues> _values = [];
        private readonly ValueGetter<DataViewRowId> _idGetter;
        private readonly DataViewRowId[] _ids;
        private readonly Delegate?[] _outputGetters;
        private readonly int _width, _featureSize, _batchSize;
        private readonly float[] _features, _outputs;
        private int _inBatch, _slot = -1;
        private long _position = -1;
        private bool _ended;
        private Exception? _failure;

        public BatchCursor(ScoringDataView parent, DataViewRowCursor input, IReadOnlyList<DataViewSchema.Column> inputColumns, HashSet<int> active)
        {
            _parent = parent;
            _input = input;
            _active = active;
            var transformer = parent._transformer;
            _width = transformer.OutputWidth;
            _featureSize = transformer.FeatureSize;
            _batchSize = transformer.ScoringBatchSize;
            _features = new float[_batchSize * _featureSize];
            _outputs = new float[_batchSize * _width];
            _reader = new FeatureRowReader(input, input.Schema[transformer.FeatureColumnName], _featureSize, finiteOnly: false);
            foreach (var column in inputColumns) _values[column.Index] = RowValues.For(input, column, _batchSize);
            _idGetter = input.GetIdGetter();
            _ids = new DataViewRowId[_batchSize];
            var columns = transformer.OutputColumns;
            _outputGetters = new Delegate?[columns.Count];
            for (int i = 0; i < columns.Count; i++)
                if (active.Contains(parent._input.Schema.Count + i)) _outputGetters[i] = columns[i].CreateGetter(this);
        }

        public override DataViewSchema Schema => _parent.Schema;
        public override long Position => _position;
        public override long Batch => _input.Batch;
        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        public ReadOnlySpan<float> Outputs => _outputs.AsSpan(_slot * _width, _width);

        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId value) => value = _ids[_slot];

        public override bool MoveNext()
        {
            if (_failure is not null)
                throw _failure is ObjectDisposedException disposed
                    ? new ObjectDisposedException(disposed.ObjectName, disposed.Message)
                    : new InvalidOperationException($"This cursor cannot go on after row {_position}: reading or scoring the next batch failed " +
                        $"({_failure.Message}), and the input has moved past rows that were never scored. Open a new cursor.", _failure);
            if (_ended) return false;
            if (++_slot >= _inBatch)
            {
                try
                {
                    if (!ReadBatch())
                    {
                        _ended = true;
                        return false;
                    }
                }
                catch (Exception ex)
                {
                    _failure = ex;
                    throw;
                }
            }
            _position++;
            return true;
        }

        /// <summary>Reads and scores the next batch; false at the end of the input.</summary>
        private bool ReadBatch()
        {
            int rows = 0;
            while (rows < _batchSize && _input.MoveNext())
            {
                _reader.Read(_features.AsSpan(rows * _featureSize, _featureSize), _input.Position);
                foreach (var values in _values.Values) values.Keep(rows);
                _idGetter(ref _ids[rows]);
                rows++;
            }
            if (rows == 0) return false;
            _parent._transformer.Score(_features, rows, _outputs);
            _inBatch = rows;
            _slot = 0;
            return true;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            int inputCount = _parent._input.Schema.Count;
            Delegate? getter = column.Index < inputCount
                ? (_values.TryGetValue(column.Index, out var values) ? values.Getter(() => _slot) : null)
                : _outputGetters[column.Index - inputCount];
            if (getter is null) throw new InvalidOperationException($"Column '{column.Name}' was not requested when this cursor was made.");
            return getter as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' is {column.Type}, not {typeof(TValue).Name}.");
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _input.Dispose();
            base.Dispose(disposing);
        }
    }

    /// <summary>One input column's values for the rows of a batch, kept so the rows can be handed out after scoring.</summary>
    private abstract class RowValues
    {
        /// <summary>Stores the cursor's current value in slot <paramref name="slot"/>.</summary>
        public abstract void Keep(int slot);

        /// <summary>A ValueGetter of the column's type that reads the slot <paramref name="slot"/> gives.</summary>
        public abstract Delegate Getter(Func<int> slot);

        public static RowValues For(DataViewRowCursor cursor, DataViewSchema.Column column, int capacity)
        {
            var type = column.Type.RawType;
            var factory = type.IsGenericType && type.GetGenericTypeDefinition() == typeof(VBuffer<>)
                ? typeof(RowValues).GetMethod(nameof(Vectors), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!.MakeGenericMethod(type.GetGenericArguments()[0])
                : typeof(RowValues).GetMethod(nameof(Values), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!.MakeGenericMethod(type);
            return (RowValues)factory.Invoke(null, [cursor, column, capacity])!;
        }

        private static RowValues Values<T>(DataViewRowCursor cursor, DataViewSchema.Column column, int capacity) =>
            new Scalars<T>(cursor.GetGetter<T>(column), capacity);

        private static RowValues Vectors<T>(DataViewRowCursor cursor, DataViewSchema.Column column, int capacity) =>
            new VectorValues<T>(cursor.GetGetter<VBuffer<T>>(column), capacity);

        private sealed class Scalars<T>(ValueGetter<T> source, int capacity) : RowValues
        {
            private readonly T[] _values = new T[capacity];

            // A fresh default each time, so that a getter reusing or freeing its destination never touches a kept value.
            public override void Keep(int slot)
            {
                T value = default!;
                source(ref value);
                _values[slot] = value;
            }

            public override Delegate Getter(Func<int> slot) => (ValueGetter<T>)((ref T value) => value = _values[slot()]);
        }

        private sealed class VectorValues<T>(ValueGetter<VBuffer<T>> source, int capacity) : RowValues
        {
            private readonly VBuffer<T>[] _values = new VBuffer<T>[capacity];
            private VBuffer<T> _scratch;

            public override void Keep(int slot)
            {
                source(ref _scratch);
                _scratch.CopyTo(ref _values[slot]);
            }

            public override Delegate Getter(Func<int> slot) => (ValueGetter<VBuffer<T>>)((ref VBuffer<T> value) => _values[slot()].CopyTo(ref value));
        }
    }
}

/// <summary>Row-to-row scoring for PredictionEngine: one forward pass per input row, computed when a score is read.</summary>
internal sealed class ScoringRowMapper : IRowToRowMapper
{
    private readonly DeepTransformer _transformer;

    public ScoringRowMapper(DeepTransformer transformer, DataViewSchema inputSchema)
    {
        _transformer = transformer;
        InputSchema = inputSchema;
        OutputSchema = transformer.GetOutputSchema(inputSchema);
    }

    public DataViewSchema InputSchema { get; }
    public DataViewSchema OutputSchema { get; }

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var needed = dependingColumns.Where(c => c.Index < InputSchema.Count).Select(c => InputSchema[c.Index]).ToList();
        if (dependingColumns.Any(c => c.Index >= InputSchema.Count)) needed.Add(InputSchema[_transformer.FeatureColumnName]);
        return needed.DistinctBy(c => c.Index);
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) =>
        new Row(this, input, activeColumns.Select(c => c.Index).ToHashSet());

    private sealed class Row : DataViewRow, IScoredRow
    {
        private readonly ScoringRowMapper _mapper;
        private readonly DataViewRow _input;
        private readonly HashSet<int> _active;
        private readonly Delegate?[] _getters;
        private readonly FeatureRowReader? _reader;
        private readonly float[] _features, _outputs;
        private long _scoredPosition = -1;

        public Row(ScoringRowMapper mapper, DataViewRow input, HashSet<int> active)
        {
            _mapper = mapper;
            _input = input;
            _active = active;
            var t = mapper._transformer;
            _features = new float[t.FeatureSize];
            _outputs = new float[t.OutputWidth];
            var columns = t.OutputColumns;
            _getters = new Delegate?[columns.Count];
            int inputCount = mapper.InputSchema.Count;
            bool any = false;
            for (int i = 0; i < columns.Count; i++)
                if (active.Contains(inputCount + i)) { _getters[i] = columns[i].CreateGetter(this); any = true; }
            if (any) _reader = new FeatureRowReader(input, input.Schema[t.FeatureColumnName], t.FeatureSize, finiteOnly: false);
        }

        public override DataViewSchema Schema => _mapper.OutputSchema;
        public override long Position => _input.Position;
        public override long Batch => _input.Batch;
        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();
        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        public ReadOnlySpan<float> Outputs
        {
            get
            {
                if (_scoredPosition != _input.Position || _input.Position < 0)
                {
                    _reader!.Read(_features, _input.Position);
                    _mapper._transformer.Score(_features, 1, _outputs);
                    _scoredPosition = _input.Position;
                }
                return _outputs;
            }
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            int inputCount = _mapper.InputSchema.Count;
            if (column.Index < inputCount) return _input.GetGetter<TValue>(_input.Schema[column.Index]);
            var getter = _getters[column.Index - inputCount] ?? throw new InvalidOperationException($"Column '{column.Name}' is not active.");
            return getter as ValueGetter<TValue> ?? throw new InvalidOperationException($"Column '{column.Name}' is {column.Type}, not {typeof(TValue).Name}.");
        }
    }
}
