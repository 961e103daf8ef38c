using Microsoft.ML;
using Microsoft.ML.Data;

namespace MlNetDeep.Data;

/// <summary>
/// Univariate series for forecasting with a network: a seeded noisy seasonal series, a numeric column of a CSV file
/// (read with ML.NET's TextLoader), and sliding windows of lags with the value after them as the label.
/// </summary>
public static class TimeSeries
{
    /// <summary>The column of lags that <see cref="LoadSeriesWindows"/> fills.</summary>
    public const string LagsColumn = "Lags";

    /// <summary>
    /// <paramref name="length"/> values of level + trend·t + amplitude·sin(2πt/period) + a half-amplitude second
    /// harmonic + Gaussian noise of standard deviation <paramref name="noise"/>, from <paramref name="seed"/>.
    /// </summary>
    public static float[] Seasonal(int length, int period = 24, double level = 20, double amplitude = 10, double trend = 0.01, double noise = 1.0, int seed = 1)
    {
        if (length <= 0) throw new ArgumentOutOfRangeException(nameof(length), length, "The series needs at least one value.");
        if (period < 2) throw new ArgumentOutOfRangeException(nameof(period), period, "A season needs at least 2 steps.");
        if (!(noise >= 0) || !double.IsFinite(noise)) throw new ArgumentOutOfRangeException(nameof(noise), noise, "The noise must be a finite number >= 0.");
        var random = new Random(seed);
        var values = new float[length];
        for (int t = 0; t < length; t++)
        {
            double phase = 2 * Math.PI * t / period;
            double gaussian = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
            values[t] = (float)(level + trend * t + amplitude * Math.Sin(phase) + amplitude / 2 * Math.Sin(2 * phase + 1) + noise * gaussian);
        }
        return values;
    }

    /// <summary>
    /// The values of the numeric column <paramref name="column"/> (a header name) of a CSV file, in file order, read
    /// with ML.NET's TextLoader. A missing column, an empty file, or a value that is not a number is an error naming the row.
    /// </summary>
    public static float[] ReadCsvColumn(MLContext mlContext, string path, string column, char separator = ',')
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentException.ThrowIfNullOrWhiteSpace(column);
        if (!File.Exists(path)) throw new FileNotFoundException($"The CSV file {path} does not exist.", path);
        var all = mlContext.Data.LoadFromTextFile(path, new TextLoader.Options
        {
            HasHeader = false, Separators = [separator], AllowQuoting = true,
            Columns = [new TextLoader.Column("Fields", DataKind.String, [new TextLoader.Range(0, null) { AutoEnd = false, VariableEnd = true }])],
        });
        var header = all.Preview(maxRows: 1).RowView.FirstOrDefault()?.Values[0].Value is VBuffer<ReadOnlyMemory<char>> fields
            ? fields.DenseValues().Select(f => f.ToString().Trim()).ToList()
            : throw new InvalidDataException($"The CSV file {path} is empty.");
        int index = header.IndexOf(column);
        if (index < 0) throw new ArgumentException($"The CSV file {path} has no column '{column}'; its columns: {string.Join(", ", header)}.", nameof(column));
        var data = mlContext.Data.LoadFromTextFile(path, new TextLoader.Options
        {
            HasHeader = true, Separators = [separator], AllowQuoting = true, Columns = [new TextLoader.Column("Value", DataKind.Single, index)],
        });
        var values = data.GetColumn<float>("Value").ToArray();
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i]))
                throw new InvalidDataException($"The CSV file {path}, data row {i + 1}: column '{column}' is not a number (empty or text).");
        if (values.Length == 0) throw new InvalidDataException($"The CSV file {path} has a header but no rows.");
        return values;
    }

    /// <summary>
    /// Rows of <paramref name="window"/> consecutive values (<see cref="LagsColumn"/>, shape [window, 1] for a recurrent
    /// layer) and the value <paramref name="horizon"/> steps after the last of them (Label), for every position whose
    /// label index lies in [<paramref name="firstLabel"/>, <paramref name="endLabel"/>): split a series by time with two calls.
    /// With <paramref name="relativeToLast"/> the lags and the label are taken relative to the last lag (its value is in
    /// the <c>Last</c> column: forecast = Last + prediction), so a model learns the change, not the level, and a trend or
    /// level beyond the training range does not push its inputs where it never saw any.
    /// </summary>
    public static IDataView LoadSeriesWindows(this DataOperationsCatalog catalog, IReadOnlyList<float> series, int window, int horizon = 1,
        int firstLabel = 0, int? endLabel = null, bool relativeToLast = false)
    {
        ArgumentNullException.ThrowIfNull(series);
        if (window <= 0) throw new ArgumentOutOfRangeException(nameof(window), window, "A window needs at least one value.");
        if (horizon <= 0) throw new ArgumentOutOfRangeException(nameof(horizon), horizon, "The horizon must be at least 1 step.");
        if ((long)window + horizon > series.Count)
            throw new ArgumentException($"No window fits: a series of {series.Count} values cannot hold {window} lags and a horizon of {horizon}.", nameof(series));
        int end = Math.Min(endLabel ?? series.Count, series.Count), start = Math.Max(firstLabel, window + horizon - 1);
        if (start >= end)
            throw new ArgumentException($"No window fits: a series of {series.Count} values with labels from {firstLabel} to {end} cannot hold {window} lags and a horizon of {horizon}.", nameof(series));
        var rows = new List<WindowRow>(end - start);
        for (int label = start; label < end; label++)
        {
            var lags = new float[window];
            int first = label - horizon - window + 1;
            for (int i = 0; i < window; i++) lags[i] = series[first + i];
            float last = lags[^1], offset = relativeToLast ? last : 0;
            if (relativeToLast) for (int i = 0; i < window; i++) lags[i] -= offset;
            rows.Add(new WindowRow { Lags = lags, Label = series[label] - offset, Time = label, Last = last });
        }
        var schema = SchemaDefinition.Create(typeof(WindowRow));
        schema[nameof(WindowRow.Lags)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, window);
        return catalog.LoadFromEnumerable(rows, schema);
    }

    private sealed class WindowRow
    {
        public float[] Lags { get; set; } = [];
        public float Label { get; set; }
        public int Time { get; set; }
        public float Last { get; set; }
    }
}
