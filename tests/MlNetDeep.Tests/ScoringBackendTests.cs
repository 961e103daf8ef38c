using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Common;
using MlNetDeep.Networks;

namespace MlNetDeep.Tests;

/// <summary>Scoring through ONNX Runtime: the same scores as TorchSharp, chosen by Auto for convolutional networks on the CPU, refused where it cannot be exact.</summary>
public class ScoringBackendTests(TinyCnn cnn) : IClassFixture<TinyCnn>
{
    private float[][] Scores(ITransformer model) => TestData.Column(model.Transform(cnn.Test), "Score");

    [Fact]
    public void OnnxRuntimeScoresWhatTorchSharpScores()
    {
        var model = cnn.Model;
        try
        {
            model.Backend = ScoringBackend.Auto;
            Assert.Equal(ScoringBackend.OnnxRuntime, model.ActiveBackend);
            var onnx = Scores(model);
            model.Backend = ScoringBackend.TorchSharp;
            Assert.Equal(ScoringBackend.TorchSharp, model.ActiveBackend);
            var torch = Scores(model);
            Close.Equal(torch, onnx);

            // Row by row through a PredictionEngine, on both engines.
            model.Backend = ScoringBackend.OnnxRuntime;
            var engine = cnn.Ml.Model.CreatePredictionEngine<TinyCnn.Digit, Scored>(model);
            var rows = cnn.Ml.Data.CreateEnumerable<TinyCnn.Digit>(cnn.Test, reuseRowObject: false).Take(5).ToList();
            for (int i = 0; i < rows.Count; i++) Close.Equal([torch[i]], [engine.Predict(rows[i]).Score]);
        }
        finally
        {
            model.Backend = ScoringBackend.Auto;
        }
    }

    private sealed class Scored
    {
        public float[] Score { get; set; } = [];
    }

    [Fact]
    public void AutoKeepsTorchSharpWhereOnnxRuntimeIsNotTheFasterOrCannotBeExact()
    {
        using var mlp = (NeuralNetworkClassificationTransformer)cnn.Ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", Network = Networks.Networks.Mlp(16), Epochs = 1, Seed = 1,
        }).Fit(cnn.Train);
        Assert.Equal(ScoringBackend.TorchSharp, mlp.ActiveBackend); // a dense network: TorchSharp measured faster
        mlp.Backend = ScoringBackend.OnnxRuntime;                     // but it may be asked for, and agrees
        var onnx = Scores(mlp);
        mlp.Backend = ScoringBackend.TorchSharp;
        Close.Equal(Scores(mlp), onnx);

        // A layer the exporter does not write: Auto falls back to TorchSharp; OnnxRuntime asked for is an error naming it.
        using var residual = (NeuralNetworkClassificationTransformer)cnn.Ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Epochs = 1, Seed = 1,
            Network = new NetworkSpec([new Conv2D(4, 3, Padding: PaddingMode.Same), new Residual([new Conv2D(4, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU)]),
                new AdaptiveAvgPool2D(5, 5), new Flatten(), new Dense(Dense.TaskOutputs)]), // 28 x 28 to 5 x 5: no ONNX pooling matches

        }).Fit(cnn.Train);
        Assert.Equal(ScoringBackend.OnnxRuntime, residual.ActiveBackend);
        var scores = Scores(residual);
        Assert.Equal(ScoringBackend.TorchSharp, residual.ActiveBackend);
        residual.Backend = ScoringBackend.TorchSharp;
        Assert.Equal(Scores(residual), scores); // Auto fell back to TorchSharp: the same computation
        residual.Backend = ScoringBackend.OnnxRuntime;
        Assert.Contains("AdaptiveAvgPool2D", Assert.Throws<NotSupportedException>(() => Scores(residual)).Message);

        var autoencoder = cnn.Ml.Transforms.Autoencoder(new Models.Autoencoders.AutoencoderOptions { FeatureColumnName = "Pixels", Epochs = 1, Seed = 1 }).Fit(cnn.Train);
        using (autoencoder)
            Assert.Throws<NotSupportedException>(() => autoencoder.Backend = ScoringBackend.OnnxRuntime);
    }

    [Fact]
    public void AGpuAskedOfTheCpuBuildOfOnnxRuntimeFallsBackWithTheReasonLoggedOrIsAnErrorWhenFallbackIsOff()
    {
        // An MLContext asking for GPU 0, as ML.NET's ApplyOnnxModel reads it: TorchSharp-cpu trains on the CPU (FallbackToCpu),
        // and the model's ONNX Runtime session asks for CUDA device 0 in turn.
        var ml = new MLContext(seed: 1) { GpuDeviceId = 0, FallbackToCpu = true };
        var log = new List<string>();
        ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
        using var model = (NeuralNetworkClassificationTransformer)ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
        {
            FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Network = TinyCnn.Network, Epochs = 1, Seed = 3,
        }).Fit(cnn.Train);
        Assert.Equal(0, model.OnnxRuntimeGpuDeviceId);
        Assert.True(model.OnnxRuntimeFallbackToCpu);
        Assert.Null(model.OnnxRuntimeExecutionProvider); // nothing scored yet
        Assert.Equal(ScoringBackend.OnnxRuntime, model.ActiveBackend);
        var onnx = Scores(model);
        Assert.Equal("CPUExecutionProvider", model.OnnxRuntimeExecutionProvider);
        // The CPU build has no CUDA provider; the GPU build (-p:MlNetDeepOnnxRuntimeGpu=true) has one that cannot start
        // on a machine without CUDA. Either way the reason names it.
        bool gpuBuild = Microsoft.ML.OnnxRuntime.OrtEnv.Instance().GetAvailableProviders().Contains("CUDAExecutionProvider");
        string expected = gpuBuild ? "its CUDA provider did not start" : "Microsoft.ML.OnnxRuntime.Gpu";
        Assert.Contains(expected, model.OnnxRuntimeFallbackReason);
        lock (log) Assert.Contains(log, m => m.Contains("scores on the CPU, not CUDA device 0", StringComparison.Ordinal) && m.Contains(expected, StringComparison.Ordinal));
        model.Backend = ScoringBackend.TorchSharp;
        Close.Equal(Scores(model), onnx);

        // Fallback off: the first batch is an error naming the cause and the setting; the CPU asked for again scores.
        model.Backend = ScoringBackend.OnnxRuntime;
        model.OnnxRuntimeFallbackToCpu = false;
        var error = Assert.Throws<InvalidOperationException>(() => Scores(model));
        Assert.Contains("cannot score on CUDA device 0", error.Message);
        Assert.Contains("FallbackToCpu", error.Message);
        model.OnnxRuntimeGpuDeviceId = null;
        Close.Equal(onnx, Scores(model));
        Assert.Equal("CPUExecutionProvider", model.OnnxRuntimeExecutionProvider);
        Assert.Null(model.OnnxRuntimeFallbackReason);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.OnnxRuntimeGpuDeviceId = -1);

        // A model loaded by such a context asks for its GPU too; one loaded by a plain context does not.
        var path = Path.Combine(Path.GetTempPath(), $"ort-gpu-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.SaveDeep(model, cnn.Train.Schema, path);
            var loaded = (TransformerChain<ITransformer>)ml.Model.LoadDeep(path, out _);
            Assert.Equal(0, Assert.IsAssignableFrom<DeepTransformer>(loaded.Last()).OnnxRuntimeGpuDeviceId);
            var plain = (TransformerChain<ITransformer>)cnn.Ml.Model.LoadDeep(path, out _);
            Assert.Null(Assert.IsAssignableFrom<DeepTransformer>(plain.Last()).OnnxRuntimeGpuDeviceId);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void AConvolutionalBinaryClassifierScoresThroughOnnxRuntimeItsLogitAndProbability()
    {
        var data = cnn.Ml.Transforms.CustomMapping<TinyCnn.Digit, IsSeven>((d, o) => o.IsSevenLabel = d.Label == 8, "is-seven").Fit(cnn.Train).Transform(cnn.Train);
        using var binary = (NeuralNetworkBinaryClassificationTransformer)cnn.Ml.BinaryClassification.Trainers.NeuralNetwork(new NeuralNetworkBinaryClassifierOptions
        {
            LabelColumnName = "IsSevenLabel", FeatureColumnName = "Pixels", InputShape = [1, 28, 28], Network = TinyCnn.Network, Epochs = 3, Seed = 3,
            BatchSize = 32, Optimizer = new Training.Adam(3e-3),
        }).Fit(data);
        Assert.Equal(ScoringBackend.OnnxRuntime, binary.ActiveBackend);
        var test = cnn.Ml.Transforms.CustomMapping<TinyCnn.Digit, IsSeven>((d, o) => o.IsSevenLabel = d.Label == 8, "is-seven").Fit(cnn.Test).Transform(cnn.Test);
        float[] Column(string name) => binary.Transform(test).GetColumn<float>(name).ToArray();
        var (score, probability) = (Column("Score"), Column("Probability"));
        Assert.Equal("CPUExecutionProvider", binary.OnnxRuntimeExecutionProvider);
        binary.Backend = ScoringBackend.TorchSharp;
        Close.Equal(Column("Score"), score);
        Close.Equal(Column("Probability"), probability);
        Assert.Contains(score, s => s > 0);
        Assert.Contains(score, s => s < 0);
        Close.Equal(score.Select(s => (float)(1 / (1 + Math.Exp(-s)))).ToArray(), probability);
    }

    private sealed class IsSeven
    {
        public bool IsSevenLabel { get; set; }
    }
}
