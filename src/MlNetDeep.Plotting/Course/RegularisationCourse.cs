using Microsoft.ML;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Training;
using static MlNetDeep.Plotting.Course.CourseReport;

namespace MlNetDeep.Plotting.Course;

/// <summary>Settings of the regularisation experiments.</summary>
public sealed class RegularisationSettings
{
    /// <summary>MNIST training images (the first N).</summary>
    public int TrainRows { get; set; } = 10_000;

    /// <summary>MNIST test images (the first N).</summary>
    public int TestRows { get; set; } = 2_000;

    /// <summary>Epochs per network.</summary>
    public int Epochs { get; set; } = 10;

    /// <summary>Units in each of the two hidden layers.</summary>
    public int Hidden { get; set; } = 256;

    /// <summary>The dropout rate.</summary>
    public double Dropout { get; set; } = 0.5;
}

/// <summary>One network of the regularisation experiments: its accuracies and its per-epoch history.</summary>
public sealed record RegularisedNetwork(string Name, double TrainAccuracy, double TestAccuracy, TrainingHistory History);

/// <summary>
/// Regularisers of a small MNIST MLP side by side: dropout, batch normalisation and weight normalisation
/// (<see cref="WeightNormDense"/>), and the course's warning that dropout and batch normalisation do not play together
/// (dropout before batch normalisation, after it, and each alone).
/// </summary>
public static class RegularisationCourse
{
    /// <summary>The chapter: two experiments.</summary>
    public static CourseChapter Chapter { get; } = new("regularisation", "Regularisation: dropout, batch and weight normalisation",
        "Dropout, batch normalisation and weight normalisation on a small MNIST MLP, and dropout and batch normalisation combined in either order.",
        [Regularisers, DropoutWithBatchNorm]);

    /// <summary>The networks compared, each two hidden layers of <paramref name="hidden"/> ReLU units.</summary>
    public static IReadOnlyList<(string Name, NetworkSpec Network)> Networks(int hidden, double dropout)
    {
        NetworkSpec Spec(string name, params Layer[][] blocks) =>
            new([new Flatten(), .. blocks.SelectMany(b => b), new Dense(Dense.TaskOutputs)]) { Name = name };
        Layer[] Plain() => [new Dense(hidden, ActivationKind.ReLU)];
        Layer[] Drop() => [new Dense(hidden, ActivationKind.ReLU), new Dropout(dropout)];
        Layer[] Bn() => [new Dense(hidden), new BatchNorm(), new Activation(ActivationKind.ReLU)];
        Layer[] Wn() => [new WeightNormDense(hidden, ActivationKind.ReLU)];
        Layer[] DropThenBn() => [new Dense(hidden, ActivationKind.ReLU), new Dropout(dropout), new BatchNorm()];
        Layer[] BnThenDrop() => [new Dense(hidden), new BatchNorm(), new Activation(ActivationKind.ReLU), new Dropout(dropout)];
        return
        [
            ("plain", Spec("plain", Plain(), Plain())),
            ($"dropout {dropout}", Spec("dropout", Drop(), Drop())),
            ("batch norm", Spec("batchnorm", Bn(), Bn())),
            ("weight norm", new NetworkSpec([new Flatten(), .. Wn(), .. Wn(), new WeightNormDense(Dense.TaskOutputs)]) { Name = "weightnorm" }),
            ($"dropout {dropout} -> batch norm", Spec("dropout-batchnorm", DropThenBn(), DropThenBn())),
            ($"batch norm -> dropout {dropout}", Spec("batchnorm-dropout", BnThenDrop(), BnThenDrop())),
        ];
    }

    /// <summary>Trains every network on the same MNIST images (test images as validation data) and writes the curves PNG.</summary>
    public static (IReadOnlyList<RegularisedNetwork> Networks, string CurvesPath) Run(MLContext ml, RegularisationSettings settings, string output, TextWriter log, int seed = 1)
    {
        var train = ml.Data.Cache(ml.Data.LoadMnist(MnistSplit.Train, maxRows: settings.TrainRows));
        var test = ml.Data.Cache(ml.Data.LoadMnist(MnistSplit.Test, maxRows: settings.TestRows));
        var results = new List<RegularisedNetwork>();
        foreach (var (name, network) in Networks(settings.Hidden, settings.Dropout))
        {
            var model = ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
            {
                FeatureColumnName = "Pixels", Network = network, Epochs = settings.Epochs, BatchSize = 64, Optimizer = new Adam(1e-3),
                ValidationData = test, Seed = seed,
            }).Fit(train);
            double trainAccuracy = ml.MulticlassClassification.Evaluate(model.Transform(train)).MicroAccuracy;
            double testAccuracy = ml.MulticlassClassification.Evaluate(model.Transform(test)).MicroAccuracy;
            log.WriteLine($"{name,-28}: training accuracy {trainAccuracy:P2}, test accuracy {testAccuracy:P2}");
            results.Add(new RegularisedNetwork(name, trainAccuracy, testAccuracy, model.History!));
        }

        var loss = new ScottPlot.Plot();
        var accuracy = new ScottPlot.Plot();
        for (int i = 0; i < results.Count; i++)
        {
            var epochs = results[i].History.Epochs;
            var x = epochs.Select(e => (double)e.Epoch + 1).ToArray();
            var line = loss.Add.Scatter(x, epochs.Select(e => e.TrainLoss).ToArray());
            line.LegendText = results[i].Name;
            line.Color = PointCharts.ClassColor(i);
            line.LineWidth = 2;
            var test2 = accuracy.Add.Scatter(x, epochs.Select(e => 100 * (e.ValidationAccuracy ?? double.NaN)).ToArray());
            test2.LegendText = results[i].Name;
            test2.Color = PointCharts.ClassColor(i);
            test2.LineWidth = 2;
        }
        loss.Title("Training loss (with dropout active)");
        loss.XLabel("epoch");
        loss.YLabel("cross-entropy loss");
        loss.ShowLegend(ScottPlot.Alignment.UpperRight);
        accuracy.Title($"Test accuracy ({settings.TestRows:N0} images)");
        accuracy.XLabel("epoch");
        accuracy.YLabel("accuracy (%)");
        accuracy.ShowLegend(ScottPlot.Alignment.LowerRight);
        var path = Path.Combine(output, "regularisation-curves.png");
        PlotGrid.Save(path, [loss, accuracy], 2, 620, 480,
            $"MNIST MLP, 2 x {settings.Hidden} ReLU, {settings.TrainRows:N0} training images: regularisers and their combinations");
        log.WriteLine($"Wrote {path}");
        return (results, path);
    }

    private static readonly Dictionary<(string, bool, int), (IReadOnlyList<RegularisedNetwork>, string, RegularisationSettings)> Cache = [];

    private static (IReadOnlyList<RegularisedNetwork> Networks, string Path, RegularisationSettings Settings) Measure(CourseRun run)
    {
        var key = (run.Output, run.Quick, run.Seed);
        lock (Cache)
        {
            if (Cache.TryGetValue(key, out var done)) return done;
            var settings = run.Quick ? new RegularisationSettings { TrainRows = 2_000, TestRows = 1_000, Epochs = 8, Hidden = 128 } : new RegularisationSettings();
            var (networks, path) = Run(run.Ml, settings, run.Output, run.Log, run.Seed);
            Cache[key] = (networks, path, settings);
            return (networks, path, settings);
        }
    }

    private static CourseTable Table(RegularisationSettings s, IEnumerable<RegularisedNetwork> networks) =>
        new($"MNIST MLP (2 x {s.Hidden} ReLU), {s.TrainRows:N0} training and {s.TestRows:N0} test images, Adam 0.001, batch 64, {s.Epochs} epochs",
            ["network", "training accuracy", "test accuracy", "gap", "test accuracy after epoch 1"],
            networks.Select(n => (IReadOnlyList<string>)[n.Name, P(n.TrainAccuracy, 2), P(n.TestAccuracy, 2), P(n.TrainAccuracy - n.TestAccuracy, 2),
                P(n.History.Epochs[0].ValidationAccuracy ?? double.NaN, 2)]).ToList());

    /// <summary>The standard error of a test accuracy on this many images: differences below about twice it are noise.</summary>
    private static string Noise(RegularisedNetwork n, RegularisationSettings s) =>
        $"(On {s.TestRows:N0} test images one accuracy carries a standard error of about {P(Math.Sqrt(n.TestAccuracy * (1 - n.TestAccuracy) / s.TestRows), 1)}, " +
        "so smaller differences are noise.)";

    private static CourseExperiment Regularisers(CourseRun run)
    {
        var (networks, path, settings) = Measure(run);
        var plain = networks[0];
        var three = networks.Skip(1).Take(3).ToList();
        return new CourseExperiment("Dropout, batch normalisation and weight normalisation beside a plain MLP",
            "Each regulariser keeps the network from leaning on a few weights: dropout by switching units off at random, batch normalisation by " +
            "standardising each unit over the batch, weight normalisation (w = g v / ||v||) by learning each unit's weight length apart from its " +
            "direction. Each should score at least as well on the test images as the plain network (here: within 0.5 %), with a smaller gap between training and test.",
            $"Plain: test {P(plain.TestAccuracy, 2)}; " + string.Join("; ", three.Select(n => $"{n.Name}: {P(n.TestAccuracy, 2)}")) + ". " + Noise(plain, settings),
            three.All(n => n.TestAccuracy >= plain.TestAccuracy - 0.005), [path],
            [Table(settings, networks.Take(4))],
            $"mlnetdeep course regularisation{run.QuickFlag}");
    }

    private static CourseExperiment DropoutWithBatchNorm(CourseRun run)
    {
        var (networks, path, settings) = Measure(run);
        var dropout = networks[1];
        var batchNorm = networks[2];
        var before = networks[4];
        var after = networks[5];
        double alone = Math.Max(dropout.TestAccuracy, batchNorm.TestAccuracy);
        return new CourseExperiment("Dropout and batch normalisation together",
            "Batch normalisation and dropout do not usually play together nicely, so it is best to use one or the other: combined, they score no " +
            "better than the better of the two alone. (The known mechanism: dropout before batch normalisation changes the variance the " +
            "normalisation sees between training and testing.)",
            $"Dropout alone {P(dropout.TestAccuracy, 2)}, batch norm alone {P(batchNorm.TestAccuracy, 2)}; dropout -> batch norm {P(before.TestAccuracy, 2)}, " +
            $"batch norm -> dropout {P(after.TestAccuracy, 2)}. " + Noise(batchNorm, settings),
            before.TestAccuracy <= alone && after.TestAccuracy <= alone, [path],
            [Table(settings, [dropout, batchNorm, before, after])],
            $"mlnetdeep course regularisation{run.QuickFlag}");
    }
}
