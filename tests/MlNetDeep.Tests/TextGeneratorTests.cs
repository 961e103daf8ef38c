using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Datasets;
using MlNetDeep.Models.Recurrent;
using MlNetDeep.Training;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

/// <summary>The recurrent language models: tokenisers, windows, the TextGenerator estimator, generation, persistence, bad input.</summary>
public class TextGeneratorTests
{
    /// <summary>A few kilobytes of text with a clear structure: sentences cycling through a small set of words.</summary>
    internal static string SmallText(int sentences = 120)
    {
        string[] subjects = ["the cat", "a dog", "the old man", "my sister"], verbs = ["sat on", "looked at", "ran to", "found"], objects = ["the mat.", "a red box.", "the garden.", "the door."];
        var lines = new List<string>();
        for (int i = 0; i < sentences; i++)
            lines.Add($"{subjects[i % 4]} {verbs[i / 4 % 4]} {objects[i / 16 % 4]}");
        return string.Join("\n", lines);
    }

    private sealed class TextRow
    {
        public string Text { get; set; } = "";
    }

    private sealed class NextToken
    {
        public string Text { get; set; } = "";
        public float[] NextTokenProbabilities { get; set; } = [];
        public string PredictedNextToken { get; set; } = "";
    }

    private static IDataView Data(MLContext ml, params string[] rows) => ml.Data.LoadFromEnumerable(rows.Select(r => new TextRow { Text = r }));

    private static TextGeneratorOptions Small(int epochs = 3) => new()
    {
        WindowLength = 12, Stride = 2, Units = 24, EmbeddingSize = 8, Epochs = epochs, BatchSize = 32, Seed = 3, Optimizer = new Adam(1e-2),
    };

    [Fact]
    public void CharacterTokensRoundTripThroughMlNetsTokenizer()
    {
        const string text = "Father Brown said: \"It's 9 o'clock.\"\nTabs\tand ünïcode — too.";
        var vocabulary = Vocabulary.Build(text, TextLevel.Character, lowercase: false, maxSize: 256);
        Assert.Equal(Vocabulary.UnknownToken, vocabulary.Tokens[0]);
        Assert.Equal(text.Distinct().Count() + 1, vocabulary.Size);
        Assert.Equal(text, vocabulary.Decode(vocabulary.Encode(text)));
        Assert.Equal(text.Select(c => c.ToString()), vocabulary.Tokenize(text));
        // Most frequent first: the space.
        Assert.Equal(" ", vocabulary.Tokens[1]);
    }

    [Fact]
    public void CharactersOutsideTheBasicPlaneAreUnknownAndTheVocabularySavesAndLoads()
    {
        var ml = new MLContext(seed: 1);
        var text = string.Concat(Enumerable.Repeat("smile 😀 and wave 🌊 then rest. ", 40));
        var vocabulary = Vocabulary.Build(text, TextLevel.Character, lowercase: false, maxSize: 256);
        Assert.DoesNotContain(vocabulary.Tokens, t => char.IsSurrogate(t[0]));
        Assert.Equal(0, vocabulary.Encode("😀")[0]);
        var options = Small(epochs: 1);
        using var model = ml.Transforms.Text.TextGenerator(options).Fit(Data(ml, text));
        var path = TestData.TempFile();
        try
        {
            ml.Model.SaveDeep(model, Data(ml, "x").Schema, path);
            using var loaded = (TransformerChain<ITransformer>)ml.Model.LoadDeep(path, out _);
            var reloaded = Assert.IsType<TextGeneratorTransformer>(loaded.Single());
            Assert.Equal(model.Vocabulary.Tokens, reloaded.Vocabulary.Tokens);
            Assert.Equal(model.Generate("smile 😀 ", 20, 0.5, seed: 1), reloaded.Generate("smile 😀 ", 20, 0.5, seed: 1));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void WordTokensSeparatePunctuationAndKeepApostrophesInsideWords()
    {
        var vocabulary = Vocabulary.Build("Hello, world! Don't stop. 'Quoted' (aside)", TextLevel.Word, lowercase: true, maxSize: 100);
        Assert.Equal(["hello", ",", "world", "!", "don't", "stop", ".", "'", "quoted", "'", "(", "aside", ")"], vocabulary.Tokenize("Hello, world! Don't stop. 'Quoted' (aside)"));
        Assert.Equal("hello, world! don't stop.", vocabulary.Decode(vocabulary.Encode("Hello, world! Don't stop.")));
        var quotes = Vocabulary.Build("\"Yes,\" he said. \"No.\" (Then a well-known word.)", TextLevel.Word, lowercase: true, maxSize: 100);
        Assert.Equal("\"yes,\" he said. \"no.\" (then a well-known word.)", quotes.Decode(quotes.Encode("\"Yes,\" he said. \"No.\" (Then a well-known word.)")));
    }

    [Fact]
    public void TheVocabularyLimitKeepsTheMostFrequentTokensAndMapsTheRestToUnknown()
    {
        var vocabulary = Vocabulary.Build("aaaa bbb cc d", TextLevel.Character, lowercase: false, maxSize: 3);
        Assert.Equal([Vocabulary.UnknownToken, "a", " "], vocabulary.Tokens);
        Assert.Equal([1, 1, 0, 2, 0], vocabulary.Encode("aab c"));
        Assert.Equal(0, vocabulary.Id("z"));

        Assert.Throws<ArgumentOutOfRangeException>(() => Vocabulary.Build("abc", TextLevel.Character, false, 1));
        var empty = Assert.Throws<InvalidDataException>(() => Vocabulary.Build("  \n ", TextLevel.Word, true, 10));
        Assert.Contains("no tokens", empty.Message);
    }

    [Fact]
    public void WindowsSlideOverTheTokensWithTheirTargets()
    {
        int[] ids = Enumerable.Range(0, 20).ToArray();
        using var next = new TokenWindows(ids, length: 5, stride: 3, PredictionTargets.NextToken);
        Assert.Equal((20 - 5 - 1) / 3 + 1, next.Count);
        using (var scope = NewDisposeScope())
        {
            using var batches = next.Epoch(batchSize: 2, shuffle: false, generator: null, device: CPU);
            var second = batches.Get(1);
            Assert.Equal([6f, 7, 8, 9, 10, 9, 10, 11, 12, 13], second.Inputs.data<float>().ToArray());
            Assert.Equal([11L, 14], second.Targets!.data<long>().ToArray());
            var last = batches.Get(batches.Count - 1);
            Assert.Equal(17L, last.Targets!.data<long>().ToArray()[^1]); // the last window starts at 12 (stride 3) and predicts token 17
        }
        using var every = new TokenWindows(ids, length: 5, stride: 5, PredictionTargets.EveryStep);
        using (var scope = NewDisposeScope())
        {
            using var batches = every.Epoch(batchSize: 1, shuffle: false, generator: null, device: CPU);
            Assert.Equal([6L, 7, 8, 9, 10], batches.Get(1).Targets!.data<long>().ToArray());
        }
        var tooShort = Assert.Throws<ArgumentException>(() => new TokenWindows(ids.AsSpan(0, 5), 5, 1, PredictionTargets.NextToken));
        Assert.Contains("fewer than one window", tooShort.Message);
    }

    [Fact]
    public void ACharacterModelLearnsTheTextAndContinuesIt()
    {
        var ml = new MLContext(seed: 1);
        var options = Small(epochs: 6);
        using var model = ml.Transforms.Text.TextGenerator(options).Fit(Data(ml, SmallText()));
        var history = model.History!;
        Assert.Equal(6, history.Epochs.Count);
        Assert.True(history.Epochs[^1].TrainLoss < history.Epochs[0].TrainLoss * 0.6, $"loss {history.Epochs[0].TrainLoss} -> {history.Epochs[^1].TrainLoss}");
        double heldOut = history.Epochs[^1].ValidationLoss!.Value;
        Assert.True(heldOut < 1.0, $"held-out loss {heldOut}");

        // Evaluate on the held-out end of the text gives the loop's validation loss (the same windows).
        var text = SmallText();
        var metrics = model.Evaluate(text[(int)(text.Length * 0.9)..]);
        Close.Equal(heldOut, metrics.CrossEntropy);
        Assert.Equal(metrics.CrossEntropy / Math.Log(2), metrics.BitsPerToken, 10);
        Assert.Equal(Math.Exp(metrics.CrossEntropy), metrics.Perplexity, 10);

        // Greedy decoding continues the sentence pattern with words of the text.
        var continuation = model.Generate("the cat sat on the m", 10, new Sampling(Greedy: true));
        Assert.Equal(10, continuation.Length);
        Assert.StartsWith("at.", continuation);
    }

    [Fact]
    public void GenerationIsReproducibleForASeedAndTheOptionsChangeIt()
    {
        var ml = new MLContext(seed: 1);
        using var model = ml.Transforms.Text.TextGenerator(Small()).Fit(Data(ml, SmallText()));
        var a = model.Generate("the dog ", 60, 1.0, seed: 5);
        Assert.Equal(a, model.Generate("the dog ", 60, 1.0, seed: 5));
        Assert.NotEqual(a, model.Generate("the dog ", 60, 1.0, seed: 6));
        Assert.Equal(60, a.Length);
        Assert.DoesNotContain(Vocabulary.UnknownToken, a);
        // Top-1 sampling is greedy decoding.
        Assert.Equal(model.Generate("the dog ", 30, new Sampling(Greedy: true)), model.Generate("the dog ", 30, new Sampling(0.7, TopK: 1), seed: 9));
        // A character the model never saw becomes the unknown token instead of failing.
        Assert.Equal(20, model.Generate("the dog ☃ ", 20, 0.5, seed: 1).Length);

        Assert.Throws<ArgumentOutOfRangeException>(() => model.Generate("the", 5, 0.0));
        Assert.Equal(model.Generate("the dog ", 30, new Sampling(Greedy: true)), model.Generate("the dog ", 30, new Sampling(0, Greedy: true)));
        Assert.Equal(model.Generate("the dog ", 30, new Sampling(Greedy: true)), model.Generate("the dog ", 30, new Sampling(1e-300), seed: 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Generate("the", 5, -1.0));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Generate("the", 5, new Sampling(1.0, TopK: -1)));
        var empty = Assert.Throws<ArgumentException>(() => model.Generate("", 5));
        Assert.Contains("prompt", empty.Message);
    }

    [Fact]
    public void TrainingIsDeterministicForASeed()
    {
        var ml = new MLContext(seed: 1);
        using var first = ml.Transforms.Text.TextGenerator(Small(epochs: 2)).Fit(Data(ml, SmallText()));
        using var second = ml.Transforms.Text.TextGenerator(Small(epochs: 2)).Fit(Data(ml, SmallText()));
        Assert.Equal(first.History!.Values("loss"), second.History!.Values("loss"));
        Assert.Equal(first.Generate("a dog ", 40, 0.8, seed: 2), second.Generate("a dog ", 40, 0.8, seed: 2));
    }

    [Fact]
    public void SaveDeepAndLoadDeepKeepTheVocabularyAndTheGeneration()
    {
        var ml = new MLContext(seed: 1);
        var data = Data(ml, SmallText());
        using var model = ml.Transforms.Text.TextGenerator(Small()).Fit(data);
        var path = TestData.TempFile();
        try
        {
            ml.Model.SaveDeep(model, data.Schema, path);
            var loaded = Assert.IsType<TextGeneratorTransformer>(((TransformerChain<ITransformer>)ml.Model.LoadDeep(path, out _)).Single());
            using (loaded)
            {
                Assert.Equal(model.Vocabulary.Tokens, loaded.Vocabulary.Tokens);
                Assert.Equal(model.WindowLength, loaded.WindowLength);
                Assert.Equal(model.Generate("my sister ", 80, 0.7, seed: 11), loaded.Generate("my sister ", 80, 0.7, seed: 11));
                Assert.Equal(model.NextTokenProbabilities("the old m"), loaded.NextTokenProbabilities("the old m"));
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    private sealed class IdsRow
    {
        [VectorType(12)]
        public float[] TokenIds { get; set; } = [];
    }

    [Theory]
    [InlineData(RecurrentKind.Lstm, PredictionTargets.NextToken)]
    [InlineData(RecurrentKind.Gru, PredictionTargets.EveryStep)]
    [InlineData(RecurrentKind.SimpleRnn, PredictionTargets.NextToken)]
    public void TheOnnxExportScoresAsTheModelDoesThroughApplyOnnxModel(RecurrentKind cell, PredictionTargets targets)
    {
        var ml = new MLContext(seed: 1);
        var options = Small(epochs: 1);
        options.Cell = cell;
        options.Targets = targets;
        options.Dropout = 0.1;
        using var model = ml.Transforms.Text.TextGenerator(options).Fit(Data(ml, SmallText()));
        string[] contexts = ["the cat sat on the m", "my sister found the door.", "a dog looked at the garden"];
        var path = TestData.TempFile(".onnx");
        try
        {
            model.SaveAsOnnx(path);
            var rows = ml.Data.LoadFromEnumerable(contexts.Select(c => new IdsRow { TokenIds = model.TokenIds(c) }));
            var onnx = ml.Transforms.ApplyOnnxModel(["NextTokenProbabilities"], ["TokenIds"], path).Fit(rows);
            var scored = TestData.Column(onnx.Transform(rows), "NextTokenProbabilities");
            Close.Equal(contexts.Select(c => model.NextTokenProbabilities(c[^12..])).ToList(), scored, Close.OtherEngine);
        }
        finally
        {
            File.Delete(path);
        }
        Assert.Throws<ArgumentException>(() => model.TokenIds("short"));
    }

    [Fact]
    public void TransformAndPredictionEngineGiveTheNextCharacterDistribution()
    {
        var ml = new MLContext(seed: 1);
        using var model = ml.Transforms.Text.TextGenerator(Small(epochs: 6)).Fit(Data(ml, SmallText()));
        var scored = model.Transform(Data(ml, "the cat sat on the m", "a dog ran to the gard"));
        var column = scored.Schema["NextTokenProbabilities"];
        Assert.Equal(model.Vocabulary.Size, ((VectorDataViewType)column.Type).Size);
        VBuffer<ReadOnlyMemory<char>> slots = default;
        column.GetSlotNames(ref slots);
        Assert.Equal(model.Vocabulary.Tokens, slots.DenseValues().Select(s => s.ToString()));
        var rows = ml.Data.CreateEnumerable<NextToken>(scored, reuseRowObject: false).ToList();
        Assert.All(rows, r => Assert.Equal(1.0, r.NextTokenProbabilities.Sum(), 3));
        Assert.Equal(["a", "e"], rows.Select(r => r.PredictedNextToken));

        var engine = ml.Model.CreatePredictionEngine<TextRow, NextToken>(model);
        var one = engine.Predict(new TextRow { Text = "the cat sat on the m" });
        Close.Equal(rows[0].NextTokenProbabilities, one.NextTokenProbabilities); // one row against a batch of two

        var wrong = ml.Data.LoadFromEnumerable([new { Other = "x" }]);
        var missing = Assert.ThrowsAny<ArgumentException>(() => model.Transform(wrong));
        Assert.Contains("'Text'", missing.Message);
    }

    [Fact]
    public void AWordModelTrainsOnWordsAndGeneratesWords()
    {
        var ml = new MLContext(seed: 1);
        var options = Small(epochs: 4);
        options.Level = TextLevel.Word;
        options.WindowLength = 6;
        options.Stride = 1;
        using var model = ml.Transforms.Text.TextGenerator(options).Fit(Data(ml, SmallText()));
        Assert.Equal(TextLevel.Word, model.Vocabulary.Level);
        Assert.Contains("garden", model.Vocabulary.Tokens);
        Assert.Contains(".", model.Vocabulary.Tokens);
        var words = model.Generate("the cat sat on", 12, 0.5, seed: 3).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.InRange(words.Length, 6, 12); // punctuation attaches to the word before it
        Assert.All(words, w => Assert.Contains(w.TrimEnd('.'), model.Vocabulary.Tokens));
        Assert.True(model.Evaluate(SmallText()).Perplexity < model.Vocabulary.Size);
    }

    [Fact]
    public void BadTextAndOptionsFailWithClearErrors()
    {
        var ml = new MLContext(seed: 1);
        var none = Assert.Throws<InvalidDataException>(() => ml.Transforms.Text.TextGenerator(Small()).Fit(Data(ml, "", "")));
        Assert.Contains("holds no text", none.Message);
        var noRows = Assert.Throws<InvalidDataException>(() => ml.Transforms.Text.TextGenerator(Small()).Fit(Data(ml)));
        Assert.Contains("holds no text", noRows.Message);

        var longWindow = Small();
        longWindow.WindowLength = 500;
        var tooLong = Assert.Throws<ArgumentException>(() => ml.Transforms.Text.TextGenerator(longWindow).Fit(Data(ml, "a short text of a few words")));
        Assert.Contains("WindowLength", tooLong.Message);

        Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Text.TextGenerator(new TextGeneratorOptions { MaxVocabulary = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Text.TextGenerator(new TextGeneratorOptions { WindowLength = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Text.TextGenerator(new TextGeneratorOptions { Dropout = 1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Text.TextGenerator(new TextGeneratorOptions
        {
            Samples = new TextSamples("the", 10, [0.5, 0], 1, (_, _) => { }),
        }));

        var numbers = ml.Data.LoadFromEnumerable([new { Text = 1f }]);
        var notText = Assert.ThrowsAny<ArgumentException>(() => ml.Transforms.Text.TextGenerator(Small()).Fit(numbers));
        Assert.Contains("must hold text", notText.Message);
    }

    [Fact]
    public void SamplesAreDrawnAfterEveryEpoch()
    {
        var ml = new MLContext(seed: 1);
        var seen = new List<(int Epoch, IReadOnlyList<TextSample> Samples)>();
        var options = Small(epochs: 2);
        options.Samples = new TextSamples("the cat ", 15, [0.2, 1.0], Seed: 4, (epoch, samples) => seen.Add((epoch, samples)));
        using var model = ml.Transforms.Text.TextGenerator(options).Fit(Data(ml, SmallText()));
        Assert.Equal([0, 1], seen.Select(s => s.Epoch));
        Assert.All(seen, s => Assert.Equal([0.2, 1.0], s.Samples.Select(x => x.Temperature)));
        Assert.All(seen, s => Assert.All(s.Samples, x => Assert.Equal(15, x.Text.Length)));
        // The last epoch's samples are the trained model's own (the same weights, seed and sampling).
        Assert.Equal(seen[^1].Samples[1].Text, model.Generate("the cat ", 15, 1.0, seed: 4));
    }

    [Fact]
    public void TextFilesAreCheckedBeforeTheyAreRead()
    {
        var folder = Path.Combine(Path.GetTempPath(), "mlnetdeep-text-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try
        {
            var empty = Path.Combine(folder, "empty.txt");
            File.WriteAllBytes(empty, []);
            Assert.Contains("is empty", Assert.Throws<InvalidDataException>(() => TextCorpus.ReadFile(empty)).Message);
            var latin1 = Path.Combine(folder, "latin1.txt");
            File.WriteAllBytes(latin1, [0x63, 0x61, 0x66, 0xE9, 0x20, 0x6E, 0x6F, 0x69, 0x72]);
            Assert.Contains("not UTF-8", Assert.Throws<InvalidDataException>(() => TextCorpus.ReadFile(latin1)).Message);
            var big = Path.Combine(folder, "big.txt");
            File.WriteAllText(big, new string('x', 2000));
            Assert.Contains("more than the 1,000", Assert.Throws<InvalidDataException>(() => TextCorpus.ReadFile(big, maxBytes: 1000)).Message);
            var crlf = Path.Combine(folder, "crlf.txt");
            File.WriteAllText(crlf, "\uFEFFone\r\ntwo\rthree");
            Assert.Equal("one\ntwo\nthree", TextCorpus.ReadFile(crlf));
            Assert.Throws<FileNotFoundException>(() => TextCorpus.ReadFile(Path.Combine(folder, "missing.txt")));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void AnUnknownBookOrAMissingNpmGivesAClearError()
    {
        var unknown = Assert.Throws<ArgumentException>(() => Gutenberg.BookPath("conan-doyle-holmes"));
        Assert.Contains("chesterton-brown", unknown.Message);
        var folder = Path.Combine(Path.GetTempPath(), "mlnetdeep-gutenberg-" + Guid.NewGuid().ToString("N"));
        try
        {
            var failed = Assert.Throws<InvalidOperationException>(() => Gutenberg.Download(folder, Path.Combine(folder, "no-such-npm"), TimeSpan.FromSeconds(30)));
            Assert.Contains("Gutenberg books could not be fetched", failed.Message);
            Assert.Contains("MLNETDEEP_NPM", failed.Message);
            Assert.Empty(Directory.GetFiles(folder, "*.txt"));
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void PassagesEndAtWordBoundaries()
    {
        var passages = TextCorpus.Passages("one two three four five six seven eight nine ten", 10);
        Assert.All(passages, p => Assert.DoesNotContain("  ", p));
        Assert.Equal("one two three", passages[0]);
        Assert.All(passages, p => Assert.True(p.Length >= 9));
    }
}
