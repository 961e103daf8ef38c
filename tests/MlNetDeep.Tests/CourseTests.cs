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

    private sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= tolerance;
        public int GetHashCode(double obj) => 0;
    }
}
