using Microsoft.ML;
using Microsoft.ML.Data;

namespace MlNetDeep.Models.Common;

/// <summary>Gives the network output row (all outputs of one sample) that output columns read from.</summary>
public interface IScoredRow
{
    ReadOnlySpan<float> Outputs { get; }
}

/// <summary>A column a deep transformer adds, read from a slice of the network's output row.</summary>
public abstract class OutputColumn(string name, DataViewType type)
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
public sealed class VectorOutputColumn(string name, int offset, int length, KeyValues? slotNames = null)
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
public sealed class ScalarOutputColumn(string name, int offset) : OutputColumn(name, NumberDataViewType.Single)
{
    public override Delegate CreateGetter(IScoredRow row) => (ValueGetter<float>)((ref float value) => value = row.Outputs[offset]);
}

/// <summary>A Boolean: outputs[Offset] &gt; 0 (false for NaN), e.g. a binary classifier's PredictedLabel from its logit.</summary>
public sealed class PositiveOutputColumn(string name, int offset) : OutputColumn(name, BooleanDataViewType.Instance)
{
    public override Delegate CreateGetter(IScoredRow row) => (ValueGetter<bool>)((ref bool value) => value = row.Outputs[offset] > 0);
}

/// <summary>The key (1-based) of the largest of outputs [Offset, Offset + Length), carrying the label's KeyValues.</summary>
public sealed class ArgMaxKeyOutputColumn(string name, int offset, int length, KeyValues? keyValues)
    : OutputColumn(name, new KeyDataViewType(typeof(uint), length))
{
    public override void AddAnnotations(DataViewSchema.Annotations.Builder builder) => keyValues?.AddTo(builder);

    public override Delegate CreateGetter(IScoredRow row) => (ValueGetter<uint>)((ref uint value) =>
    {
        var scores = row.Outputs.Slice(offset, length);
        int best = 0;
        for (int i = 1; i < scores.Length; i++) if (scores[i] > scores[best]) best = i;
        value = (uint)best + 1;
    });
}
