// The course's cautionary case: a tiny dense autoencoder (784 -> 20 -> 784) trained on ONE image learns to output
// that image whatever it is shown: it memorised, it did not learn to encode. Trained on varied images, the same
// network follows its input instead. Prints, for 500 test images, how close the output is to the memorised image
// and to the input, and writes both models' outputs next to the inputs.
// Run: dotnet run --project examples/AutoencoderMemorisation -c Release [-- <output folder>]
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep;
using MlNetDeep.Data;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Plotting;

string output = args.Length > 0 ? args[0] : "out/memorisation";
var ml = new MLContext(seed: 1);
var trainImages = Mnist.Read(MnistSplit.Train, maxRows: 5000);
var single = trainImages[0];
var testImages = Mnist.Read(MnistSplit.Test, maxRows: 500).Select(i => i.Pixels).ToList();
var test = ml.Data.LoadFromEnumerable(testImages.Select(p => new MnistImage { Pixels = p }));

AutoencoderOptions Tiny(int epochs) => new()
{
    FeatureColumnName = "Pixels", Encoder = AutoencoderNetworks.TinyEncoder, Decoder = AutoencoderNetworks.TinyDecoder,
    LatentSize = 20, Epochs = epochs, BatchSize = 64, Optimizer = new MlNetDeep.Training.Adam(3e-3),
};

// One image, repeated so that an epoch has enough steps; and 5,000 different images.
var one = ml.Data.LoadFromEnumerable(Enumerable.Repeat(single, 2000));
var varied = ml.Data.LoadFromEnumerable(trainImages);
var memoriser = ml.Transforms.Autoencoder(Tiny(epochs: 5)).Fit(one);
var general = ml.Transforms.Autoencoder(Tiny(epochs: 5)).Fit(varied);

foreach (var (name, model) in new[] { ("trained on one image", memoriser), ("trained on 5,000 images", general) })
{
    var outputs = model.Transform(test).GetColumn<VBuffer<float>>("Reconstruction").Select(v => v.DenseValues().ToArray()).ToList();
    var toInput = ReconstructionMetrics.Compute(testImages, outputs).MeanSquaredError;
    var toMemorised = ReconstructionMetrics.Compute(testImages.Select(_ => single.Pixels).ToList(), outputs).MeanSquaredError;
    Console.WriteLine($"{name,-24}: output vs input MSE {toInput:F4}, output vs the single training image MSE {toMemorised:F4}");
    ImageGrid.Save(Path.Combine(output, name.StartsWith("trained on one") ? "memorised.png" : "varied.png"),
        [.. testImages.Take(10), .. outputs.Take(10)], 28, 28, 10, title: $"Test inputs (top); outputs of the tiny autoencoder {name} (bottom)");
}
Console.WriteLine($"Wrote {output}/memorised.png and varied.png (the single training image is a {single.Label})");
