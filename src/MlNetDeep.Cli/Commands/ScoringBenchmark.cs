using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Data;
using MlNetDeep.Models.Common;
using static TorchSharp.torch;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// <c>mlnetdeep benchmark scoring</c>: rows/s of scoring one saved MNIST model, in one run, four ways: (a) MlNetDeep's
/// Transform over an IDataView, (b) a plain TorchSharp forward over pre-staged tensors, (c) the exported ONNX model
/// through ML.NET's ApplyOnnxModel (ONNX Runtime, CPU), (d) PredictionEngine row by row; with the ratios and the
/// largest score difference between (a) and (c).
/// </summary>
internal static class ScoringBenchmark
{
    public static Command Create()
    {
        var models = new Option<string[]>("--model", "-m")
        {
            Description = "Saved MNIST models (input Pixels).", AllowMultipleArgumentsPerToken = true,
            DefaultValueFactory = _ => [Path.Combine("models", "mnist-cnn", "mnist-cnn.zip"), Path.Combine("models", "mnist-mlp", "mnist-mlp.zip")],
        }.ExistingFiles(OptionChecks.ModelHelpName);
        var rounds = new Option<int>("--rounds") { Description = "Alternating rounds; the median is reported.", DefaultValueFactory = _ => 3 }.AtLeast(1);
        var engineRows = new Option<int>("--engine-rows") { Description = "Rows scored one by one through PredictionEngine.", DefaultValueFactory = _ => 2000 }.AtLeast(1);
        var command = new Command("scoring", "Scoring throughput: Transform vs a plain TorchSharp forward vs ONNX Runtime (ApplyOnnxModel) vs PredictionEngine, one run.")
        {
            models, rounds, engineRows,
        };
        command.SetAction(result =>
        {
            int r = result.GetValue(rounds), e = result.GetValue(engineRows);
            foreach (var path in result.GetValue(models)!) Run(path, r, e);
            return 0;
        });
        return command;
    }

    private sealed class Row
    {
        [VectorType(Mnist.PixelCount)] public float[] Pixels { get; set; } = [];
    }

    private sealed class Scored
    {
        public float[] Score { get; set; } = [];
    }

    private static void Run(string path, int rounds, int engineRows)
    {
        var ml = new MLContext(seed: 1);
        var model = ml.Model.LoadDeep(path, out _); // first: a file that is not a model fails before MNIST is read
        var test = ml.Data.LoadMnist(MnistSplit.Test);
        // The rows as an in-memory IDataView, so that no path pays for reading the IDX files.
        var rows = ml.Data.LoadFromEnumerable(ml.Data.CreateEnumerable<Row>(test, reuseRowObject: false).ToList());
        int n = (int)rows.GetRowCount()!.Value;
        var deep = ((IEnumerable<ITransformer>)model).OfType<DeepTransformer>().Single();
        var onnxPath = Path.Combine(Path.GetTempPath(), $"mlnetdeep-scoring-{Guid.NewGuid():N}.onnx");
        deep.SaveAsOnnx(onnxPath);
        try
        {
            var onnx = ml.Transforms.ApplyOnnxModel(["Score"], [deep.FeatureColumnName], onnxPath).Fit(rows);
            var flat = rows.GetColumn<float[]>("Pixels").SelectMany(p => p).ToArray();
            using var staged = tensor(flat, [n, .. deep.InputShape.Select(d => (long)d)]);
            var engine = ml.Model.CreatePredictionEngine<Row, Scored>(deep);
            var engineInput = ml.Data.CreateEnumerable<Row>(rows, reuseRowObject: false).Take(engineRows).ToList();

            Console.WriteLine($"{path}: {deep.Network.Name}, {n} rows, scoring batch {deep.ScoringBatchSize} rows, forward passes of {deep.ForwardBatchSize} rows, {get_num_threads()} torch threads, {Environment.ProcessorCount} cores; " +
                $"Transform's backend (Auto): {deep.ActiveBackend}");
            var a = new List<double>(); var t = new List<double>(); var b = new List<double>(); var c = new List<double>(); var d = new List<double>();
            float[][] ours = [], torchScores = [], theirs = [];
            for (int round = 0; round < rounds; round++)
            {
                deep.Backend = ScoringBackend.Auto;
                var clock = Stopwatch.StartNew();
                ours = deep.Transform(rows).GetColumn<float[]>("Score").ToArray();
                a.Add(n / clock.Elapsed.TotalSeconds);

                deep.Backend = ScoringBackend.TorchSharp;
                clock.Restart();
                torchScores = deep.Transform(rows).GetColumn<float[]>("Score").ToArray();
                t.Add(n / clock.Elapsed.TotalSeconds);
                deep.Backend = ScoringBackend.Auto;

                b.Add(PlainForward(deep, staged, n, deep.ForwardBatchSize));

                clock.Restart();
                theirs = onnx.Transform(rows).GetColumn<float[]>("Score").ToArray();
                c.Add(n / clock.Elapsed.TotalSeconds);

                clock.Restart();
                foreach (var row in engineInput) engine.Predict(row);
                d.Add(engineInput.Count / clock.Elapsed.TotalSeconds);
                Console.WriteLine($"round {round + 1}: (a) {a[^1]:F0}, (a') {t[^1]:F0}, (b) {b[^1]:F0}, (c) {c[^1]:F0}, (d) {d[^1]:F0} rows/s");
            }
            double diff = ours.Zip(theirs, (x, y) => x.Zip(y, (p, q) => Math.Abs(p - q)).Max()).Max();
            double backends = ours.Zip(torchScores, (x, y) => x.Zip(y, (p, q) => Math.Abs(p - q)).Max()).Max();
            Profile(deep, staged, n);
            Console.WriteLine("    (b) by forward batch size: " + string.Join(", ", new[] { 1, 8, 32, 64, 128, 256, 1024 }.Select(size => $"{size}: {PlainForward(deep, staged, n, size):F0}")) + " rows/s");
            Console.WriteLine($"(a) MlNetDeep Transform (Auto: {deep.ActiveBackend}){BenchmarkCommand.Median(a),10:F0} rows/s");
            Console.WriteLine($"(a') MlNetDeep Transform (TorchSharp){BenchmarkCommand.Median(t),10:F0} rows/s");
            Console.WriteLine($"(b) plain TorchSharp forward     {BenchmarkCommand.Median(b),10:F0} rows/s");
            Console.WriteLine($"(c) ONNX Runtime (ApplyOnnxModel){BenchmarkCommand.Median(c),10:F0} rows/s");
            Console.WriteLine($"(d) PredictionEngine, row by row {BenchmarkCommand.Median(d),10:F0} rows/s");
            Console.WriteLine($"    (a)/(c) {BenchmarkCommand.Median(a) / BenchmarkCommand.Median(c):F3}   (a')/(c) {BenchmarkCommand.Median(t) / BenchmarkCommand.Median(c):F3}   (a')/(b) {BenchmarkCommand.Median(t) / BenchmarkCommand.Median(b):F3}   " +
                $"largest |score (a) - score (c)| {diff:G3}, |score (a) - score (a')| {backends:G3}");
            Console.WriteLine();
        }
        finally { File.Delete(onnxPath); }
    }

    /// <summary>Rows/s of the plain forward over the first <paramref name="n"/> rows in batches of <paramref name="batchSize"/>.</summary>
    private static double PlainForward(DeepTransformer deep, Tensor staged, int n, int batchSize)
    {
        var clock = Stopwatch.StartNew();
        using (no_grad())
        {
            for (long start = 0; start < n; start += batchSize)
            {
                using var scope = NewDisposeScope();
                var batch = staged.narrow(0, start, Math.Min(batchSize, n - start));
                ((TorchSharp.torch.nn.Module<Tensor, Tensor>)deep.Module).call(batch).data<float>().ToArray();
            }
        }
        return n / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Where (b)'s time goes: each layer's module timed on its own over all rows, in the scoring batches.</summary>
    private static void Profile(DeepTransformer deep, Tensor staged, int n)
    {
        var layers = ((TorchSharp.torch.nn.Module)deep.Module).named_children().Select(c => (TorchSharp.torch.nn.Module<Tensor, Tensor>)c.module).ToList();
        if (layers.Count != deep.Network.Layers.Count || !deep.Network.IsChain) return;
        var seconds = new double[layers.Count];
        using (no_grad())
        {
            for (long start = 0; start < n; start += deep.ScoringBatchSize)
            {
                using var scope = NewDisposeScope();
                var x = staged.narrow(0, start, Math.Min(deep.ScoringBatchSize, n - start));
                for (int i = 0; i < layers.Count; i++)
                {
                    long t = Stopwatch.GetTimestamp();
                    x = layers[i].call(x);
                    seconds[i] += Stopwatch.GetElapsedTime(t).TotalSeconds;
                }
            }
        }
        double total = seconds.Sum();
        Console.WriteLine("    (b) by layer: " + string.Join(", ", deep.Network.Layers.Select((l, i) => $"{l.Describe()} {100 * seconds[i] / total:F0} %")));
    }

}
