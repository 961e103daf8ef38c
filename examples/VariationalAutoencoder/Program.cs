// A variational autoencoder with a 2-D latent space on MNIST: loss = binary cross-entropy + KL. Prints the test ELBO,
// writes new digits decoded from random latents, the decoded latent grid and the scatter of latent means by digit,
// and shows that a seeded latent sample column survives SaveDeep/LoadDeep.
// Run: dotnet run --project examples/VariationalAutoencoder -c Release [-- <output folder> <epochs> <latent size> <training rows>]
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep;
using MlNetDeep.Data;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Plotting;

string output = args.Length > 0 ? args[0] : "out/vae";
int epochs = args.Length > 1 ? int.Parse(args[1]) : 15;
int latent = args.Length > 2 ? int.Parse(args[2]) : 2;
int? rows = args.Length > 3 ? int.Parse(args[3]) : null;
var ml = new MLContext(seed: 1);
IDataView train = ml.Data.LoadMnist(MnistSplit.Train, maxRows: rows);
IDataView test = ml.Data.LoadMnist(MnistSplit.Test);

var options = latent == 2 ? AutoencoderNetworks.Variational2D() : AutoencoderNetworks.VariationalAutoencoder(latent);
options.Epochs = epochs;
options.BatchSize = 128;
options.SampleColumnName = "LatentSample";   // z = mean + sigma * noise, seeded per row
options.SampleSeed = 7;
var vae = ml.Transforms.VariationalAutoencoder(options).Fit(train);

var elbo = vae.EvaluateElbo(test);
Console.WriteLine($"Test ELBO {elbo.Elbo:F2} nats per image (reconstruction {elbo.Reconstruction:F2}, KL {elbo.KL:F2})");
ImageGrid.Save(Path.Combine(output, "samples.png"), vae.Generate(64, seed: 1), 28, 28, 8, title: "Decoded from z ~ N(0, I)");

var scored = vae.Transform(test);
if (latent == 2)
{
    var means = scored.GetColumn<VBuffer<float>>("Latent").Select(v => v.DenseValues().ToArray()).ToList();
    var digits = scored.GetColumn<uint>("Label").Select(k => (k - 1).ToString()).ToList();
    LatentPlots.Scatter(Path.Combine(output, "latent-scatter.png"), means, digits, "VAE latent means of the MNIST test set");
    ImageGrid.Save(Path.Combine(output, "latent-grid.png"), LatentSpace.DecodeGrid(vae, 15, (-2.5, 2.5), (-2.5, 2.5)), 28, 28, 15, scale: 2,
        title: "Decoded latent grid, z in [-2.5, 2.5]^2");
}

var path = Path.Combine(output, "vae.zip");
ml.Model.SaveDeep(vae, train.Schema, path);
var loaded = ml.Model.LoadDeep(path, out _);
var before = scored.GetColumn<VBuffer<float>>("LatentSample").First().DenseValues().ToArray();
var after = loaded.Transform(test).GetColumn<VBuffer<float>>("LatentSample").First().DenseValues().ToArray();
Console.WriteLine($"First test image's latent sample before/after reload: [{string.Join(", ", before)}] / [{string.Join(", ", after)}]");
Console.WriteLine($"Wrote {output}/samples.png, latent-grid.png, latent-scatter.png and vae.zip");
