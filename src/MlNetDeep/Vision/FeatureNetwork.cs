using MlNetDeep.Models.Common;
using MlNetDeep.Networks;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Vision;

/// <summary>
/// A convolutional network used as a feature extractor by deep dreaming and style transfer: the layers of a trained
/// model (a copy of its weights), an imported network, or a multi-scale network with random weights. Layers are named
/// as in <see cref="NetworkInspection"/> (<c>conv2d_0</c>, ...). Thread-safe; dispose it when done.
/// </summary>
public sealed class FeatureNetwork : IDisposable
{
    private readonly nn.Module _module;
    private readonly IReadOnlyList<nn.Module<Tensor, Tensor>> _layers;
    private readonly object _gate = new();
    private bool _disposed;

    private FeatureNetwork(nn.Module module, NetworkSpec spec, int inputChannels, Device device, string source, int[]? imageShape = null)
    {
        ImageShape = imageShape;
        _module = module;
        _module.eval();
        foreach (var parameter in _module.parameters()) parameter.requires_grad_(false);
        _layers = NetworkRunner.Layers(module);
        Network = spec;
        InputChannels = inputChannels;
        Device = device;
        Source = source;
        LayerNames = NetworkInspection.LayerNames(spec);
    }

    public NetworkSpec Network { get; }
    public IReadOnlyList<string> LayerNames { get; }
    public int InputChannels { get; }
    public Device Device { get; }

    /// <summary>The image shape [channels, height, width] the network was trained on, when known (a model's, an ONNX file's); null for random weights.</summary>
    public int[]? ImageShape { get; }

    /// <summary>Where the weights come from (a model, random, imported).</summary>
    public string Source { get; }

    /// <summary>A copy of the convolutional part of a trained model (its layers up to the last one that keeps a spatial shape).</summary>
    public static FeatureNetwork From(DeepTransformer model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var shapes = model.Network.InferShapes(model.InputShape);
        int last = Enumerable.Range(0, model.Network.Layers.Count).LastOrDefault(i => shapes[i].Length == 3, -1);
        if (last < 0 || model.InputShape.Length != 3) throw new ArgumentException($"The network '{model.Network.Name}' has no convolutional layers on an image input (channels, height, width).", nameof(model));
        var spec = model.Network.Prefix(last + 1) with { Name = model.Network.Name + "-features" };
        var copy = spec.Build(model.InputShape);
        model.WithModule(source =>
        {
            using var noGrad = no_grad();
            var weights = source.state_dict();
            foreach (var (name, tensor) in copy.state_dict()) tensor.copy_(weights[name].cpu());
            return true;
        });
        copy.to(model.Device);
        return new FeatureNetwork(copy, spec, model.InputShape[0], model.Device, $"the trained model '{model.Network.Name}'", model.InputShape);
    }

    /// <summary>
    /// A network with random weights (He initialisation, seeded) for random-feature style transfer: four 3x3
    /// convolutions with ReLU, each followed by 2x2 average pooling, 32 to 256 channels, seeing the image at four scales.
    /// </summary>
    public static FeatureNetwork Random(int inputChannels = 3, int seed = 1, Device? device = null)
    {
        if (inputChannels is < 1 or > 4) throw new ArgumentOutOfRangeException(nameof(inputChannels), inputChannels, "Images have 1 to 4 channels.");
        var spec = RandomSpec;
        var module = Native.TorchRuntime.Seeded(seed, () => spec.Build([inputChannels, 64, 64]));
        using (no_grad())
            foreach (var parameter in module.parameters())
                if (parameter.dim() == 4) nn.init.kaiming_normal_(parameter, nonlinearity: nn.init.NonlinearityType.ReLU);
        module.to(device ?? CPU);
        return new FeatureNetwork(module, spec, inputChannels, device ?? CPU, $"random weights (seed {seed})");
    }

    /// <summary>The random network's architecture.</summary>
    public static NetworkSpec RandomSpec { get; } = new NetworkSpec(
    [
        new Conv2D(32, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU),
        new AvgPool2D(2),
        new Conv2D(64, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU),
        new AvgPool2D(2),
        new Conv2D(128, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU),
        new AvgPool2D(2),
        new Conv2D(256, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU),
    ]) { Name = "random-multiscale" };

    /// <summary>A network from a spec and its weights (e.g. one imported from ONNX); the module is owned from now on.</summary>
    public static FeatureNetwork FromModule(nn.Module module, NetworkSpec spec, int inputChannels, Device? device = null, string source = "imported weights")
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(spec);
        module.to(device ?? CPU);
        return new FeatureNetwork(module, spec, inputChannels, device ?? CPU, source);
    }

    /// <summary>
    /// The convolutional part of an ONNX vision model (e.g. VGG16 or ResNet from the ONNX model zoo), read by
    /// <see cref="Persistence.Onnx.OnnxImporter"/>: its layers up to the last one that keeps a spatial shape.
    /// </summary>
    public static FeatureNetwork FromOnnx(string path, Device? device = null)
    {
        using var imported = Persistence.Onnx.OnnxImporter.Import(path);
        if (imported.InputShape.Length != 3) throw new ArgumentException($"'{path}' reads [{string.Join(", ", imported.InputShape)}], not images [channels, height, width].", nameof(path));
        var shapes = imported.Network.InferShapes(imported.InputShape);
        int last = Enumerable.Range(0, imported.Network.Layers.Count).LastOrDefault(i => shapes[i].Length == 3 && imported.Network.Layers[i] is not GlobalAvgPool2D, -1);
        if (last < 0) throw new ArgumentException($"'{path}' has no convolutional layers.", nameof(path));
        var spec = imported.Network.Prefix(last + 1);
        var module = spec.Build(imported.InputShape);
        using (no_grad())
        {
            var weights = imported.Module.state_dict();
            foreach (var (name, tensor) in module.state_dict()) tensor.copy_(weights[name]);
        }
        module.to(device ?? CPU);
        return new FeatureNetwork(module, spec, imported.InputShape[0], device ?? CPU, $"imported from {Path.GetFileName(path)}", imported.InputShape);
    }

    /// <summary>Runs <paramref name="work"/> on the module under the network's lock.</summary>
    internal T WithModule<T>(Func<nn.Module, T> work)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return work(_module);
        }
    }

    /// <summary>The position of a layer by name or position; an unknown one is an error listing the names.</summary>
    public int LayerIndex(string layer) => NetworkInspection.LayerIndex(Network, layer);

    /// <summary>
    /// The outputs of the layers at <paramref name="indices"/> for <paramref name="images"/> [n, C, H, W], in one pass
    /// that stops at the deepest of them; gradients flow to the images when they require them.
    /// </summary>
    /// <param name="images">Images [n, channels, height, width] in the network's pixel range.</param>
    /// <param name="indices">The layers whose outputs are returned, in this order.</param>
    /// <param name="beforeActivation">
    /// Read the deepest layer before its own activation (a Conv2D or Dense with a fused ReLU, say): gradient ascent on a
    /// ReLU's output stalls wherever the unit is off, on its input it does not.
    /// </param>
    public Tensor[] Run(Tensor images, IReadOnlyList<int> indices, bool beforeActivation = false)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4 || images.shape[1] != InputChannels)
            throw new ArgumentException($"The images are [{string.Join(", ", images.shape)}]; this network reads [n, {InputChannels}, height, width].", nameof(images));
        int deepest = indices.Count == 0 ? -1 : indices.Max();
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return NetworkRunner.Run(_layers, Network.InputsOf, images, indices,
                beforeActivation ? (i, module, x) => i == deepest && WithoutActivation(module) is { } inner ? inner.call(x) : null : null);
        }
    }

    /// <summary>The part of a layer's module before its fused activation (the "layer" child of a layer-and-activation pair), or null.</summary>
    private static nn.Module<Tensor, Tensor>? WithoutActivation(nn.Module<Tensor, Tensor> module)
    {
        var children = module.named_children().ToList();
        return children.Count == 2 && children[0].name == "layer" && children[1].name == "activation" ? children[0].module as nn.Module<Tensor, Tensor> : null;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _module.Dispose();
        }
    }
}
