namespace MlNetDeep.Cli.Commands;

/// <summary>
/// Checks of command-line values, made before any data is loaded or downloaded, so that a wrong value fails at once
/// with a message naming the option.
/// </summary>
internal static class OptionChecks
{
    /// <summary><paramref name="value"/> when it is at least <paramref name="min"/>; otherwise an error naming <paramref name="option"/>.</summary>
    public static int AtLeast(int value, int min, string option) =>
        value >= min ? value : throw new ArgumentOutOfRangeException(option, value, $"{option} must be at least {min}, got {value}.");

    /// <summary>An optional count (e.g. --train-rows): absent, or at least 1.</summary>
    public static int? Count(int? value, string option) => value is { } v ? AtLeast(v, 1, option) : null;

    /// <summary>A finite number greater than 0 (a learning rate).</summary>
    public static double Positive(double value, string option) =>
        value > 0 && double.IsFinite(value) ? value : throw new ArgumentOutOfRangeException(option, value, $"{option} must be a number greater than 0, got {value}.");

    /// <summary>A finite number of at least 0 (a noise level, a weight).</summary>
    public static double NonNegative(double value, string option) =>
        value >= 0 && double.IsFinite(value) ? value : throw new ArgumentOutOfRangeException(option, value, $"{option} must be a number of at least 0, got {value}.");

    /// <summary>A fraction in [0, 1) (a dropout rate).</summary>
    public static double Fraction(double value, string option) =>
        value is >= 0 and < 1 ? value : throw new ArgumentOutOfRangeException(option, value, $"{option} must be in [0, 1), got {value}.");

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
