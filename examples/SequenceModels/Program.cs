// Sequence models next to ML.NET's own: (1) which book is a passage from, an LSTM over word keys against FeaturizeText
// + SDCA in the same pipeline style; (2) one-step forecasts of a noisy seasonal series, an LSTM over 48 lags against
// ML.NET's FastTree on the same lags.
// Run: dotnet run --project examples/SequenceModels -c Release [-- <passages per book> <epochs>]
using Microsoft.ML;
using MlNetDeep;
using MlNetDeep.Data;
using MlNetDeep.Datasets;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Training;

int perBook = args.Length > 0 ? int.Parse(args[0]) : 400;
int epochs = args.Length > 1 ? int.Parse(args[1]) : 4;
var ml = new MLContext(seed: 1);

// (1) Passages of three books; the last fifth of each book is the test set.
string[] books = ["chesterton-brown", "austen-emma", "melville-moby_dick"];
var train = new List<Passage>();
var test = new List<Passage>();
foreach (var book in books)
{
    var passages = TextCorpus.Passages(Gutenberg.ReadBook(book), 250);
    var chosen = Enumerable.Range(0, perBook).Select(i => passages[i * passages.Count / perBook]).ToList();
    train.AddRange(chosen.Take(perBook * 4 / 5).Select(p => new Passage { Text = p, Book = book }));
    test.AddRange(chosen.Skip(perBook * 4 / 5).Select(p => new Passage { Text = p, Book = book }));
}
var trainData = ml.Data.ShuffleRows(ml.Data.LoadFromEnumerable(train), seed: 1);
var testData = ml.Data.LoadFromEnumerable(test);
var label = ml.Transforms.Conversion.MapValueToKey("Label", "Book");
var sequence = label
    .Append(ml.Transforms.Text.NormalizeText("Normalized", "Text", keepPunctuations: false))
    .Append(ml.Transforms.Text.TokenizeIntoWords("Words", "Normalized"))
    .Append(ml.Transforms.Conversion.MapValueToKey("Tokens", "Words", maximumNumberOfKeys: 20_000))
    .Append(ml.MulticlassClassification.Trainers.SequenceClassifier(new SequenceClassifierOptions { MaxLength = 64, Epochs = epochs }))
    .Fit(trainData);
var bagOfWords = label.Append(ml.Transforms.Text.FeaturizeText("Features", "Text"))
    .Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy()).Fit(trainData);
Console.WriteLine($"Which book? LSTM over words {ml.MulticlassClassification.Evaluate(sequence.Transform(testData)).MicroAccuracy:P2}, " +
                  $"FeaturizeText + SDCA {ml.MulticlassClassification.Evaluate(bagOfWords.Transform(testData)).MicroAccuracy:P2} ({test.Count} test passages)");

// (2) Forecasting: 48 lags -> the next value, trained on the first 80 % of the series (standardised), tested after it.
var series = TimeSeries.Seasonal(1500, period: 24);
int cut = 1200;
double mean = series.Take(cut).Average(), std = Math.Sqrt(series.Take(cut).Average(v => (v - mean) * (v - mean)));
var scaled = series.Select(v => (float)((v - mean) / std)).ToArray();
// Relative to the last lag: the models learn the change, so the trend taking the test part above the training range
// does not push their inputs where they never saw any (forecast = Last + prediction).
var lagsTrain = ml.Data.LoadSeriesWindows(scaled, window: 48, endLabel: cut, relativeToLast: true);
var lagsTest = ml.Data.LoadSeriesWindows(scaled, window: 48, firstLabel: cut, relativeToLast: true);
var lstm = ml.Regression.Trainers.NeuralNetwork(new MlNetDeep.Models.Regression.NeuralNetworkRegressorOptions
{
    FeatureColumnName = TimeSeries.LagsColumn, InputShape = [48, 1], Network = new NetworkSpec([new LSTM(32), new Dense(Dense.TaskOutputs)]),
    Epochs = epochs * 5, BatchSize = 32, Optimizer = new Adam(3e-3),
}).Fit(lagsTrain);
var trees = ml.Regression.Trainers.FastTree(featureColumnName: TimeSeries.LagsColumn).Fit(lagsTrain);
// The change's error is the level's error (Last is known), in standardised units: times std for the series' units.
double Rmse(ITransformer model) => ml.Regression.Evaluate(model.Transform(lagsTest)).RootMeanSquaredError * std;
Console.WriteLine($"One-step forecast RMSE (series units): LSTM {Rmse(lstm):F3}, FastTree {Rmse(trees):F3} (noise std 1.0)");

internal sealed class Passage
{
    public string Text { get; set; } = "";
    public string Book { get; set; } = "";
}
