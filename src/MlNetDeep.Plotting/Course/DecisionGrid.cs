using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;

namespace MlNetDeep.Plotting.Course;

/// <summary>
/// A grid of points over 2-D toy data (half a unit beyond it on each side), scored by a two-class model to draw its
/// decision regions under the data's points.
/// </summary>
internal sealed class DecisionGrid
{
    private readonly int _side;
    private readonly double _xMin, _xMax, _yMin, _yMax;

    public DecisionGrid(MLContext ml, IReadOnlyList<ToyPoint> points, int side = 120)
    {
        _side = side;
        (_xMin, _xMax) = (points.Min(p => p.Features[0]) - 0.5, points.Max(p => p.Features[0]) + 0.5);
        (_yMin, _yMax) = (points.Min(p => p.Features[1]) - 0.5, points.Max(p => p.Features[1]) + 0.5);
        var grid = new List<ToyPoint>(side * side);
        for (int r = 0; r < side; r++)
            for (int c = 0; c < side; c++)
                grid.Add(new ToyPoint { Features = [(float)(_xMin + (_xMax - _xMin) * c / (side - 1)), (float)(_yMin + (_yMax - _yMin) * r / (side - 1))] });
        Data = ml.Data.LoadFromEnumerable(grid);
    }

    /// <summary>The grid's points as an IDataView with a <c>Features</c> column.</summary>
    public IDataView Data { get; }

    /// <summary>The model's class-1 probability (its Score column's second value) over the grid, with <paramref name="shown"/> on top.</summary>
    public ScottPlot.Plot Plot(ITransformer model, IReadOnlyList<ToyPoint> shown, string title)
    {
        var scores = model.Transform(Data).GetColumn<float[]>("Score").ToArray();
        var probability = new double[_side, _side];
        for (int i = 0; i < scores.Length; i++) probability[i / _side, i % _side] = scores[i][1];
        return PointCharts.DecisionRegions(probability, _xMin, _xMax, _yMin, _yMax, shown.Select(p => p.Features).ToList(),
            shown.Select(p => (int)p.Label).ToList(), title);
    }
}
