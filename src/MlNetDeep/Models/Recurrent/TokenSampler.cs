using static TorchSharp.torch;

namespace MlNetDeep.Models.Recurrent;

/// <summary>How the next token is chosen when generating.</summary>
/// <param name="Temperature">Divides the logits before the softmax: below 1 sharper (safer, more repetitive), above 1 flatter; must be positive.</param>
/// <param name="TopK">Draw only among the K most likely tokens; 0 for all.</param>
/// <param name="Greedy">Always take the most likely token (temperature and top-k are then unused).</param>
public sealed record Sampling(double Temperature = 1.0, int TopK = 0, bool Greedy = false)
{
    internal void Validate()
    {
        if (!Greedy && (!(Temperature > 0) || !double.IsFinite(Temperature)))
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "The temperature must be a positive number (use Greedy for the most likely token every time).");
        if (TopK < 0) throw new ArgumentOutOfRangeException(nameof(TopK), TopK, "TopK must be 0 (all tokens) or more.");
    }
}

/// <summary>
/// The one place a language model is run on a context: the next-token distribution of a prompt's last window, and
/// generation one token at a time (the window slides over the prompt and what was generated). The unknown token is
/// never drawn. Draws come from a private <see cref="Random"/> seeded per call, so a seed gives the same text again.
/// </summary>
internal static class TokenSampler
{
    /// <summary>Logits [vocabulary] (float64, on the CPU) of the token after <paramref name="context"/>'s last <paramref name="window"/> ids.</summary>
    public static double[] NextLogits(nn.Module<Tensor, Tensor> module, ReadOnlySpan<int> context, int window, Device device)
    {
        if (context.Length == 0) throw new ArgumentException("The context holds no tokens.", nameof(context));
        var last = context[Math.Max(0, context.Length - window)..];
        var ids = new float[last.Length];
        for (int i = 0; i < ids.Length; i++) ids[i] = last[i];
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var logits = module.call(tensor(ids, [1, ids.Length]).to(device));
        if (logits.dim() == 3) logits = logits.select(1, -1);
        return logits.select(0, 0).to(ScalarType.Float64).cpu().data<double>().ToArray();
    }

    /// <summary>Softmax of <paramref name="logits"/>.</summary>
    public static double[] Softmax(double[] logits)
    {
        double max = logits.Max(), sum = 0;
        var p = new double[logits.Length];
        for (int i = 0; i < p.Length; i++) sum += p[i] = Math.Exp(logits[i] - max);
        for (int i = 0; i < p.Length; i++) p[i] /= sum;
        return p;
    }

    public static int[] Generate(nn.Module<Tensor, Tensor> module, int[] prompt, int length, int window, Device device, Sampling sampling, int seed)
    {
        ArgumentNullException.ThrowIfNull(sampling);
        sampling.Validate();
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), length, "The length must be 0 or more.");
        if (prompt.Length == 0) throw new ArgumentException("The prompt holds no tokens: give at least one character or word.", nameof(prompt));
        bool wasTraining = module.training;
        module.eval();
        try
        {
            var random = new Random(seed);
            var tokens = new List<int>(prompt.Length + length);
            tokens.AddRange(prompt);
            for (int i = 0; i < length; i++)
            {
                var logits = NextLogits(module, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(tokens), window, device);
                logits[0] = double.NegativeInfinity; // never the unknown token
                tokens.Add(sampling.Greedy ? Common.Vectors.ArgMax(logits) : Draw(logits, sampling, random));
            }
            return tokens.Skip(prompt.Length).ToArray();
        }
        finally
        {
            if (wasTraining) module.train();
            // A generation is a run of small forward passes, each over a window: count the window positions as rows scored.
            Native.NativeMemory.AfterScoringBatch(Math.Max(1, length) * window);
        }
    }

    private static int Draw(double[] logits, Sampling sampling, Random random)
    {
        // Relative to the largest logit first, so a tiny temperature sends the others to -infinity, not everything to NaN.
        double max = logits.Max();
        var scaled = logits.Select(l => (l - max) / sampling.Temperature).ToArray();
        if (sampling.TopK > 0 && sampling.TopK < scaled.Length)
        {
            // Keep the K largest: everything above the K-th value, and as many of the ties at it (first ids first) as fit.
            double threshold = scaled.OrderByDescending(v => v).ElementAt(sampling.TopK - 1);
            int ties = sampling.TopK - scaled.Count(v => v > threshold);
            for (int i = 0; i < scaled.Length; i++)
                if (scaled[i] < threshold || (scaled[i] == threshold && ties-- <= 0)) scaled[i] = double.NegativeInfinity;
        }
        var p = Softmax(scaled);
        double u = random.NextDouble(), cumulative = 0;
        int last = 0;
        for (int i = 0; i < p.Length; i++)
        {
            if (p[i] <= 0) continue;
            last = i;
            if ((cumulative += p[i]) > u) return i;
        }
        return last;
    }
}
