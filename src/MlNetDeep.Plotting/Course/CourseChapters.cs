using static MlNetDeep.Plotting.Course.CourseReport;

namespace MlNetDeep.Plotting.Course;

/// <summary>
/// The chapters of the course the report knows, in the course's order. Each experiment runs the library's own experiment
/// class at full or quick size, turns what it measured into tables and says whether the course's prediction held.
/// </summary>
public static class CourseChapters
{
    /// <summary>Every chapter, in order.</summary>
    public static IReadOnlyList<CourseChapter> All { get; } =
    [
        OptimizationCourse.Chapter,
        CnnOptimizerCourse.Chapter,
        PerceptronCourse.Chapter,
        new("toy", "Classification of 2-D toy data",
            "A perceptron and small MLPs on half-moons and circles, and a deep stack without activations.", [Toy]),
        new("regression", "Regression and curve fitting",
            "Least squares, polynomial under- and overfitting, one hidden layer as a universal approximator.", [Regression]),
        CapacityCourse.Chapter,
        new("kmeans", "k-means clustering", "ML.NET's KMeans on 2-D data and on MNIST, and the choice of k.", [KMeansToy, KMeansMnist]),
        new("pca", "Principal component analysis", "Eigen-digits, reconstructions, explained variance and PCA features for a network.", [Pca]),
        RegularisationCourse.Chapter,
        new("crossvalidate", "Cross-validation and learning curves", "k-fold cross-validation of the network trainer; overfitting, dropout and early stopping.", [CrossValidate]),
        ConvolutionCourse.Chapter,
        GenerativeCourse.Chapter,
        new("augment", "Data augmentation", "Keras' MNIST CNN on a small training set with and without augmentation.", [Augment]),
        LongRunsCourse.Chapter,
    ];

    /// <summary>The chapter called <paramref name="name"/>, or null.</summary>
    public static CourseChapter? Find(string name) => All.FirstOrDefault(c => c.Name == name);

    private static CourseExperiment Toy(CourseRun run)
    {
        var results = ToyClassificationCourse.Run(run.Ml, run.Output, run.Log, run.Seed, epochs: run.Quick ? 40 : 150);
        var rows = ToyClassificationCourse.Models.Select(m => (IReadOnlyList<string>)[m.Name,
            P(results.Single(r => r.DataSet == "half-moons" && r.Model == m.Name).TestAccuracy),
            P(results.Single(r => r.DataSet == "circles" && r.Model == m.Name).TestAccuracy)]).ToList();
        double Acc(string set, string model) => results.Single(r => r.DataSet == set && r.Model == model).TestAccuracy;
        double linear = Acc("circles", "perceptron (linear)"), mlp = Acc("circles", "MLP 1 hidden x 32"), flat = Acc("circles", "4 x 32, no activation");
        bool agrees = linear < 0.75 && flat < 0.75 && mlp > 0.9;
        return new CourseExperiment("Decision boundaries on half-moons and circles",
            "A single linear unit draws one straight boundary, so it cannot separate circles; a hidden layer with a non-linearity can; " +
            "stacking layers without activations collapses to one linear map and is no better than the perceptron.",
            $"On circles the perceptron scores {P(linear)}, four linear layers {P(flat)}, and one hidden layer of 32 tanh units {P(mlp)}.",
            agrees, [Path.Combine(run.Output, "toy-boundaries-moons.png"), Path.Combine(run.Output, "toy-boundaries-circles.png")],
            [new CourseTable("Test accuracy (400 test points each)", ["network", "half-moons", "circles"], rows)],
            $"mlnetdeep toy boundaries -o out   (or: mlnetdeep course toy{run.QuickFlag})");
    }

    private static CourseExperiment Regression(CourseRun run)
    {
        var r = RegressionCourse.Run(run.Ml, run.Output, run.Log, run.Seed, networkEpochs: run.Quick ? 100 : 300);
        var d3 = r.Degrees.Single(d => d.Degree == 3);
        var d12 = r.Degrees.Single(d => d.Degree == 12);
        double w1 = r.Widths.Single(w => w.Width == 1).Mse, w16 = r.Widths.Single(w => w.Width == 16).Mse;
        bool agrees = d12.TrainMse < d3.TrainMse && d12.ValidationMse > d3.ValidationMse && w16 < w1;
        return new CourseExperiment("Least squares, polynomial degree and network width",
            "Training error keeps falling as the polynomial's degree grows, while the error on new points falls then rises (overfitting); " +
            "a one-hidden-layer network fits a bumpy curve better the more units it has.",
            $"Degree 3: training MSE {F(d3.TrainMse, "F4")}, validation {F(d3.ValidationMse, "F4")}; degree 12: training {F(d12.TrainMse, "F4")}, " +
            $"validation {F(d12.ValidationMse, "F4")}. Width 1: MSE {F(w1, "F4")}; width 16: {F(w16, "F4")}. Fitted line y = {F(r.Slope, "F2")}x + {F(r.Intercept, "F2")} (truth 2x + 1).",
            agrees, r.Files,
            [
                new CourseTable("Polynomial least squares on 15 noisy points of sin(2πx)", ["degree", "training MSE", "validation MSE"],
                    r.Degrees.Select(d => (IReadOnlyList<string>)[d.Degree.ToString(), F(d.TrainMse, "F4"), F(d.ValidationMse, "F4")]).ToList()),
                new CourseTable("One hidden layer of tanh units fitting sin(2x) + 0.5 cos(5x)", ["width", "training MSE"],
                    r.Widths.Select(w => (IReadOnlyList<string>)[w.Width.ToString(), F(w.Mse, "F4")]).ToList()),
            ],
            $"mlnetdeep regression curves -o out   (or: mlnetdeep course regression{run.QuickFlag})");
    }

    private static CourseExperiment KMeansToy(CourseRun run)
    {
        var r = KMeansCourse.RunToy(run.Ml, run.Output, run.Log, run.Seed);
        double blobs4 = r.Runs.Single(x => x.DataSet.StartsWith("blobs", StringComparison.Ordinal) && x.Result.K == 4).Result.NormalizedMutualInformation ?? 0;
        double moons2 = r.Runs.Single(x => x.DataSet == "half-moons" && x.Result.K == 2).Result.NormalizedMutualInformation ?? 0;
        return new CourseExperiment("k-means on 2-D blobs and half-moons",
            "k-means finds compact blobs when k matches their number; its boundaries are straight (each point goes to the nearest centroid), " +
            "so even with k = 2 it cuts the two half-moons across instead of following them.",
            $"Blobs with k = 4: NMI {F(blobs4)}; half-moons with k = 2: NMI {F(moons2)}.",
            blobs4 > 0.8 && moons2 < 0.5, [r.Path],
            [new CourseTable("ML.NET KMeans on 400 points", ["data", "k", "inertia", "NMI", "purity"],
                r.Runs.Select(x => (IReadOnlyList<string>)[x.DataSet, x.Result.K.ToString(), F(x.Result.Inertia, "F1"),
                    F(x.Result.NormalizedMutualInformation ?? 0), F(x.Result.Purity ?? 0)]).ToList())],
            $"mlnetdeep kmeans toy -o out   (or: mlnetdeep course kmeans{run.QuickFlag})");
    }

    private static CourseExperiment KMeansMnist(CourseRun run)
    {
        var settings = run.Quick ? new KMeansSettings { Rows = 2_000, Ks = [5, 10, 15], PcaComponents = 30 } : new KMeansSettings();
        var r = KMeansCourse.RunMnist(run.Ml, settings, run.Output, run.Log);
        double nmi = r.Raw.FirstOrDefault(x => x.K == 10)?.NormalizedMutualInformation ?? 0;
        bool falls = r.Raw.Zip(r.Raw.Skip(1)).All(p => p.Second.Inertia <= p.First.Inertia * 1.01);
        return new CourseExperiment("k-means on MNIST and the choice of k",
            "Clusters of raw pixels follow the digits only in part (about half the label information at k = 10: NMI near 0.5), " +
            "and inertia keeps falling as k grows, so the elbow is soft.",
            $"{settings.Rows:N0} images, raw pixels, k = 10: NMI {F(nmi)}; inertia {(falls ? "falls with every k" : "does not fall with every k")}.",
            nmi is > 0.35 and < 0.65 && falls, r.Files,
            [new CourseTable($"ML.NET KMeans on {settings.Rows:N0} MNIST images", ["features", "k", "inertia per image", "NMI", "purity"],
                r.Raw.Select(x => ("raw pixels", x)).Concat(r.Pca.Select(x => ($"PCA({settings.PcaComponents})", x)))
                    .Select(p => (IReadOnlyList<string>)[p.Item1, p.x.K.ToString(), F(p.x.Inertia / settings.Rows, "F2"),
                        F(p.x.NormalizedMutualInformation ?? 0), F(p.x.Purity ?? 0)]).ToList())],
            $"mlnetdeep kmeans mnist --rows {settings.Rows} -o out   (or: mlnetdeep course kmeans{run.QuickFlag})");
    }

    private static CourseExperiment Pca(CourseRun run)
    {
        var settings = run.Quick ? new PcaSettings { TrainRows = 2_000, TestRows = 1_000, Epochs = 8 } : new PcaSettings();
        var r = PcaCourse.Run(run.Ml, settings, run.Output, run.Log);
        double at50 = r.CumulativeVariance[Math.Min(49, r.CumulativeVariance.Count - 1)];
        bool agrees = at50 > 0.75 && r.Projected.TestAccuracy >= r.Raw.TestAccuracy - 0.03 && r.Projected.Parameters < r.Raw.Parameters;
        return new CourseExperiment("PCA on MNIST",
            "A few dozen of the 784 directions hold most of the variance, so digits rebuilt from 50 components are easy to read, " +
            "and a network on PCA features does about as well as one on raw pixels with far fewer weights.",
            $"50 components explain {P(at50)} of the variance; {r.Projected.Name}: {P(r.Projected.TestAccuracy, 2)} with {r.Projected.Parameters:N0} parameters, " +
            $"{r.Raw.Name}: {P(r.Raw.TestAccuracy, 2)} with {r.Raw.Parameters:N0}.",
            agrees, r.Files,
            [
                new CourseTable($"Explained variance and test reconstruction error ({settings.TrainRows:N0} images fitted)", ["components", "explained variance", "MSE per pixel"],
                    r.ReconstructionErrors.Select(e => (IReadOnlyList<string>)[e.Components.ToString(), P(r.CumulativeVariance[e.Components - 1], 2), F(e.Error, "F5")]).ToList()),
                new CourseTable($"Networks ({settings.Epochs} epochs, {settings.TestRows:N0} test images)", ["network", "test accuracy", "parameters", "fit seconds"],
                    new[] { r.Raw, r.Projected }.Select(n => (IReadOnlyList<string>)[n.Name, P(n.TestAccuracy, 2), n.Parameters.ToString("N0"), F(n.TrainSeconds, "F1")]).ToList()),
            ],
            $"mlnetdeep pca mnist --rows {settings.TrainRows} -o out   (or: mlnetdeep course pca{run.QuickFlag})");
    }

    private static CourseExperiment CrossValidate(CourseRun run)
    {
        var settings = run.Quick
            ? new CrossValidationSettings { Rows = 1_000, Folds = 3, Epochs = 2, OverfitRows = 300, OverfitEpochs = 15 }
            : new CrossValidationSettings();
        var r = CrossValidationCourse.Run(run.Ml, settings, run.Output, run.Log);
        var plain = r.Curves[0].History;
        var stopped = r.Curves[2].History;
        double lowest = plain.Epochs.Min(e => e.ValidationLoss ?? double.MaxValue), last = plain.Epochs[^1].ValidationLoss ?? double.NaN;
        bool agrees = last > lowest && stopped.Epochs.Count < settings.OverfitEpochs;
        return new CourseExperiment("Cross-validation and learning curves",
            "Each fold gives a slightly different accuracy, and their spread says how far to trust one number; trained long on a small set, " +
            "a network's validation loss turns up while its training loss keeps falling, and early stopping ends the run near the turn.",
            $"{settings.Folds} folds: {P(r.Mean, 2)} ± {P(r.StandardDeviation, 2)}. Plain MLP: lowest validation loss {F(lowest, "F4")}, last {F(last, "F4")}; " +
            $"early stopping ran {stopped.Epochs.Count} of {settings.OverfitEpochs} epochs.",
            agrees, [r.LearningCurvePath],
            [
                new CourseTable($"{settings.Folds}-fold CrossValidate, MLP(128), {settings.Epochs} epochs, {settings.Rows:N0} images", ["fold", "accuracy"],
                    r.FoldAccuracies.Select((a, i) => (IReadOnlyList<string>)[(i + 1).ToString(), P(a, 2)]).Append(["mean ± std", $"{P(r.Mean, 2)} ± {P(r.StandardDeviation, 2)}"]).ToList()),
                new CourseTable($"Learning curves on {settings.OverfitRows:N0} images", ["network", "epochs run", "final train loss", "final validation loss", "lowest validation loss"],
                    r.Curves.Select(c => (IReadOnlyList<string>)[c.Name, c.History.Epochs.Count.ToString(), F(c.History.Epochs[^1].TrainLoss, "F4"),
                        F(c.History.Epochs[^1].ValidationLoss ?? double.NaN, "F4"), F(c.History.Epochs.Min(e => e.ValidationLoss ?? double.MaxValue), "F4")]).ToList()),
            ],
            $"mlnetdeep crossvalidate mnist --rows {settings.Rows} -o out   (or: mlnetdeep course crossvalidate{run.QuickFlag})");
    }

    private static CourseExperiment Augment(CourseRun run)
    {
        var settings = run.Quick ? new AugmentationSettings { TrainRows = 300, TestRows = 1_000, Epochs = 4, CurveRows = 300 } : new AugmentationSettings();
        var r = AugmentationCourse.Run(run.Ml, settings, run.Output, run.Log);
        return new CourseExperiment("Augmentation on a small training set",
            "Random rotations, zooms and shifts of the few training images act like more data: the test accuracy rises.",
            $"{settings.TrainRows:N0} training images, {settings.Epochs} epochs: without augmentation {P(r.PlainAccuracy, 2)}, with {P(r.AugmentedAccuracy, 2)}.",
            r.AugmentedAccuracy >= r.PlainAccuracy, r.Files,
            [new CourseTable($"Keras' MNIST CNN, {settings.TestRows:N0} test images", ["training data", "test accuracy"],
                [["plain", P(r.PlainAccuracy, 2)], ["augmented", P(r.AugmentedAccuracy, 2)]])],
            $"mlnetdeep augment mnist --rows {settings.TrainRows} -o out   (or: mlnetdeep course augment{run.QuickFlag})");
    }
}
