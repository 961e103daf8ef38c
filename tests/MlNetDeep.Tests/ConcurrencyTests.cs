using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Models.Common;
using MlNetDeep.Models.Generative;
using MlNetDeep.Models.Regression;

namespace MlNetDeep.Tests;

/// <summary>
/// Threads against one model: scoring while another thread disposes it, every use after Dispose, and loading and fitting
/// every family at once (in this process and in a fresh one). CI also runs this class in parallel with others.
/// </summary>
[Trait("Category", "Parallel")]
public class ConcurrencyTests
{
    public sealed class Prediction
    {
        public float Score { get; set; }
    }

    /// <summary>A tiny regressor (Mlp(4), scoring batches of 8), its saved bytes, its data and the scores it gives.</summary>
    private sealed record Saved(byte[] Bytes, IDataView Data, TestData.XY[] Rows, float[] Scores);

    private static readonly Lazy<Saved> Small = new(() =>
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.Sine(ml, 40);
        using var model = ml.Regression.Trainers.NeuralNetwork(new NeuralNetworkRegressorOptions
        {
            Network = Networks.Networks.Mlp(4), Epochs = 1, BatchSize = 16, ScoringBatchSize = 8, Seed = 1,
        }).Fit(data);
        var stream = new MemoryStream();
        ml.Model.SaveDeep(model, data.Schema, stream);
        var scores = model.Transform(data).GetColumn<float>("Score").ToArray();
        return new Saved(stream.ToArray(), data, ml.Data.CreateEnumerable<TestData.XY>(data, reuseRowObject: false).ToArray(), scores);
    });

    /// <summary>ML.NET's PredictionEngine disposes the model it was made from when it is disposed, unless told otherwise.</summary>
    private static readonly PredictionEngineOptions NotOwning = new() { OwnsTransformer = false };

    private static DeepTransformer Load(MLContext ml) => TinyFamilies.DeepStages(ml.Model.LoadDeep(new MemoryStream(Small.Value.Bytes), out _)).Single();

    private static void AssertDisposedMessage(ObjectDisposedException ex, string typeName)
    {
        Assert.Contains(typeName, ex.Message);
        Assert.Contains("was disposed", ex.Message);
    }

    // ---- Dispose during scoring ---------------------------------------------------------------------------------------

    [Fact]
    public void DisposingWhileSixteenThreadsScoreGivesOnlyObjectDisposedExceptions()
    {
        var ml = new MLContext(seed: 1);
        var saved = Small.Value;
        var clock = Stopwatch.StartNew();
        var rand = new Random(5);
        int completedPasses = 0;
        for (int round = 0; round < 100; round++)
        {
            var model = Load(ml);
            var errors = new ConcurrentQueue<Exception>();
            var disposedErrors = new ConcurrentQueue<ObjectDisposedException>();
            using var scoring = new CountdownEvent(16);
            int delay = rand.Next(0, 3);

            void Score(int thread)
            {
                scoring.Signal();
                try
                {
                    while (true)
                    {
                        if (thread % 2 == 0) ScoreThroughACursor(model, saved);
                        else ScoreThroughAPredictionEngine(ml, model, saved);
                        Interlocked.Increment(ref completedPasses);
                    }
                }
                catch (ObjectDisposedException ex) { disposedErrors.Enqueue(ex); }
                catch (Exception ex) { errors.Enqueue(ex); }
            }

            var threads = Enumerable.Range(0, 16).Select(t => new Thread(() => Score(t)) { IsBackground = true }).ToList();
            threads.Add(new Thread(() =>
            {
                // Every thread is scoring: dispose now or a moment later, in the middle of their batches.
                scoring.Wait(TimeSpan.FromSeconds(30));
                Thread.Sleep(delay);
                model.Dispose();
            }) { IsBackground = true });
            threads.ForEach(t => t.Start());
            foreach (var thread in threads)
                Assert.True(thread.Join(TimeSpan.FromSeconds(60)), $"Round {round}: a thread was still running a minute after Dispose (a hang).");

            Assert.True(errors.IsEmpty, $"Round {round}: {string.Join("\n", errors)}");
            Assert.Equal(16, disposedErrors.Count);
            AssertDisposedMessage(disposedErrors.First(), nameof(NeuralNetworkRegressionTransformer));
        }
        // Passes that finished before Dispose were checked row by row against the model's scores.
        Assert.True(completedPasses > 0, "No pass finished before Dispose in 100 rounds.");
        Assert.True(clock.Elapsed < TimeSpan.FromMinutes(2), $"100 rounds took {clock.Elapsed}.");
    }

    /// <summary>Transform and a cursor over every row; each score must be the one the model gives that row.</summary>
    private static void ScoreThroughACursor(DeepTransformer model, Saved saved)
    {
        var scored = model.Transform(saved.Data);
        using var cursor = scored.GetRowCursor(scored.Schema);
        var getter = cursor.GetGetter<float>(scored.Schema["Score"]);
        int row = 0;
        float score = 0;
        while (cursor.MoveNext())
        {
            getter(ref score);
            if (!Close.Within(saved.Scores[row], score)) throw new InvalidOperationException($"Row {row} scored {score}, expected {saved.Scores[row]}.");
            row++;
        }
        if (row != saved.Rows.Length) throw new InvalidOperationException($"The cursor gave {row} rows of {saved.Rows.Length}.");
    }

    private static void ScoreThroughAPredictionEngine(MLContext ml, DeepTransformer model, Saved saved)
    {
        using var engine = ml.Model.CreatePredictionEngine<TestData.XY, Prediction>(model, NotOwning);
        for (int row = 0; row < saved.Rows.Length; row++)
        {
            float score = engine.Predict(saved.Rows[row]).Score;
            if (!Close.Within(saved.Scores[row], score)) throw new InvalidOperationException($"Row {row} predicted {score}, expected {saved.Scores[row]}.");
        }
    }

    [Fact]
    public void EveryUseOfADisposedRegressorThrowsObjectDisposedException()
    {
        var ml = new MLContext(seed: 1);
        var saved = Small.Value;
        var model = Load(ml);
        var scored = model.Transform(saved.Data);
        var openCursor = scored.GetRowCursor(scored.Schema);
        var engine = ml.Model.CreatePredictionEngine<TestData.XY, Prediction>(model, NotOwning);
        model.Dispose();
        model.Dispose(); // twice is fine

        string type = nameof(NeuralNetworkRegressionTransformer);
        AssertDisposedMessage(Assert.Throws<ObjectDisposedException>(() => model.Transform(saved.Data)), type);
        AssertDisposedMessage(Assert.Throws<ObjectDisposedException>(() => openCursor.MoveNext()), type);
        AssertDisposedMessage(Assert.Throws<ObjectDisposedException>(() => openCursor.MoveNext()), type);
        AssertDisposedMessage(Assert.Throws<ObjectDisposedException>(() => engine.Predict(saved.Rows[0])), type);
        AssertDisposedMessage(Assert.Throws<ObjectDisposedException>(() => ml.Model.CreatePredictionEngine<TestData.XY, Prediction>(model, NotOwning)), type);
        AssertDisposedMessage(Assert.Throws<ObjectDisposedException>(() => model.Score(new float[1], 1, new float[1])), type);
        AssertDisposedMessage(Assert.Throws<ObjectDisposedException>(() => model.Module), type);
        AssertDisposedMessage(Assert.Throws<ObjectDisposedException>(() => model.SaveAsOnnx(new MemoryStream())), type);
        AssertDisposedMessage(Assert.Throws<ObjectDisposedException>(() => ml.Model.SaveDeep(model, saved.Data.Schema, new MemoryStream())), type);
    }

    [Fact]
    public void EveryUseOfADisposedAutoencoderVaeOrGanThrowsObjectDisposedException()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFamilies.Data(ml);
        var pixels = TinyFamilies.Rows().Select(r => r.Pixels).Take(3).ToArray();

        var autoencoder = ml.Transforms.Autoencoder(TinyFamilies.Autoencoder()).Fit(data);
        autoencoder.Dispose();
        foreach (var use in new Action[] { () => autoencoder.Encode(pixels), () => autoencoder.Decode([new float[2]]), () => autoencoder.CreateDecoder() })
            AssertDisposedMessage(Assert.Throws<ObjectDisposedException>(use), nameof(AutoencoderTransformer));

        var vae = ml.Transforms.VariationalAutoencoder(TinyFamilies.Vae()).Fit(data);
        vae.Dispose();
        foreach (var use in new Action[] { () => vae.Generate(2, 1), () => vae.EvaluateElbo(data), () => vae.Encode(pixels) })
            AssertDisposedMessage(Assert.Throws<ObjectDisposedException>(use), nameof(VariationalAutoencoderTransformer));

        var gan = ml.Transforms.GenerativeAdversarialNetwork(TinyFamilies.Gan()).Fit(data);
        var discriminator = gan.CreateDiscriminator();
        gan.Dispose();
        foreach (var use in new Action[] { () => gan.Generate(2, 1), () => gan.Realness(pixels), () => gan.CreateDiscriminator(), () => gan.Transform(gan.NoiseData(ml, 2, 1)) })
            AssertDisposedMessage(Assert.Throws<ObjectDisposedException>(use), nameof(GeneratorTransformer));
        // The discriminator holds a copy of the weights: it still works.
        Assert.Equal(3, discriminator.Transform(ml.Data.LoadFromEnumerable(TinyFamilies.Rows(3))).GetColumn<float>("Realness").Count());
        discriminator.Dispose();
    }

    // ---- Loading and fitting at once ----------------------------------------------------------------------------------

    /// <summary>One saved model of every family, in a folder next to the tests (each run replaces them).</summary>
    private static readonly Lazy<string[]> SavedFamilies = new(() =>
    {
        var folder = Path.Combine(AppContext.BaseDirectory, "concurrency-models");
        Directory.CreateDirectory(folder);
        return TinyFamilies.Estimators.Select((e, i) =>
        {
            var ml = new MLContext(seed: 1);
            var data = TinyFamilies.Data(ml);
            var model = e.Create(ml).Fit(data);
            var path = Path.Combine(folder, $"{i}.zip");
            // A GAN's generator reads noise rows, not the data it was trained on.
            var schema = model is GeneratorTransformer generator ? generator.NoiseData(ml, 1, seed: 0).Schema : data.Schema;
            ml.Model.SaveDeep(model, schema, path);
            foreach (var stage in TinyFamilies.DeepStages(model)) stage.Dispose();
            return path;
        }).ToArray();
    });

    [Fact]
    public void LoadingAndFittingEveryFamilyAtOnceDoesNotHang()
    {
        Assert.True(TinyFamilies.LoadAndFitAtOnce(SavedFamilies.Value, TimeSpan.FromSeconds(120)),
            "Loading and fitting every family at once did not finish within 2 minutes (a hang).");
    }

    [Fact]
    public void LoadingAndFittingEveryFamilyAtOnceInAFreshProcessDoesNotHang()
    {
        // A fresh process: the format registry, TorchSharp and every family's type are initialised for the first time, all at once.
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        var start = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var argument in new[] { typeof(Program).Assembly.Location, Program.ConcurrentLoadFit }.Concat(SavedFamilies.Value))
            start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(180)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("The fresh process loading and fitting every family at once was still running after 3 minutes (a hang).");
        }
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"The fresh process exited with {process.ExitCode}: {output.Result}{error.Result}");
        Assert.Contains("finished in", output.Result);
    }
}
