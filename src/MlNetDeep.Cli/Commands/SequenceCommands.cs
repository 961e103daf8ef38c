using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Datasets;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Regression;
using MlNetDeep.Networks;
using MlNetDeep.Training;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// <c>mlnetdeep text classify</c>: which book is a passage from, a sequence classifier against ML.NET's FeaturizeText +
/// a linear trainer in one run; <c>mlnetdeep series forecast</c>: one-step forecasts of a seasonal series (or a CSV
/// column) by an LSTM against ML.NET's own regressors on the same lags and a seasonal naive forecast.
/// </summary>
internal static class SequenceCommands
{
    private sealed class Passage
    {
        public string Text { get; set; } = "";
        public string Book { get; set; } = "";
    }

    public static Command Classify()
    {
        var common = new CommonOptions();
        var books = new Option<string>("--books") { Description = "Comma-separated Gutenberg books, one class each.", DefaultValueFactory = _ => "chesterton-brown,austen-emma,melville-moby_dick" };
        var length = new Option<int>("--passage") { Description = "Characters per passage (cut at a word boundary).", DefaultValueFactory = _ => 250 }.AtLeast(20);
        var perBook = new Option<int>("--per-book") { Description = "Passages per book (the same for every book).", DefaultValueFactory = _ => 1200 }.AtLeast(10);
        var encoder = new Option<string>("--encoder") { Description = "lstm, gru, rnn or conv.", DefaultValueFactory = _ => "lstm" };
        encoder.AcceptOnlyFromAmong("lstm", "gru", "rnn", "conv");
        var epochs = new Option<int>("--epochs", "-e") { Description = "Epochs.", DefaultValueFactory = _ => 6 }.AtLeast(1);
        var maxLength = new Option<int>("--max-length") { Description = "Words read per passage.", DefaultValueFactory = _ => 64 }.AtLeast(1);
        var command = new Command("classify", "Which book is a passage from? A sequence classifier (LSTM or convolution over words) against FeaturizeText + SDCA.")
        {
            books, length, perBook, encoder, epochs, maxLength,
        };
        common.AddTo(command);
        command.SetAction(result =>
        {
            var names = result.GetValue(books)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (names.Length < 2) throw new ArgumentException("--books needs at least two books.");
            var options = new SequenceClassifierOptions
            {
                Encoder = result.GetValue(encoder) switch { "gru" => SequenceEncoderKind.Gru, "rnn" => SequenceEncoderKind.SimpleRnn, "conv" => SequenceEncoderKind.Convolution, _ => SequenceEncoderKind.Lstm },
                Epochs = result.GetValue(epochs), MaxLength = result.GetValue(maxLength),
            };
            return RunClassify(common.CreateContext(result), names, result.GetValue(length), result.GetValue(perBook), options);
        });
        return command;
    }

    private static int RunClassify(MLContext ml, string[] books, int length, int perBook, SequenceClassifierOptions options)
    {
        // Each book's passages in text order; the last fifth of every book is the test set (no passage beside a test passage trains).
        var train = new List<Passage>();
        var test = new List<Passage>();
        foreach (var book in books)
        {
            var passages = TextCorpus.Passages(Gutenberg.ReadBook(book), length);
            if (passages.Count < perBook) throw new ArgumentException($"{book} has only {passages.Count} passages of {length} characters; lower --per-book.");
            // Spread the chosen passages over the whole book.
            var chosen = Enumerable.Range(0, perBook).Select(i => passages[(int)((long)i * passages.Count / perBook)]).ToList();
            int cut = perBook * 4 / 5;
            train.AddRange(chosen.Take(cut).Select(p => new Passage { Text = p, Book = book }));
            test.AddRange(chosen.Skip(cut).Select(p => new Passage { Text = p, Book = book }));
        }
        Console.WriteLine($"{books.Length} books, {perBook} passages of about {length} characters each; train {train.Count}, test {test.Count} (the last fifth of each book)");
        var trainData = ml.Data.ShuffleRows(ml.Data.LoadFromEnumerable(train), seed: 1);
        var testData = ml.Data.LoadFromEnumerable(test);

        var label = ml.Transforms.Conversion.MapValueToKey("Label", "Book");
        var words = ml.Transforms.Text.NormalizeText("Normalized", "Text", keepPunctuations: false)
            .Append(ml.Transforms.Text.TokenizeIntoWords("Words", "Normalized"))
            .Append(ml.Transforms.Conversion.MapValueToKey("Tokens", "Words", maximumNumberOfKeys: 20_000));
        var clock = Stopwatch.StartNew();
        var sequence = ConsoleProgress.Run($"sequence-{options.Encoder.ToString().ToLowerInvariant()}", progress =>
        {
            options.Progress = progress;
            return label.Append(words).Append(ml.MulticlassClassification.Trainers.SequenceClassifier(options)).Fit(trainData);
        });
        double sequenceSeconds = clock.Elapsed.TotalSeconds;
        var sequenceMetrics = ml.MulticlassClassification.Evaluate(sequence.Transform(testData));

        clock.Restart();
        var bag = label.Append(ml.Transforms.Text.FeaturizeText("Features", "Text"))
            .Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy())
            .Fit(trainData);
        double bagSeconds = clock.Elapsed.TotalSeconds;
        var bagMetrics = ml.MulticlassClassification.Evaluate(bag.Transform(testData));

        Console.WriteLine();
        Console.WriteLine($"{"model",-44} {"accuracy",9} {"macro acc",9} {"log-loss",9} {"fit s",7}");
        Console.WriteLine($"{$"SequenceClassifier ({options.Encoder}, {options.Units} units)",-44} {sequenceMetrics.MicroAccuracy,9:P2} {sequenceMetrics.MacroAccuracy,9:P2} {sequenceMetrics.LogLoss,9:F4} {sequenceSeconds,7:F0}");
        Console.WriteLine($"{"FeaturizeText + SdcaMaximumEntropy",-44} {bagMetrics.MicroAccuracy,9:P2} {bagMetrics.MacroAccuracy,9:P2} {bagMetrics.LogLoss,9:F4} {bagSeconds,7:F0}");
        return 0;
    }

    public static Command Forecast()
    {
        var common = new CommonOptions();
        var csv = new Option<string?>("--csv") { Description = "A CSV file with a header; forecast its --column (default: a generated noisy seasonal series)." }.ExistingFile();
        var column = new Option<string?>("--column") { Description = "The CSV column to forecast." };
        var length = new Option<int>("--length") { Description = "Length of the generated series.", DefaultValueFactory = _ => 2000 }.AtLeast(100);
        var period = new Option<int>("--period") { Description = "Season length of the generated series (and of the seasonal naive forecast).", DefaultValueFactory = _ => 24 }.AtLeast(2);
        var window = new Option<int>("--window") { Description = "Lags the models read.", DefaultValueFactory = _ => 48 }.AtLeast(1);
        var epochs = new Option<int>("--epochs", "-e") { Description = "Epochs of the LSTM.", DefaultValueFactory = _ => 30 }.AtLeast(1);
        var levels = new Option<bool>("--levels") { Description = "Feed every model the standardised levels instead of the changes from the last lag." };
        var command = new Command("forecast", "One-step forecasts: an LSTM against ML.NET's SDCA and FastTree on the same lags, and the seasonal naive forecast.")
        {
            csv, column, length, period, window, epochs, levels,
        };
        common.AddTo(command);
        command.SetAction(result =>
        {
            var ml = common.CreateContext(result);
            int p = result.GetValue(period);
            float[] series;
            string name;
            if (result.GetValue(csv) is { } file)
            {
                series = TimeSeries.ReadCsvColumn(ml, file, result.GetValue(column) ?? throw new ArgumentException("--csv needs --column."));
                name = $"{Path.GetFileName(file)}:{result.GetValue(column)}";
            }
            else
            {
                series = TimeSeries.Seasonal(result.GetValue(length), p, seed: result.GetValue(common.Seed));
                name = $"seasonal series (period {p}, trend, noise 1.0)";
            }
            return RunForecast(ml, series, name, result.GetValue(window), p, result.GetValue(epochs), !result.GetValue(levels), common.OutputFolder(result));
        });
        return command;
    }

    private static int RunForecast(MLContext ml, float[] series, string name, int window, int period, int epochs, bool relative, string output)
    {
        int cut = (int)(series.Length * 0.8);
        if (period > cut) throw new ArgumentException($"--period {period} is longer than the training part ({cut} values).");
        if (cut <= window + 1 || series.Length - cut < 2) throw new ArgumentException($"The series has {series.Length} values: too short for windows of {window} and a test part.");
        // Standardise with the training part's mean and spread (the networks train better on values near 0); errors are reported in the series' units.
        double mean = series.Take(cut).Average(), std = Math.Sqrt(series.Take(cut).Select(v => (v - mean) * (v - mean)).Average());
        if (std == 0) std = 1;
        var scaled = series.Select(v => (float)((v - mean) / std)).ToArray();
        var train = ml.Data.LoadSeriesWindows(scaled, window, endLabel: cut, relativeToLast: relative);
        var test = ml.Data.LoadSeriesWindows(scaled, window, firstLabel: cut, relativeToLast: relative);
        var times = test.GetColumn<int>("Time").ToArray();
        var lastLags = test.GetColumn<float>("Last").ToArray();
        var truth = times.Select(t => (double)series[t]).ToArray();
        Console.WriteLine($"{name}: {series.Length} values; train on labels before {cut}, test the {truth.Length} one-step forecasts after; {window} lags" +
            (relative ? ", every model reads the changes from the last lag and predicts the next change" : ", every model reads the standardised levels"));

        var results = new List<(string Model, double[] Forecast, double Seconds)>();
        var clock = Stopwatch.StartNew();
        var lstmOptions = new NeuralNetworkRegressorOptions
        {
            FeatureColumnName = TimeSeries.LagsColumn, InputShape = [window, 1],
            Network = new NetworkSpec([new LSTM(32), new Dense(Dense.TaskOutputs)]) { Name = "lstm-32" },
            Epochs = epochs, BatchSize = 32, Optimizer = new Adam(3e-3), ValidationFraction = 0.1,
            EarlyStopping = new EarlyStopping(Patience: 5),
        };
        var lstm = ConsoleProgress.Run("lstm", progress => { lstmOptions.Progress = progress; return ml.Regression.Trainers.NeuralNetwork(lstmOptions).Fit(train); });
        results.Add(("LSTM(32) on the lags (MlNetDeep)", Unscale(lstm.Transform(test)), clock.Elapsed.TotalSeconds));
        foreach (var (label, trainer) in new (string, IEstimator<ITransformer>)[]
        {
            ("SDCA linear regression on the lags (ML.NET)", ml.Regression.Trainers.Sdca(featureColumnName: TimeSeries.LagsColumn)),
            ("FastTree on the lags (ML.NET)", ml.Regression.Trainers.FastTree(featureColumnName: TimeSeries.LagsColumn)),
        })
        {
            clock.Restart();
            var model = trainer.Fit(train);
            results.Add((label, Unscale(model.Transform(test)), clock.Elapsed.TotalSeconds));
        }
        results.Add(($"seasonal naive (value {period} steps before)", times.Select(t => (double)series[t - period]).ToArray(), 0));

        Console.WriteLine();
        Console.WriteLine($"{"model",-46} {"RMSE",9} {"MAE",9} {"fit s",7}");
        foreach (var (model, forecast, seconds) in results)
        {
            double rmse = Math.Sqrt(forecast.Zip(truth).Average(p => (p.First - p.Second) * (p.First - p.Second)));
            double mae = forecast.Zip(truth).Average(p => Math.Abs(p.First - p.Second));
            Console.WriteLine($"{model,-46} {rmse,9:F4} {mae,9:F4} {seconds,7:F1}");
        }
        var lstmForecast = results[0].Forecast;
        int shown = Math.Min(truth.Length, 4 * period);
        Plotting.Charts.Lines(Path.Combine(output, "forecast.png"), $"{name}: one-step forecasts on the test part", "step", "value",
        [
            new Plotting.Charts.Series("series", times.Take(shown).Select(t => (double)t).ToList(), truth.Take(shown).ToList()),
            new Plotting.Charts.Series("LSTM", times.Take(shown).Select(t => (double)t).ToList(), lstmForecast.Take(shown).ToList()),
            new Plotting.Charts.Series("FastTree", times.Take(shown).Select(t => (double)t).ToList(), results[2].Forecast.Take(shown).ToList()),
        ]);
        Console.WriteLine($"Wrote {Path.Combine(output, "forecast.png")}");
        return 0;

        double[] Unscale(IDataView scored) => scored.GetColumn<float>("Score").Select((v, i) => (v + (relative ? lastLags[i] : 0)) * std + mean).ToArray();
    }
}
