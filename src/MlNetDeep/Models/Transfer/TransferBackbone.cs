using Microsoft.ML;
using MlNetDeep.Models.Common;
using MlNetDeep.Networks;
using MlNetDeep.Persistence.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Transfer;

/// <summary>
/// A pretrained network to start from: its spec, its input shape and a copy of its weights (on the CPU). Made from an
/// ONNX file (<see cref="FromOnnx"/>: a torchvision or Keras export the user brings), a saved MlNetDeep model
/// (<see cref="FromModelFile"/>), a trained transformer (<see cref="FromModel"/>) or any spec with a module.
/// Layers are named as the vision tools name them (<c>conv2d_3</c>, <c>concat_7</c>), or by position.
/// </summary>
public sealed class TransferBackbone
{
    private readonly Dictionary<string, Tensor> _weights;

    private TransferBackbone(NetworkSpec network, int[] inputShape, Dictionary<string, Tensor> weights, string source)
    {
        Network = network;
        InputShape = inputShape;
        _weights = weights;
        Source = source;
    }

    public NetworkSpec Network { get; }

    /// <summary>The shape of one input image, e.g. [3, 224, 224].</summary>
    public int[] InputShape { get; }

    /// <summary>Where the weights come from, for logs and errors.</summary>
    public string Source { get; }

    /// <summary>The layer names (<c>conv2d_0</c>, ...), in order.</summary>
    public IReadOnlyList<string> LayerNames => Vision.NetworkInspection.LayerNames(Network);

    /// <summary>An ONNX file (e.g. a torchvision model exported with <c>torch.onnx.export</c>), imported with its weights.</summary>
    public static TransferBackbone FromOnnx(string path)
    {
        using var imported = OnnxImporter.Import(path);
        return new TransferBackbone(imported.Network, imported.InputShape, Copy(imported.Module), $"'{Path.GetFileName(path)}'");
    }

    /// <summary>The network of a model saved with SaveDeep (one deep stage).</summary>
    public static TransferBackbone FromModelFile(MLContext ml, string path)
    {
        ArgumentNullException.ThrowIfNull(ml);
        var pipeline = ml.Model.LoadDeep(path, out _);
        var stages = pipeline is IEnumerable<ITransformer> chain ? chain.ToList() : [pipeline];
        var deep = stages.OfType<DeepTransformer>().ToList();
        try
        {
            if (deep.Count != 1) throw new ArgumentException($"'{path}' holds {deep.Count} network stages; a backbone comes from a model with one.", nameof(path));
            return FromModel(deep[0], $"'{Path.GetFileName(path)}'");
        }
        finally
        {
            foreach (var stage in stages.OfType<IDisposable>()) stage.Dispose();
        }
    }

    /// <summary>The network of a trained MlNetDeep transformer (its weights are copied).</summary>
    public static TransferBackbone FromModel(DeepTransformer model, string? source = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new TransferBackbone(model.Network, model.InputShape.ToArray(), model.WithModule(Copy), source ?? $"the model '{model.Network.Name}'");
    }

    /// <summary>A spec and a module built from it (e.g. by <see cref="NetworkSpec.Build(int[])"/> and trained by the caller); the weights are copied.</summary>
    public static TransferBackbone FromNetwork(NetworkSpec network, nn.Module module, int[] inputShape)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(inputShape);
        network.InferShapes(inputShape);
        return new TransferBackbone(network, inputShape.ToArray(), Copy(module), $"the network '{network.Name}'");
    }

    private static Dictionary<string, Tensor> Copy(nn.Module module)
    {
        using var noGrad = no_grad();
        return module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().cpu().clone());
    }

    /// <summary>
    /// The layer to cut after: <paramref name="layer"/> by name or position, or by default the last layer whose output
    /// is still an image (the backbone without its classifier: for a torchvision ResNet, the last block before the pool).
    /// </summary>
    public int CutIndex(string? layer)
    {
        var shapes = Network.InferShapes(InputShape);
        if (layer is not null) return Vision.NetworkInspection.LayerIndex(Network, layer);
        int last = Enumerable.Range(0, shapes.Count).LastOrDefault(i => shapes[i].Length == 3 && Network.Layers[i] is not (GlobalAvgPool2D or AdaptiveAvgPool2D { Height: 1, Width: 1 }), -1);
        if (last < 0)
            throw new ArgumentException($"The backbone {Source} has no layer with an image output to cut after; name one with CutAfter (its layers: {string.Join(", ", LayerNames)}).");
        return last;
    }

    /// <summary>Copies the backbone's weights for layers 0 to <paramref name="cut"/> into children <paramref name="offset"/> + i of <paramref name="module"/>.</summary>
    internal void LoadInto(nn.Module module, int cut, int offset)
    {
        using var noGrad = no_grad();
        var state = module.state_dict();
        for (int i = 0; i <= cut; i++)
        {
            string prefix = $"{i}.";
            foreach (var (name, value) in _weights.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal)))
            {
                var target = state[$"{i + offset}.{name[prefix.Length..]}"];
                target.copy_(value.to(target.device));
            }
        }
    }
}
