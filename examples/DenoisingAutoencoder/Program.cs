// The course's convolutional denoiser (32x7x7 bottleneck): trained on MNIST images corrupted by Gaussian noise
// (std 0.5, clipped to [0, 1]) to output the clean image. Prints the PSNR of noisy and denoised test images and
// writes noisy / denoised / clean triplets.
// Run: dotnet run --project examples/DenoisingAutoencoder -c Release [-- <output folder> <epochs> <training rows>]
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep;
using MlNetDeep.Data;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Plotting;

string output = args.Length > 0 ? args[0] : "out/denoising";
int epochs = args.Length > 1 ? int.Parse(args[1]) : 3;
int? rows = args.Length > 2 ? int.Parse(args[2]) : null;
var ml = new MLContext(seed: 1);
IDataView train = ml.Data.LoadMnist(MnistSplit.Train, maxRows: rows);

var options = AutoencoderNetworks.DenoisingAutoencoder(noiseStdDev: 0.5);   // Corruption = GaussianCorruption(0.5), clipped
options.Epochs = epochs;
options.BatchSize = 128;
var denoiser = ml.Transforms.Autoencoder(options).Fit(train);

// Noisy test images, made with the same corruption (seeded), fed to the fitted transformer as an IDataView.
var clean = Mnist.Read(MnistSplit.Test, maxRows: 2000).Select(i => i.Pixels).ToList();
var noisy = new GaussianCorruption(0.5).Corrupt(clean, seed: 42);
var noisyData = ml.Data.LoadFromEnumerable(noisy.Select(p => new MnistImage { Pixels = p }));
var denoised = denoiser.Transform(noisyData).GetColumn<VBuffer<float>>("Reconstruction").Select(v => v.DenseValues().ToArray()).ToList();

var before = ReconstructionMetrics.Compute(clean, noisy);
var after = ReconstructionMetrics.Compute(clean, denoised);
Console.WriteLine($"PSNR against the clean images: noisy {before.Psnr:F2} dB, denoised {after.Psnr:F2} dB (gain {after.Psnr - before.Psnr:F2} dB)");
ImageGrid.Save(Path.Combine(output, "triplets.png"), [.. noisy.Take(10), .. denoised.Take(10), .. clean.Take(10)], 28, 28, 10,
    title: "Noisy (top), denoised (middle), clean (bottom)");
ml.Model.SaveDeep(denoiser, train.Schema, Path.Combine(output, "denoiser.zip"));
Console.WriteLine($"Wrote {output}/triplets.png and denoiser.zip");
