// A dense autoencoder on MNIST with a 2-D latent code, as an ML.NET pipeline: the autoencoder adds Latent and
// Reconstruction columns, and k-means clusters the Latent column in the same pipeline. Writes the latent scatter
// (coloured by digit), the decoded latent grid and reconstructions next to their inputs.
// Run: dotnet run --project examples/Autoencoder -c Release [-- <output folder> <epochs> <training rows>]
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep;
using MlNetDeep.Data;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Plotting;

string output = args.Length > 0 ? args[0] : "out/autoencoder";
int epochs = args.Length > 1 ? int.Parse(args[1]) : 10;
int? rows = args.Length > 2 ? int.Parse(args[2]) : null;
var ml = new MLContext(seed: 1);
IDataView train = ml.Data.LoadMnist(MnistSplit.Train, maxRows: rows);
IDataView test = ml.Data.LoadMnist(MnistSplit.Test);

var options = AutoencoderNetworks.DenseAutoencoder(latentSize: 2);    // 784-512-128-2-128-512-784, MSE
options.Epochs = epochs;
options.BatchSize = 128;
var pipeline = ml.Transforms.Autoencoder(options)
    .Append(ml.Clustering.Trainers.KMeans("Latent", numberOfClusters: 10));
var model = pipeline.Fit(train);
var autoencoder = model.OfType<AutoencoderTransformer>().Single();

var scored = model.Transform(test);
var pixels = scored.GetColumn<VBuffer<float>>("Pixels").Select(v => v.DenseValues().ToArray()).ToList();
var latents = scored.GetColumn<VBuffer<float>>("Latent").Select(v => v.DenseValues().ToArray()).ToList();
var reconstructions = scored.GetColumn<VBuffer<float>>("Reconstruction").Select(v => v.DenseValues().ToArray()).ToList();
var digits = scored.GetColumn<uint>("Label").Select(k => (k - 1).ToString()).ToList();

var metrics = ReconstructionMetrics.Compute(pixels, reconstructions);
var clustering = ml.Clustering.Evaluate(scored, labelColumnName: "Label", featureColumnName: "Latent");
Console.WriteLine($"Test reconstruction MSE {metrics.MeanSquaredError:F4}; k-means on the 2-D latents: NMI {clustering.NormalizedMutualInformation:F3}");

LatentPlots.Scatter(Path.Combine(output, "latent-scatter.png"), latents, digits, "Dense autoencoder, 2-D latent codes of the MNIST test set");
var (x, y) = LatentSpace.Range(latents, 0.02, 0.98);
ImageGrid.Save(Path.Combine(output, "latent-grid.png"), LatentSpace.DecodeGrid(autoencoder, 15, x, y), 28, 28, 15, scale: 2, title: "Decoded latent grid");
ImageGrid.Save(Path.Combine(output, "reconstructions.png"), [.. pixels.Take(10), .. reconstructions.Take(10)], 28, 28, 10,
    title: "Inputs (top) and reconstructions (bottom)");
ml.Model.SaveDeep(model, train.Schema, Path.Combine(output, "autoencoder-kmeans.zip"));
Console.WriteLine($"Wrote {output}/latent-scatter.png, latent-grid.png, reconstructions.png and autoencoder-kmeans.zip");
