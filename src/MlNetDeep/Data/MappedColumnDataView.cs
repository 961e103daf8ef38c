using Microsoft.ML;
using Microsoft.ML.Data;

namespace MlNetDeep.Data;

/// <summary>
/// A lazy view of <c>input</c> with one more vector&lt;float&gt; column computed row by row from a float (or known-size
/// float vector) column. The input's own columns pass through; the new column hides an input column of the same name.
/// </summary>
internal sealed class MappedColumnDataView : IDataView
{
    /// <summary>Writes the output values (length OutputSize) for one row's input values.</summary>
    public delegate void RowMap(ReadOnlySpan<float> input, Span<float> output);

    private readonly IDataView _input;
    private readonly DataViewSchema.Column _source;
    private readonly int _inputSize, _outputSize;
    private readonly RowMap _map;

    public MappedColumnDataView(IDataView input, string sourceColumn, int inputSize, string outputColumn, int outputSize, RowMap map)
    {
        _input = input;
        _source = input.Schema[sourceColumn];
        _inputSize = inputSize;
        _outputSize = outputSize;
        _map = map;
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(input.Schema);
        builder.AddColumn(outputColumn, new VectorDataViewType(NumberDataViewType.Single, outputSize));
        Schema = builder.ToSchema();
    }

    public bool CanShuffle => _input.CanShuffle;
    public DataViewSchema Schema { get; }
    public long? GetRowCount() => _input.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.Select(c => c.Index).ToHashSet();
        int added = _input.Schema.Count;
        var inputColumns = _input.Schema.Where(c => needed.Contains(c.Index) || (needed.Contains(added) && c.Index == _source.Index)).ToList();
        return new Cursor(this, _input.GetRowCursor(inputColumns, rand), needed);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    /// <summary>Row-to-row mapping for PredictionEngine: the same computation on one row at a time.</summary>
    public IRowToRowMapper AsRowToRowMapper() => new Mapper(this);

    private sealed class Cursor(MappedColumnDataView parent, DataViewRowCursor input, HashSet<int> active) : DataViewRowCursor
    {
        private readonly MappedRow _row = new(parent, input, active);

        public override DataViewSchema Schema => parent.Schema;
        public override long Position => input.Position;
        public override long Batch => input.Batch;
        public override bool MoveNext() => input.MoveNext();
        public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();
        public override bool IsColumnActive(DataViewSchema.Column column) => _row.IsColumnActive(column);
        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) => _row.GetGetter<TValue>(column);

        protected override void Dispose(bool disposing)
        {
            if (disposing) input.Dispose();
            base.Dispose(disposing);
        }
    }

    private sealed class Mapper(MappedColumnDataView parent) : IRowToRowMapper
    {
        public DataViewSchema InputSchema => parent._input.Schema;
        public DataViewSchema OutputSchema => parent.Schema;

        public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
        {
            int added = InputSchema.Count;
            var needed = dependingColumns.Where(c => c.Index < added).Select(c => InputSchema[c.Index]).ToList();
            if (dependingColumns.Any(c => c.Index == added)) needed.Add(parent._source);
            return needed.DistinctBy(c => c.Index);
        }

        public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) =>
            new MappedRow(parent, input, activeColumns.Select(c => c.Index).ToHashSet());
    }

    /// <summary>One input row plus the computed column, computed once per row position when read.</summary>
    private sealed class MappedRow : DataViewRow
    {
        private readonly MappedColumnDataView _parent;
        private readonly DataViewRow _input;
        private readonly HashSet<int> _active;
        private readonly FeatureRowReader? _reader;
        private readonly float[] _inputValues, _outputValues;
        private long _computedFor = -1;

        public MappedRow(MappedColumnDataView parent, DataViewRow input, HashSet<int> active)
        {
            _parent = parent;
            _input = input;
            _active = active;
            _inputValues = new float[parent._inputSize];
            _outputValues = new float[parent._outputSize];
            if (active.Contains(parent._input.Schema.Count)) _reader = new FeatureRowReader(input, input.Schema[parent._source.Index], parent._inputSize);
        }

        public override DataViewSchema Schema => _parent.Schema;
        public override long Position => _input.Position;
        public override long Batch => _input.Batch;
        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();
        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index < _parent._input.Schema.Count) return _input.GetGetter<TValue>(_input.Schema[column.Index]);
            if (_reader is null) throw new InvalidOperationException($"Column '{column.Name}' was not requested when the cursor was made.");
            if (typeof(TValue) != typeof(VBuffer<float>))
                throw new InvalidOperationException($"Column '{column.Name}' is {column.Type}; ask for VBuffer<float>, not {typeof(TValue).Name}.");
            ValueGetter<VBuffer<float>> getter = (ref VBuffer<float> value) =>
            {
                // PredictionEngine reuses one row object: recompute when the position moved or is not tracked (-1).
                if (_computedFor != _input.Position || _input.Position < 0)
                {
                    _reader.Read(_inputValues, _input.Position);
                    _parent._map(_inputValues, _outputValues);
                    _computedFor = _input.Position;
                }
                var editor = VBufferEditor.Create(ref value, _outputValues.Length);
                _outputValues.CopyTo(editor.Values);
                value = editor.Commit();
            };
            return (ValueGetter<TValue>)(Delegate)getter;
        }
    }
}
