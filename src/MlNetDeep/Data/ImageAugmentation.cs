using MlNetDeep.Training;
using static TorchSharp.torch;

namespace MlNetDeep.Data;

/// <summary>
/// What <see cref="ImageAugmentation"/> draws for each training image, each epoch: a rotation, flips, a zoom and a shift.
/// The defaults suit digits (small rotation, zoom and shift, no flips: a flipped 2 is not a 2).
/// </summary>
public sealed class ImageAugmentationOptions
{
    /// <summary>Rotate by an angle drawn uniformly in [-MaxRotationDegrees, MaxRotationDegrees].</summary>
    public double MaxRotationDegrees { get; set; } = 10;

    /// <summary>Probability of mirroring left-right.</summary>
    public double HorizontalFlipProbability { get; set; }

    /// <summary>Probability of mirroring top-bottom.</summary>
    public double VerticalFlipProbability { get; set; }

    /// <summary>Smallest zoom factor (1 = unchanged, below 1 shrinks the content).</summary>
    public double MinScale { get; set; } = 0.9;

    /// <summary>Largest zoom factor.</summary>
    public double MaxScale { get; set; } = 1.1;

    /// <summary>Shift by up to this fraction of the width (and height) in each direction.</summary>
    public double MaxShiftFraction { get; set; } = 0.1;

    /// <summary>
    /// The shape of one image [channels, height, width], for trainers fed flat vectors (an MLP on 784 pixels); null when the
    /// trainer's InputShape already is an image shape.
    /// </summary>
    public int[]? ImageShape { get; set; }

    internal void Validate()
    {
        if (MaxRotationDegrees is < 0 or > 180 || double.IsNaN(MaxRotationDegrees))
            throw new ArgumentOutOfRangeException(nameof(MaxRotationDegrees), MaxRotationDegrees, "MaxRotationDegrees must be in [0, 180].");
        if (HorizontalFlipProbability is < 0 or > 1 || double.IsNaN(HorizontalFlipProbability))
            throw new ArgumentOutOfRangeException(nameof(HorizontalFlipProbability), HorizontalFlipProbability, "A probability must be in [0, 1].");
        if (VerticalFlipProbability is < 0 or > 1 || double.IsNaN(VerticalFlipProbability))
            throw new ArgumentOutOfRangeException(nameof(VerticalFlipProbability), VerticalFlipProbability, "A probability must be in [0, 1].");
        if (!(MinScale > 0) || !(MaxScale >= MinScale) || !double.IsFinite(MaxScale))
            throw new ArgumentOutOfRangeException(nameof(MinScale), $"Need 0 < MinScale <= MaxScale (got {MinScale} and {MaxScale}).");
        if (MaxShiftFraction is < 0 or > 1 || double.IsNaN(MaxShiftFraction))
            throw new ArgumentOutOfRangeException(nameof(MaxShiftFraction), MaxShiftFraction, "MaxShiftFraction must be in [0, 1].");
        if (ImageShape is { } s && (s.Length != 3 || s.Any(d => d <= 0)))
            throw new ArgumentException($"ImageShape must be [channels, height, width] with positive sizes, not [{string.Join(", ", s)}].", nameof(ImageShape));
    }
}

/// <summary>
/// Random image augmentation as a training-input transform: each image of each training batch gets its own random rotation,
/// flips, zoom and shift (one affine warp, bilinear, zeros outside), drawn from the training engine's seeded generator, so
/// a run is repeatable and every epoch sees new variants. Set it as a trainer's
/// <see cref="DeepTrainerOptions.TrainingInputTransform"/>: the engine applies it to training batches only; validation and
/// scoring (Transform, PredictionEngine) see the images unchanged. Labels are untouched.
/// </summary>
public sealed class ImageAugmentation : IBatchTransform
{
    /// <summary>Augmentation with the given options (defaults: ±10°, zoom 0.9-1.1, shift ±10%, no flips).</summary>
    public ImageAugmentation(ImageAugmentationOptions? options = null)
    {
        Options = options ?? new ImageAugmentationOptions();
        Options.Validate();
    }

    /// <summary>The settings.</summary>
    public ImageAugmentationOptions Options { get; }

    /// <summary>
    /// Augments a batch shaped [batch, channels, height, width], [batch, height, width], or [batch, values] when
    /// <see cref="ImageAugmentationOptions.ImageShape"/> is set; returns a new tensor of the same shape.
    /// </summary>
    public Tensor Apply(Tensor batch, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var shape = batch.shape;
        long n = shape[0];
        Tensor images = shape.Length switch
        {
            4 => batch,
            3 => batch.unsqueeze(1),
            2 when Options.ImageShape is { } s && (long)s[0] * s[1] * s[2] == shape[1] => batch.reshape(n, s[0], s[1], s[2]),
            _ => throw new ArgumentException(
                $"ImageAugmentation needs image batches [batch, channels, height, width]; got [{string.Join(", ", shape)}]. " +
                "Set the trainer's InputShape (e.g. [1, 28, 28]) or ImageAugmentationOptions.ImageShape to the image's shape.", nameof(batch)),
        };
        if (images.dtype != float32 && images.dtype != float64)
            throw new ArgumentException($"ImageAugmentation needs float images, not {images.dtype}.", nameof(batch));

        var device = batch.device;
        var type = images.dtype;
        Tensor Uniform(double low, double high) => rand(n, dtype: float64, generator: generator).to(device) * (high - low) + low;
        Tensor Flip(double probability) => probability <= 0
            ? ones(n, dtype: float64, device: device)
            : 1 - 2 * (rand(n, dtype: float64, generator: generator).to(device) < probability).to(float64);

        var angle = Uniform(-Options.MaxRotationDegrees, Options.MaxRotationDegrees) * (Math.PI / 180);
        var scale = Uniform(Options.MinScale, Options.MaxScale);
        var shiftX = Uniform(-Options.MaxShiftFraction, Options.MaxShiftFraction) * 2;   // grid coordinates span [-1, 1]
        var shiftY = Uniform(-Options.MaxShiftFraction, Options.MaxShiftFraction) * 2;
        var flipX = Flip(Options.HorizontalFlipProbability);
        var flipY = Flip(Options.VerticalFlipProbability);

        // affine_grid maps each output position to the input position it samples: the inverse of the wanted warp.
        var cos = angle.cos() / scale;
        var sin = angle.sin() / scale;
        var row0 = stack([cos * flipX, -sin * flipY, -shiftX], 1);
        var row1 = stack([sin * flipX, cos * flipY, -shiftY], 1);
        var theta = stack([row0, row1], 1).to(type);
        var grid = nn.functional.affine_grid(theta, images.shape, align_corners: false);
        var warped = nn.functional.grid_sample(images, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Zeros, align_corners: false);
        return warped.reshape(shape);
    }
}
