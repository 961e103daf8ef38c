using System.Diagnostics;
using MlNetDeep.Native;
using MlNetDeep.Networks;
using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Reinforcement;

/// <summary>
/// Settings of a deep Q-network: the network (a <see cref="NetworkSpec"/> whose last Dense gets one output per action),
/// the optimizer, exploration decaying linearly over environment steps, the replay buffer, the target network, the
/// Huber loss and the training length in the shared loop's terms (epochs of updates).
/// </summary>
public sealed record DqnOptions
{
    /// <summary>The Q-network: state features in, one value per action out (<c>Dense(TaskOutputs)</c> is sized to the actions).</summary>
    public NetworkSpec Network { get; init; } = Networks.Networks.Mlp([128, 128]);

    public OptimizerSpec Optimizer { get; init; } = new Adam(1e-3);

    /// <summary>Discount gamma, in [0, 1].</summary>
    public double Discount { get; init; } = 0.9;

    /// <summary>The chance of a random action at the first step, in [0, 1].</summary>
    public double Epsilon { get; init; } = 1.0;

    /// <summary>Epsilon falls linearly to this over <see cref="ExplorationSteps"/> environment steps, in [0, 1].</summary>
    public double MinEpsilon { get; init; } = 0.05;

    /// <summary>Environment steps over which epsilon falls from <see cref="Epsilon"/> to <see cref="MinEpsilon"/>.</summary>
    public int ExplorationSteps { get; init; } = 20_000;

    /// <summary>Transitions the replay buffer keeps (the oldest are overwritten).</summary>
    public int ReplayCapacity { get; init; } = 50_000;

    /// <summary>Transitions per update, sampled from the buffer.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Environment steps played before the first update (filling the buffer).</summary>
    public int WarmupSteps { get; init; } = 1_000;

    /// <summary>Environment steps between two updates.</summary>
    public int StepsPerUpdate { get; init; } = 1;

    /// <summary>The target network is copied from the online network every this many updates.</summary>
    public int TargetUpdateInterval { get; init; } = 500;

    /// <summary>Double DQN: the online network picks the next action, the target network values it (less over-estimation).</summary>
    public bool DoubleDqn { get; init; } = true;

    /// <summary>The Huber loss is quadratic within this distance of the target and linear beyond.</summary>
    public double HuberDelta { get; init; } = 1.0;

    /// <summary>Gradients are rescaled when their joint norm exceeds this; null leaves them.</summary>
    public double? MaxGradientNorm { get; init; } = 10.0;

    /// <summary>Longest game; a game still running after it ends unfinished (and is not treated as terminal).</summary>
    public int MaxSteps { get; init; } = 100;

    /// <summary>Epochs of the shared training loop; each is <see cref="UpdatesPerEpoch"/> updates.</summary>
    public int Epochs { get; init; } = 20;

    public int UpdatesPerEpoch { get; init; } = 1_000;

    public int Seed { get; init; } = 1;

    public IProgress<TrainingProgress>? Progress { get; init; }
    public IReadOnlyList<ITrainingCallback> Callbacks { get; init; } = [];
    public CancellationToken CancellationToken { get; init; }

    internal void Validate()
    {
        static void Positive(int value, string name, int min = 1)
        {
            if (value < min) throw new ArgumentOutOfRangeException(name, value, $"{name} must be at least {min}.");
        }
        ArgumentNullException.ThrowIfNull(Network, nameof(Network));
        ArgumentNullException.ThrowIfNull(Optimizer, nameof(Optimizer));
        OptionRanges.Unit(Discount, nameof(Discount));
        OptionRanges.Unit(Epsilon, nameof(Epsilon));
        OptionRanges.Unit(MinEpsilon, nameof(MinEpsilon));
        if (MinEpsilon > Epsilon) throw new ArgumentOutOfRangeException(nameof(MinEpsilon), MinEpsilon, $"MinEpsilon ({MinEpsilon}) cannot exceed Epsilon ({Epsilon}).");
        Positive(ExplorationSteps, nameof(ExplorationSteps));
        Positive(ReplayCapacity, nameof(ReplayCapacity));
        Positive(BatchSize, nameof(BatchSize));
        Positive(WarmupSteps, nameof(WarmupSteps), 0);
        Positive(StepsPerUpdate, nameof(StepsPerUpdate));
        Positive(TargetUpdateInterval, nameof(TargetUpdateInterval));
        Positive(MaxSteps, nameof(MaxSteps));
        Positive(Epochs, nameof(Epochs));
        Positive(UpdatesPerEpoch, nameof(UpdatesPerEpoch));
        if (!(HuberDelta > 0 && double.IsFinite(HuberDelta))) throw new ArgumentOutOfRangeException(nameof(HuberDelta), HuberDelta, "HuberDelta must be a positive number.");
        if (MaxGradientNorm is { } norm && !(norm > 0 && double.IsFinite(norm)))
            throw new ArgumentOutOfRangeException(nameof(MaxGradientNorm), norm, "MaxGradientNorm must be a positive number or null.");
        if (!(Optimizer.LearningRate > 0 && double.IsFinite(Optimizer.LearningRate)))
            throw new ArgumentOutOfRangeException(nameof(Optimizer), Optimizer.LearningRate, "The optimizer's learning rate must be a positive number.");
    }
}

/// <summary>What one call of <see cref="DqnAgent.Train"/> did: the loop's history (loss, mean Q per epoch), the games, the steps and the time.</summary>
public sealed record DqnTraining(TrainingHistory History, IReadOnlyList<EpisodeResult> Episodes, long EnvironmentSteps, long Updates, TimeSpan Elapsed)
{
    /// <summary>Environment steps per second of the whole run (acting, sampling and updating).</summary>
    public double StepsPerSecond => EnvironmentSteps / Math.Max(Elapsed.TotalSeconds, 1e-9);
}

/// <summary>
/// A deep Q-network (Mnih et al. 2015) on the project's training engine: the network is built from a
/// <see cref="NetworkSpec"/>; the shared <see cref="TrainingLoop"/> drives epochs, progress, callbacks, cancellation and
/// the history; the experience is an <see cref="ITrainingData"/> whose every batch first plays
/// <see cref="DqnOptions.StepsPerUpdate"/> epsilon-greedy moves into the replay buffer and then samples from it; the
/// step regresses Q(s, a) on r + gamma max Q_target(s', .) with the Huber loss and copies the target network every
/// <see cref="DqnOptions.TargetUpdateInterval"/> updates. The environment must describe its states as numbers
/// (<see cref="IStateFeatures"/>). Everything random comes from the seed.
/// </summary>
public sealed class DqnAgent : IActionValues, IDisposable
{
    private readonly nn.Module<Tensor, Tensor> _online, _target;
    private readonly IStateFeatures _features;
    private readonly ReplayBuffer _buffer;
    private readonly Random _random;
    private readonly object _gate = new();
    private readonly float[] _scratch, _from, _to;
    private readonly optim.Optimizer _optimizer;
    private int _state = -1, _episodeSteps;
    private double _episodeReturn;
    private long _steps, _updates;
    private bool _disposed;

    public DqnAgent(IEnvironment environment, DqnOptions? options = null, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(environment);
        Options = options ?? new DqnOptions();
        Options.Validate();
        _features = environment as IStateFeatures
            ?? throw new ArgumentException($"{environment.GetType().Name} does not describe its states as numbers (IStateFeatures), which a Q-network needs.", nameof(environment));
        Environment = environment;
        Device = device ?? CPU;
        Network = Options.Network.WithTaskOutputs(environment.ActionCount);
        if (Network.EndsWithSoftmax) throw new ArgumentException("A Q-network outputs values, not probabilities: remove its softmax.", nameof(options));
        var output = Network.OutputShape([_features.FeatureCount]);
        if (output is not [var width] || width != environment.ActionCount)
            throw new ArgumentException($"The Q-network outputs [{string.Join(", ", output)}] for {_features.FeatureCount} state numbers; it must output one value per action ({environment.ActionCount}).", nameof(options));
        (_online, _target) = TorchRuntime.Seeded(Options.Seed, () =>
        {
            var online = Network.Build([_features.FeatureCount]);
            var target = Network.Build([_features.FeatureCount]);
            return (online, target);
        });
        _online.to(Device);
        _target.to(Device);
        CopyToTarget();
        _target.eval();
        _online.eval();
        _buffer = new ReplayBuffer(Options.ReplayCapacity, _features.FeatureCount);
        _random = new Random(Options.Seed);
        _scratch = new float[_features.FeatureCount];
        _from = new float[_features.FeatureCount];
        _to = new float[_features.FeatureCount];
        _optimizer = Options.Optimizer.Create(_online.parameters());
    }

    public DqnOptions Options { get; }
    public IEnvironment Environment { get; }
    public Device Device { get; }

    /// <summary>The network as built: the options' spec with one output per action.</summary>
    public NetworkSpec Network { get; }

    /// <summary>The online network (the one trained and asked for values).</summary>
    public nn.Module<Tensor, Tensor> Module => _online;

    /// <summary>Environment steps played so far (warm-up included).</summary>
    public long EnvironmentSteps => _steps;

    /// <summary>Games finished (won, or cut at <see cref="DqnOptions.MaxSteps"/>) so far.</summary>
    public long Games { get; private set; }

    /// <summary>Updates of the online network so far.</summary>
    public long Updates => _updates;

    /// <summary>The exploration rate at the current step.</summary>
    public double CurrentEpsilon => Options.Epsilon - (Options.Epsilon - Options.MinEpsilon) * Math.Min(1.0, _steps / (double)Options.ExplorationSteps);

    /// <summary>
    /// Plays the warm-up steps (the first call only), then runs the shared training loop for
    /// <see cref="DqnOptions.Epochs"/> epochs of <see cref="DqnOptions.UpdatesPerEpoch"/> updates. Called again, it goes on
    /// from where it stopped (buffer, exploration, target network and game in progress are kept).
    /// </summary>
    public DqnTraining Train()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var clock = Stopwatch.StartNew();
        long steps0 = _steps, updates0 = _updates;
        var episodes = new List<EpisodeResult>();
        while (_buffer.Added < Options.WarmupSteps) Act(episodes);
        using var step = new DqnStep(this);
        var data = new Experience(this, episodes);
        var settings = new LoopSettings
        {
            Epochs = Options.Epochs, BatchSize = Options.BatchSize, Shuffle = false, Progress = Options.Progress, Callbacks = Options.Callbacks,
            CancellationToken = Options.CancellationToken,
        };
        TrainingHistory history;
        lock (_gate) history = TrainingLoop.Run(step, data, validation: null, settings, Device, Options.Seed);
        _online.eval();
        return new DqnTraining(history, episodes, _steps - steps0, _updates - updates0, clock.Elapsed);
    }

    /// <summary>Each action's value in <paramref name="state"/>, from the online network.</summary>
    public double[] Values(int state)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (state < 0 || state >= Environment.StateCount) throw new ArgumentOutOfRangeException(nameof(state), state, $"States run from 0 to {Environment.StateCount - 1}.");
        lock (_gate)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var q = Forward(state);
            return q.to(float64).cpu().data<double>().ToArray();
        }
    }

    public int Greedy(int state) => ActionValues.ArgMax(Values(state));

    /// <summary>
    /// The greedy policy of an agent trained on Flippers as an ML.NET transformer holding a copy of the network: boards
    /// in <paramref name="boardColumnName"/>, the move in <c>Action</c>, each move's value in <c>QValues</c>; SaveDeep keeps the network.
    /// </summary>
    public FlippersNetworkPolicyTransformer ToFlippersPolicy(string boardColumnName = "Board", string actionColumnName = "Action", string valuesColumnName = "QValues")
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Environment is not Flippers) throw new InvalidOperationException($"This agent plays {Environment.GetType().Name}, not Flippers.");
        lock (_gate)
        {
            var copy = Network.Build([Flippers.Tiles]);
            using (no_grad())
            {
                var source = _online.state_dict();
                foreach (var (name, tensor) in copy.state_dict()) tensor.copy_(source[name].cpu());
            }
            copy.eval();
            return new FlippersNetworkPolicyTransformer(copy, Network, boardColumnName, actionColumnName, valuesColumnName, CPU);
        }
    }

    /// <summary>Q-values of one state, [actions], on the agent's device (call inside a dispose scope, without gradients).</summary>
    private Tensor Forward(int state)
    {
        _features.Encode(state, _scratch);
        using var x = tensor(_scratch, [1, _scratch.Length]).to(Device);
        return _online.call(x)[0];
    }

    /// <summary>One epsilon-greedy move into the buffer; a finished (or too long) game is recorded and a new one started.</summary>
    private void Act(List<EpisodeResult> episodes)
    {
        if (_state < 0) StartGame();
        double epsilon = CurrentEpsilon;
        int action;
        if (_random.NextDouble() < epsilon) action = _random.Next(Environment.ActionCount);
        else action = GreedyMove(_state);
        var result = Environment.Step(_state, action, _random);
        _features.Encode(_state, _from);
        _features.Encode(result.State, _to);
        _buffer.Add(_from, action, result.Reward, _to, result.Done);
        _steps++;
        _episodeSteps++;
        _episodeReturn += result.Reward;
        _state = result.State;
        if (result.Done || _episodeSteps >= Options.MaxSteps)
        {
            episodes.Add(new EpisodeResult((int)Games++, _episodeSteps, _episodeReturn, result.Done, epsilon));
            _state = -1;
        }
    }

    /// <summary>
    /// The online network's best move in <paramref name="state"/>, asked in eval mode without gradients (also while the
    /// loop trains it): a batch of one state must not update or be normalised by batch statistics, nor meet dropout.
    /// </summary>
    private int GreedyMove(int state)
    {
        bool training = _online.training;
        if (training) _online.eval();
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            return (int)Forward(state).argmax().item<long>();
        }
        finally
        {
            if (training) _online.train();
        }
    }

    private void StartGame()
    {
        _state = Environment.Reset(_random);
        _episodeSteps = 0;
        _episodeReturn = 0;
    }

    private void CopyToTarget()
    {
        using var noGrad = no_grad();
        var source = _online.state_dict();
        foreach (var (name, tensor) in _target.state_dict()) tensor.copy_(source[name]);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _optimizer.Dispose();
            _online.Dispose();
            _target.Dispose();
        }
    }

    /// <summary>The agent's experience as the loop's data: each batch plays moves, then samples the buffer.</summary>
    private sealed class Experience(DqnAgent agent, List<EpisodeResult> episodes) : ITrainingData
    {
        public long Count => (long)agent.Options.UpdatesPerEpoch * agent.Options.BatchSize;

        public IEpochBatches Epoch(int batchSize, bool shuffle, Generator? generator, Device device)
        {
            if (batchSize != agent.Options.BatchSize)
                throw new ArgumentException($"The loop asks for batches of {batchSize}; the agent samples {agent.Options.BatchSize}.", nameof(batchSize));
            return new Batches(agent, episodes, device);
        }

        private sealed class Batches(DqnAgent agent, List<EpisodeResult> episodes, Device device) : IEpochBatches
        {
            public int Count => agent.Options.UpdatesPerEpoch;

            public Batch Get(int index)
            {
                for (int i = 0; i < agent.Options.StepsPerUpdate; i++) agent.Act(episodes);
                var (states, transitions) = agent._buffer.Sample(agent.Options.BatchSize, agent._random, device);
                return new Batch(states, transitions);
            }

            public void Dispose() { }
        }
    }

    /// <summary>The DQN update as a training step: Huber loss of Q(s, a) against the bootstrapped target, then the target network's copy on schedule.</summary>
    private sealed class DqnStep : TrainingStep
    {
        public const string MeanQ = "q";
        private readonly DqnAgent _agent;
        private readonly optim.Optimizer _optimizer;

        /// <summary>The agent owns the optimizer, so that a second Train call keeps its state.</summary>
        public DqnStep(DqnAgent agent)
        {
            _agent = agent;
            _optimizer = agent._optimizer;
            Modules = [agent._online];
        }

        public override IReadOnlyList<nn.Module> Modules { get; }
        public override IReadOnlyCollection<string> MetricNames { get; } = [TrainingStep.Loss, MeanQ];
        public override double LearningRate => _agent.Options.Optimizer.LearningRate;

        public override void ScaleLearningRates(double factor)
        {
            foreach (var group in _optimizer.ParamGroups) group.LearningRate = LearningRate * factor;
        }

        public override IReadOnlyDictionary<string, Tensor> TrainBatch(Batch batch, StepContext context)
        {
            _optimizer.zero_grad();
            var (loss, q) = Loss(batch);
            loss.backward();
            if (_agent.Options.MaxGradientNorm is { } norm) nn.utils.clip_grad_norm_(_agent._online.parameters(), norm);
            _optimizer.step();
            if (++_agent._updates % _agent.Options.TargetUpdateInterval == 0) _agent.CopyToTarget();
            return new Dictionary<string, Tensor> { [TrainingStep.Loss] = loss.detach(), [MeanQ] = q.detach().mean() };
        }

        public override IReadOnlyDictionary<string, Tensor> EvaluateBatch(Batch batch)
        {
            var (loss, q) = Loss(batch);
            return new Dictionary<string, Tensor> { [TrainingStep.Loss] = loss, [MeanQ] = q.mean() };
        }

        private (Tensor Loss, Tensor Q) Loss(Batch batch)
        {
            var options = _agent.Options;
            var transitions = batch.Targets!;
            var actions = transitions[.., 0].to(int64).unsqueeze(1);
            var rewards = transitions[.., 1];
            var notDone = 1 - transitions[.., 2];
            var next = transitions[.., 3..];
            var q = _agent._online.call(batch.Inputs).gather(1, actions).squeeze(1);
            Tensor target;
            using (no_grad())
            {
                var nextValues = _agent._target.call(next);
                var nextAction = options.DoubleDqn ? _agent._online.call(next).argmax(1, keepdim: true) : nextValues.argmax(1, keepdim: true);
                target = rewards + options.Discount * notDone * nextValues.gather(1, nextAction).squeeze(1);
            }
            return (nn.functional.huber_loss(q, target, delta: options.HuberDelta), q);
        }
    }
}
