using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;

namespace MlNetDeep.Models.Common;

/// <summary>
/// The lazy output of a deep transformer: the input's rows and columns plus the transformer's output columns,
/// scored batch by batch as a cursor moves. A second cursor over the input reads the features one batch ahead,
/// so the network runs once per batch while the input's own columns pass through untouched.
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

    public bool CanShuffle => false;
    public DataViewSchema Schema { get; }
    public long? GetRowCount() => _input.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.Select(c => c.Index).ToHashSet();
        int inputCount = _input.Schema.Count;
        bool scoring = needed.Any(i => i >= inputCount);
        var inputColumns = _input.Schema.Where(c => needed.Contains(c.Index)).ToList();
        var cursor = _input.GetRowCursor(inputColumns);
        var lookahead = scoring ? _input.GetRowCursor([_input.Schema[_transformer.FeatureColumnName]]) : null;
        return new Cursor(this, cursor, lookahead, needed);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    private sealed class Cursor : DataViewRowCursor, IScoredRow
    {
        private readonly ScoringDataView _parent;
        private readonly DataViewRowCursor _input;
        private readonly DataViewRowCursor? _lookahead;
        private readonly HashSet<int> _active;
        private readonly FeatureRowReader? _reader;
        private readonly Delegate?[] _outputGetters;
        private readonly int _width, _featureSize, _batchSize;
        private float[] _features = [], _outputs = [];
        private int _inBatch, _position = -1;

        public Cursor(ScoringDataView parent, DataViewRowCursor input, DataViewRowCursor? lookahead, HashSet<int> active)
        {
            _parent = parent;
            _input = input;
            _lookahead = lookahead;
            _active = active;
            var transformer = parent._transformer;
            _width = transformer.OutputWidth;
            _featureSize = transformer.FeatureSize;
            _batchSize = transformer.ScoringBatchSize;
            if (lookahead is not null) _reader = new FeatureRowReader(lookahead, lookahead.Schema[transformer.FeatureColumnName], _featureSize);
            var columns = transformer.OutputColumns;
            _outputGetters = new Delegate?[columns.Count];
            for (int i = 0; i < columns.Count; i++)
                if (active.Contains(parent._input.Schema.Count + i)) _outputGetters[i] = columns[i].CreateGetter(this);
        }

        public override DataViewSchema Schema => _parent.Schema;
        public override long Position => _input.Position;
        public override long Batch => _input.Batch;
        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();
        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        public ReadOnlySpan<float> Outputs => _outputs.AsSpan(_position * _width, _width);

        public override bool MoveNext()
        {
            if (!_input.MoveNext()) return false;
            if (_lookahead is null) return true;
            if (++_position >= _inBatch) ScoreNextBatch();
            return true;
        }

        private void ScoreNextBatch()
        {
            if (_features.Length == 0)
            {
                _features = new float[_batchSize * _featureSize];
                _outputs = new float[_batchSize * _width];
            }
            int rows = 0;
            while (rows < _batchSize && _lookahead!.MoveNext())
            {
                _reader!.Read(_features.AsSpan(rows * _featureSize, _featureSize), _lookahead.Position);
                rows++;
            }
            if (rows == 0) throw new InvalidOperationException("The input changed while it was being scored: the feature cursor ended before the row cursor.");
            _parent._transformer.Score(_features, rows, _outputs);
            _inBatch = rows;
            _position = 0;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            int inputCount = _parent._input.Schema.Count;
            if (column.Index < inputCount) return _input.GetGetter<TValue>(_input.Schema[column.Index]);
            var getter = _outputGetters[column.Index - inputCount]
                ?? throw new InvalidOperationException($"Column '{column.Name}' was not requested when this cursor was made.");
            return getter as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' is {column.Type}, not {typeof(TValue).Name}.");
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) { _input.Dispose(); _lookahead?.Dispose(); }
            base.Dispose(disposing);
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
            if (any) _reader = new FeatureRowReader(input, input.Schema[t.FeatureColumnName], t.FeatureSize);
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
