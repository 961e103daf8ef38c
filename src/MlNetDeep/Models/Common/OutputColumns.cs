using Microsoft.ML;
using Microsoft.ML.Data;

namespace MlNetDeep.Models.Common;

/// <summary>Gives the network output row (all outputs of one sample) that output columns read from.</summary>
internal interface IScoredRow
{
    ReadOnlySpan<float> Outputs { get; }
}

/// <summary>A column a deep transformer adds, read from a slice of the network's output row.</summary>
internal abstract class OutputColumn(string name, DataViewType type)
{
    public string Name { get; } = name;
    public DataViewType Type { get; } = type;

    public virtual void AddAnnotations(DataViewSchema.Annotations.Builder builder) { }

    public abstract Delegate CreateGetter(IScoredRow row);

    public SchemaShape.Column ToShape()
    {
        var builder = new DataViewSchema.Annotations.Builder();
        AddAnnotations(builder);
        var annotations = builder.ToAnnotations();
        var shapes = new SchemaShape(annotations.Schema.Select(a => SchemaShapes.Describe(a.Name, a.Type, null)));
        return SchemaShapes.Describe(Name, Type, shapes);
    }
}

/// <summary>vector&lt;float&gt;[Length] from outputs [Offset, Offset + Length).</summary>
internal sealed class VectorOutputColumn(string name, int offset, int length, KeyValues? slotNames = null)
    : OutputColumn(name, new VectorDataViewType(NumberDataViewType.Single, length))
{
    public override void AddAnnotations(DataViewSchema.Annotations.Builder builder) => slotNames?.AddAsSlotNames(builder);

    public override Delegate CreateGetter(IScoredRow row) => (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) =>
    {
        var editor = VBufferEditor.Create(ref value, length);
        row.Outputs.Slice(offset, length).CopyTo(editor.Values);
        value = editor.Commit();
    });
}

/// <summary>A float from outputs[Offset].</summary>
internal sealed class ScalarOutputColumn(string name, int offset) : OutputColumn(name, NumberDataViewType.Single)
{
    public override Delegate CreateGetter(IScoredRow row) => (ValueGetter<float>)((ref float value) => value = row.Outputs[offset]);
}

/// <summary>A Boolean: outputs[Offset] &gt; 0 (false for NaN), e.g. a binary classifier's PredictedLabel from its logit.</summary>
internal sealed class PositiveOutputColumn(string name, int offset) : OutputColumn(name, BooleanDataViewType.Instance)
{
    public override Delegate CreateGetter(IScoredRow row) => (ValueGetter<bool>)((ref bool value) => value = row.Outputs[offset] > 0);
}

/// <summary>
/// The key (1-based) of the largest of outputs [Offset, Offset + Length), carrying the label's KeyValues; the missing key 0
/// when any of them is NaN (a row with NaN features), as ML.NET's multiclass trainers give.
/// </summary>
internal sealed class ArgMaxKeyOutputColumn(string name, int offset, int length, KeyValues? keyValues)
    : OutputColumn(name, new KeyDataViewType(typeof(uint), length))
{
    public override void AddAnnotations(DataViewSchema.Annotations.Builder builder) => keyValues?.AddTo(builder);

    public override Delegate CreateGetter(IScoredRow row) => (ValueGetter<uint>)((ref uint value) =>
    {
        var scores = row.Outputs.Slice(offset, length);
        int best = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            if (float.IsNaN(scores[i]))
            {
                value = 0;
                return;
            }
            if (scores[i] > scores[best]) best = i;
        }
        value = (uint)best + 1;
    });
}

/// <summary>
/// The check every deep model makes of its output column names: distinct from each other, and none the name of a column
/// the model reads (its feature column, or the label it trains on), which the output would hide from later stages.
/// Other input columns of the same name are replaced, as ML.NET's own transforms and trainers do.
/// </summary>
internal static class OutputColumnNames
{
    /// <summary>Throws an <see cref="ArgumentException"/> naming both options when two names collide; empty names are left to the callers' own checks.</summary>
    public static void Check(IEnumerable<(string Option, string? Name)> outputs, IEnumerable<(string Option, string? Name, string Role)> inputs)
    {
        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (option, name) in outputs)
        {
            if (string.IsNullOrWhiteSpace(name)) continue;
            if (seen.TryGetValue(name, out var first))
                throw new ArgumentException($"The output columns must have distinct names, but {first} and {option} are both '{name}'.", option);
            seen[name] = option;
        }
        foreach (var (option, name, role) in inputs)
        {
            if (name is not null && seen.TryGetValue(name, out var output))
                throw new ArgumentException($"{output} '{name}' is also the {role} column ({option}): an output column must not replace a column the model reads. " +
                    $"Give {output} another name.", output);
        }
    }
}
