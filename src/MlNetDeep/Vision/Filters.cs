using MlNetDeep.Models.Common;
using MlNetDeep.Networks;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Vision;

/// <summary>The kernels of a convolutional layer as small images: one per output channel.</summary>
/// <param name="Layer">The layer's name.</param>
/// <param name="Images">One image per output channel: a grey kernel (input channel 0), or three planes for an RGB first layer.</param>
/// <param name="Height">Rows of each kernel.</param>
/// <param name="Width">Columns of each kernel.</param>
/// <param name="Channels">1, or 3 when the images are RGB.</param>
public sealed record KernelImages(string Layer, IReadOnlyList<float[]> Images, int Height, int Width, int Channels);

/// <summary>Filter visualisation: the first layer's kernels as images, and the input that most excites each channel of any layer.</summary>
public static class Filters
{
    /// <summary>The kernels of the first Conv2D layer (or of <paramref name="layer"/>): for an RGB input, each kernel's three input planes as a colour image.</summary>
    public static KernelImages FirstLayerKernels(DeepTransformer model, string? layer = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.WithModule(module => Kernels(model.Network, module, layer));
    }

    /// <summary>The kernels of a feature network's first Conv2D layer (or of <paramref name="layer"/>).</summary>
    public static KernelImages FirstLayerKernels(FeatureNetwork network, string? layer = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        return network.WithModule(module => Kernels(network.Network, module, layer));
    }

    private static KernelImages Kernels(NetworkSpec network, nn.Module module, string? layer)
    {
        var names = NetworkInspection.LayerNames(network);
        int index = layer is null
            ? network.Layers.Select((l, i) => (l, i)).FirstOrDefault(p => p.l is Conv2D, (null!, -1)).Item2
            : NetworkInspection.LayerIndex(network, layer);
        if (index < 0) throw new ArgumentException($"The network has no Conv2D layer; its layers: {string.Join(", ", names)}.", nameof(layer));
        if (network.Layers[index] is not Conv2D)
            throw new ArgumentException($"Layer {names[index]} is not a Conv2D layer; the Conv2D layers: {string.Join(", ", names.Where((_, i) => network.Layers[i] is Conv2D))}.", nameof(layer));
        using var scope = NewDisposeScope();
        var weight = Networks.NetworkRunner.Layers(module)[index].parameters().First(p => p.dim() == 4).detach().to(float32).cpu().contiguous();
        long outputs = weight.shape[0], inputs = weight.shape[1], h = weight.shape[2], w = weight.shape[3];
        int channels = inputs == 3 ? 3 : 1;
        var planes = weight.narrow(1, 0, channels).contiguous().data<float>().ToArray();
        int size = (int)(channels * h * w);
        var images = Enumerable.Range(0, (int)outputs).Select(o => planes.AsSpan(o * size, size).ToArray()).ToList();
        return new KernelImages(names[index], images, (int)h, (int)w, channels);
    }

    /// <summary>
    /// For each chosen channel of <paramref name="layer"/>, the input that maximises the channel's mean activation (taken
    /// before the layer's own ReLU, so that a channel that is off at the start still has a gradient),
    /// found by the shared input-optimisation loop from grey with a little seeded noise (all channels in one batch).
    /// Defaults: 64 steps of 0.05 over 2 octaves, jitter 1, total variation 0.05.
    /// </summary>
    /// <param name="network">The feature network (a trained model's layers, an imported one, random weights).</param>
    /// <param name="layer">The layer, by name (conv2d_1) or position.</param>
    /// <param name="channels">The channels to draw; null: all of them.</param>
    /// <param name="height">Height of the images (their width too unless <paramref name="width"/> is given).</param>
    /// <param name="width">Width of the images.</param>
    /// <param name="options">The optimisation; null: the defaults above.</param>
    public static IReadOnlyList<VisionImage> Maximize(FeatureNetwork network, string layer, IReadOnlyList<int>? channels = null, int height = 28, int? width = null,
        InputOptimizationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        int index = network.LayerIndex(layer);
        int w = width ?? height;
        if (height is < 4 or > 1024 || w is < 4 or > 1024) throw new ArgumentOutOfRangeException(nameof(height), "Images are 4 to 1,024 pixels on a side.");
        options ??= new InputOptimizationOptions { Steps = 64, LearningRate = 0.05, Octaves = 2, Jitter = 1, TotalVariationWeight = 0.05 };
        using var scope = NewDisposeScope();
        var shape = network.Network.InferShapes([network.InputChannels, height, w])[index];
        if (shape.Length != 3) throw new ArgumentException($"Layer {network.LayerNames[index]} outputs [{string.Join(", ", shape)}], not channels of feature maps.", nameof(layer));
        int available = shape[0];
        var chosen = channels?.ToArray() ?? Enumerable.Range(0, (int)available).ToArray();
        if (chosen.Length == 0) throw new ArgumentException("Choose at least one channel.", nameof(channels));
        foreach (var c in chosen)
            if (c < 0 || c >= available) throw new ArgumentOutOfRangeException(nameof(channels), c, $"Layer {network.LayerNames[index]} has channels 0 to {available - 1}.");
        using var generator = new Generator((ulong)(uint)options.Seed, CPU);
        var start = (0.5 + 0.1 * (rand(chosen.Length, network.InputChannels, height, w, generator: generator) - 0.5)).to(network.Device);
        var picks = tensor(chosen.Select(c => (long)c).ToArray()).to(network.Device);
        var result = InputOptimization.Maximize(start, x =>
        {
            var activation = network.Run(x, [index], beforeActivation: true)[0];
            var perImage = activation.reshape(activation.shape[0], activation.shape[1], -1).mean([2]); // [n, channels]
            return perImage.gather(1, picks.unsqueeze(1)).sum();
        }, options);
        var images = new List<VisionImage>(chosen.Length);
        for (int i = 0; i < chosen.Length; i++) images.Add(VisionImage.FromTensor(result.narrow(0, i, 1)));
        return images;
    }
}
