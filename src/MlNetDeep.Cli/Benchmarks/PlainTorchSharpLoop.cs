using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Cli.Benchmarks;

/// <summary>
/// The baseline: Keras' MNIST CNN written directly in TorchSharp (no MlNetDeep code), trained with Adam over tensors
/// already staged on the device: the fastest a .NET training loop over this model can be without changing the model.
/// </summary>
internal static class PlainTorchSharpLoop
{
    public static IReadOnlyList<double> Train(float[] pixels, long[] labels, int epochs, int batchSize, Device device, int seed)
    {
        manual_seed(seed);
        int n = labels.Length;
        using var x = tensor(pixels, [n, 1, 28, 28]).to(device);
        using var y = tensor(labels, [n]).to(device);
        using var model = nn.Sequential(
            ("conv1", nn.Conv2d(1, 32, 3)), ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(32, 64, 3)), ("relu2", nn.ReLU()),
            ("pool", nn.MaxPool2d(2)), ("drop1", nn.Dropout(0.25)), ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(9216, 128)), ("relu3", nn.ReLU()), ("drop2", nn.Dropout(0.5)), ("fc2", nn.Linear(128, 10)));
        model.to(device);
        model.train();
        using var optimizer = optim.Adam(model.parameters(), 1e-3);
        var rates = new List<double>();
        for (int epoch = 0; epoch < epochs; epoch++)
        {
            var clock = Stopwatch.StartNew();
            using var order = randperm(n).to(device);
            using var total = zeros(1, device: device);
            for (long start = 0; start < n; start += batchSize)
            {
                using var scope = NewDisposeScope();
                var index = order.slice(0, start, Math.Min(n, start + batchSize), 1);
                optimizer.zero_grad();
                var loss = nn.functional.cross_entropy(model.call(x.index_select(0, index)), y.index_select(0, index));
                loss.backward();
                optimizer.step();
                total.add_(loss.detach());
            }
            _ = total.item<float>(); // waits for the device
            rates.Add(n / clock.Elapsed.TotalSeconds);
        }
        return rates;
    }
}
