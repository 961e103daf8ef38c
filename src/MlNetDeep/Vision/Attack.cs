using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Vision;

/// <summary>How an adversarial example is made.</summary>
public enum AttackMethod
{
    /// <summary>Fast gradient sign method (Goodfellow et al. 2015): one step of the loss gradient's sign.</summary>
    Fgsm,
    /// <summary>Projected gradient descent (Madry et al. 2018): several signed steps, each projected back into the epsilon ball.</summary>
    Pgd,
}

/// <summary>
/// An attack in pixel space: changes of at most <see cref="Epsilon"/> per pixel (the L-infinity ball), the result kept
/// in [<see cref="Min"/>, <see cref="Max"/>] (the valid pixel range; any normalisation belongs inside the model).
/// Untargeted, the attack raises the loss of the true class; with <see cref="TargetClass"/>, it lowers the loss of that
/// class instead. Build one with <see cref="Fgsm"/> or <see cref="Pgd"/>.
/// </summary>
public sealed record Attack
{
    public AttackMethod Method { get; init; } = AttackMethod.Fgsm;

    /// <summary>Largest change of a pixel, in the pixel range's units (0.1 on [0, 1] pixels is a tenth of the range).</summary>
    public double Epsilon { get; init; } = 0.1;

    /// <summary>Signed gradient steps (1 for FGSM).</summary>
    public int Steps { get; init; } = 1;

    /// <summary>Size of each step; null: epsilon for FGSM (1.25 epsilon with a random start), 2.5 epsilon / steps for PGD.</summary>
    public double? StepSize { get; init; }

    /// <summary>Start from a uniformly random point of the epsilon ball instead of the image itself.</summary>
    public bool RandomStart { get; init; }

    /// <summary>A class to push every image towards (a targeted attack); null pushes away from the true class.</summary>
    public int? TargetClass { get; init; }

    public double Min { get; init; }
    public double Max { get; init; } = 1;

    /// <summary>FGSM: one step of size epsilon (1.25 epsilon from a random start, as in fast adversarial training).</summary>
    public static Attack Fgsm(double epsilon, bool randomStart = false, int? targetClass = null) =>
        new() { Method = AttackMethod.Fgsm, Epsilon = epsilon, Steps = 1, RandomStart = randomStart, TargetClass = targetClass };

    /// <summary>PGD: <paramref name="steps"/> steps (2.5 epsilon / steps each unless given), from a random start by default.</summary>
    public static Attack Pgd(double epsilon, int steps = 40, double? stepSize = null, bool randomStart = true, int? targetClass = null) =>
        new() { Method = AttackMethod.Pgd, Epsilon = epsilon, Steps = steps, StepSize = stepSize, RandomStart = randomStart, TargetClass = targetClass };

    /// <summary>The step size used.</summary>
    public double EffectiveStepSize => StepSize ?? (Method == AttackMethod.Fgsm ? (RandomStart ? 1.25 : 1.0) * Epsilon : 2.5 * Epsilon / Steps);

    internal void Validate(int? classes = null)
    {
        if (!Enum.IsDefined(Method)) throw new ArgumentOutOfRangeException(nameof(Method), Method, "Unknown attack method.");
        if (!(Epsilon >= 0 && double.IsFinite(Epsilon))) throw new ArgumentOutOfRangeException(nameof(Epsilon), Epsilon, "Epsilon must be a finite number of at least 0.");
        if (Steps < 1 || Steps > 10_000) throw new ArgumentOutOfRangeException(nameof(Steps), Steps, "An attack takes 1 to 10,000 steps.");
        if (Method == AttackMethod.Fgsm && Steps != 1) throw new ArgumentOutOfRangeException(nameof(Steps), Steps, "FGSM takes one step; use PGD for more.");
        if (StepSize is { } size && !(size > 0 && double.IsFinite(size))) throw new ArgumentOutOfRangeException(nameof(StepSize), size, "The step size must be a positive number.");
        if (!(Min < Max) || !double.IsFinite(Min) || !double.IsFinite(Max)) throw new ArgumentOutOfRangeException(nameof(Min), $"The pixel range [{Min}, {Max}] is empty or not finite.");
        if (TargetClass is { } target && (target < 0 || (classes is { } n && target >= n)))
            throw new ArgumentOutOfRangeException(nameof(TargetClass), target, $"The target class must be a class index from 0{(classes is { } c ? $" to {c - 1}" : "")}.");
    }

    /// <summary>
    /// The adversarial version of <paramref name="images"/> [n, ...]: <paramref name="loss"/> maps a batch of images to
    /// the per-image losses [n] of the true (or target) classes, whose gradient the attack follows. Runs without touching
    /// any parameter's gradient; every intermediate tensor is disposed per step. <paramref name="random"/> draws the
    /// random start (on the CPU).
    /// </summary>
    internal Tensor Perturb(Tensor images, Func<Tensor, Tensor> loss, Generator? random)
    {
        using var outer = NewDisposeScope();
        var clean = images.detach();
        var low = (clean - Epsilon).clamp_min(Min);
        var high = (clean + Epsilon).clamp_max(Max);
        var adversarial = clean.clone();
        if (Epsilon == 0) return outer.MoveToOuter(adversarial);
        if (RandomStart)
        {
            var noise = rand(clean.shape, dtype: float32, generator: random).to(clean.device) * (2 * Epsilon) - Epsilon;
            adversarial = torch.minimum(torch.maximum(clean + noise, low), high);
        }
        double step = EffectiveStepSize, direction = TargetClass is null ? 1 : -1;
        for (int i = 0; i < Steps; i++)
        {
            using var scope = NewDisposeScope();
            var x = adversarial.detach().requires_grad_(true);
            using var enableGrad = enable_grad();
            var total = loss(x).sum();
            var gradient = autograd.grad([total], [x])[0];
            var next = scope.MoveToOuter(torch.minimum(torch.maximum(x.detach() + direction * step * gradient.sign(), low), high));
            adversarial.Dispose(); // the previous step's image: without this, every step's image would live until the end
            adversarial = next;
        }
        return outer.MoveToOuter(adversarial);
    }
}
