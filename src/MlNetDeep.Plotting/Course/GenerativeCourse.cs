using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Generative;
using MlNetDeep.Networks;
using MlNetDeep.Training;
using MlNetDeep.Vision;
using static MlNetDeep.Plotting.Course.CourseReport;

namespace MlNetDeep.Plotting.Course;

/// <summary>Sizes of the generative chapter's experiments.</summary>
public sealed record GenerativeSettings
{
    /// <summary>MNIST training images of the GANs and the VAE (the first N).</summary>
    public int TrainRows { get; init; } = 60_000;

    /// <summary>Epochs of the conditional GAN.</summary>
    public int ConditionalEpochs { get; init; } = 5;

    /// <summary>Epochs of each dense GAN.</summary>
    public int DenseEpochs { get; init; } = 10;

    /// <summary>Epochs of the VAE.</summary>
    public int VaeEpochs { get; init; } = 10;

    /// <summary>Images generated for the judge's measures.</summary>
    public int Samples { get; init; } = 1_000;

    /// <summary>Steps of each dream octave and of style transfer.</summary>
    public int VisionSteps { get; init; } = 60;

    /// <summary>Side of the dream and style pictures.</summary>
    public int VisionSize { get; init; } = 96;

    /// <summary>Colour pictures of the rotation experiment (before rotating) and the autoencoder's epochs.</summary>
    public int Pictures { get; init; } = 100;

    public int AutoencoderEpochs { get; init; } = 200;

    /// <summary>The quick sizes: a few thousand images, a few epochs.</summary>
    public static GenerativeSettings Quick { get; } = new()
    {
        TrainRows = 3_000, ConditionalEpochs = 4, DenseEpochs = 4, VaeEpochs = 5, Samples = 500, VisionSteps = 10, VisionSize = 48,
        Pictures = 25, AutoencoderEpochs = 30,
    };
}

/// <summary>
/// The generative chapters' smaller demonstrations: the conditional GAN's grid (one noise vector per row, one digit per
/// column), a VAE's different outputs for one input, the course's dense GAN with batch normalisation before its output,
/// deep dreaming over several weighted layers and style transfer from noise, and an autoencoder on colour pictures in
/// their four rotations. Every one uses the library's own estimators and vision tools.
/// </summary>
public static class GenerativeCourse
{
    /// <summary>The chapter.</summary>
    public static CourseChapter Chapter { get; } = new("generative", "Generative models: the smaller demonstrations",
        "The conditional GAN's grid, a VAE's different outputs for one input, the dense GAN with batch normalisation before its output, " +
        "dreaming over several layers, style transfer from noise, and an autoencoder on pictures in four rotations.",
        [ConditionalGrid, VaeSamples, DenseGanBatchNorm, DreamAndStyleExperiment, Rotations]);

    private static GenerativeSettings SettingsOf(CourseRun run) => run.Quick ? GenerativeSettings.Quick : new GenerativeSettings();

    // ---------------------------------------------------------------- helpers

    private sealed class VectorRow
    {
        public float[] Values { get; set; } = [];
    }

    /// <summary>Rows of equal width as an IDataView with one vector column.</summary>
    public static IDataView VectorView(MLContext ml, IReadOnlyList<float[]> rows, string column)
    {
        var schema = SchemaDefinition.Create(typeof(VectorRow));
        schema[0].ColumnName = column;
        schema[0].ColumnType = new VectorDataViewType(NumberDataViewType.Single, rows[0].Length);
        return ml.Data.LoadFromEnumerable(rows.Select(r => new VectorRow { Values = r }).ToList(), schema);
    }

    /// <summary>Standard normal values from a seeded System.Random (Box-Muller).</summary>
    public static float[] Normal(Random random, int count)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            double u = 1 - random.NextDouble(), v = random.NextDouble();
            values[i] = (float)(Math.Sqrt(-2 * Math.Log(u)) * Math.Cos(2 * Math.PI * v));
        }
        return values;
    }

    /// <summary>A small MNIST judge for the quick run: an MLP(128) trained for 3 epochs on the chapter's training images.</summary>
    private sealed class Judge(MLContext ml, ITransformer model, double accuracy)
    {
        public double TestAccuracy => accuracy;

        public int[] Digits(IReadOnlyList<float[]> images) =>
            model.Transform(VectorView(ml, images, "Pixels")).GetColumn<float[]>("Score").Select(s => Array.IndexOf(s, s.Max())).ToArray();
    }

    private static readonly Dictionary<(int, int), Judge> Judges = [];

    private static Judge JudgeOf(CourseRun run, int rows)
    {
        lock (Judges)
        {
            if (Judges.TryGetValue((rows, run.Seed), out var judge)) return judge;
            var train = run.Ml.Data.Cache(run.Ml.Data.LoadMnist(MnistSplit.Train, maxRows: Math.Max(rows, 5_000)));
            var test = run.Ml.Data.LoadMnist(MnistSplit.Test, maxRows: 1_000);
            var model = run.Ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
            {
                FeatureColumnName = "Pixels", Network = new NetworkSpec([new Flatten(), new Dense(128, ActivationKind.ReLU), new Dense(Dense.TaskOutputs)]),
                Epochs = 3, BatchSize = 64, Optimizer = new Adam(1e-3), Seed = run.Seed,
            }).Fit(train);
            double accuracy = run.Ml.MulticlassClassification.Evaluate(model.Transform(test)).MicroAccuracy;
            run.Log.WriteLine($"judge MLP(128): {accuracy:P1} on 1,000 test images");
            return Judges[(rows, run.Seed)] = new Judge(run.Ml, model, accuracy);
        }
    }

    private static float[][] MnistPixels(MnistSplit split, int rows, out int[] labels)
    {
        var images = Mnist.Read(split, maxRows: rows);
        labels = images.Select(i => (int)i.Label).ToArray();
        return images.Select(i => i.Pixels).ToArray();
    }

    // ---------------------------------------------------------------- a. the conditional GAN's grid

    /// <summary>What the conditional GAN's grid measured.</summary>
    public sealed record ConditionalGridResult(int Rows, int Columns, double[] ShareAsRequested, double Overall, double StyleShare, double JudgeAccuracy,
        int[] ColumnMajority, string GridPath);

    /// <summary>
    /// Trains a conditional GAN and draws <paramref name="noiseRows"/> noise vectors, each with every digit 0-9; the judge
    /// reads each image, and the ink (mean pixel) of each image, less its digit's mean ink, is split into the part the noise
    /// row explains (the style the noise carries) and the rest.
    /// </summary>
    public static ConditionalGridResult RunConditionalGrid(CourseRun run, GenerativeSettings s, int noiseRows = 50, int shownRows = 8)
    {
        var train = run.Ml.Data.Cache(run.Ml.Data.LoadMnist(MnistSplit.Train, maxRows: s.TrainRows));
        using var gan = run.Ml.Transforms.GenerativeAdversarialNetwork(new GanOptions
        {
            FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Kind = GanKind.Dcgan, LabelColumnName = "Label", Epochs = s.ConditionalEpochs, Seed = run.Seed,
        }).Fit(train);
        var random = new Random(run.Seed);
        var noise = Enumerable.Range(0, noiseRows).Select(_ => Normal(random, gan.LatentSize)).ToArray();
        var rows = new List<float[]>();
        foreach (var z in noise)
            for (int digit = 0; digit < 10; digit++)
                rows.Add([.. z, digit]);
        var images = gan.Transform(VectorView(run.Ml, rows, gan.FeatureColumnName)).GetColumn<float[]>("Image").ToArray();
        var judged = JudgeOf(run, s.TrainRows).Digits(images);
        var share = new double[10];
        var majority = new int[10];
        for (int digit = 0; digit < 10; digit++)
        {
            var column = Enumerable.Range(0, noiseRows).Select(r => judged[r * 10 + digit]).ToList();
            share[digit] = column.Count(d => d == digit) / (double)noiseRows;
            majority[digit] = column.GroupBy(d => d).OrderByDescending(g => g.Count()).First().Key;
        }
        // Ink less its digit's mean; the share of what is left that the noise row explains (eta squared).
        var ink = images.Select(i => i.Average()).ToArray();
        var digitMean = Enumerable.Range(0, 10).Select(d => Enumerable.Range(0, noiseRows).Average(r => ink[r * 10 + d])).ToArray();
        var residual = ink.Select((v, i) => v - digitMean[i % 10]).ToArray();
        double total = residual.Sum(v => v * v);
        double betweenRows = Enumerable.Range(0, noiseRows).Sum(r => { double m = Enumerable.Range(0, 10).Average(d => residual[r * 10 + d]); return 10 * m * m; });
        var path = Path.Combine(run.Output, "generative-cgan-grid.png");
        ImageGrid.Save(path, images.Take(shownRows * 10).ToList(), 28, 28, 10, scale: 3,
            captions: Enumerable.Range(0, 10).Select(d => d.ToString()).ToList(),
            title: $"Conditional DCGAN, {s.ConditionalEpochs} epochs on {s.TrainRows:N0} images: one noise vector per row, digits 0-9 across");
        run.Log.WriteLine($"Wrote {path}");
        return new ConditionalGridResult(noiseRows, 10, share, judged.Where((d, i) => d == i % 10).Count() / (double)judged.Length,
            total > 0 ? betweenRows / total : 0, JudgeOf(run, s.TrainRows).TestAccuracy, majority, path);
    }

    private static CourseExperiment ConditionalGrid(CourseRun run)
    {
        var s = SettingsOf(run);
        var r = RunConditionalGrid(run, s);
        int right = r.ColumnMajority.Where((d, i) => d == i).Count();
        return new CourseExperiment("The conditional GAN: the same noise across a row, the digit changing",
            "Given the label as well as the noise, the generator draws the digit it is asked for; the noise carries the rest (thickness, slant), " +
            "so one noise vector gives the same style of every digit. (The course's cDCGAN figure: same noise in each column, a different label in each row.)",
            $"The judge (an MLP, {P(r.JudgeAccuracy)} on real test digits) reads {P(r.Overall)} of {r.Rows * 10} grid images as the digit asked for; " +
            $"{right} of 10 columns are mostly their digit. The noise row explains {P(r.StyleShare)} of the ink left after each digit's mean " +
            $"(chance: about {P(9.0 / (r.Rows * 10 - 10))}).",
            r.Overall >= 0.7 && r.StyleShare > 0.3, [r.GridPath],
            [new CourseTable($"Conditional DCGAN, {s.ConditionalEpochs} epochs on {s.TrainRows:N0} MNIST images; {r.Rows} noise vectors x 10 digits",
                ["digit asked for", "read as asked", "most often read as"],
                Enumerable.Range(0, 10).Select(d => (IReadOnlyList<string>)[d.ToString(), P(r.ShareAsRequested[d]), r.ColumnMajority[d].ToString()])
                    .Append(["all", P(r.Overall), $"{right} of 10 right"]).ToList())],
            $"mlnetdeep gan mnist --kind cgan --epochs 5 -o out   (the grid: mlnetdeep course generative{run.QuickFlag})");
    }

    // ---------------------------------------------------------------- b. a VAE's different outputs for one input

    /// <summary>One input's draws: its digit, the mean sigma of q(z|x), the per-pixel spread of its samples and their distance to its mean reconstruction.</summary>
    public sealed record VaeInput(int Digit, double Sigma, double SampleSpread, double SampleToMean);

    public sealed record VaeSamplesResult(IReadOnlyList<VaeInput> Inputs, double BetweenDigits, int LatentSize, string Path);

    /// <summary>
    /// Trains the VAE preset and, for one test image of each of a few digits, decodes <paramref name="draws"/> latents drawn
    /// from q(z|x) = N(mean, exp(logVariance)). Spread: the per-pixel standard deviation over the draws (mean over pixels);
    /// between digits: the same over the mean reconstructions of the different inputs.
    /// </summary>
    public static VaeSamplesResult RunVaeSamples(CourseRun run, GenerativeSettings s, int latentSize = 8, int draws = 8)
    {
        var train = run.Ml.Data.Cache(run.Ml.Data.LoadMnist(MnistSplit.Train, maxRows: s.TrainRows));
        var options = AutoencoderNetworks.VariationalAutoencoder(latentSize);
        options.Epochs = s.VaeEpochs;
        options.Seed = run.Seed;
        using var vae = run.Ml.Transforms.VariationalAutoencoder(options).Fit(train);
        var test = MnistPixels(MnistSplit.Test, 200, out var labels);
        int[] digits = [0, 2, 3, 5, 7, 9];
        var inputs = digits.Select(d => test[Array.IndexOf(labels, d)]).ToArray();
        var means = vae.Encode(inputs);
        var logVariances = vae.EncodeLogVariance(inputs);
        var reconstructions = vae.Decode(means);
        var random = new Random(run.Seed);
        var figure = new List<float[]>();
        var results = new List<VaeInput>();
        for (int i = 0; i < inputs.Length; i++)
        {
            var sigma = logVariances[i].Select(v => Math.Exp(v / 2)).ToArray();
            var latents = Enumerable.Range(0, draws).Select(_ =>
            {
                var e = Normal(random, latentSize);
                return means[i].Select((m, k) => (float)(m + sigma[k] * e[k])).ToArray();
            }).ToList();
            var samples = vae.Decode(latents);
            figure.Add(inputs[i]);
            figure.Add(reconstructions[i]);
            figure.AddRange(samples);
            results.Add(new VaeInput(digits[i], sigma.Average(), Spread(samples), samples.Average(x => Rms(x, reconstructions[i]))));
        }
        var path = Path.Combine(run.Output, "generative-vae-samples.png");
        var captions = new List<string> { "input", "mean" };
        captions.AddRange(Enumerable.Range(1, draws).Select(k => $"draw {k}"));
        ImageGrid.Save(path, figure, 28, 28, draws + 2, scale: 3, captions: captions,
            title: $"VAE ({latentSize} latents, {s.VaeEpochs} epochs): input, decoded mean, {draws} decoded draws from q(z|x)");
        run.Log.WriteLine($"Wrote {path}");
        return new VaeSamplesResult(results, Spread(reconstructions), latentSize, path);
    }

    /// <summary>The per-pixel standard deviation over <paramref name="images"/>, averaged over the pixels.</summary>
    public static double Spread(IReadOnlyList<float[]> images)
    {
        int n = images.Count, width = images[0].Length;
        double sum = 0;
        for (int p = 0; p < width; p++)
        {
            double mean = 0;
            for (int i = 0; i < n; i++) mean += images[i][p];
            mean /= n;
            double variance = 0;
            for (int i = 0; i < n; i++) variance += (images[i][p] - mean) * (images[i][p] - mean);
            sum += Math.Sqrt(variance / Math.Max(1, n - 1));
        }
        return sum / width;
    }

    private static double Rms(float[] a, float[] b) => Math.Sqrt(a.Zip(b).Average(p => (p.First - p.Second) * (double)(p.First - p.Second)));

    private static CourseExperiment VaeSamples(CourseRun run)
    {
        var s = SettingsOf(run);
        var r = RunVaeSamples(run, s);
        double within = r.Inputs.Average(i => i.SampleSpread);
        return new CourseExperiment("A VAE gives a different output each time for the same input",
            "The encoder gives a distribution, not a point; each pass draws a new latent from it, so the same 2 fed in repeatedly comes out a little " +
            "different each time, yet still a 2: the draws for one input differ less than the reconstructions of different digits.",
            $"Per-pixel spread of the draws for one input: {F(within, "F4")} on average (every input above 0); between the mean reconstructions of the " +
            $"{r.Inputs.Count} different digits: {F(r.BetweenDigits, "F4")}.",
            r.Inputs.All(i => i.SampleSpread > 0) && within < r.BetweenDigits, [r.Path],
            [new CourseTable($"VAE preset ({r.LatentSize} latents, {s.VaeEpochs} epochs on {s.TrainRows:N0} images), 8 draws per test digit",
                ["input digit", "mean sigma of q(z|x)", "per-pixel spread of the draws", "RMS distance draw to mean reconstruction"],
                r.Inputs.Select(i => (IReadOnlyList<string>)[i.Digit.ToString(), F(i.Sigma, "F3"), F(i.SampleSpread, "F4"), F(i.SampleToMean, "F4")])
                    .Append(["between the digits' mean reconstructions", "", F(r.BetweenDigits, "F4"), ""]).ToList())],
            $"mlnetdeep course generative{run.QuickFlag}");
    }

    // ---------------------------------------------------------------- c. the dense GAN with batch normalisation before its output

    /// <summary>The course's dense generator: the preset's layers with batch normalisation between the output layer's sum and its Tanh.</summary>
    public static NetworkSpec CourseDenseGenerator(int[] imageShape)
    {
        var preset = GanNetworks.DenseGenerator(imageShape);
        var layers = preset.Layers.ToList();
        int output = layers.FindIndex(l => l is Dense { Activation: ActivationKind.Tanh });
        var dense = (Dense)layers[output];
        layers[output] = dense with { Activation = ActivationKind.None };
        layers.Insert(output + 1, new BatchNorm());
        layers.Insert(output + 2, new Activation(ActivationKind.Tanh));
        return new NetworkSpec(layers) { Name = "gan-dense-generator-batchnorm-output" };
    }

    /// <summary>One dense GAN's measures.</summary>
    public sealed record DenseGanResult(string Name, double Frechet, ClassHistogram Histogram, double Seconds);

    public static (IReadOnlyList<DenseGanResult> Gans, double Baseline, string Path) RunDenseGans(CourseRun run, GenerativeSettings s)
    {
        var train = run.Ml.Data.Cache(run.Ml.Data.LoadMnist(MnistSplit.Train, maxRows: s.TrainRows));
        var real = MnistPixels(MnistSplit.Test, s.Samples, out _);
        var realTrain = MnistPixels(MnistSplit.Train, s.Samples, out _);
        double baseline = GenerationQuality.FrechetDistance(Features(realTrain), Features(real));
        var judge = JudgeOf(run, s.TrainRows);
        var results = new List<DenseGanResult>();
        var figures = new List<float[]>();
        var captions = new List<string>();
        foreach (var (name, generator) in new (string, NetworkSpec?)[] { ("preset (Dense - Tanh)", null), ("course (Dense - BatchNorm - Tanh)", CourseDenseGenerator([1, 28, 28])) })
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            using var gan = run.Ml.Transforms.GenerativeAdversarialNetwork(new GanOptions
            {
                FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Kind = GanKind.Dense, Generator = generator, Epochs = s.DenseEpochs, Seed = run.Seed,
            }).Fit(train);
            var images = gan.Generate(s.Samples, seed: run.Seed);
            var histogram = GenerationQuality.Histogram(judge.Digits(images), 10);
            results.Add(new DenseGanResult(name, GenerationQuality.FrechetDistance(Features(images), Features(real)), histogram, clock.Elapsed.TotalSeconds));
            figures.AddRange(images.Take(20));
            captions.AddRange(Enumerable.Range(0, 20).Select(i => i == 0 ? name.Split(' ')[0] : ""));
            run.Log.WriteLine($"{name}: {histogram.Describe()}");
        }
        var path = Path.Combine(run.Output, "generative-dense-gan-batchnorm.png");
        ImageGrid.Save(path, figures, 28, 28, 10, scale: 3, captions: captions,
            title: $"Dense GANs, {s.DenseEpochs} epochs on {s.TrainRows:N0} images: preset (rows 1-2), batch norm before Tanh (rows 3-4)");
        run.Log.WriteLine($"Wrote {path}");
        return (results, baseline, path);
    }

    /// <summary>Features for the Fréchet distance: the pixels averaged over 4x4 blocks (7 x 7 = 49 values), so that a few hundred images fit a covariance.</summary>
    public static IReadOnlyList<float[]> Features(IReadOnlyList<float[]> images) => images.Select(image =>
    {
        var f = new float[49];
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++)
                f[y / 4 * 7 + x / 4] += image[y * 28 + x] / 16f;
        return f;
    }).ToList();

    private static CourseExperiment DenseGanBatchNorm(CourseRun run)
    {
        var s = SettingsOf(run);
        var (gans, baseline, path) = RunDenseGans(run, s);
        var (preset, course) = (gans[0], gans[1]);
        return new CourseExperiment("The course's dense GAN: batch normalisation before the generator's Tanh",
            "The course draws its MNIST generator with a batch normalisation between the last fully connected layer's sum and its tanh " +
            "(\"a form of regularization\"); after an epoch it gives MNIST-y splotches. Batch normalisation there should help the generator, not hurt it: " +
            "its samples at least as close to real digits, and as varied, as the preset's.",
            $"Fréchet distance (4x4-pooled pixels; real vs real {F(baseline, "F2")}): preset {F(preset.Frechet, "F2")}, with batch norm {F(course.Frechet, "F2")}; " +
            $"digits covering 90 % of the samples: {preset.Histogram.ClassesCovering90} and {course.Histogram.ClassesCovering90}.",
            course.Frechet <= preset.Frechet && course.Histogram.ClassesCovering90 >= preset.Histogram.ClassesCovering90 - 1, [path],
            [new CourseTable($"Dense GANs, {s.DenseEpochs} epochs on {s.TrainRows:N0} MNIST images, {s.Samples:N0} samples each judged",
                ["generator", "Fréchet distance", "digits present (>= 1 %)", "digits covering 90 %", "entropy (bits)", "seconds"],
                gans.Select(g => (IReadOnlyList<string>)[g.Name, F(g.Frechet, "F2"), g.Histogram.ClassesPresent.ToString(), g.Histogram.ClassesCovering90.ToString(),
                    F(g.Histogram.Entropy, "F3"), F(g.Seconds, "F0")]).Append(["real test vs real training images", F(baseline, "F2"), "", "", "", ""]).ToList())],
            $"mlnetdeep gan mnist --kind dense -o out   (the comparison: mlnetdeep course generative{run.QuickFlag})");
    }

    // ---------------------------------------------------------------- d. dreaming over several layers, style from noise

    /// <summary>A colour picture drawn in code: a sky gradient, a sun, hills and a house.</summary>
    public static VisionImage Landscape(int size)
    {
        var p = new float[3 * size * size];
        int plane = size * size;
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                double u = x / (double)size, v = y / (double)size;
                (double r, double g, double b) = (0.45 + 0.3 * v, 0.65 + 0.2 * v, 0.95);
                if ((u - 0.75) * (u - 0.75) + (v - 0.2) * (v - 0.2) < 0.01) (r, g, b) = (1.0, 0.85, 0.2);
                if (v > 0.65 + 0.08 * Math.Sin(6 * u)) (r, g, b) = (0.2, 0.55 + 0.2 * (1 - v), 0.15);
                if (u is > 0.2 and < 0.45 && v is > 0.5 and < 0.75) (r, g, b) = (0.8, 0.3, 0.2);
                if (u is > 0.28 and < 0.36 && v is > 0.62 and < 0.75) (r, g, b) = (0.35, 0.2, 0.1);
                p[y * size + x] = (float)r;
                p[plane + y * size + x] = (float)g;
                p[2 * plane + y * size + x] = (float)b;
            }
        return new VisionImage(p, 3, size, size);
    }

    /// <summary>A style picture drawn in code: diagonal stripes of blue and orange with dots.</summary>
    public static VisionImage Stripes(int size)
    {
        var p = new float[3 * size * size];
        int plane = size * size;
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                bool stripe = (x + y) / Math.Max(2, size / 8) % 2 == 0;
                bool dot = (x % 8 - 4) * (x % 8 - 4) + (y % 8 - 4) * (y % 8 - 4) < 4;
                (float r, float g, float b) = dot ? (1f, 1f, 1f) : stripe ? (0.1f, 0.2f, 0.8f) : (1f, 0.55f, 0.1f);
                p[y * size + x] = r;
                p[plane + y * size + x] = g;
                p[2 * plane + y * size + x] = b;
            }
        return new VisionImage(p, 3, size, size);
    }

    /// <summary>Each layer's mean squared activation for an image.</summary>
    public static double[] Activations(FeatureNetwork network, VisionImage image, IReadOnlyList<string> layers)
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        using var noGrad = TorchSharp.torch.no_grad();
        var x = TorchSharp.torch.tensor(image.Pixels, [1, image.Channels, image.Height, image.Width]).to(network.Device);
        return network.Run(x, layers.Select(network.LayerIndex).ToList()).Select(f => f.square().mean().item<float>()).Select(v => (double)v).ToArray();
    }

    /// <summary>The content loss (mean squared difference at <paramref name="contentLayer"/>) and style loss (mean over the style layers of the Gram matrices' mean squared difference).</summary>
    public static (double Content, double Style) StyleLosses(FeatureNetwork network, VisionImage image, VisionImage content, VisionImage style, string contentLayer, IReadOnlyList<string> styleLayers)
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        using var noGrad = TorchSharp.torch.no_grad();
        TorchSharp.torch.Tensor T(VisionImage v) => TorchSharp.torch.tensor(v.Pixels, [1, v.Channels, v.Height, v.Width]).to(network.Device);
        int c = network.LayerIndex(contentLayer);
        var styleIndices = styleLayers.Select(network.LayerIndex).ToList();
        double contentLoss = TorchSharp.torch.nn.functional.mse_loss(network.Run(T(image), [c])[0], network.Run(T(content), [c])[0]).item<float>();
        var a = network.Run(T(image), styleIndices);
        var b = network.Run(T(style), styleIndices);
        double styleLoss = a.Zip(b).Average(p => (double)TorchSharp.torch.nn.functional.mse_loss(StyleTransfer.Gram(p.First), StyleTransfer.Gram(p.Second)).item<float>());
        return (contentLoss, styleLoss);
    }

    public sealed record DreamRow(string Name, double[] Activations);

    public sealed record StyleRow(string Start, double Content, double Style);

    public static (IReadOnlyList<string> Layers, IReadOnlyList<DreamRow> Dreams, IReadOnlyList<StyleRow> Styles, IReadOnlyList<string> Files) RunDreamAndStyle(CourseRun run, GenerativeSettings s)
    {
        using var network = FeatureNetwork.Random(3, run.Seed);
        var convolutions = network.LayerNames.Where((_, i) => network.Network.Layers[i] is Conv2D).ToList();
        var layers = convolutions.Take(3).ToList();
        var picture = Landscape(s.VisionSize);
        var dreamOptions = new InputOptimizationOptions { Octaves = 2, Steps = s.VisionSteps, Jitter = 2, LearningRate = 0.01, Rule = InputStepRule.NormalizedGradient, Seed = run.Seed };
        var dreams = new List<(string Name, VisionImage Image)> { ("picture", picture) };
        dreams.Add(($"{layers[0]} alone", DeepDream.Dream(network, picture, layers[0], dreamOptions)));
        dreams.Add(($"{layers[2]} alone", DeepDream.Dream(network, picture, layers[2], dreamOptions)));
        (string, double)[] mix = [(layers[0], 0.2), (layers[1], 0.5), (layers[2], 1.0)];
        dreams.Add(("mix 0.2/0.5/1.0", DeepDream.Dream(network, picture, mix, dreamOptions)));
        var dreamRows = dreams.Select(d => new DreamRow(d.Name, Activations(network, d.Image, layers))).ToList();
        var files = new List<string>();
        var dreamPath = Path.Combine(run.Output, "generative-dreams.png");
        ImageGrid.Save(dreamPath, dreams.Select(d => d.Image.Pixels).ToList(), s.VisionSize, s.VisionSize, 4, scale: Math.Max(1, 192 / s.VisionSize),
            captions: dreams.Select(d => d.Name).ToList(), title: "Deep dreaming, random-weight network: one layer, another, three weighted", channels: 3);
        files.Add(dreamPath);

        var style = Stripes(s.VisionSize);
        var noise = new VisionImage(Normal(new Random(run.Seed), picture.Pixels.Length).Select(v => Math.Clamp(0.5f + 0.2f * v, 0f, 1f)).ToArray(), 3, s.VisionSize, s.VisionSize);
        var styleOptions = new StyleTransferOptions { StyleWeight = 30, Optimization = new InputOptimizationOptions { Steps = s.VisionSteps * 10, LearningRate = 0.03, Seed = run.Seed } };
        string contentLayer = convolutions[Math.Min(2, convolutions.Count - 1)];
        var fromContent = StyleTransfer.Transfer(network, picture, style, styleOptions);
        var fromNoise = StyleTransfer.Transfer(network, picture, style, styleOptions with { Start = noise });
        var styleRows = new List<StyleRow>();
        foreach (var (name, image) in new[] { ("content picture itself (no steps)", picture), ("noise itself (no steps)", noise), ("from the content picture", fromContent), ("from noise", fromNoise) })
        {
            var (content, styleLoss) = StyleLosses(network, image, picture, style, contentLayer, convolutions);
            styleRows.Add(new StyleRow(name, content, styleLoss));
        }
        var stylePath = Path.Combine(run.Output, "generative-style-from-noise.png");
        ImageGrid.Save(stylePath, [picture.Pixels, style.Pixels, noise.Pixels, fromContent.Pixels, fromNoise.Pixels], s.VisionSize, s.VisionSize, 5,
            scale: Math.Max(1, 160 / s.VisionSize), captions: ["content", "style", "noise", "from content", "from noise"],
            title: $"Style transfer ({s.VisionSteps * 10} Adam steps): from the content picture and from noise", channels: 3);
        files.Add(stylePath);
        foreach (var f in files) run.Log.WriteLine($"Wrote {f}");
        return (layers, dreamRows, styleRows, files);
    }

    private static CourseExperiment DreamAndStyleExperiment(CourseRun run)
    {
        var s = SettingsOf(run);
        var (layers, dreams, styles, files) = RunDreamAndStyle(run, s);
        var picture = dreams[0].Activations;
        var mix = dreams[3].Activations;
        bool dreamsRise = dreams[1].Activations[0] > picture[0] && dreams[2].Activations[2] > picture[2] && mix.Zip(picture).All(p => p.First > p.Second);
        var (content, noise, fromContent, fromNoise) = (styles[0], styles[1], styles[2], styles[3]);
        bool styleWorks = fromNoise.Style < noise.Style && fromContent.Style < content.Style && fromNoise.Content < noise.Content && fromContent.Content <= fromNoise.Content;
        return new CourseExperiment("Dreaming over several weighted layers; style transfer from noise",
            "Different dreams come from different layers and weights: dreaming with a layer makes that layer respond more strongly, and a weighted mix " +
            "raises every layer in it. Style transfer \"starts with a noisy image\" and moves its pixels to lower the weighted content and style losses; " +
            "started from noise the picture's content appears, though after the same steps it stays further from the content than a run started from the picture.",
            $"Mean squared activation of {string.Join(", ", layers)}: picture {string.Join(" / ", picture.Select(v => F(v, "F3")))}, weighted mix " +
            $"{string.Join(" / ", mix.Select(v => F(v, "F3")))}. Style loss from noise {F(noise.Style, "G3")} -> {F(fromNoise.Style, "G3")}, content loss " +
            $"{F(noise.Content, "G3")} -> {F(fromNoise.Content, "G3")} (from the picture: content {F(fromContent.Content, "G3")}, style {F(fromContent.Style, "G3")}).",
            dreamsRise && styleWorks, files,
            [
                new CourseTable($"Deep dreaming ({s.VisionSize} x {s.VisionSize} picture drawn in code, random-weight network, 2 octaves x {s.VisionSteps} steps): mean squared activation",
                    ["image", .. layers], dreams.Select(d => (IReadOnlyList<string>)[d.Name, .. d.Activations.Select(v => F(v, "F4"))]).ToList()),
                new CourseTable($"Style transfer, {s.VisionSteps * 10} Adam steps of 0.03, content weight 1, style weight 30: losses of the result",
                    ["start", "content loss", "style loss (mean over layers)"], styles.Select(r => (IReadOnlyList<string>)[r.Start, F(r.Content, "G4"), F(r.Style, "G4")]).ToList()),
            ],
            $"mlnetdeep vision dream --image photo.jpg --layer conv2d_1 --random; mlnetdeep vision style --content a.jpg --style b.jpg --random   (here: mlnetdeep course generative{run.QuickFlag})");
    }

    // ---------------------------------------------------------------- e. an autoencoder on colour pictures in four rotations

    /// <summary><paramref name="count"/> colour pictures drawn in code (size x size, planes R, G, B): a background colour, a coloured bar, a disc and a triangle at random places.</summary>
    public static IReadOnlyList<float[]> Pictures(int count, int size, int seed)
    {
        var random = new Random(seed);
        var pictures = new List<float[]>();
        int plane = size * size;
        for (int n = 0; n < count; n++)
        {
            float[] Colour() => [(float)random.NextDouble(), (float)random.NextDouble(), (float)random.NextDouble()];
            var (back, bar, disc, tri) = (Colour(), Colour(), Colour(), Colour());
            int barY = random.Next(size), barH = 2 + random.Next(size / 4);
            double cx = random.NextDouble() * size, cy = random.NextDouble() * size, radius = 2 + random.NextDouble() * size / 4;
            int tx = random.Next(size / 2), ty = random.Next(size / 2), ts = size / 4 + random.Next(size / 4);
            var p = new float[3 * plane];
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                {
                    var c = back;
                    if (y >= barY && y < barY + barH) c = bar;
                    if ((x - cx) * (x - cx) + (y - cy) * (y - cy) < radius * radius) c = disc;
                    if (x >= tx && y >= ty && x - tx < ts && y - ty < x - tx + 1) c = tri;
                    for (int ch = 0; ch < 3; ch++) p[ch * plane + y * size + x] = c[ch];
                }
            pictures.Add(p);
        }
        return pictures;
    }

    /// <summary>A picture (channels x size x size) turned a quarter turn clockwise.</summary>
    public static float[] Rotate(float[] picture, int size)
    {
        int plane = size * size, channels = picture.Length / plane;
        var r = new float[picture.Length];
        for (int ch = 0; ch < channels; ch++)
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                    r[ch * plane + x * size + (size - 1 - y)] = picture[ch * plane + y * size + x];
        return r;
    }

    /// <summary>Each picture in its four rotations (0, 90, 180 and 270 degrees), picture by picture.</summary>
    public static IReadOnlyList<float[]> WithRotations(IReadOnlyList<float[]> pictures, int size) => pictures.SelectMany(p =>
    {
        var turns = new List<float[]> { p };
        for (int k = 1; k < 4; k++) turns.Add(Rotate(turns[^1], size));
        return turns;
    }).ToList();

    public sealed record RotationRow(string Training, int Images, double TrainMse, double BlackInputToFirst);

    public static (IReadOnlyList<RotationRow> Rows, string Path) RunRotations(CourseRun run, GenerativeSettings s, int size = 16, int latent = 20)
    {
        var single = Pictures(1, size, run.Seed);
        var set = WithRotations(Pictures(s.Pictures, size, run.Seed), size);
        var rows = new List<RotationRow>();
        var figure = new List<float[]>();
        var captions = new List<string>();
        var black = new float[3 * size * size];
        foreach (var (name, data) in new[] { ("one picture", single), ($"{s.Pictures} pictures x 4 rotations", set) })
        {
            var options = AutoencoderNetworks.DenseAutoencoder(latent);
            options.InputShape = [3, size, size];
            options.Epochs = s.AutoencoderEpochs * (data.Count == 1 ? 3 : 1);
            options.BatchSize = Math.Min(32, data.Count);
            options.Seed = run.Seed;
            var view = VectorView(run.Ml, data, "Pixels");
            using var model = run.Ml.Transforms.Autoencoder(options).Fit(view);
            var shown = data.Take(4).ToList();
            var rebuilt = model.Decode(model.Encode(shown));
            var all = model.Decode(model.Encode(data));
            double mse = data.Zip(all).Average(p => p.First.Zip(p.Second).Average(q => (q.First - q.Second) * (double)(q.First - q.Second)));
            var fromBlack = model.Decode(model.Encode([black]))[0];
            rows.Add(new RotationRow(name, data.Count, mse, Rms(fromBlack, data[0])));
            for (int i = 0; i < shown.Count; i++)
            {
                figure.Add(shown[i]);
                figure.Add(rebuilt[i]);
                figure.Add(shown[i].Zip(rebuilt[i]).Select(p => Math.Abs(p.First - p.Second)).ToArray());
                captions.AddRange(i == 0 ? [name.Split(' ')[0] == "one" ? "one: input" : "set: input", "output", "|diff|"] : ["", "", ""]);
            }
            figure.Add(black);
            figure.Add(fromBlack);
            figure.Add(fromBlack.Zip(data[0]).Select(p => Math.Abs(p.First - p.Second)).ToArray());
            captions.AddRange(["black in", "output", "|out - 1st|"]);
        }
        var path = Path.Combine(run.Output, "generative-rotations.png");
        ImageGrid.Save(path, figure, size, size, 15, scale: 4, captions: captions, channels: 3,
            title: $"Dense autoencoder, {latent} latents: one picture (top), {s.Pictures} pictures in 4 rotations (bottom); input, output, difference");
        run.Log.WriteLine($"Wrote {path}");
        return (rows, path);
    }

    private static CourseExperiment Rotations(CourseRun run)
    {
        var s = SettingsOf(run);
        var (rows, path) = RunRotations(run, s);
        var (one, set) = (rows[0], rows[1]);
        return new CourseExperiment("An autoencoder on one picture, then on many pictures in four rotations",
            "Trained on one picture, an autoencoder rebuilds it almost exactly, and even a black input comes out as that picture: it has memorised it " +
            "rather than compressed anything. Trained on 100 pictures, each in 4 rotations, 20 numbers are not enough to get much back: the error is far larger.",
            $"One picture: MSE {F(one.TrainMse, "F5")}, black input to the picture RMS {F(one.BlackInputToFirst, "F3")}; {set.Images} images ({s.Pictures} x 4 rotations): " +
            $"MSE {F(set.TrainMse, "F5")} ({F(set.TrainMse / Math.Max(one.TrainMse, 1e-12), "F0")} times as large). " +
            (one.BlackInputToFirst < 0.1 ? "The black input comes out as the memorised picture, as the course says." :
                "A black input does not come out as the memorised picture here (the verdict is on the errors alone): this encoder's ReLU layers answer a black input differently from the picture.") +
            " The pictures are drawn in code (bars, discs and triangles on a colour ground).",
            one.TrainMse * 5 < set.TrainMse, [path],
            [new CourseTable($"Dense autoencoder (512-128-20-128-512), 16 x 16 colour pictures", ["training set", "images", "MSE per value on the training set", "RMS of black input's output to the first picture"],
                rows.Select(r => (IReadOnlyList<string>)[r.Training, r.Images.ToString(), F(r.TrainMse, "F5"), F(r.BlackInputToFirst, "F3")]).ToList())],
            $"mlnetdeep course generative{run.QuickFlag}");
    }
}
