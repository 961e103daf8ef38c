using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Serving;
using MlNetDeep.Training;

namespace MlNetDeep.Tests;

/// <summary>The scoring service in-process on a loopback port, over real HTTP, against the model's own Transform.</summary>
public sealed class ScoringServiceTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("mlnetdeep-serving-").FullName;
    private readonly MLContext _ml = new(seed: 1);
    private readonly IDataView _test;

    public ScoringServiceTests() => _test = TestData.MnistTest(_ml, 64);

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string SaveModel(string name, int seed)
    {
        var train = TestData.MnistTrain(_ml, 400);
        var model = _ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
            {
                FeatureColumnName = "Pixels", Network = Networks.Networks.Mlp(32), Epochs = 1, Seed = seed, Optimizer = new Adam(1e-3),
            })
            .Append(_ml.Transforms.Conversion.MapKeyToValue("PredictedLabel")).Fit(train);
        var path = Path.Combine(_folder, name);
        _ml.Model.SaveDeep(model, train.Schema, path);
        return path;
    }

    private (float[][] Scores, uint[] Labels) Expected(string path)
    {
        var model = _ml.Model.LoadDeep(path, out _);
        var scored = model.Transform(_test);
        return (TestData.Column(scored, "Score"), scored.GetColumn<uint>("PredictedLabel").ToArray());
    }

    private static async Task<ScoringServer> Start(string modelPath, bool microBatching = true, long maxBody = 16 << 20) =>
        await ScoringServer.StartAsync(new ServingOptions
        {
            ModelPath = modelPath, MicroBatching = microBatching, MaxRequestBodyBytes = maxBody, ReloadCheckInterval = TimeSpan.FromMilliseconds(100),
        }, "http://127.0.0.1:0", logging: _ => { });

    private string RowsJson(int from, int count)
    {
        var pixels = TestData.Column(_test, "Pixels");
        return JsonSerializer.Serialize(new { rows = pixels.Skip(from).Take(count).Select(p => new { Pixels = p }) });
    }

    private static async Task<(HttpStatusCode Status, JsonElement Body)> Post(HttpClient client, string route, string json)
    {
        using var response = await client.PostAsync(route, new StringContent(json, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    private static void AssertPredictions(JsonElement predictions, (float[][] Scores, uint[] Labels) expected, int from)
    {
        int i = from;
        foreach (var row in predictions.EnumerateArray())
        {
            var score = row.GetProperty("Score").EnumerateArray().Select(v => v.GetSingle()).ToArray();
            // Equal to Transform's up to float rounding, which depends on how many rows share a forward pass.
            Assert.Equal(expected.Scores[i].Length, score.Length);
            Close.Equal(expected.Scores[i], score);
            // MapKeyToValue gives back the label's values: MNIST's digits.
            Assert.Equal(expected.Labels[i], row.GetProperty("PredictedLabel").GetUInt32());
            i++;
        }
        Assert.True(i > from);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task PredictionsEqualTransformAndConcurrentRequestsAreExact(bool microBatching)
    {
        var path = SaveModel("model.zip", seed: 1);
        var expected = Expected(path);
        await using var server = await Start(path, microBatching);
        using var client = new HttpClient { BaseAddress = new Uri(server.Urls[0]) };

        var (status, body) = await Post(client, "/predict", RowsJson(0, 20));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(server.Host.Current.Version, body.GetProperty("modelVersion").GetString());
        AssertPredictions(body.GetProperty("predictions"), expected, 0);

        // 16 clients, each its own rows, at once: every answer is its own rows' scores.
        var tasks = Enumerable.Range(0, 16).Select(async c =>
        {
            for (int r = 0; r < 5; r++)
            {
                int from = (c * 3 + r) % 60;
                var (s, b) = await Post(client, "/predict", RowsJson(from, 1 + (c + r) % 4));
                Assert.Equal(HttpStatusCode.OK, s);
                AssertPredictions(b.GetProperty("predictions"), expected, from);
            }
        });
        await Task.WhenAll(tasks);
    }

    [Fact]
    public async Task BadRequestsGetTheirStatusAndAMessageNamingTheCause()
    {
        var path = SaveModel("model.zip", seed: 1);
        await using var server = await Start(path, maxBody: 64 << 10);
        using var client = new HttpClient { BaseAddress = new Uri(server.Urls[0]) };

        var (status, body) = await Post(client, "/predict", "{\"rows\": [ {\"Pixels\": [1, 2, ");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("not valid JSON", body.GetProperty("error").GetString());

        (status, body) = await Post(client, "/predict", JsonSerializer.Serialize(new { Pixels = new float[783] }));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("Pixels", body.GetProperty("field").GetString());
        Assert.Contains("has 783 values; the model needs 784", body.GetProperty("error").GetString());

        (status, body) = await Post(client, "/predict", "[{\"Image\": [1]}]");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("lacks column 'Pixels'", body.GetProperty("error").GetString());

        (status, body) = await Post(client, "/predict", JsonSerializer.Serialize(new { Pixels = new float[784], Colour = "red" }));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("'Colour', which the model does not know", body.GetProperty("error").GetString());

        (status, body) = await Post(client, "/predict", "{\"Pixels\": [" + string.Join(",", Enumerable.Repeat("\"a\"", 784)) + "]}");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("must be a finite number", body.GetProperty("error").GetString());

        (status, body) = await Post(client, "/predict", "42");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("JSON Number", body.GetProperty("error").GetString());

        (status, body) = await Post(client, "/predict", JsonSerializer.Serialize(new { rows = Enumerable.Range(0, 60).Select(_ => new { Pixels = new float[784] }) }));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);

        (status, _) = await Post(client, "/score-everything", "{}");
        Assert.Equal(HttpStatusCode.NotFound, status);

        using var wrongType = await client.PostAsync("/predict/batch", new StringContent("x", Encoding.UTF8, "text/plain"));
        Assert.Equal(HttpStatusCode.BadRequest, wrongType.StatusCode);
        Assert.Contains("text/csv or application/x-ndjson", await wrongType.Content.ReadAsStringAsync());

        // The service still answers after all that.
        (status, body) = await Post(client, "/predict", RowsJson(0, 2));
        Assert.Equal(HttpStatusCode.OK, status);
    }

    [Fact]
    public async Task TooManyRowsPerRequestIsRefused()
    {
        var path = SaveModel("model.zip", seed: 1);
        await using var server = await ScoringServer.StartAsync(new ServingOptions { ModelPath = path, MaxRowsPerRequest = 3 }, "http://127.0.0.1:0", logging: _ => { });
        using var client = new HttpClient { BaseAddress = new Uri(server.Urls[0]) };
        var (status, body) = await Post(client, "/predict", RowsJson(0, 4));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("holds 4 rows; at most 3", body.GetProperty("error").GetString());
    }

    [Fact]
    public async Task HealthAndModelDescribeTheModel()
    {
        var path = SaveModel("model.zip", seed: 1);
        await using var server = await Start(path);
        using var client = new HttpClient { BaseAddress = new Uri(server.Urls[0]) };
        var health = JsonDocument.Parse(await client.GetStringAsync("/health")).RootElement;
        Assert.Equal("ok", health.GetProperty("status").GetString());
        var model = JsonDocument.Parse(await client.GetStringAsync("/model")).RootElement;
        var pixels = model.GetProperty("inputs").EnumerateArray().Single(i => i.GetProperty("name").GetString() == "Pixels");
        Assert.True(pixels.GetProperty("required").GetBoolean());
        Assert.Equal(784, pixels.GetProperty("size").GetInt32());
        Assert.False(model.GetProperty("inputs").EnumerateArray().Single(i => i.GetProperty("name").GetString() == "Label").GetProperty("required").GetBoolean());
        Assert.Equal(["Score", "PredictedLabel"], model.GetProperty("outputs").EnumerateArray().Select(o => o.GetProperty("name").GetString()).ToArray());
        Assert.Contains(model.GetProperty("stages").EnumerateArray(), s => s.GetString()!.StartsWith("MulticlassNeuralNetwork"));
    }

    [Fact]
    public async Task BatchUploadsStreamOneLinePerRowForCsvAndJsonLines()
    {
        var path = SaveModel("model.zip", seed: 1);
        var expected = Expected(path);
        await using var server = await Start(path);
        using var client = new HttpClient { BaseAddress = new Uri(server.Urls[0]) };
        var pixels = TestData.Column(_test, "Pixels");

        var csv = new StringBuilder(string.Join(",", Enumerable.Range(0, 784).Select(i => $"Pixels.{i}")) + "\n");
        foreach (var row in pixels.Take(25)) csv.Append(string.Join(",", row.Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)))).Append('\n');
        using var fromCsv = await client.PostAsync("/predict/batch", new StringContent(csv.ToString(), Encoding.UTF8, "text/csv"));
        Assert.Equal(HttpStatusCode.OK, fromCsv.StatusCode);
        var csvLines = (await fromCsv.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(25, csvLines.Length);
        AssertPredictions(JsonDocument.Parse("[" + string.Join(",", csvLines) + "]").RootElement, expected, 0);

        var jsonLines = string.Join("\n", pixels.Skip(10).Take(12).Select(p => JsonSerializer.Serialize(new { Pixels = p })));
        var content = new StringContent(jsonLines, Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/x-ndjson");
        using var fromLines = await client.PostAsync("/predict/batch", content);
        Assert.Equal(HttpStatusCode.OK, fromLines.StatusCode);
        var lines = (await fromLines.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(12, lines.Length);
        AssertPredictions(JsonDocument.Parse("[" + string.Join(",", lines) + "]").RootElement, expected, 10);

        var missing = new StringContent("a,b\n1,2\n", Encoding.UTF8, "text/csv");
        using var bad = await client.PostAsync("/predict/batch", missing);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("lacks column 'Pixels.0'", JsonDocument.Parse(await bad.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());
    }

    [Fact]
    public async Task ANewModelFileIsSwappedInWithoutFailedRequests()
    {
        var path = SaveModel("model.zip", seed: 1);
        var second = SaveModel("second.zip", seed: 7);
        var expectedSecond = Expected(second);
        await using var server = await Start(path);
        using var client = new HttpClient { BaseAddress = new Uri(server.Urls[0]) };
        string first = server.Host.Current.Version;

        using var stop = new CancellationTokenSource();
        int failures = 0, served = 0;
        var load = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var (s, _) = await Post(client, "/predict", RowsJson(0, 3));
                if (s == HttpStatusCode.OK) Interlocked.Increment(ref served); else Interlocked.Increment(ref failures);
            }
        });
        await Task.Delay(200);
        File.Copy(second, path + ".new");
        File.Move(path + ".new", path, overwrite: true);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (server.Host.Current.Version == first && DateTime.UtcNow < deadline) await Task.Delay(50);
        await Task.Delay(200);
        stop.Cancel();
        await load;

        Assert.NotEqual(first, server.Host.Current.Version);
        Assert.Equal(1, server.Host.Reloads);
        Assert.Equal(0, failures);
        Assert.True(served > 0);
        var (status, body) = await Post(client, "/predict", RowsJson(0, 5));
        Assert.Equal(HttpStatusCode.OK, status);
        AssertPredictions(body.GetProperty("predictions"), expectedSecond, 0);

        // A damaged file is logged and ignored: the service keeps the model it has.
        File.WriteAllText(path, "not a model");
        await Task.Delay(500);
        Assert.Equal(1, server.Host.Reloads);
        (status, _) = await Post(client, "/predict", RowsJson(0, 1));
        Assert.Equal(HttpStatusCode.OK, status);
    }
}

public sealed class BatchScorerTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("mlnetdeep-score-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void ScoresACsvIntoACsvWithTheModelsOutputs()
    {
        var ml = new MLContext(seed: 1);
        var train = TestData.MnistTrain(ml, 300);
        var model = ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions
            {
                FeatureColumnName = "Pixels", Network = Networks.Networks.Mlp(16), Epochs = 1, Seed = 1,
            }).Fit(train);
        var modelPath = Path.Combine(_folder, "model.zip");
        ml.Model.SaveDeep(model, train.Schema, modelPath);

        var test = TestData.MnistTest(ml, 30);
        var pixels = TestData.Column(test, "Pixels");
        var input = Path.Combine(_folder, "rows.csv");
        File.WriteAllLines(input, new[] { "Id," + string.Join(",", Enumerable.Range(0, 784).Select(i => $"Pixels.{i}")) }
            .Concat(pixels.Select((p, r) => r + "," + string.Join(",", p.Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture))))));
        var output = Path.Combine(_folder, "out", "predictions.csv");
        long reported = 0;
        Assert.Equal(30, BatchScorer.Score(modelPath, input, output, new Progress<long>(n => reported = n)));

        var lines = File.ReadAllLines(output);
        Assert.Equal(31, lines.Length);
        var header = lines[0].Split(',');
        Assert.Equal("Row", header[0]);
        Assert.Equal("Score.0", header[1]);
        Assert.Equal("PredictedLabel", header[^1]);
        var expected = TestData.Column(model.Transform(test), "Score");
        for (int r = 0; r < 30; r++)
        {
            var cells = lines[r + 1].Split(',');
            Assert.Equal(r.ToString(), cells[0]);
            Close.Equal(expected[r], cells[1..11].Select(v => float.Parse(v, System.Globalization.CultureInfo.InvariantCulture)));
        }
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(output)!, "*.tmp"));

        var error = Assert.Throws<RequestException>(() => BatchScorer.Score(modelPath, modelPath, output));
        Assert.Contains("lacks column 'Pixels.0'", error.Message);
        var notImages = Assert.Throws<InvalidOperationException>(() => BatchScorer.Score(modelPath, _folder, output));
        Assert.Contains("not an 'ImagePath' column", notImages.Message);
    }
}
