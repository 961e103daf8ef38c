using System.Text.Json.Nodes;

namespace MlNetDeep.Persistence;

/// <summary>
/// A parameter-light MlNetDeep transform (no network) that <see cref="DeepModelFile"/> stores as its settings alone.
/// Implementers declare how to rebuild themselves with a <see cref="TransformModelFormat"/>.
/// </summary>
public interface IPersistentTransformer
{
    /// <summary>The name the transform is saved under.</summary>
    string Kind { get; }

    /// <summary>Everything needed to rebuild the transform.</summary>
    JsonObject Settings();
}
