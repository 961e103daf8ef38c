using MlNetDeep.Models.Common;
using MlNetDeep.Networks;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Vision;

/// <summary>
/// Looking inside a trained network: its layers by name, and what any of them outputs for a batch of images (feature
/// maps). A layer is named by its type and position, Keras-like: <c>conv2d_0</c>, <c>conv2d_1</c>, <c>maxpool2d_2</c>,
/// ... (the position counts every layer of the spec), or by its position alone (<c>"1"</c>).
/// </summary>
public static class NetworkInspection
{
    /// <summary>The names of the layers of <paramref name="model"/>'s network, in order.</summary>
    public static IReadOnlyList<string> LayerNames(this DeepTransformer model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return LayerNames(model.Network);
    }

    /// <summary>The names of a spec's layers: type and position (<c>conv2d_0</c>).</summary>
    public static IReadOnlyList<string> LayerNames(NetworkSpec network) =>
        network.Layers.Select((layer, i) => $"{layer.GetType().Name.ToLowerInvariant()}_{i}").ToArray();

    /// <summary>The position of <paramref name="layer"/> (a name or a position); an unknown one is an error listing the names.</summary>
    public static int LayerIndex(NetworkSpec network, string layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        var names = LayerNames(network);
        int index = Array.IndexOf(names.ToArray(), layer.Trim().ToLowerInvariant());
        if (index >= 0) return index;
        if (int.TryParse(layer, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out index) && index < names.Count) return index;
        throw new ArgumentException($"The network '{network.Name}' has no layer '{layer}'. Its layers: {string.Join(", ", names)} (or their positions 0 to {names.Count - 1}).", nameof(layer));
    }

    /// <summary>The shape of one image's output of <paramref name="layer"/> (e.g. [32, 26, 26] for the MNIST CNN's first convolution).</summary>
    public static int[] LayerShape(this DeepTransformer model, string layer)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.Network.InferShapes(model.InputShape)[LayerIndex(model.Network, layer)];
    }

    /// <summary>
    /// The output of <paramref name="layer"/> for each image (flattened, <see cref="LayerShape"/> values per image), in
    /// eval mode. Each image holds the model's feature values in its input layout (e.g. 784 pixels in [0, 1] for MNIST,
    /// or 3 planes of H x W for colour images read with ML.NET's ExtractPixels).
    /// </summary>
    public static float[][] Activations(this DeepTransformer model, IReadOnlyList<float[]> images, string layer)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        return Activations(model, images, LayerIndex(model.Network, layer));
    }

    /// <summary>The activations of the layer at <paramref name="index"/> (already resolved, e.g. once per transform rather than per row).</summary>
    internal static float[][] Activations(DeepTransformer model, IReadOnlyList<float[]> images, int index)
    {
        var results = new float[images.Count][];
        const int chunk = 64;
        for (int start = 0; start < images.Count; start += chunk)
        {
            int count = Math.Min(chunk, images.Count - start);
            model.WithModule(module =>
            {
                using var scope = NewDisposeScope();
                using var noGrad = no_grad();
                var x = ImageBatch(model, images, start, count);
                var y = RunTo(model.Network, module, x, index).reshape(count, -1).to(float32).cpu().contiguous();
                var values = y.data<float>().ToArray();
                int width = (int)y.shape[1];
                for (int i = 0; i < count; i++) results[start + i] = values.AsSpan(i * width, width).ToArray();
                return true;
            });
        }
        return results;
    }

    /// <summary>Checks that <paramref name="column"/> holds float vectors of the model's input size; returns the size.</summary>
    internal static int RequireImageColumn(Microsoft.ML.DataViewSchema schema, string column, DeepTransformer model)
    {
        int size = Data.ColumnChecks.RequireFloatFeatures(Data.ColumnChecks.Find(schema, column, "image"), "image");
        if (size != model.FeatureSize)
            throw new ArgumentOutOfRangeException(column, $"The image column '{column}' has {size} values per row; the model reads {model.FeatureSize} ([{string.Join(", ", model.InputShape)}]).");
        return size;
    }

    /// <summary>Images [count, ...InputShape] on the model's device, each checked for its size and for finite values.</summary>
    internal static Tensor ImageBatch(DeepTransformer model, IReadOnlyList<float[]> images, int start, int count)
    {
        var buffer = new float[count * model.FeatureSize];
        for (int i = 0; i < count; i++)
        {
            var image = images[start + i] ?? throw new ArgumentNullException(nameof(images), $"Image {start + i} is null.");
            if (image.Length != model.FeatureSize)
                throw new ArgumentException($"Image {start + i} has {image.Length} values; the model reads {model.FeatureSize} (shape [{string.Join(", ", model.InputShape)}]: channels, height, width).", nameof(images));
            image.CopyTo(buffer, i * model.FeatureSize);
        }
        if (buffer.Any(v => !float.IsFinite(v))) throw new ArgumentException("An image holds a value that is not a finite number.", nameof(images));
        return tensor(buffer, [count, .. model.InputShape.Select(d => (long)d)]).to(model.Device);
    }

    /// <summary>The output of the layer at <paramref name="index"/> of a network built from <paramref name="spec"/> (chain or graph).</summary>
    internal static Tensor RunTo(NetworkSpec spec, nn.Module module, Tensor x, int index) => Networks.NetworkRunner.Run(spec, module, x, [index])[0];
}
