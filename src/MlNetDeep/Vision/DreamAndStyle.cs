using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace MlNetDeep.Vision;

/// <summary>An image as the vision tools pass it: [channels, height, width] values, plane by plane, in the pixel range.</summary>
public sealed record VisionImage(float[] Pixels, int Channels, int Height, int Width)
{
    /// <summary>Checks the sizes and values; an image of the wrong size or with non-finite values is an error naming it.</summary>
    public void Validate(string name = "image")
    {
        ArgumentNullException.ThrowIfNull(Pixels, name);
        if (Channels is < 1 or > 4 || Height is < 1 or > 8192 || Width is < 1 or > 8192)
            throw new ArgumentOutOfRangeException(name, $"The {name} is {Channels}x{Height}x{Width}; images have 1 to 4 channels and sides of 1 to 8,192 pixels.");
        if (Pixels.Length != (long)Channels * Height * Width)
            throw new ArgumentException($"The {name} holds {Pixels.Length} values, not {Channels}x{Height}x{Width} = {(long)Channels * Height * Width}.", name);
        if (Pixels.Any(v => !float.IsFinite(v))) throw new ArgumentException($"The {name} holds a value that is not a finite number.", name);
    }

    /// <summary>
    /// Reads an image file with ML.NET's ImageAnalytics (LoadImages, ResizeImages, ConvertToGrayscale, ExtractPixels):
    /// resized so that its longer side is <paramref name="maxSide"/> pixels (keeping its proportions), pixels in [0, 1].
    /// A missing or undecodable file is an error naming it.
    /// </summary>
    public static VisionImage Read(Microsoft.ML.MLContext ml, string path, int maxSide = 256, bool grayscale = false)
    {
        ArgumentNullException.ThrowIfNull(ml);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (maxSide is < 4 or > 4096) throw new ArgumentOutOfRangeException(nameof(maxSide), maxSide, "The longer side must be 4 to 4,096 pixels.");
        if (!File.Exists(path)) throw new FileNotFoundException($"The image '{path}' does not exist.", path);
        int width, height;
        using (var codec = SkiaSharp.SKCodec.Create(path))
        {
            if (codec is null) throw new InvalidDataException($"'{path}' is not an image that can be decoded (PNG, JPEG, BMP, GIF, WebP).");
            (width, height) = (codec.Info.Width, codec.Info.Height);
        }
        if (width < 1 || height < 1 || (long)width * height > 100_000_000) throw new InvalidDataException($"'{path}' has an unusable size {width}x{height}.");
        double scale = (double)maxSide / Math.Max(width, height);
        int w = Math.Max(1, (int)Math.Round(width * scale)), h = Math.Max(1, (int)Math.Round(height * scale));
        const string image = "__Image", pixels = "Pixels";
        var rows = ml.Data.LoadFromEnumerable([new PathRow { ImagePath = Path.GetFullPath(path) }]);
        Microsoft.ML.IEstimator<Microsoft.ML.ITransformer> chain = ml.Transforms.LoadImages(image, imageFolder: null, inputColumnName: nameof(PathRow.ImagePath))
            .Append(ml.Transforms.ResizeImages(image, w, h, inputColumnName: image));
        if (grayscale) chain = chain.Append(ml.Transforms.ConvertToGrayscale(image, image));
        chain = chain.Append(ml.Transforms.ExtractPixels(pixels, image, scaleImage: 1f / 255,
            colorsToExtract: grayscale ? Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorBits.Red : Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorBits.Rgb));
        float[] values;
        try
        {
            values = chain.Fit(rows).Transform(rows).GetColumn<Microsoft.ML.Data.VBuffer<float>>(pixels).Single().DenseValues().ToArray();
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            throw new InvalidDataException($"ML.NET could not read the image '{path}': {ex.Message}", ex);
        }
        var result = new VisionImage(values, grayscale ? 1 : 3, h, w);
        result.Validate(path);
        return result;
    }

    /// <summary>Writes the image as a PNG (1 or 3 channels, values clamped to [0, 1]).</summary>
    public void SavePng(string path) => Data.ImageFiles.SavePng(path, Pixels, Channels, Height, Width);

    private sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
    }

    internal Tensor ToTensor(Device device) => tensor(Pixels, [1, Channels, Height, Width]).to(device);

    internal static VisionImage FromTensor(Tensor image)
    {
        using var cpu = image.detach().to(float32).cpu().contiguous();
        return new VisionImage(cpu.data<float>().ToArray(), (int)cpu.shape[1], (int)cpu.shape[2], (int)cpu.shape[3]);
    }
}

/// <summary>Deep dreaming: amplify what a layer sees in an image, by gradient ascent on the layer's mean squared activation.</summary>
public static class DeepDream
{
    /// <summary>
    /// The dreamed version of <paramref name="image"/>: <paramref name="layer"/> of <paramref name="network"/> is made to
    /// respond more strongly, over <see cref="InputOptimizationOptions.Octaves"/> scales with jitter (defaults suited to
    /// dreaming: 4 octaves of 1.4, 20 steps each of normalised gradient ascent with step 0.005, jitter 2 pixels).
    /// </summary>
    public static VisionImage Dream(FeatureNetwork network, VisionImage image, string layer, InputOptimizationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(image);
        image.Validate();
        if (image.Channels != network.InputChannels)
            throw new ArgumentException($"The image has {image.Channels} channel(s); the network reads {network.InputChannels}.", nameof(image));
        int index = network.LayerIndex(layer);
        options ??= new InputOptimizationOptions { Octaves = 4, Steps = 20, Jitter = 2, LearningRate = 0.005, Rule = InputStepRule.NormalizedGradient };
        using var scope = NewDisposeScope();
        var start = image.ToTensor(network.Device);
        var dreamed = InputOptimization.Maximize(start, x => network.Run(x, [index])[0].square().mean(), options);
        return VisionImage.FromTensor(dreamed);
    }

    /// <summary>
    /// The dreamed version of <paramref name="image"/> over several layers at once: gradient ascent on the weighted sum of
    /// each layer's mean squared activation (the course's dream over a few layers, each with its weight), with the
    /// defaults of the one-layer dream. A weight may be negative (that layer is made quieter); all zero is an error.
    /// </summary>
    public static VisionImage Dream(FeatureNetwork network, VisionImage image, IReadOnlyList<(string Layer, double Weight)> layers, InputOptimizationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(layers);
        image.Validate();
        if (image.Channels != network.InputChannels)
            throw new ArgumentException($"The image has {image.Channels} channel(s); the network reads {network.InputChannels}.", nameof(image));
        if (layers.Count == 0) throw new ArgumentException("Give at least one layer to dream with.", nameof(layers));
        foreach (var (layer, weight) in layers)
            if (!double.IsFinite(weight)) throw new ArgumentOutOfRangeException(nameof(layers), weight, $"The weight of layer '{layer}' is not a finite number.");
        if (layers.All(l => l.Weight == 0)) throw new ArgumentException("Every layer's weight is 0: there is nothing to dream.", nameof(layers));
        var indices = layers.Select(l => network.LayerIndex(l.Layer)).ToArray();
        var weights = layers.Select(l => l.Weight).ToArray();
        options ??= new InputOptimizationOptions { Octaves = 4, Steps = 20, Jitter = 2, LearningRate = 0.005, Rule = InputStepRule.NormalizedGradient };
        using var scope = NewDisposeScope();
        var start = image.ToTensor(network.Device);
        var dreamed = InputOptimization.Maximize(start, x =>
        {
            var features = network.Run(x, indices);
            var objective = weights[0] * features[0].square().mean();
            for (int i = 1; i < features.Length; i++) objective = objective + weights[i] * features[i].square().mean();
            return objective;
        }, options);
        return VisionImage.FromTensor(dreamed);
    }
}

/// <summary>Settings of style transfer (Gatys et al. 2016): which layers carry content and style, and the weights of the three losses.</summary>
public sealed record StyleTransferOptions
{
    /// <summary>The layer whose activations the result must share with the content image; null: the third convolution (or the last, with fewer), after its activation.</summary>
    public string? ContentLayer { get; init; }

    /// <summary>The layers whose Gram matrices the result must share with the style image; null: every convolution, after its activation.</summary>
    public IReadOnlyList<string>? StyleLayers { get; init; }

    public double ContentWeight { get; init; } = 1;
    public double StyleWeight { get; init; } = 1e4;
    public double TotalVariationWeight { get; init; } = 1;

    /// <summary>
    /// The image the optimisation starts from (of the content image's size and channels), e.g. noise; null (the default)
    /// starts from the content image itself.
    /// </summary>
    public VisionImage? Start { get; init; }

    /// <summary>The optimisation (from the content image): 300 Adam steps of 0.02 by default.</summary>
    public InputOptimizationOptions Optimization { get; init; } = new() { Steps = 300, LearningRate = 0.02 };
}

/// <summary>
/// Style transfer (Gatys et al. 2016): starting from the content image, the pixels move to keep one layer's activations
/// of the content image (content loss) while matching the Gram matrices of several layers of the style image (style
/// loss), with a total-variation penalty. Works with any <see cref="FeatureNetwork"/>: an imported pretrained network
/// (the original method), a model of the project, or random weights (Ulyanov et al. 2017; He et al. 2016).
/// </summary>
public static class StyleTransfer
{
    /// <summary>The Gram matrices of features [n, C, H, W]: [n, C, C], each entry the mean over positions of the product of two channels.</summary>
    public static Tensor Gram(Tensor features)
    {
        ArgumentNullException.ThrowIfNull(features);
        if (features.dim() != 4) throw new ArgumentException($"Features must be [n, channels, height, width], not [{string.Join(", ", features.shape)}].", nameof(features));
        long n = features.shape[0], c = features.shape[1], positions = features.shape[2] * features.shape[3];
        var flat = features.reshape(n, c, positions);
        return matmul(flat, flat.transpose(1, 2)) / positions;
    }

    /// <summary>The content image restyled; <paramref name="style"/> may have another size than <paramref name="content"/>.</summary>
    public static VisionImage Transfer(FeatureNetwork network, VisionImage content, VisionImage style, StyleTransferOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(content);
        ArgumentNullException.ThrowIfNull(style);
        content.Validate("content image");
        style.Validate("style image");
        options ??= new StyleTransferOptions();
        foreach (var (image, name) in new[] { (content, "content image"), (style, "style image") })
            if (image.Channels != network.InputChannels)
                throw new ArgumentException($"The {name} has {image.Channels} channel(s); the network reads {network.InputChannels}.", name);
        foreach (var (weight, name) in new[] { (options.ContentWeight, "ContentWeight"), (options.StyleWeight, "StyleWeight"), (options.TotalVariationWeight, "TotalVariationWeight") })
            if (!(weight >= 0 && double.IsFinite(weight))) throw new ArgumentOutOfRangeException(name, weight, $"{name} must be a number of at least 0.");
        // Each convolution as its activation leaves it: the next layer when that is a separate activation (as in
        // imported networks, where Relu is its own node), the convolution itself when the activation is fused.
        var layers = network.Network.Layers;
        var convolutions = Enumerable.Range(0, layers.Count).Where(i => layers[i] is Networks.Conv2D)
            .Select(i => i + 1 < layers.Count && layers[i + 1] is Networks.Activation && network.Network.InputsOf(i + 1) is [var source] && source == i ? i + 1 : i).ToList();
        if (convolutions.Count == 0) throw new ArgumentException("The feature network has no convolutions.", nameof(network));
        var styleLayers = options.StyleLayers?.Select(network.LayerIndex).ToList() ?? convolutions;
        if (styleLayers.Count == 0) throw new ArgumentException("Give at least one style layer.", nameof(options));
        int contentLayer = options.ContentLayer is { } named ? network.LayerIndex(named) : convolutions[Math.Min(2, convolutions.Count - 1)];

        using var scope = NewDisposeScope();
        var contentImage = content.ToTensor(network.Device);
        Tensor contentTarget;
        Tensor[] styleTargets;
        using (no_grad())
        {
            contentTarget = network.Run(contentImage, [contentLayer])[0].detach();
            styleTargets = network.Run(style.ToTensor(network.Device), styleLayers).Select(f => Gram(f).detach()).ToArray();
        }
        var indices = styleLayers.Append(contentLayer).ToArray();
        var optimization = options.Optimization with { TotalVariationWeight = options.TotalVariationWeight };
        var start = contentImage;
        if (options.Start is { } initial)
        {
            initial.Validate("start image");
            if (initial.Channels != content.Channels || initial.Height != content.Height || initial.Width != content.Width)
                throw new ArgumentException($"The start image is {initial.Channels}x{initial.Height}x{initial.Width}; it must match the content image, " +
                    $"{content.Channels}x{content.Height}x{content.Width}.", nameof(options));
            start = initial.ToTensor(network.Device);
        }
        var result = InputOptimization.Maximize(start, x =>
        {
            var features = network.Run(x, indices);
            var loss = options.ContentWeight * nn.functional.mse_loss(features[^1], contentTarget);
            for (int i = 0; i < styleTargets.Length; i++)
                loss = loss + options.StyleWeight / styleTargets.Length * nn.functional.mse_loss(Gram(features[i]), styleTargets[i]);
            return -loss;
        }, optimization);
        return VisionImage.FromTensor(result);
    }
}
