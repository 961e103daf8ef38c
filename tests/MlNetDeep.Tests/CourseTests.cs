using System.Diagnostics;
using System.Text.RegularExpressions;
using Microsoft.ML;
using MlNetDeep.Plotting.Course;
using MlNetDeep.Training;
using SkiaSharp;
using Xunit.Abstractions;

namespace MlNetDeep.Tests;

/// <summary>The course report (pages, links, a real browser) and the course's experiments' claims.</summary>
public sealed class CourseTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("mlnetdeep-course-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static readonly Regex Links = new("(?:src|href)=\"([^\"]*)\"", RegexOptions.Compiled);
    private static readonly Regex Images = new("<img [^>]*src=\"([^\"]*)\"", RegexOptions.Compiled);

    /// <summary>Debian's chromium (or another Chromium-family browser) on PATH, or null.</summary>
    private static string? FindBrowser()
    {
        foreach (var name in new[] { "chromium", "chromium-browser", "google-chrome", "google-chrome-stable" })
            foreach (var folder in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
                if (File.Exists(Path.Combine(folder, name))) return Path.Combine(folder, name);
        return null;
    }

    private static (int ExitCode, string Output) RunBrowser(string browser, IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(browser) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--allow-file-access-from-files" }.Concat(args))
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(90)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("the headless browser was still running after 90 s");
        }
        process.WaitForExit();
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    /// <summary>
    /// A quick report of the cheapest chapter: every page's images are existing, decodable PNGs, every relative link
    /// targets an existing file, nothing is loaded from outside the folder, and headless Chromium renders each page
    /// (its DOM has the title and every image; a screenshot is drawn).
    /// </summary>
    [Fact]
    public void QuickReportPagesLinkExistingFilesAndRenderInAHeadlessBrowser()
    {
        var report = Path.Combine(_root, "report");
        var chapters = new[] { CourseChapters.Find("perceptron")! };
        var log = new StringWriter();
        var results = CourseReport.Run(new MLContext(seed: 1), chapters, report, quick: true, log);
        output.WriteLine(log.ToString());
        Assert.Single(results);
        Assert.True(results[0].Experiments.Count >= 3);
        Assert.All(results[0].Experiments, e => Assert.True(e.Agrees, $"{e.Title}: {e.Verdict}"));

        var pages = new[] { Path.Combine(report, "index.html"), Path.Combine(report, "perceptron.html") };
        int images = 0;
        foreach (var page in pages)
        {
            Assert.True(File.Exists(page), page);
            var html = File.ReadAllText(page);
            Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("<link", html, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("@import", html, StringComparison.OrdinalIgnoreCase);
            foreach (Match link in Links.Matches(html))
            {
                var target = link.Groups[1].Value;
                Assert.False(target.Contains("://", StringComparison.Ordinal) || target.StartsWith("//", StringComparison.Ordinal), $"{page} links outside the folder: {target}");
                if (target.StartsWith('#')) continue;
                var file = Path.Combine(Path.GetDirectoryName(page)!, Uri.UnescapeDataString(target.Split('#')[0]));
                Assert.True(File.Exists(file), $"{page} links {target}, which does not exist");
            }
            foreach (Match image in Images.Matches(html))
            {
                var file = Path.Combine(Path.GetDirectoryName(page)!, Uri.UnescapeDataString(image.Groups[1].Value));
                Assert.EndsWith(".png", file);
                using var bitmap = SKBitmap.Decode(file);
                Assert.True(bitmap is { Width: > 100, Height: > 100 }, $"{file} is not a decodable PNG");
                images++;
            }
        }
        Assert.True(images >= 2, $"only {images} images in the pages");
        Assert.Contains("perceptron.html", File.ReadAllText(pages[0]));

        var browser = FindBrowser();
        if (browser is null)
        {
            // .ci/run installs Debian's chromium; outside CI a machine without a browser checks everything but the rendering.
            Assert.False(Environment.GetEnvironmentVariable("CI") == "true", "no headless browser (chromium) found: .ci/run should have installed it");
            output.WriteLine("SKIPPED the browser part: no chromium, chromium-browser or google-chrome on PATH.");
            return;
        }
        var chapterPage = pages[1];
        var (code, dom) = RunBrowser(browser, ["--dump-dom", new Uri(chapterPage).AbsoluteUri]);
        Assert.True(code == 0, $"the browser exited with {code}: {dom}");
        Assert.Contains("<h1>The classic perceptron</h1>", dom);
        Assert.Equal(Images.Matches(File.ReadAllText(chapterPage)).Count, Images.Matches(dom).Count);
        Assert.Contains("<table>", dom);

        var screenshot = Path.Combine(_root, "perceptron-page.png");
        var (shotCode, shotOutput) = RunBrowser(browser, [$"--screenshot={screenshot}", "--window-size=1200,1600", "--hide-scrollbars", new Uri(chapterPage).AbsoluteUri]);
        Assert.True(shotCode == 0 && File.Exists(screenshot), $"no screenshot (exit {shotCode}): {shotOutput}");
        using var shot = SKBitmap.Decode(screenshot);
        Assert.Equal((1200, 1600), (shot.Width, shot.Height));
        int coloured = 0;
        for (int y = 0; y < shot.Height; y += 2)
            for (int x = 0; x < shot.Width; x += 2)
            {
                var c = shot.GetPixel(x, y);
                if (Math.Max(c.Red, Math.Max(c.Green, c.Blue)) - Math.Min(c.Red, Math.Min(c.Green, c.Blue)) > 60) coloured++;
            }
        // The figures' coloured points and curves show in the rendered page: an image that did not load draws no colour.
        Assert.True(coloured > 500, $"only {coloured} coloured pixels in the screenshot: the figures did not render");
        var kept = Environment.GetEnvironmentVariable("MLNETDEEP_COURSE_SCREENSHOT");
        if (!string.IsNullOrEmpty(kept)) File.Copy(screenshot, kept, overwrite: true);
    }

    [Fact]
    public void CourseCommandRejectsAnUnknownChapter()
    {
        var parsed = Cli.CliApp.Build().Parse(["course", "no-such-chapter", "--quick"]);
        Assert.NotEmpty(parsed.Errors);
        Assert.Empty(Cli.CliApp.Build().Parse(["course", "all", "--quick", "-o", "x"]).Errors);
        Assert.Equal(CourseChapters.All.Count, CourseChapters.All.Select(c => c.Name).Distinct().Count());
    }

    [Fact]
    public void EveryChapterACourseClassDefinesIsInTheReport()
    {
        // A course class's static Chapter that the list leaves out would never run in `course all`.
        var defined = typeof(CourseChapters).Assembly.GetTypes()
            .Select(t => t.GetProperty("Chapter", System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static))
            .Where(p => p?.PropertyType == typeof(CourseChapter))
            .Select(p => ((CourseChapter)p!.GetValue(null)!).Name).ToList();
        Assert.NotEmpty(defined);
        Assert.All(defined, name => Assert.NotNull(CourseChapters.Find(name)));
        Assert.Empty(Cli.CliApp.Build().Parse(["course", "generative", "--quick", "-o", "x"]).Errors);
    }

    [Fact]
    public void ALongRunsProjectionIsTheMeasuredRateScaledToTheFullRunAndPastTwoHoursNeedsAGpu()
    {
        // The character model's 50 epochs of 121,976 windows at 1,000 windows per second: 6,099 s, under two hours.
        var run = new LongRun("character model, 50 epochs", "windows", 121_976, 50, LongRunsCourse.CharacterCommand);
        var cpu = new LongRunTiming(run, 5_000, 5, 1_000);
        Assert.Equal(121.976, cpu.SecondsPerEpoch, 1e-9);
        Assert.Equal(6_098.8, cpu.ProjectedSeconds, 1e-6);
        Assert.False(cpu.NeedsGpu);
        Assert.Equal("101.6 min", LongRunsCourse.Duration(cpu.ProjectedSeconds));
        // Half the rate doubles the run past two hours.
        var slow = cpu with { ItemsPerSecond = 500 };
        Assert.True(slow.NeedsGpu);
        Assert.Equal("3.4 h", LongRunsCourse.Duration(slow.ProjectedSeconds));
        Assert.EndsWith(" --gpu 0", slow.GpuCommand);
        Assert.StartsWith("mlnetdeep text train --epochs 50", slow.GpuCommand);
        Assert.Equal("48 s", LongRunsCourse.Duration(48));
    }

    [Fact]
    public void ALongRunsMeasurementScalesTheSlicesWindowsToTheWholeText()
    {
        // One epoch of a small character model on the first half of a synthetic text: the full epoch has twice its windows.
        var text = string.Concat(Enumerable.Range(0, 120).Select(i => $"The priest looked at the {(i % 3 == 0 ? "river" : "garden")} number {i}. "));
        int slice = text.Length / 2;
        var ml = new MLContext(seed: 1);
        var options = LongRunsCourse.CharacterOptions(epochs: 1, seed: 1);
        options.Units = 16;
        options.Layers = 1;
        var t = LongRunsCourse.MeasureText(ml, "character model, 50 epochs", LongRunsCourse.CharacterCommand, options, text, slice, 50);
        output.WriteLine($"{t.MeasuredItems:F0} windows in {t.MeasuredSeconds:F2} s; full epoch {t.Run.ItemsPerEpoch:F0} windows");
        // Training windows of the slice: 90 % of it, a window of 40 every 3 characters.
        double expected = Math.Floor((slice * 0.9 - 40) / 3.0);
        Assert.InRange(t.MeasuredItems, expected - 2, expected + 2);
        Assert.Equal(t.MeasuredItems * text.Length / slice, t.Run.ItemsPerEpoch, 1e-6);
        Assert.True(t.MeasuredSeconds > 0 && t.ItemsPerSecond > 0);
        Assert.Equal(t.MeasuredSeconds * text.Length / slice * 50, t.ProjectedSeconds, 1e-3 * t.ProjectedSeconds);
        Assert.Equal(50, t.Run.Epochs);
    }

    [Fact]
    public void ThePerceptronRuleConvergesOnSeparableDataAndNotOnXor()
    {
        var separable = PerceptronCourse.Train(PerceptronCourse.Separable(100, 1));
        Assert.True(separable.Converged);
        Assert.Equal(0, separable.ErrorsPerEpoch[^1]);
        Assert.All(PerceptronCourse.Separable(100, 1), p => Assert.Equal(p.Label, separable.Predict(p.X)));

        var xor = PerceptronCourse.Train(PerceptronCourse.Xor(100, 1), maxEpochs: 200);
        Assert.False(xor.Converged);
        Assert.Equal(200, xor.ErrorsPerEpoch.Count);
        Assert.All(xor.ErrorsPerEpoch, e => Assert.True(e > 10, $"{e} mistakes in a pass over XOR-like data"));
        var logistic = PerceptronCourse.Logistic(new MLContext(seed: 1), PerceptronCourse.Xor(100, 1));
        Assert.InRange(logistic.Accuracy, 0.3, 0.7);
    }

    [Fact]
    public void AdamEndsNearerTheMinimumThanTooSmallARateAndTooLargeARateDiverges()
    {
        var banana = ErrorSurface.Banana;
        var adam = OptimizationCourse.Descend(banana, "adam", new Adam(0.05), 300);
        var slow = OptimizationCourse.Descend(banana, "sgd", new Sgd(0.0005), 300);
        var momentum = OptimizationCourse.Descend(banana, "momentum", new Sgd(0.002, Momentum: 0.9), 300);
        var plain = OptimizationCourse.Descend(banana, "sgd", new Sgd(0.002), 300);
        Assert.True(adam.DistanceTo(banana.Minimum) < 0.05, $"Adam ended {adam.DistanceTo(banana.Minimum)} from the minimum");
        Assert.True(slow.DistanceTo(banana.Minimum) > 1, $"SGD with a tiny rate ended {slow.DistanceTo(banana.Minimum)} from the minimum");
        Assert.True(momentum.DistanceTo(banana.Minimum) < plain.DistanceTo(banana.Minimum) / 5);
        Assert.Equal(301, adam.Points.Count);
        Assert.Equal(banana.Start, adam.Points[0]);

        var bowl = ErrorSurface.Bowl;
        var right = OptimizationCourse.Descend(bowl, "right", new Sgd(0.1), 60);
        var large = OptimizationCourse.Descend(bowl, "large", new Sgd(0.21), 60);
        Assert.True(right.Losses[^1] < 1e-3);
        Assert.True(large.Losses[^1] > 100 * large.Losses[0]);
    }

    [Fact]
    public void ActivationDerivativesComeFromAutogradAndSoftmaxIsAProbability()
    {
        var at = PerceptronCourse.Evaluate([-2, 0, 2]);
        var sigmoid = at.Single(a => a.Name == "sigmoid");
        Assert.Equal(0.25, sigmoid.Derivatives[1], 9);
        Assert.Equal(1 - Math.Pow(Math.Tanh(2), 2), at.Single(a => a.Name == "tanh").Derivatives[2], 9);
        Assert.Equal([0.0, 0.0, 0.0], at.Single(a => a.Name == "step").Derivatives);
        Assert.Equal(0.1, at.Single(a => a.Name == "leaky ReLU (0.1)").Derivatives[0], 9);
        Assert.Equal(8, PerceptronCourse.ActivationFunctions.Count);

        var p = PerceptronCourse.SoftmaxByHand([2.0, 1.0, 0.1, -1.0]);
        Assert.Equal(1.0, p.Sum(), 12);
        Assert.Equal(Math.Exp(2) / new[] { 2.0, 1.0, 0.1, -1.0 }.Sum(Math.Exp), p[0], 12);
        Assert.Equal(p, PerceptronCourse.SoftmaxByHand([1002.0, 1001.0, 1000.1, 999.0]), new ToleranceComparer(1e-12));
    }

    [Fact]
    public void OptimizersByNameAndTheirMomentum()
    {
        Assert.Equal(new Adadelta(1.0), OptimizerSpec.FromName("adadelta"));
        Assert.Equal(new Sgd(0.05, 0.9), OptimizerSpec.FromName("sgd", 0.05, 0.9));
        Assert.Equal(new RmsProp(1e-3, Momentum: 0.5), OptimizerSpec.FromName("rmsprop", momentum: 0.5));
        Assert.Throws<ArgumentException>(() => OptimizerSpec.FromName("adam", momentum: 0.9));
        Assert.Throws<ArgumentException>(() => OptimizerSpec.FromName("adagrad"));
        Assert.Throws<ArgumentOutOfRangeException>(() => OptimizerSpec.FromName("sgd", momentum: 1.0));
        var parse = Cli.CliApp.Build().Parse(["train", "mnist", "--optimizer", "adam", "--momentum", "0.9"]);
        Assert.Contains(parse.Errors, e => e.Message.Contains("--momentum", StringComparison.Ordinal));
        Assert.Empty(Cli.CliApp.Build().Parse(["train", "mnist", "--optimizer", "sgd", "--momentum", "0.9", "--nesterov"]).Errors);
    }

    [Fact]
    public void EightUnitsPerLayerFitTheCurveBetterThanFour()
    {
        var fit = CapacityCourse.FitCurves(new MLContext(seed: 1),
        [
            ("4", Networks.Networks.Mlp([4, 4], Networks.ActivationKind.Tanh)),
            ("8", Networks.Networks.Mlp([8, 8], Networks.ActivationKind.Tanh)),
        ], epochs: 250);
        var (four, eight) = (fit.Results[0], fit.Results[1]);
        output.WriteLine($"4 units: train {four.Train:F4}, test {four.Test:F4}; 8 units: train {eight.Train:F4}, test {eight.Test:F4}");
        Assert.Equal(33, four.Parameters);
        Assert.Equal(97, eight.Parameters);
        Assert.True(eight.Train < four.Train, $"8 units: {eight.Train}, 4 units: {four.Train}");
        Assert.True(eight.Train < 0.3, $"8 units fit no better than a constant: {eight.Train}");
        Assert.Equal(300, fit.Fits[0].X.Count);
    }

    [Fact]
    public void TheWeightNormLayersSettingsReachItsModuleAndItComputesGTimesVOverItsNorm()
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        using var noGrad = TorchSharp.torch.no_grad();
        using (var plain = new Networks.WeightNormDense(3, UseBias: false).Build([4]))
        {
            var names = plain.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
            Assert.Equal(new long[] { 3, 4 }, names["weight_v"]);
            Assert.Equal(new long[] { 3 }, names["weight_g"]);
            Assert.DoesNotContain("bias", names.Keys);
        }
        using var module = new Networks.WeightNormDense(2, Networks.ActivationKind.Tanh).Build([3]);
        var parameters = module.named_parameters().ToDictionary(p => p.name.Split('.')[^1], p => p.parameter);
        // At the start g = ||v||: the layer's weights are v itself.
        var v0 = parameters["weight_v"];
        Assert.Equal(v0.pow(2).sum(1).sqrt().data<float>().ToArray(), parameters["weight_g"].data<float>().ToArray(), new FloatComparer(1e-6f));
        float[] v = [3, 0, 4, 1, 2, 2], g = [2, -0.5f], b = [0.1f, -0.2f], x = [0.5f, -1, 2];
        parameters["weight_v"].copy_(TorchSharp.torch.tensor(v).reshape(2, 3));
        parameters["weight_g"].copy_(TorchSharp.torch.tensor(g));
        parameters["bias"].copy_(TorchSharp.torch.tensor(b));
        var y = module.call(TorchSharp.torch.tensor(x).reshape(1, 3)).data<float>().ToArray();
        for (int unit = 0; unit < 2; unit++)
        {
            double norm = Math.Sqrt(Enumerable.Range(0, 3).Sum(i => v[unit * 3 + i] * v[unit * 3 + i]));
            double sum = b[unit] + Enumerable.Range(0, 3).Sum(i => g[unit] * v[unit * 3 + i] / norm * x[i]);
            Assert.Equal(Math.Tanh(sum), y[unit], 5);
        }
        // Row 0: ||(3, 0, 4)|| = 5, so w = 2 (3, 0, 4) / 5; row 1: ||(1, 2, 2)|| = 3, so w = -0.5 (1, 2, 2) / 3.
        var w = Networks.WeightNormDense.EffectiveWeight(parameters["weight_v"], parameters["weight_g"]).data<float>().ToArray();
        Assert.Equal(new[] { 1.2f, 0, 1.6f, -1 / 6f, -1 / 3f, -1 / 3f }, w, new FloatComparer(1e-6f));
        // The trainer resolves its task outputs, and a softmax on it is the network's output.
        var spec = new Networks.NetworkSpec([new Networks.Flatten(), new Networks.WeightNormDense(Networks.Dense.TaskOutputs, Networks.ActivationKind.Softmax)]);
        Assert.True(spec.EndsWithSoftmax);
        Assert.Equal([10], spec.WithTaskOutputs(10).OutputShape([28, 28]));
        Assert.Equal(3 * 4 + 3 + 3, new Networks.NetworkSpec([new Networks.WeightNormDense(3)]).ParameterCount([4]));
        var (_, dropThenBn) = RegularisationCourse.Networks(64, 0.5).Single(n => n.Name.StartsWith("dropout 0.5 ->", StringComparison.Ordinal));
        int drop = dropThenBn.Layers.ToList().FindIndex(l => l is Networks.Dropout);
        Assert.IsType<Networks.BatchNorm>(dropThenBn.Layers[drop + 1]);
    }

    [Fact]
    public void TheLibrarysConv2DWithHandSetWeightsGivesTheWorkedNumbers()
    {
        var valid = ConvolutionCourse.Convolve(ConvolutionCourse.ArithmeticInput, ConvolutionCourse.ArithmeticKernel, 1, Networks.PaddingMode.Valid);
        Assert.Equal(new float[,] { { -2, 0, -4, 3 }, { -2, 1, -3, 2 }, { -1, 0, -2, 1 }, { 2, -2, 0, 0 } }, valid);
        var same = ConvolutionCourse.Convolve(ConvolutionCourse.ArithmeticInput, ConvolutionCourse.ArithmeticKernel, 1, Networks.PaddingMode.Same);
        Assert.Equal((6, 6), (same.GetLength(0), same.GetLength(1)));
        Assert.Equal(new float[] { 0, 0, -1, -2, 2, -2 }, Enumerable.Range(0, 6).Select(c => same[0, c]).ToArray());
        Assert.Equal(new float[,] { { -2, -4 }, { -1, -2 } }, ConvolutionCourse.Convolve(ConvolutionCourse.ArithmeticInput, ConvolutionCourse.ArithmeticKernel, 2, Networks.PaddingMode.Valid));
        Assert.Equal(3, ConvolutionCourse.Convolve(ConvolutionCourse.ArithmeticInput, ConvolutionCourse.ArithmeticKernel, 2, Networks.PaddingMode.Same).GetLength(0));

        // The yellow filter (1, 1, -1) gives +2 on yellow alone; (1, 1, 0) gives +2 on white too.
        var colours = ConvolutionCourse.Colours;
        var swatches = new float[3 * colours.Count];
        for (int i = 0; i < colours.Count; i++) (swatches[i], swatches[colours.Count + i], swatches[2 * colours.Count + i]) = (colours[i].R, colours[i].G, colours[i].B);
        var kernel = new FixedKernel([.. ConvolutionCourse.YellowFilters.SelectMany(f => f.Weights)], []);
        var maps = ConvolutionCourse.Run(ConvolutionCourse.YellowNetwork, [3, 1, colours.Count], new Dictionary<int, FixedKernel> { [0] = kernel }, swatches)[0];
        int yellow = colours.ToList().FindIndex(c => c.Name == "yellow"), white = colours.ToList().FindIndex(c => c.Name == "white");
        Assert.Equal(2f, maps[1, 0, yellow]);
        Assert.Equal(1f, maps[1, 0, white]);
        Assert.Equal(2f, maps[0, 0, white]);
        Assert.All(Enumerable.Range(0, colours.Count).Where(i => i != yellow), i => Assert.True(maps[1, 0, i] < 2f));
    }

    [Fact]
    public void TheHierarchicalDetectorFiresOnTheFaceAndNotOnItsPartsOrStrokesScrambled()
    {
        var pictures = ConvolutionCourse.HierarchyPictures();
        var face = ConvolutionCourse.Detect(pictures[0].Image);
        Assert.Equal([1, 1, 1], new[] { face[4].Channels, face[4].Height, face[4].Width });
        Assert.Equal(1f, face[4].Values[0], 5);
        // The pooled part map: eyes top left and right, the nose in the middle, the mouth below it, nothing else.
        var expected = new (int Part, int Row, int Column)[] { (0, 0, 0), (0, 0, 2), (1, 1, 1), (2, 2, 1) };
        for (int p = 0; p < 3; p++)
            for (int r = 0; r < 3; r++)
                for (int c = 0; c < 3; c++)
                    Assert.Equal(expected.Contains((p, r, c)) ? 1f : 0f, face[3][p, r, c], 5);
        var moved = ConvolutionCourse.Detect(pictures[1].Image);
        Assert.Equal(0f, moved[4].Values[0]);
        Assert.Equal(4, moved[3].Values.Count(v => v > 0.5f)); // the parts are still found, in the wrong places
        var shuffled = ConvolutionCourse.Detect(pictures[2].Image);
        Assert.Equal(0f, shuffled[4].Values[0]);
        Assert.Equal(24, shuffled[1].Values.Count(v => v > 0.5f)); // the same 24 strokes, but no part
        Assert.DoesNotContain(shuffled[3].Values, v => v > 0.5f);
    }

    private CourseRun GenerativeRun(string name) =>
        new(new MLContext(seed: 1), Directory.CreateDirectory(Path.Combine(_root, name)).FullName, Quick: true, new StringWriter());

    [Fact]
    public void GenerativeConditionalGridHasTenColumnsMostlyReadAsTheirDigit()
    {
        var run = GenerativeRun("cgan");
        var r = GenerativeCourse.RunConditionalGrid(run, GenerativeSettings.Quick, noiseRows: 20);
        output.WriteLine(run.Log.ToString());
        Assert.Equal(10, r.Columns);
        Assert.Equal(10, r.ColumnMajority.Length);
        Assert.True(r.ColumnMajority.Where((d, i) => d == i).Count() >= 6, $"columns read as: {string.Join(",", r.ColumnMajority)}");
        Assert.True(File.Exists(r.GridPath));
    }

    [Fact]
    public void GenerativeVaeDrawsForOneInputDifferButLessThanDifferentDigits()
    {
        var run = GenerativeRun("vae");
        var r = GenerativeCourse.RunVaeSamples(run, GenerativeSettings.Quick);
        output.WriteLine(string.Join("\n", r.Inputs) + $"\nbetween {r.BetweenDigits}");
        Assert.All(r.Inputs, i => Assert.True(i.SampleSpread > 1e-3, $"digit {i.Digit}: the draws do not differ ({i.SampleSpread})"));
        Assert.True(r.Inputs.Average(i => i.SampleSpread) < r.BetweenDigits);
    }

    [Fact]
    public void GenerativeDenseGanWithBatchNormBeforeTanhTrainsAndIsJudged()
    {
        var spec = GenerativeCourse.CourseDenseGenerator([1, 28, 28]);
        int tanh = spec.Layers.ToList().FindIndex(l => l is Networks.Activation { Kind: Networks.ActivationKind.Tanh });
        Assert.IsType<Networks.BatchNorm>(spec.Layers[tanh - 1]);
        Assert.IsType<Networks.Dense>(spec.Layers[tanh - 2]);
        var run = GenerativeRun("dense");
        var (gans, baseline, path) = GenerativeCourse.RunDenseGans(run, GenerativeSettings.Quick with { DenseEpochs = 2 });
        output.WriteLine(run.Log.ToString());
        Assert.Equal(2, gans.Count);
        Assert.All(gans, g => Assert.True(g.Frechet > baseline && double.IsFinite(g.Frechet), $"{g.Name}: {g.Frechet} vs real {baseline}"));
        Assert.True(File.Exists(path));
    }

    [Fact]
    public void GenerativeWeightedDreamRaisesItsLayersAndStyleFromNoiseLowersBothLosses()
    {
        var run = GenerativeRun("dream");
        var (layers, dreams, styles, files) = GenerativeCourse.RunDreamAndStyle(run, GenerativeSettings.Quick);
        output.WriteLine(string.Join("\n", dreams.Select(d => d.Name + " " + string.Join(" ", d.Activations))) + "\n" + string.Join("\n", styles));
        Assert.Equal(3, layers.Count);
        Assert.All(dreams[3].Activations.Zip(dreams[0].Activations), p => Assert.True(p.First > p.Second));
        Assert.True(styles[3].Style < styles[1].Style && styles[3].Content < styles[1].Content, "style transfer from noise lowered neither loss");
        Assert.All(files, f => Assert.True(File.Exists(f)));
        using var network = Vision.FeatureNetwork.Random(3, 1);
        Assert.Throws<ArgumentException>(() => Vision.DeepDream.Dream(network, GenerativeCourse.Landscape(16), [(layers[0], 0.0)]));
    }

    [Fact]
    public void GenerativeRotationSetHasFourTimesThePicturesAndTheAutoencoderMemorisesOnePicture()
    {
        var pictures = GenerativeCourse.Pictures(5, 8, 1);
        var set = GenerativeCourse.WithRotations(pictures, 8);
        Assert.Equal(4 * pictures.Count, set.Count);
        var turned = pictures[0];
        for (int k = 0; k < 4; k++) turned = GenerativeCourse.Rotate(turned, 8);
        Assert.Equal(pictures[0], turned);
        Assert.NotEqual(pictures[0], set[1]);
        var run = GenerativeRun("rotations");
        var (rows, path) = GenerativeCourse.RunRotations(run, GenerativeSettings.Quick);
        output.WriteLine(string.Join("\n", rows));
        Assert.Equal(4 * GenerativeSettings.Quick.Pictures, rows[1].Images);
        Assert.True(rows[0].TrainMse * 5 < rows[1].TrainMse, $"one picture {rows[0].TrainMse}, the set {rows[1].TrainMse}");
        Assert.True(File.Exists(path));
    }

    private sealed class FloatComparer(float tolerance) : IEqualityComparer<float>
    {
        public bool Equals(float x, float y) => Math.Abs(x - y) <= tolerance;
        public int GetHashCode(float obj) => 0;
    }

    private sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= tolerance;
        public int GetHashCode(double obj) => 0;
    }
}
