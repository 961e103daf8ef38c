using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Cli.Benchmarks;

/// <summary>
/// The baseline of the text benchmark: the course's character model (Embedding - LSTM(sequences) - LSTM - Linear)
/// written directly in TorchSharp, no MlNetDeep code, trained with Adam and gradient clipping on windows cut from a
/// token tensor per batch: the fastest a .NET loop over this model can be without changing the model.
/// </summary>
internal static class PlainTorchSharpLanguageModel
{
    private sealed class Model : nn.Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.Embedding embedding;
        private readonly TorchSharp.Modules.LSTM lower, upper;
        private readonly TorchSharp.Modules.Linear head;

        public Model(int vocabulary, int embeddingSize, int units) : base("PlainCharModel")
        {
            embedding = nn.Embedding(vocabulary, embeddingSize);
            lower = nn.LSTM(embeddingSize, units, batchFirst: true);
            upper = nn.LSTM(units, units, batchFirst: true);
            head = nn.Linear(units, vocabulary);
            RegisterComponents();
        }

        public override Tensor forward(Tensor ids)
        {
            var sequence = lower.call(embedding.call(ids)).Item1;
            return head.call(upper.call(sequence).Item1.select(1, -1));
        }
    }

    /// <summary>Windows/s of each epoch and the validation cross-entropy (nats) after it.</summary>
    public static (List<double> Rates, List<double> ValidationLosses) Train(int[] train, int[] validation, int vocabulary, int window, int stride,
        int epochs, int batchSize, double learningRate, int embeddingSize, int units, Device device, int seed)
    {
        manual_seed(seed);
        using var tokens = tensor(train.Select(t => (long)t).ToArray()).to(device);
        using var validationTokens = tensor(validation.Select(t => (long)t).ToArray()).to(device);
        using var offsets = arange(window + 1L, device: device);
        long windows = (train.Length - window - 1) / stride + 1;
        using var model = new Model(vocabulary, embeddingSize, units);
        model.to(device);
        using var optimizer = optim.Adam(model.parameters(), learningRate);
        var rates = new List<double>();
        var losses = new List<double>();
        for (int epoch = 0; epoch < epochs; epoch++)
        {
            model.train();
            var clock = Stopwatch.StartNew();
            using var order = randperm(windows).to(device);
            using var total = zeros(1, device: device);
            for (long start = 0; start < windows; start += batchSize)
            {
                using var scope = NewDisposeScope();
                var rows = tokens[(order.slice(0, start, Math.Min(windows, start + batchSize), 1) * stride).unsqueeze(1) + offsets];
                optimizer.zero_grad();
                var loss = nn.functional.cross_entropy(model.call(rows.narrow(1, 0, window)), rows.select(1, window));
                loss.backward();
                nn.utils.clip_grad_norm_(model.parameters(), 5.0);
                optimizer.step();
                total.add_(loss.detach());
            }
            _ = total.item<float>(); // waits for the device
            rates.Add(windows / clock.Elapsed.TotalSeconds);
            losses.Add(Validate(model, validationTokens, offsets, window));
        }
        return (rates, losses);
    }

    private static double Validate(Model model, Tensor tokens, Tensor offsets, int window)
    {
        model.eval();
        using var noGrad = no_grad();
        long windows = tokens.shape[0] - window;
        double sum = 0;
        for (long start = 0; start < windows; start += 512)
        {
            using var scope = NewDisposeScope();
            var rows = tokens[arange(start, Math.Min(windows, start + 512), device: tokens.device).unsqueeze(1) + offsets];
            sum += nn.functional.cross_entropy(model.call(rows.narrow(1, 0, window)), rows.select(1, window), reduction: nn.Reduction.Sum).item<float>();
        }
        return sum / windows;
    }
}
