using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Vision;

/// <summary>How the input-optimisation loop steps on the pixels.</summary>
public enum InputStepRule
{
    /// <summary>Adam: every pixel moves about one step size per step, whatever its gradient (filters, style transfer).</summary>
    Adam,
    /// <summary>
    /// Gradient ascent with the gradient divided by its mean absolute value: pixels move in proportion to their
    /// gradient, so the image keeps what the objective does not care about (deep dreaming).
    /// </summary>
    NormalizedGradient,
}

/// <summary>
/// Settings of the input-optimisation loop that filter visualisation, deep dreaming and style transfer share: Adam on
/// the pixels, with jitter, blur and total-variation regularisation, octaves (small to full size, carrying the detail
/// up) and clamping to the pixel range after every step.
/// </summary>
public sealed record InputOptimizationOptions
{
    /// <summary>Steps per octave.</summary>
    public int Steps { get; init; } = 100;

    /// <summary>The step size on the pixels (in the pixel range's units).</summary>
    public double LearningRate { get; init; } = 0.05;

    /// <summary>How each step moves the pixels.</summary>
    public InputStepRule Rule { get; init; } = InputStepRule.Adam;

    /// <summary>Each step shifts the image by up to this many pixels in each direction before the objective sees it (0: none).</summary>
    public int Jitter { get; init; }

    /// <summary>Weight of the total variation (mean squared difference of neighbouring pixels) subtracted from the objective.</summary>
    public double TotalVariationWeight { get; init; }

    /// <summary>Standard deviation (pixels) of a Gaussian blur applied every <see cref="BlurEvery"/> steps (0: none).</summary>
    public double BlurSigma { get; init; }

    public int BlurEvery { get; init; } = 4;

    /// <summary>Image sizes, each <see cref="OctaveScale"/> times the one before, ending at full size (1: full size only).</summary>
    public int Octaves { get; init; } = 1;

    public double OctaveScale { get; init; } = 1.4;

    /// <summary>The valid pixel range the image is clamped to.</summary>
    public double Min { get; init; }
    public double Max { get; init; } = 1;

    public int Seed { get; init; } = 1;

    /// <summary>Receives the share of steps done.</summary>
    public IProgress<double>? Progress { get; init; }

    public CancellationToken CancellationToken { get; init; }

    internal void Validate()
    {
        if (Steps is < 1 or > 100_000) throw new ArgumentOutOfRangeException(nameof(Steps), Steps, "Steps must be 1 to 100,000.");
        if (!(LearningRate > 0 && double.IsFinite(LearningRate))) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "The learning rate must be a positive number.");
        if (Jitter is < 0 or > 1000) throw new ArgumentOutOfRangeException(nameof(Jitter), Jitter, "Jitter must be 0 to 1,000 pixels.");
        if (!(TotalVariationWeight >= 0 && double.IsFinite(TotalVariationWeight))) throw new ArgumentOutOfRangeException(nameof(TotalVariationWeight), TotalVariationWeight, "The total-variation weight must be a number of at least 0.");
        if (!(BlurSigma >= 0 && BlurSigma <= 20)) throw new ArgumentOutOfRangeException(nameof(BlurSigma), BlurSigma, "The blur sigma must be 0 to 20 pixels.");
        if (BlurEvery < 1) throw new ArgumentOutOfRangeException(nameof(BlurEvery), BlurEvery, "BlurEvery must be at least 1.");
        if (!Enum.IsDefined(Rule)) throw new ArgumentOutOfRangeException(nameof(Rule), Rule, "Unknown step rule.");
        if (Octaves is < 1 or > 10) throw new ArgumentOutOfRangeException(nameof(Octaves), Octaves, "Octaves must be 1 to 10.");
        if (!(OctaveScale > 1 && OctaveScale <= 4)) throw new ArgumentOutOfRangeException(nameof(OctaveScale), OctaveScale, "The octave scale must be in (1, 4].");
        if (!(Min < Max) || !double.IsFinite(Min) || !double.IsFinite(Max)) throw new ArgumentOutOfRangeException(nameof(Min), $"The pixel range [{Min}, {Max}] is empty or not finite.");
    }
}

/// <summary>
/// The one input-optimisation loop: gradient ascent on images [n, C, H, W] for an objective computed by a network.
/// It touches no parameter's gradient (the gradient is taken with respect to the image alone), and every step's
/// tensors are disposed in the step, so native memory stays flat however many steps run.
/// </summary>
public static class InputOptimization
{
    /// <summary>
    /// Raises <paramref name="objective"/> (a scalar of a batch of images) from <paramref name="start"/> [n, C, H, W];
    /// returns the optimised images (a new tensor on <paramref name="start"/>'s device). With octaves, the start is
    /// shrunk to each octave's size and what the optimisation added is carried up to the next.
    /// </summary>
    public static Tensor Maximize(Tensor start, Func<Tensor, Tensor> objective, InputOptimizationOptions options)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(objective);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (start.dim() != 4) throw new ArgumentException($"The images must be [n, channels, height, width], not [{string.Join(", ", start.shape)}].", nameof(start));
        var random = new Random(options.Seed);
        long height = start.shape[2], width = start.shape[3];
        long total = (long)options.Steps * options.Octaves, done = 0;
        using var outer = NewDisposeScope();
        var original = start.detach().to(float32);
        Tensor? detail = null;
        Tensor image = original;
        bool adam = options.Rule == InputStepRule.Adam;
        for (int octave = 0; octave < options.Octaves; octave++)
        {
            double shrink = Math.Pow(options.OctaveScale, options.Octaves - 1 - octave);
            long h = Math.Max(1, (long)Math.Round(height / shrink)), w = Math.Max(1, (long)Math.Round(width / shrink));
            var baseImage = h == height && w == width ? original : Resize(original, h, w);
            image = (detail is null ? baseImage.clone() : baseImage + Resize(detail, h, w)).clamp(options.Min, options.Max);
            // Adam's moment estimates, one pair per octave (the image's size changes between octaves).
            var m = adam ? zeros_like(image) : null;
            var v = adam ? zeros_like(image) : null;
            for (int step = 1; step <= options.Steps; step++)
            {
                options.CancellationToken.ThrowIfCancellationRequested();
                image = Step(image, step, m, v, objective, options, random);
                // As the training loop does after each epoch: the Scalars each step's arithmetic leaves to the finalizer
                // are freed, and glibc hands free pages back, so the resident size stays flat over thousands of steps.
                if (step % 100 == 0) Native.NativeMemory.ReleaseAfterEpoch();
                options.Progress?.Report(++done / (double)total);
            }
            var added = image - baseImage;
            detail?.Dispose();
            detail = added;
        }
        return outer.MoveToOuter(image);
    }

    /// <summary>One step: the objective's gradient at the (jittered) image, the step rule, clamping and blur; every other tensor of the step is disposed.</summary>
    private static Tensor Step(Tensor image, int step, Tensor? m, Tensor? v, Func<Tensor, Tensor> objective, InputOptimizationOptions options, Random random)
    {
        using var scope = NewDisposeScope();
        var x = image.detach().requires_grad_(true);
        Tensor gradient;
        using (enable_grad())
        {
            var seen = x;
            if (options.Jitter > 0)
                seen = roll(x, [random.Next(-options.Jitter, options.Jitter + 1), random.Next(-options.Jitter, options.Jitter + 1)], [2, 3]);
            var value = objective(seen);
            if (value.numel() != 1) throw new InvalidOperationException($"The objective must be one number, not [{string.Join(", ", value.shape)}].");
            if (options.TotalVariationWeight > 0) value = value - options.TotalVariationWeight * TotalVariation(x);
            gradient = autograd.grad([value.sum()], [x])[0];
        }
        Tensor direction;
        if (m is not null && v is not null)
        {
            // Adam, written out for one tensor: ascent on the pixels.
            const double beta1 = 0.9, beta2 = 0.999;
            m.mul_(beta1).add_(gradient, alpha: 1 - beta1);
            v.mul_(beta2).addcmul_(gradient, gradient, value: 1 - beta2);
            direction = m / (1 - Math.Pow(beta1, step)) / ((v / (1 - Math.Pow(beta2, step))).sqrt() + 1e-8);
        }
        else direction = gradient / (gradient.abs().mean() + 1e-12);
        var next = (x.detach() + options.LearningRate * direction).clamp(options.Min, options.Max);
        if (options.BlurSigma > 0 && step % options.BlurEvery == 0) next = Blur(next, options.BlurSigma);
        next = scope.MoveToOuter(next);
        image.Dispose();
        return next;
    }

    /// <summary>Mean squared difference between neighbouring pixels (vertical and horizontal), per image summed over the batch.</summary>
    public static Tensor TotalVariation(Tensor images)
    {
        var dy = images.narrow(2, 1, images.shape[2] - 1) - images.narrow(2, 0, images.shape[2] - 1);
        var dx = images.narrow(3, 1, images.shape[3] - 1) - images.narrow(3, 0, images.shape[3] - 1);
        return (dy.square().mean() + dx.square().mean()) * images.shape[0];
    }

    /// <summary>Bilinear resize of [n, C, H, W] images.</summary>
    internal static Tensor Resize(Tensor images, long height, long width) =>
        nn.functional.interpolate(images, size: [height, width], mode: InterpolationMode.Bilinear, align_corners: false);

    /// <summary>A separable Gaussian blur of [n, C, H, W] images (reflected borders).</summary>
    internal static Tensor Blur(Tensor images, double sigma)
    {
        int radius = Math.Max(1, (int)Math.Ceiling(2 * sigma));
        var weights = Enumerable.Range(-radius, 2 * radius + 1).Select(i => (float)Math.Exp(-i * i / (2 * sigma * sigma))).ToArray();
        float sum = weights.Sum();
        long channels = images.shape[1];
        using var kernel = tensor(weights.Select(w => w / sum).ToArray()).to(images.device);
        using var vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1).contiguous();
        using var horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1).contiguous();
        long pad = Math.Min(radius, Math.Min(images.shape[2], images.shape[3]) - 1);
        if (pad < radius) return images.clone(); // too small an image to blur with this kernel
        using var padded = nn.functional.pad(images, [radius, radius, radius, radius], PaddingModes.Reflect);
        using var rows = nn.functional.conv2d(padded, vertical, groups: channels);
        return nn.functional.conv2d(rows, horizontal, groups: channels);
    }
}
