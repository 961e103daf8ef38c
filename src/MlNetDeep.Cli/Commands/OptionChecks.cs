using System.CommandLine;
using System.CommandLine.Parsing;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// Checks of command-line values. The validators (<c>option.AtLeast(1)</c>, <c>option.ExistingFile()</c>, ...) run while
/// the command line is parsed, before anything is loaded or downloaded, so that a wrong value fails at once with a
/// message naming the option; the throwing helpers are for checks that depend on other options' values.
/// </summary>
internal static class OptionChecks
{
    /// <summary>The help name of an option or argument that names a saved model file (a test gives every one a file that is not a model).</summary>
    public const string ModelHelpName = "model";

    /// <summary>The help names of options and arguments that name files or folders that must exist.</summary>
    public static readonly IReadOnlySet<string> PathHelpNames = new HashSet<string> { ModelHelpName, "file", "folder", "path" };

    // ---- validators, run while parsing ----------------------------------------------------------------------------

    /// <summary>Adds a check of the option's value: <paramref name="problem"/> returns the error message, or null when the value is fine.</summary>
    public static Option<T> Check<T>(this Option<T> option, Func<T, string?> problem)
    {
        option.Validators.Add(result =>
        {
            if (result.Errors.Any() || !TryGetValue(result.GetValueOrDefault<T>, out var value)) return; // a value that did not parse has its error already
            if (problem(value!) is { } message) result.AddError(message);
        });
        return option;
    }

    /// <inheritdoc cref="Check{T}(Option{T}, Func{T, string?})"/>
    public static Argument<T> Check<T>(this Argument<T> argument, Func<T, string?> problem)
    {
        argument.Validators.Add(result =>
        {
            if (result.Errors.Any() || !TryGetValue(result.GetValueOrDefault<T>, out var value)) return;
            if (problem(value!) is { } message) result.AddError(message);
        });
        return argument;
    }

    private static bool TryGetValue<T>(Func<T> get, out T? value)
    {
        try
        {
            value = get();
            return true;
        }
        catch (InvalidOperationException)
        {
            value = default;
            return false;
        }
    }

    public static Option<int> AtLeast(this Option<int> option, int min) =>
        option.Check(v => v >= min ? null : $"{option.Name} must be at least {min}, got {v}.");

    /// <summary>An optional count: absent, or at least <paramref name="min"/>.</summary>
    public static Option<int?> AtLeast(this Option<int?> option, int min) =>
        option.Check(v => v is not { } n || n >= min ? null : $"{option.Name} must be at least {min}, got {n}.");

    public static Option<long> AtLeast(this Option<long> option, long min) =>
        option.Check(v => v >= min ? null : $"{option.Name} must be at least {min}, got {v}.");

    public static Option<int> Between(this Option<int> option, int min, int max) =>
        option.Check(v => v >= min && v <= max ? null : $"{option.Name} must be {min} to {max}, got {v}.");

    /// <summary>A finite number greater than 0 (a learning rate, a step size).</summary>
    public static Option<double> Positive(this Option<double> option) =>
        option.Check(v => v > 0 && double.IsFinite(v) ? null : $"{option.Name} must be a number greater than 0, got {v}.");

    public static Option<double?> Positive(this Option<double?> option) =>
        option.Check(v => v is not { } x || (x > 0 && double.IsFinite(x)) ? null : $"{option.Name} must be a number greater than 0, got {x}.");

    /// <summary>A finite number of at least 0 (a noise level, a weight).</summary>
    public static Option<double> NonNegative(this Option<double> option) =>
        option.Check(v => v >= 0 && double.IsFinite(v) ? null : $"{option.Name} must be a number of at least 0, got {v}.");

    /// <summary>A fraction in [0, 1) (a dropout rate, a held-out share).</summary>
    public static Option<double> Fraction(this Option<double> option) =>
        option.Check(v => v is >= 0 and < 1 ? null : $"{option.Name} must be in [0, 1), got {v}.");

    /// <summary>A number in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public static Option<double> Between(this Option<double> option, double min, double max) =>
        option.Check(v => v >= min && v <= max ? null : $"{option.Name} must be in [{min}, {max}], got {v}.");

    /// <summary>A file that exists (a saved model when <paramref name="helpName"/> is <see cref="ModelHelpName"/>).</summary>
    /// <remarks>For <c>Option&lt;string&gt;</c> and <c>Option&lt;string?&gt;</c> alike (an absent optional path is fine).</remarks>
    public static Option<T> ExistingFile<T>(this Option<T> option, string helpName = "file")
    {
        option.HelpName = helpName;
        return option.Check(path => path is string p ? MissingFile(option.Name, p) : null);
    }

    public static Option<string[]> ExistingFiles(this Option<string[]> option, string helpName = "file")
    {
        option.HelpName = helpName;
        return option.Check(paths => paths.Select(p => MissingFile(option.Name, p)).FirstOrDefault(m => m is not null));
    }

    public static Argument<string> ExistingFile(this Argument<string> argument, string helpName = "file")
    {
        argument.HelpName = helpName;
        return argument.Check(path => MissingFile($"<{argument.Name}>", path));
    }

    public static Option<string?> ExistingFolder(this Option<string?> option)
    {
        option.HelpName = "folder";
        return option.Check(path => path is null || Directory.Exists(path) ? null : $"{option.Name}: the folder '{path}' does not exist.");
    }

    public static Argument<string> ExistingFolder(this Argument<string> argument)
    {
        argument.HelpName = "folder";
        return argument.Check(path => Directory.Exists(path) ? null : $"<{argument.Name}>: the folder '{path}' does not exist.");
    }

    /// <summary>A file or a folder that exists.</summary>
    public static Option<string> ExistingPath(this Option<string> option)
    {
        option.HelpName = "path";
        return option.Check(path => File.Exists(path) || Directory.Exists(path) ? null : $"{option.Name}: '{path}' does not exist (neither a file nor a folder).");
    }

    private static string? MissingFile(string name, string path) =>
        File.Exists(path) ? null
        : Directory.Exists(path) ? $"{name}: '{path}' is a folder, not a file."
        : $"{name}: the file '{path}' does not exist.";

    /// <summary>Layer widths written as "128,64": each a whole number from 1 to 65,536.</summary>
    public static Option<string> LayerWidths(this Option<string> option) => option.Check(v =>
    {
        try { Widths(v, option.Name); return null; }
        catch (ArgumentException ex) { return ex.Message.Replace($" (Parameter '{option.Name}')", ""); }
    });

    /// <summary>A check by a parser that throws <typeparamref name="TException"/> on a bad value; its message is the error.</summary>
    public static Option<string> ParsedBy<TException>(this Option<string> option, Action<string> parse) where TException : Exception => option.Check(v =>
    {
        try { parse(v); return null; }
        catch (TException ex) { return $"{option.Name}: {CliApp.OneLine(ex.Message)}"; }
    });

    // ---- throwing checks, for values that depend on other options ---------------------------------------------------

    /// <summary><paramref name="value"/> when it is at least <paramref name="min"/>; otherwise an error naming <paramref name="option"/>.</summary>
    public static int AtLeast(int value, int min, string option) =>
        value >= min ? value : throw new ArgumentOutOfRangeException(option, value, $"{option} must be at least {min}, got {value}.");

    /// <summary>Layer widths written as "128,64": each a whole number from 1 to 65,536.</summary>
    public static int[] Widths(string value, string option)
    {
        var parts = value.Split(',', StringSplitOptions.TrimEntries);
        var widths = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out widths[i]) || widths[i] is < 1 or > 65_536)
                throw new ArgumentException($"{option} takes layer widths from 1 to 65,536 separated by commas (e.g. 128,128), not \"{value}\".", option);
        return widths;
    }
}
