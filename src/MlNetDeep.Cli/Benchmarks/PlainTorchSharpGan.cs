using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Cli.Benchmarks;

/// <summary>
/// The baseline of the GAN benchmark: the DCGAN preset's two networks written directly in TorchSharp (no MlNetDeep
/// code) and the same step (discriminator on real and detached generated images, then the generator), Adam 2e-4 and
/// beta1 0.5 for both, N(0, 0.02) initialisation, over images already staged on the device.
/// </summary>
internal static class PlainTorchSharpGan
{
    public static IReadOnlyList<double> Train(float[] pixels, int epochs, int batchSize, Device device, int seed)
    {
        manual_seed(seed);
        const int latent = 100;
        int n = pixels.Length / 784;
        using var x = tensor(pixels, [n, 1, 28, 28]).to(device);
        using var g = nn.Sequential(
            ("fc", nn.Linear(latent, 128 * 7 * 7, hasBias: false)), ("bn0", nn.BatchNorm1d(128 * 7 * 7)), ("relu0", nn.ReLU()),
            ("unflatten", nn.Unflatten(1, [128, 7, 7])),
            ("deconv1", nn.ConvTranspose2d(128, 64, 4, stride: 2, padding: 1, bias: false)), ("bn1", nn.BatchNorm2d(64)), ("relu1", nn.ReLU()),
            ("deconv2", nn.ConvTranspose2d(64, 1, 4, stride: 2, padding: 1)), ("tanh", nn.Tanh()));
        using var d = nn.Sequential(
            ("conv1", nn.Conv2d(1, 64, 4, stride: 2, padding: 1)), ("leaky1", nn.LeakyReLU(0.2)),
            ("conv2", nn.Conv2d(64, 128, 4, stride: 2, padding: 1, bias: false)), ("bn2", nn.BatchNorm2d(128)), ("leaky2", nn.LeakyReLU(0.2)),
            ("flatten", nn.Flatten()), ("fc", nn.Linear(128 * 7 * 7, 1)));
        // Radford et al.'s initialisation, as the estimator's DCGAN preset: the same numbers flow through both loops.
        using (no_grad())
        {
            foreach (var (name, p) in g.named_parameters().Concat(d.named_parameters()))
            {
                bool norm = name.StartsWith("bn", StringComparison.Ordinal);
                if (name.EndsWith(".weight", StringComparison.Ordinal)) nn.init.normal_(p, norm ? 1 : 0, 0.02);
                else nn.init.zeros_(p);
            }
        }
        g.to(device);
        d.to(device);
        g.train();
        d.train();
        using var og = optim.Adam(g.parameters(), 2e-4, 0.5, 0.999);
        using var od = optim.Adam(d.parameters(), 2e-4, 0.5, 0.999);
        var rates = new List<double>();
        for (int epoch = 0; epoch < epochs; epoch++)
        {
            var clock = Stopwatch.StartNew();
            using var order = randperm(n).to(device);
            using var total = zeros(1, device: device);
            for (long start = 0; start < n; start += batchSize)
            {
                using var scope = NewDisposeScope();
                var real = x.index_select(0, order.slice(0, start, Math.Min(n, start + batchSize), 1)) * 2 - 1;
                var fake = g.call(randn(real.shape[0], latent).to(device));
                od.zero_grad();
                var realLogits = d.call(real).reshape(-1);
                var fakeLogits = d.call(fake.detach()).reshape(-1);
                var dLoss = nn.functional.binary_cross_entropy_with_logits(realLogits, ones_like(realLogits))
                            + nn.functional.binary_cross_entropy_with_logits(fakeLogits, zeros_like(fakeLogits));
                dLoss.backward();
                od.step();
                og.zero_grad();
                var gLoss = nn.functional.binary_cross_entropy_with_logits(d.call(fake).reshape(-1), ones_like(realLogits));
                gLoss.backward();
                og.step();
                total.add_(dLoss.detach() + gLoss.detach());
            }
            _ = total.item<float>(); // waits for the device
            rates.Add(n / clock.Elapsed.TotalSeconds);
        }
        return rates;
    }
}
