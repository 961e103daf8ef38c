using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Runtime;

namespace MlNetDeep.Data;

/// <summary>
/// Brings a trainer's validation data into the form of its training input. A trainer in a pipeline receives the output
/// of the upstream transforms already fitted on the training data (normalisation, key mapping, ...), so validation rows
/// given as the pipeline's raw input must go through the same fitted transforms, as ML.NET's own training does with
/// <c>ApplyTransformUtils.ApplyAllTransformsToData</c>. ML.NET keeps that utility and the transform chain's interface
/// (<c>IDataTransform</c>) internal, so this is the one place that reaches them by reflection; a test pins it down.
/// </summary>
internal static class UpstreamTransforms
{
    private const BindingFlags Static = BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic;

    private static readonly Assembly[] MlAssemblies = [typeof(Microsoft.ML.Data.TextLoader).Assembly, typeof(IHostEnvironment).Assembly];
    private static readonly Type? DataTransform = Find("Microsoft.ML.Data.IDataTransform");
    private static readonly PropertyInfo? TransformSource = DataTransform?.GetProperty("Source");
    private static readonly Type? Cache = Find("Microsoft.ML.Data.CacheDataView");
    private static readonly FieldInfo? CacheSource = Cache?.GetField("_subsetInput", BindingFlags.Instance | BindingFlags.NonPublic);
    private static readonly MethodInfo? ApplyToData = DataTransform is null ? null
        : Find("Microsoft.ML.Data.ApplyTransformUtils")?.GetMethod("ApplyTransformToData", Static, [typeof(IHostEnvironment), DataTransform, typeof(IDataView)]);

    /// <summary>True when this ML.NET version exposes what re-applying a chain needs (a test checks it).</summary>
    internal static bool Available => TransformSource is not null && ApplyToData is not null;

    /// <summary>
    /// <paramref name="validation"/> in the form of <paramref name="trainingInput"/>:
    /// <list type="bullet">
    /// <item>as it is when its schema is the training input's, hidden columns included (it went through the same fitted
    /// pipeline, e.g. <c>model.Transform(rows)</c>), or when the training input had no upstream transforms;</item>
    /// <item>through the fitted upstream transforms when its columns match the pipeline's source (raw rows);</item>
    /// <item>as it is when neither holds but it has the feature column (data prepared by other means);</item>
    /// <item>otherwise an <see cref="ArgumentException"/> naming what is missing.</item>
    /// </list>
    /// </summary>
    public static IDataView Align(IHostEnvironment env, IDataView validation, IDataView trainingInput, string featureColumn)
    {
        if (SameSchema(validation.Schema, trainingInput.Schema)) return validation;
        var chain = Chain(trainingInput, out var source);
        if (chain.Count > 0 && SourceMatches(source.Schema, validation.Schema))
            return Apply(env, chain, validation);
        if (validation.Schema.GetColumnOrNull(featureColumn) is not null) return validation;

        string sourceColumns = string.Join(", ", source.Schema.Where(c => !c.IsHidden).Select(c => $"{c.Name} ({c.Type})"));
        string validationColumns = string.Join(", ", validation.Schema.Where(c => !c.IsHidden).Select(c => $"{c.Name} ({c.Type})"));
        throw new ArgumentException(
            $"ValidationData has no feature column '{featureColumn}', and its columns ({validationColumns}) do not match those of the pipeline's input " +
            (chain.Count > 0 ? $"({sourceColumns}), " : "") +
            "so the upstream transforms cannot be applied to it. Give it as rows shaped like the pipeline's input, or as the output of the fitted " +
            "upstream pipeline (e.g. preprocessing.Fit(train).Transform(validation)).", "ValidationData");
    }

    /// <summary>The re-applicable transforms from the pipeline's source to <paramref name="view"/>, in order; caches are looked through.</summary>
    internal static List<IDataView> Chain(IDataView view, out IDataView source)
    {
        var chain = new List<IDataView>();
        while (true)
        {
            if (Available && DataTransform!.IsInstanceOfType(view) && TransformSource!.GetValue(view) is IDataView inner)
            {
                chain.Add(view);
                view = inner;
            }
            else if (Cache is not null && Cache.IsInstanceOfType(view) && CacheSource?.GetValue(view) is IDataView cached) view = cached;
            else break;
        }
        chain.Reverse();
        source = view;
        return chain;
    }

    private static IDataView Apply(IHostEnvironment env, List<IDataView> chain, IDataView validation)
    {
        var current = validation;
        foreach (var transform in chain)
        {
            try
            {
                current = (IDataView)ApplyToData!.Invoke(null, [env, transform, current])!;
            }
            catch (TargetInvocationException ex) when (ex.InnerException is not null)
            {
                throw new ArgumentException($"ValidationData could not be passed through the upstream transforms: {ex.InnerException.Message}", "ValidationData", ex.InnerException);
            }
        }
        return current;
    }

    /// <summary>The same columns in the same order, with the same names, types and visibility.</summary>
    private static bool SameSchema(DataViewSchema a, DataViewSchema b) =>
        a.Count == b.Count && a.Zip(b).All(p => p.First.Name == p.Second.Name && p.First.IsHidden == p.Second.IsHidden && p.First.Type.Equals(p.Second.Type));

    /// <summary>
    /// The validation data has every column of the pipeline's source, with the same types. A source with hidden columns
    /// is itself the output of transforms that cannot be re-applied, so nothing matches it.
    /// </summary>
    private static bool SourceMatches(DataViewSchema source, DataViewSchema validation) =>
        source.All(c => !c.IsHidden && validation.GetColumnOrNull(c.Name) is { } v && v.Type.Equals(c.Type));

    private static Type? Find(string name) => MlAssemblies.Select(a => a.GetType(name)).FirstOrDefault(t => t is not null);
}
