using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Training;

/// <summary>An optimiser choice with its hyper-parameters; creates the TorchSharp optimiser for a set of parameters.</summary>
public abstract record OptimizerSpec(double LearningRate, double WeightDecay)
{
    public abstract optim.Optimizer Create(IEnumerable<TorchSharp.Modules.Parameter> parameters);

    /// <summary>The optimiser names <see cref="FromName"/> knows.</summary>
    public static IReadOnlyList<string> Names { get; } = ["adam", "adadelta", "sgd", "rmsprop"];

    /// <summary>
    /// An optimiser by name: <c>adam</c> (default rate 1e-3), <c>adadelta</c> (1.0, the paper's and Keras' MNIST CNN's
    /// choice), <c>sgd</c> (0.01) or <c>rmsprop</c> (1e-3). <paramref name="learningRate"/> null keeps that default;
    /// <paramref name="momentum"/> applies to sgd and rmsprop only (<paramref name="nesterov"/> to sgd only).
    /// </summary>
    public static OptimizerSpec FromName(string name, double? learningRate = null, double momentum = 0, bool nesterov = false)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!(momentum >= 0 && momentum < 1)) throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "Momentum must be in [0, 1).");
        string key = name.Trim().ToLowerInvariant();
        if (momentum != 0 && key is not ("sgd" or "rmsprop"))
            throw new ArgumentException($"Momentum applies to sgd and rmsprop, not to {name}.", nameof(momentum));
        if (nesterov && key != "sgd") throw new ArgumentException($"Nesterov momentum applies to sgd, not to {name}.", nameof(nesterov));
        OptimizerSpec spec = key switch
        {
            "adam" => new Adam(learningRate ?? 1e-3),
            "adadelta" => new Adadelta(learningRate ?? 1.0),
            "sgd" => new Sgd(learningRate ?? 0.01, momentum, nesterov),
            "rmsprop" => new RmsProp(learningRate ?? 1e-3, Momentum: momentum),
            _ => throw new ArgumentException($"Unknown optimizer '{name}': expected one of {string.Join(", ", Names)}.", nameof(name)),
        };
        spec.Validate();
        return spec;
    }

    internal void Validate()
    {
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, $"{GetType().Name}: the learning rate must be a positive number.");
        if (!(WeightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, $"{GetType().Name}: weight decay must be >= 0.");
    }
}

/// <summary>Stochastic gradient descent, with optional (Nesterov) momentum.</summary>
public sealed record Sgd(double LearningRate = 0.01, double Momentum = 0, bool Nesterov = false, double WeightDecay = 0) : OptimizerSpec(LearningRate, WeightDecay)
{
    public override optim.Optimizer Create(IEnumerable<TorchSharp.Modules.Parameter> parameters)
    {
        if (Nesterov && Momentum <= 0) throw new ArgumentException("Nesterov momentum needs Momentum > 0.", nameof(Nesterov));
        return optim.SGD(parameters, LearningRate, momentum: Momentum, nesterov: Nesterov, weight_decay: WeightDecay);
    }
}

/// <summary>Adam (Kingma and Ba).</summary>
public sealed record Adam(double LearningRate = 1e-3, double Beta1 = 0.9, double Beta2 = 0.999, double Epsilon = 1e-8, double WeightDecay = 0) : OptimizerSpec(LearningRate, WeightDecay)
{
    public override optim.Optimizer Create(IEnumerable<TorchSharp.Modules.Parameter> parameters) =>
        optim.Adam(parameters, LearningRate, Beta1, Beta2, Epsilon, WeightDecay);
}

/// <summary>RMSprop.</summary>
public sealed record RmsProp(double LearningRate = 1e-3, double Alpha = 0.99, double Epsilon = 1e-8, double Momentum = 0, double WeightDecay = 0) : OptimizerSpec(LearningRate, WeightDecay)
{
    public override optim.Optimizer Create(IEnumerable<TorchSharp.Modules.Parameter> parameters) =>
        optim.RMSProp(parameters, LearningRate, Alpha, Epsilon, WeightDecay, Momentum);
}

/// <summary>Adadelta (its learning rate scales the update; 1.0 is the paper's).</summary>
public sealed record Adadelta(double LearningRate = 1.0, double Rho = 0.9, double Epsilon = 1e-6, double WeightDecay = 0) : OptimizerSpec(LearningRate, WeightDecay)
{
    public override optim.Optimizer Create(IEnumerable<TorchSharp.Modules.Parameter> parameters) =>
        optim.Adadelta(parameters, LearningRate, Rho, Epsilon, WeightDecay);
}
