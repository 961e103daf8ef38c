// Batch scoring: load a saved MlNetDeep pipeline and score a whole file of images, streaming, in batches.
//   dotnet run --project examples/BatchScoring -c Release -- <model.zip> [images-idx] [labels-idx] [predictions.csv]
// Defaults: MNIST's 10,000 test images; writes predictions.csv (row, predicted digit, confidence[, true digit]).
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep;
using MlNetDeep.Data;

if (args.Length < 1)
{
    Console.Error.WriteLine("usage: BatchScoring <model.zip> [images-idx] [labels-idx] [predictions.csv]");
    Console.Error.WriteLine("       (train one first, e.g. ./mlnetdeep train mnist --model mlp --output out)");
    return 2;
}
string modelPath = args[0];
string images = args.ElementAtOrDefault(1) ?? Path.Combine(Mnist.DefaultFolder, "t10k-images-idx3-ubyte");
string labels = args.ElementAtOrDefault(2) ?? Path.Combine(Mnist.DefaultFolder, "t10k-labels-idx1-ubyte");
string output = args.ElementAtOrDefault(3) ?? "predictions.csv";

var ml = new MLContext(seed: 1) { GpuDeviceId = 0, FallbackToCpu = true };
if (!File.Exists(images)) Mnist.Read(MnistSplit.Test); // fetches MNIST on first use
ITransformer model;
try
{
    model = ml.Model.LoadDeep(modelPath, out _);
}
catch (Exception ex) when (ex is InvalidDataException or FileNotFoundException)
{
    Console.Error.WriteLine($"Cannot load the model: {ex.Message}");
    return 1;
}

var data = ml.Data.LoadMnist(images, labels);
var clock = Stopwatch.StartNew();
var scored = model.Transform(data); // lazy: rows are scored in batches as the cursor below reads them

using var writer = new StreamWriter(output);
writer.WriteLine("row,predicted,confidence,actual");
using var cursor = scored.GetRowCursor(scored.Schema);
var score = cursor.GetGetter<VBuffer<float>>(scored.Schema["Score"]);
var predicted = scored.Schema["PredictedLabel"];
var label = cursor.GetGetter<uint>(scored.Schema["Label"]);
// The saved pipeline may end with MapKeyToValue (PredictedLabel as the digit) or not (PredictedLabel as a key).
Func<string> readPrediction = predicted.Type is KeyDataViewType
    ? Key(cursor.GetGetter<uint>(predicted), k => (k - 1).ToString(CultureInfo.InvariantCulture))
    : Key(cursor.GetGetter<uint>(predicted), k => k.ToString(CultureInfo.InvariantCulture));
VBuffer<float> scores = default;
uint key = 0;
long rows = 0, correct = 0;
while (cursor.MoveNext())
{
    score(ref scores);
    label(ref key);
    string p = readPrediction(), actual = (key - 1).ToString(CultureInfo.InvariantCulture);
    if (p == actual) correct++;
    writer.WriteLine($"{rows},{p},{scores.DenseValues().Max().ToString("F4", CultureInfo.InvariantCulture)},{actual}");
    rows++;
}
clock.Stop();
Console.WriteLine($"Scored {rows} images in {clock.Elapsed.TotalSeconds:F2} s ({rows / clock.Elapsed.TotalSeconds:F0} rows/s); accuracy {(double)correct / rows:P2}; wrote {output}");
return 0;

static Func<string> Key(ValueGetter<uint> getter, Func<uint, string> format)
{
    uint value = 0;
    return () => { getter(ref value); return format(value); };
}
