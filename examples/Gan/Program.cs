// A conditional DCGAN on MNIST: the generator draws the digit it is asked for. Writes a sample grid after every epoch
// (a callback), the two networks' loss curves, a grid of each digit from the trained generator, and the generator as
// ONNX, which ML.NET's own ApplyOnnxModel scores; the model survives SaveDeep/LoadDeep.
// With "self" as the fourth argument it trains without labels instead: a self-conditioned DCGAN (k-means clusters of
// the images as its labels, drawn by their shares), whose digits come out in their natural proportions.
// Run: dotnet run --project examples/Gan -c Release [-- <output folder> <epochs> <training rows> [self]]
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep;
using MlNetDeep.Data;
using MlNetDeep.Models.Generative;
using MlNetDeep.Plotting;
using MlNetDeep.Training;

string output = args.Length > 0 ? args[0] : "out/gan";
int epochs = args.Length > 1 ? int.Parse(args[1]) : 5;
int? rows = args.Length > 2 && args[2] != "all" ? int.Parse(args[2]) : null;
bool self = args.Length > 3 && args[3] == "self";
var ml = new MLContext(seed: 1);
IDataView train = ml.Data.LoadMnist(MnistSplit.Train, maxRows: rows);   // Pixels in [0, 1], Label (key 0-9)

var digitsInColumns = Enumerable.Range(0, 100).Select(i => i % 10).ToArray();
var options = new GanOptions
{
    FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Kind = GanKind.Dcgan,
    LabelColumnName = self ? null : "Label", SelfConditioning = self ? 10 : 0,
    Epochs = epochs, BatchSize = 64,
};
options.Callbacks.Add(new EpochCallback(end =>
    Console.WriteLine($"epoch {end.Metrics.Epoch + 1}: {end.Metrics.Describe()}")));
var generator = ml.Transforms.GenerativeAdversarialNetwork(options).Fit(train);

ImageGrid.Save(Path.Combine(output, "digits.png"), self ? generator.Generate(100, seed: 1) : generator.Generate(digitsInColumns, seed: 1), 28, 28, 10,
    title: self ? "Self-conditioned DCGAN: 100 samples" : "Conditional DCGAN: column k asks for digit k");
Charts.TrainingCurves(Path.Combine(output, "curves.png"), generator.History!, self ? "self-conditioned DCGAN" : "conditional DCGAN");
if (self) Console.WriteLine("Cluster shares: " + string.Join(" ", generator.ClassShares!.Select(v => $"{v:P1}")));

// The generator as a pipeline stage: noise rows (with the class to draw; a self-conditioned GAN draws its clusters) in,
// an Image column out.
var noise = generator.NoiseData(ml, 10, seed: 2, labels: self ? null : Enumerable.Range(0, 10).ToList());
var images = generator.Transform(noise).GetColumn<VBuffer<float>>("Image").Select(v => v.DenseValues().ToArray()).ToList();

// Persistence: MlNetDeep's own file, and ONNX for a plain ML.NET app.
var path = Path.Combine(output, "gan.zip");
ml.Model.SaveDeep(generator, noise.Schema, path);
var loaded = ml.Model.LoadDeep(path, out _);
var reloaded = loaded.Transform(noise).GetColumn<VBuffer<float>>("Image").Select(v => v.DenseValues().ToArray()).ToList();
var onnxPath = Path.Combine(output, "generator.onnx");
generator.SaveAsOnnx(onnxPath);
var onnx = ml.Transforms.ApplyOnnxModel(["Image"], ["Noise"], onnxPath).Fit(noise).Transform(noise)
    .GetColumn<VBuffer<float>>("Image").Select(v => v.DenseValues().ToArray()).ToList();
double Diff(List<float[]> a, List<float[]> b) => a.Zip(b).Max(p => p.First.Zip(p.Second).Max(q => Math.Abs(q.First - q.Second)));
Console.WriteLine($"Largest pixel difference after SaveDeep/LoadDeep: {Diff(images, reloaded):G3}; through ONNX Runtime: {Diff(images, onnx):G3}");
Console.WriteLine($"Wrote {output}/digits.png, curves.png, gan.zip and generator.onnx");
