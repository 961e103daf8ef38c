using System.CommandLine;
using MlNetDeep.Plotting.Course;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// The classical techniques: <c>kmeans mnist|toy</c>, <c>pca mnist</c>, <c>regression curves</c>, <c>toy boundaries</c>,
/// <c>crossvalidate mnist</c>, <c>augment mnist</c>. Each runs the library's experiment, prints its figures and writes PNGs under --output.
/// </summary>
internal static class CourseCommands
{
    public static IEnumerable<Command> Create()
    {
        yield return Report();
        yield return Group("kmeans", "k-means clustering (ML.NET KMeans) and the choice of k.",
            Leaf("mnist", "Cluster MNIST on raw pixels and PCA features for a range of k; plots inertia, NMI, purity and the k=10 centroids.", (ml, output, rows) =>
                KMeansCourse.RunMnist(ml, new KMeansSettings { Rows = rows ?? 10_000 }, output, Console.Out), "MNIST training images clustered (default 10,000)."),
            Leaf("toy", "k-means on 2-D blobs and half-moons with k too small and too large.", (ml, output, _) =>
                KMeansCourse.RunToy(ml, output, Console.Out)));
        yield return Group("pca", "Principal component analysis.",
            Leaf("mnist", "Eigen-digits, reconstructions from 12/50/100 components, explained variance, PCA(k) -> network vs raw pixels.", (ml, output, rows) =>
                PcaCourse.Run(ml, new PcaSettings { TrainRows = rows ?? 10_000 }, output, Console.Out), "MNIST training images (default 10,000)."));
        yield return Group("regression", "Regression and curve fitting.",
            Leaf("curves", "Linear regression (least squares), polynomial under/overfitting by degree, one-hidden-layer networks of width 1-16.", (ml, output, _) =>
                RegressionCourse.Run(ml, output, Console.Out)));
        yield return Group("toy", "Classification of 2-D toy data.",
            Leaf("boundaries", "Decision boundaries of a perceptron and MLPs on half-moons and circles, and the no-activation collapse.", (ml, output, _) =>
                ToyClassificationCourse.Run(ml, output, Console.Out)));
        yield return Group("crossvalidate", "Cross-validation and learning curves.",
            Leaf("mnist", "k-fold CrossValidate of the network trainer on MNIST; learning curves with and without dropout/early stopping.", (ml, output, rows) =>
                CrossValidationCourse.Run(ml, new CrossValidationSettings { Rows = rows ?? 5_000 }, output, Console.Out), "MNIST training images cross-validated (default 5,000)."));
        yield return Group("augment", "Data preparation: augmentation, encodings, normalisation.",
            Leaf("mnist", "Keras' CNN on 1,000 MNIST images with and without augmentation; encoding and normalisation examples.", (ml, output, rows) =>
            {
                AugmentationCourse.DataPreparation(ml, Console.Out);
                return AugmentationCourse.Run(ml, new AugmentationSettings { TrainRows = rows ?? 1_000 }, output, Console.Out);
            }, "MNIST training images (default 1,000)."));
    }

    /// <summary>
    /// <c>course &lt;chapter&gt;|all -o report [--quick]</c>: runs a chapter's experiments (or all) and writes one HTML page per
    /// chapter, its figures and an index.html.
    /// </summary>
    private static Command Report()
    {
        var common = new CommonOptions();
        var chapter = new Argument<string>("chapter")
        {
            Description = "The chapter to run, or all: " + string.Join(", ", CourseChapters.All.Select(c => c.Name)) + ".",
        };
        chapter.AcceptOnlyFromAmong([.. CourseChapters.All.Select(c => c.Name), "all"]);
        var quick = new Option<bool>("--quick") { Description = "Small data and few epochs: every chapter in seconds to a minute or two." };
        var command = new Command("course", "Run the course's experiments and write a static HTML report (one page per chapter, figures, measured tables, " +
            "what the course predicts and whether the measurement agrees) under --output.") { chapter, quick };
        common.AddTo(command);
        command.SetAction(result =>
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            string name = result.GetValue(chapter)!;
            var chapters = name == "all" ? CourseChapters.All : [CourseChapters.Find(name)!];
            var results = CourseReport.Run(common.CreateContext(result), chapters, common.OutputFolder(result), result.GetValue(quick), Console.Out, result.GetValue(common.Seed));
            foreach (var r in results)
                Console.WriteLine($"{r.Chapter.Name,-14} {r.Seconds,6:F0} s  {r.Experiments.Count(e => e.Agrees == true)} of {r.Experiments.Count} experiments agree with the course");
            Console.WriteLine($"Done in {clock.Elapsed.TotalSeconds:F0} s. Open {Path.Combine(common.OutputFolder(result), "index.html")}");
            return 0;
        });
        return command;
    }

    private static Command Group(string name, string description, params Command[] leaves)
    {
        var group = new Command(name, description);
        foreach (var leaf in leaves) group.Subcommands.Add(leaf);
        return group;
    }

    private static Command Leaf(string name, string description, Func<Microsoft.ML.MLContext, string, int?, object> run, string? rowsDescription = null)
    {
        var common = new CommonOptions();
        var command = new Command(name, description);
        var rows = new Option<int?>("--rows") { Description = rowsDescription ?? "Not used by this command." }.AtLeast(1);
        if (rowsDescription is not null) command.Options.Add(rows);
        common.AddTo(command);
        command.SetAction(result =>
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            int? count = rowsDescription is null ? null : result.GetValue(rows);
            run(common.CreateContext(result), common.OutputFolder(result), count);
            Console.WriteLine($"Done in {clock.Elapsed.TotalSeconds:F0} s.");
            return 0;
        });
        return command;
    }
}
