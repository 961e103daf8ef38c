using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Training;

/// <summary>An optimiser choice with its hyper-parameters; creates the TorchSharp optimiser for a set of parameters.</summary>
public abstract record OptimizerSpec(double LearningRate, double WeightDecay)
{
    public abstract optim.Optimizer Create(IEnumerable<TorchSharp.Modules.Parameter> parameters);

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
