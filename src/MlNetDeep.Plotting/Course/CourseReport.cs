using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.ML;

namespace MlNetDeep.Plotting.Course;

/// <summary>A measured table: a title, its column headers and its rows (already formatted).</summary>
public sealed record CourseTable(string Title, IReadOnlyList<string> Columns, IReadOnlyList<IReadOnlyList<string>> Rows)
{
    /// <summary>The table as aligned plain text (for the console).</summary>
    public string ToText()
    {
        var widths = Columns.Select((c, i) => Math.Max(c.Length, Rows.Select(r => i < r.Count ? r[i].Length : 0).DefaultIfEmpty(0).Max())).ToArray();
        var text = new StringBuilder().AppendLine(Title);
        text.AppendLine(string.Join("  ", Columns.Select((c, i) => c.PadRight(widths[i]))).TrimEnd());
        foreach (var row in Rows) text.AppendLine(string.Join("  ", row.Select((v, i) => v.PadRight(i < widths.Length ? widths[i] : 0))).TrimEnd());
        return text.ToString();
    }
}

/// <summary>
/// One experiment as the report shows it: what the course predicts, what was measured (figures and tables), whether the
/// measurement agrees (<see cref="Agrees"/>: null when the experiment only illustrates), and the command that made it.
/// </summary>
public sealed record CourseExperiment(string Title, string Prediction, string Verdict, bool? Agrees, IReadOnlyList<string> Figures,
    IReadOnlyList<CourseTable> Tables, string Command)
{
    /// <summary>Seconds the experiment took (filled in by the runner).</summary>
    public double Seconds { get; init; }
}

/// <summary>What an experiment is given: the context, the chapter's figure folder, the size and a log.</summary>
public sealed record CourseRun(MLContext Ml, string Output, bool Quick, TextWriter Log, int Seed = 1)
{
    /// <summary>"--quick" when the run is quick, else empty (for the commands a report prints).</summary>
    public string QuickFlag => Quick ? " --quick" : "";
}

/// <summary>A chapter of the course: a name (the command's word), a title, a summary and its experiments.</summary>
public sealed record CourseChapter(string Name, string Title, string Summary, IReadOnlyList<Func<CourseRun, CourseExperiment>> Experiments);

/// <summary>A chapter after it ran.</summary>
public sealed record CourseChapterResult(CourseChapter Chapter, IReadOnlyList<CourseExperiment> Experiments, double Seconds, string Page);

/// <summary>
/// Runs chapters of the course and writes a static report: one HTML page per chapter (figures as relative links to the
/// PNGs in a folder named after the chapter, the measured tables, the command, the prediction and the verdict) and an
/// index.html. Nothing is loaded from outside the folder: no scripts, fonts or style sheets.
/// </summary>
public static class CourseReport
{
    /// <summary>Runs <paramref name="chapters"/> in order, writing each chapter's page as soon as it is done, then the index.</summary>
    public static IReadOnlyList<CourseChapterResult> Run(MLContext ml, IEnumerable<CourseChapter> chapters, string output, bool quick, TextWriter log, int seed = 1)
    {
        Directory.CreateDirectory(output);
        var results = new List<CourseChapterResult>();
        foreach (var chapter in chapters)
        {
            var folder = Path.Combine(output, chapter.Name);
            Directory.CreateDirectory(folder);
            log.WriteLine($"== {chapter.Name}: {chapter.Title}");
            var chapterClock = Stopwatch.StartNew();
            var experiments = new List<CourseExperiment>();
            foreach (var experiment in chapter.Experiments)
            {
                var clock = Stopwatch.StartNew();
                var result = experiment(new CourseRun(ml, folder, quick, log, seed));
                result = result with { Seconds = clock.Elapsed.TotalSeconds };
                experiments.Add(result);
                foreach (var table in result.Tables) log.Write(table.ToText());
                log.WriteLine($"{Mark(result.Agrees)} {result.Title}: {result.Verdict} ({result.Seconds:F1} s)");
            }
            var page = Path.Combine(output, chapter.Name + ".html");
            var done = new CourseChapterResult(chapter, experiments, chapterClock.Elapsed.TotalSeconds, page);
            File.WriteAllText(page, ChapterPage(done, output, quick));
            results.Add(done);
            log.WriteLine($"Wrote {page} ({done.Seconds:F0} s)");
        }
        var index = Path.Combine(output, "index.html");
        File.WriteAllText(index, IndexPage(MergeIndex(index, results), quick));
        log.WriteLine($"Wrote {index}");
        return results;
    }

    private static string Mark(bool? agrees) => agrees switch { true => "[agrees]", false => "[differs]", null => "[shown]" };

    /// <summary>The index lists every chapter page in the folder: those just written and those an earlier run left.</summary>
    private static IReadOnlyList<(string Name, string Title, string Line)> MergeIndex(string index, IReadOnlyList<CourseChapterResult> results)
    {
        var rows = new List<(string, string, string)>();
        var folder = Path.GetDirectoryName(Path.GetFullPath(index))!;
        foreach (var chapter in CourseChapters.All)
        {
            var done = results.FirstOrDefault(r => r.Chapter.Name == chapter.Name);
            if (done is not null)
            {
                int agree = done.Experiments.Count(e => e.Agrees == true), differ = done.Experiments.Count(e => e.Agrees == false);
                rows.Add((chapter.Name, chapter.Title, $"{done.Experiments.Count} experiments, {agree} agree with the course, {differ} differ; {done.Seconds:F0} s"));
            }
            else if (File.Exists(Path.Combine(folder, chapter.Name + ".html")))
                rows.Add((chapter.Name, chapter.Title, "from an earlier run"));
        }
        return rows;
    }

    private const string Style = """
        body { font-family: sans-serif; max-width: 1100px; margin: 1.5em auto; padding: 0 1em; color: #222; line-height: 1.45; }
        h1 { border-bottom: 2px solid #ccc; padding-bottom: .2em; }
        h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
        img { max-width: 100%; border: 1px solid #ddd; margin: .5em 0; }
        table { border-collapse: collapse; margin: .6em 0 1em; font-size: 90%; }
        caption { text-align: left; font-weight: bold; padding-bottom: .3em; }
        th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
        th { background: #f2f2f2; }
        td:first-child, th:first-child { text-align: left; }
        pre { background: #f6f6f6; padding: .5em .8em; overflow-x: auto; }
        .verdict { padding: .4em .8em; border-left: 5px solid #999; background: #fafafa; }
        .agrees { border-color: #2a9d3a; } .differs { border-color: #d33; }
        nav a { margin-right: 1em; }
        """;

    private static string Escape(string text) => WebUtility.HtmlEncode(text);

    private static string Head(string title) =>
        $"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{Escape(title)}</title>\n<style>\n{Style}</style>\n</head>\n<body>\n";

    /// <summary>One chapter's page.</summary>
    public static string ChapterPage(CourseChapterResult result, string output, bool quick)
    {
        var html = new StringBuilder(Head($"{result.Chapter.Title} - MlNetDeep course"));
        html.Append("<nav><a href=\"index.html\">All chapters</a></nav>\n");
        html.Append($"<h1>{Escape(result.Chapter.Title)}</h1>\n<p>{Escape(result.Chapter.Summary)}</p>\n");
        html.Append($"<p>Made by <code>mlnetdeep course {Escape(result.Chapter.Name)} -o {Escape(Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(output))))}{(quick ? " --quick" : "")}</code> " +
            $"in {result.Seconds.ToString("F0", CultureInfo.InvariantCulture)} s{(quick ? " (quick sizes: smaller data and fewer epochs than the full run)" : "")}.</p>\n");
        html.Append("<ul>\n");
        for (int i = 0; i < result.Experiments.Count; i++) html.Append($"<li><a href=\"#e{i + 1}\">{Escape(result.Experiments[i].Title)}</a></li>\n");
        html.Append("</ul>\n");
        for (int i = 0; i < result.Experiments.Count; i++)
        {
            var e = result.Experiments[i];
            html.Append($"<h2 id=\"e{i + 1}\">{i + 1}. {Escape(e.Title)}</h2>\n");
            html.Append($"<p><b>The course predicts:</b> {Escape(e.Prediction)}</p>\n");
            string css = e.Agrees switch { true => "verdict agrees", false => "verdict differs", null => "verdict" };
            string label = e.Agrees switch { true => "Agrees", false => "Differs", null => "Measured" };
            html.Append($"<p class=\"{css}\"><b>{label}:</b> {Escape(e.Verdict)}</p>\n");
            foreach (var figure in e.Figures)
            {
                var relative = Path.GetRelativePath(Path.GetFullPath(output), Path.GetFullPath(figure)).Replace('\\', '/');
                var href = string.Join('/', relative.Split('/').Select(Uri.EscapeDataString));
                html.Append($"<p><a href=\"{href}\"><img src=\"{href}\" alt=\"{Escape(Path.GetFileName(figure))}\"></a></p>\n");
            }
            foreach (var table in e.Tables)
            {
                html.Append($"<table>\n<caption>{Escape(table.Title)}</caption>\n<tr>");
                foreach (var column in table.Columns) html.Append($"<th>{Escape(column)}</th>");
                html.Append("</tr>\n");
                foreach (var row in table.Rows)
                {
                    html.Append("<tr>");
                    foreach (var cell in row) html.Append($"<td>{Escape(cell)}</td>");
                    html.Append("</tr>\n");
                }
                html.Append("</table>\n");
            }
            html.Append($"<p>Command ({e.Seconds.ToString("F1", CultureInfo.InvariantCulture)} s here):</p>\n<pre>{Escape(e.Command)}</pre>\n");
        }
        html.Append("</body>\n</html>\n");
        return html.ToString();
    }

    private static string IndexPage(IReadOnlyList<(string Name, string Title, string Line)> chapters, bool quick)
    {
        var html = new StringBuilder(Head("MlNetDeep: the course, measured"));
        html.Append("<h1>The course, measured</h1>\n<p>Each chapter runs the course's experiments with MlNetDeep and compares what it measures with what the course predicts. " +
            $"Made by <code>mlnetdeep course all{(quick ? " --quick" : "")}</code> (or one chapter at a time).</p>\n<ul>\n");
        foreach (var (name, title, line) in chapters)
            html.Append($"<li><a href=\"{Uri.EscapeDataString(name)}.html\">{Escape(title)}</a>: {Escape(line)}</li>\n");
        html.Append("</ul>\n</body>\n</html>\n");
        return html.ToString();
    }

    /// <summary>Formats a number with invariant culture.</summary>
    internal static string F(double value, string format = "F3") => value.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>Formats a fraction as a percentage with invariant culture.</summary>
    internal static string P(double value, int decimals = 1) => (100 * value).ToString("F" + decimals, CultureInfo.InvariantCulture) + " %";
}
