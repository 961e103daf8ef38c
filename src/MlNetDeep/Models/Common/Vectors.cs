namespace MlNetDeep.Models.Common;

/// <summary>The index of the largest value, written once for every place that picks a class, a token or an action.</summary>
internal static class Vectors
{
    /// <summary>The index of the largest value; the lowest such index on ties; -1 for an empty span.</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        if (values.IsEmpty) return -1;
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }

    /// <inheritdoc cref="ArgMax(ReadOnlySpan{float})"/>
    public static int ArgMax(ReadOnlySpan<double> values)
    {
        if (values.IsEmpty) return -1;
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }
}
