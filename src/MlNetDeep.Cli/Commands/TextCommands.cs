using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML;
using MlNetDeep.Datasets;
using MlNetDeep.Models.Recurrent;
using MlNetDeep.Plotting;
using MlNetDeep.Training;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// <c>mlnetdeep text train</c> (a character or word language model on a Gutenberg book or any text file, with samples
/// after every epoch at temperatures 0.2, 0.5 and 1.0) and <c>mlnetdeep text generate</c> (continue a prompt with a saved model).
/// </summary>
internal static class TextCommands
{
    public static Command Create()
    {
        var text = new Command("text", "Recurrent language models: character and word text generation.");
        text.Subcommands.Add(Train());
        text.Subcommands.Add(Generate());
        text.Subcommands.Add(SequenceCommands.Classify());
        return text;
    }

    private static Command Train()
    {
        var common = new CommonOptions();
        var corpus = new Option<string>("--corpus") { Description = $"Gutenberg books, comma-separated, joined in order: {string.Join(", ", Gutenberg.Books)}.", DefaultValueFactory = _ => Gutenberg.DefaultBook };
        var file = new Option<string?>("--text") { Description = "A UTF-8 text file to train on instead of a book." }.ExistingFile();
        var level = new Option<string>("--level") { Description = "char or word.", DefaultValueFactory = _ => "char" };
        level.AcceptOnlyFromAmong("char", "word");
        var cell = new Option<string>("--cell") { Description = "lstm, gru or rnn.", DefaultValueFactory = _ => "lstm" };
        cell.AcceptOnlyFromAmong("lstm", "gru", "rnn");
        var layers = new Option<int>("--layers") { Description = "Recurrent layers.", DefaultValueFactory = _ => 2 }.AtLeast(1);
        var units = new Option<int>("--units") { Description = "Units per recurrent layer.", DefaultValueFactory = _ => 128 }.AtLeast(1);
        var window = new Option<int>("--window") { Description = "Tokens of context per window.", DefaultValueFactory = _ => 40 }.AtLeast(1);
        var stride = new Option<int?>("--stride") { Description = "Tokens between training windows (default 3 for characters, 1 for words)." }.AtLeast(1);
        var targets = new Option<string>("--targets") { Description = "next (the token after each window, the course's model) or every (the next token at every step).", DefaultValueFactory = _ => "next" };
        targets.AcceptOnlyFromAmong("next", "every");
        var embedding = new Option<int?>("--embedding") { Description = "Embedding size (default 32 for characters, 128 for words)." }.AtLeast(1);
        var vocabulary = new Option<int?>("--max-vocab") { Description = "Vocabulary limit, the unknown token included (default 256 characters, 10,000 words)." }.AtLeast(2);
        var dropout = new Option<double>("--dropout") { Description = "Dropout between recurrent layers.", DefaultValueFactory = _ => 0.0 }.Fraction();
        var epochs = new Option<int>("--epochs", "-e") { Description = "Epochs.", DefaultValueFactory = _ => 10 }.AtLeast(1);
        var batch = new Option<int>("--batch-size", "-b") { Description = "Windows per mini-batch.", DefaultValueFactory = _ => 128 }.AtLeast(1);
        var rate = new Option<double>("--learning-rate", "--lr") { Description = "Adam learning rate.", DefaultValueFactory = _ => 2e-3 }.Positive();
        var patience = new Option<int>("--patience") { Description = "Stop when the held-out loss has not improved for N epochs and keep the best epoch's weights (0: train every epoch, keep the last).", DefaultValueFactory = _ => 3 }.AtLeast(0);
        var cosine = new Option<bool>("--cosine") { Description = "Anneal the learning rate to 0 over the epochs (cosine)." };
        var validation = new Option<double>("--validation") { Description = "Share of the text, at its end, held out.", DefaultValueFactory = _ => 0.1 }.Fraction();
        var prompt = new Option<string?>("--prompt") { Description = "Prompt of the per-epoch samples (default: the start of the held-out text)." };
        var sampleLength = new Option<int>("--sample-length") { Description = "Tokens generated per sample.", DefaultValueFactory = _ => 300 }.AtLeast(1);
        var maxChars = new Option<int?>("--max-chars") { Description = "Use only the first N characters of the text (quick runs)." }.AtLeast(1);
        var command = new Command("train", "Train a language model; samples at temperatures 0.2, 0.5, 1.0 after every epoch, curves, model.")
        {
            corpus, file, level, cell, layers, units, window, stride, targets, embedding, vocabulary, dropout, epochs, batch, rate, cosine, patience, validation, prompt, sampleLength, maxChars,
        };
        common.AddTo(command);
        command.SetAction(result =>
        {
            bool words = result.GetValue(level) == "word";
            var options = new TextGeneratorOptions
            {
                Level = words ? TextLevel.Word : TextLevel.Character,
                Cell = result.GetValue(cell) switch { "gru" => RecurrentKind.Gru, "rnn" => RecurrentKind.SimpleRnn, _ => RecurrentKind.Lstm },
                Layers = result.GetValue(layers),
                Units = result.GetValue(units),
                WindowLength = result.GetValue(window),
                Stride = result.GetValue(stride) ?? (words ? 1 : 3),
                Targets = result.GetValue(targets) == "every" ? PredictionTargets.EveryStep : PredictionTargets.NextToken,
                EmbeddingSize = result.GetValue(embedding),
                MaxVocabulary = result.GetValue(vocabulary),
                Dropout = result.GetValue(dropout),
                Epochs = result.GetValue(epochs),
                BatchSize = result.GetValue(batch),
                Optimizer = new Adam(result.GetValue(rate)),
                ValidationFraction = result.GetValue(validation),
                LearningRateSchedule = result.GetValue(cosine) ? new CosineAnnealing() : null,
            };
            int stopAfter = result.GetValue(patience);
            if (stopAfter > 0 && options.ValidationFraction > 0) options.EarlyStopping = new EarlyStopping(Patience: stopAfter);
            _ = new TextGeneratorEstimator(new MLContext(), options); // options are checked before any text is read
            var source = result.GetValue(file) is { } path ? path : null;
            var books = result.GetValue(corpus)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (source is null && books.Length == 0) throw new ArgumentException("--corpus names no book.");
            string name = source is null ? string.Join("+", books) : Path.GetFileNameWithoutExtension(source);
            string body = source is null ? string.Join("\n", books.Select(b => Gutenberg.ReadBook(b))) : TextCorpus.ReadFile(source);
            if (result.GetValue(maxChars) is { } max && max < body.Length) body = body[..max];
            return Run(common.CreateContext(result), options, body, $"text-{(words ? "word" : "char")}-{name}", common.OutputFolder(result),
                result.GetValue(prompt), result.GetValue(sampleLength));
        });
        return command;
    }

    internal static int Run(MLContext ml, TextGeneratorOptions options, string body, string name, string output, string? prompt, int sampleLength)
    {
        prompt ??= DefaultPrompt(body, options);
        Console.WriteLine($"Text: {body.Length:N0} characters; the last {options.ValidationFraction:P0} held out. Prompt of the samples: \"{prompt.Replace("\n", " ")}\"");
        var log = new List<string>();
        options.Samples = new TextSamples(prompt, sampleLength, [0.2, 0.5, 1.0], Seed: 42, (epoch, samples) =>
        {
            var lines = new List<string> { $"--- epoch {epoch + 1} ---" };
            foreach (var sample in samples)
                lines.Add($"[temperature {sample.Temperature}] {prompt}{(options.Level == TextLevel.Word ? " " : "")}{sample.Text}");
            foreach (var line in lines) Console.WriteLine(line);
            log.AddRange(lines);
        });
        options.Callbacks.Add(new EpochCallback(end =>
        {
            if (end.Metrics.ValidationLoss is { } loss)
                Console.WriteLine($"  held-out text: {loss:F4} nats = {loss / Math.Log(2):F4} bits per {(options.Level == TextLevel.Word ? "word" : "character")}, perplexity {Math.Exp(loss):F2}");
        }));
        var data = ml.Data.LoadTextRows([body]);
        var clock = Stopwatch.StartNew();
        using var model = ConsoleProgress.Run(name, progress =>
        {
            options.Progress = progress;
            return ml.Transforms.Text.TextGenerator(options).Fit(data);
        });
        var history = model.History!;
        Console.WriteLine($"Training: {history.Epochs.Count} epochs in {clock.Elapsed.TotalSeconds:F0} s, {history.SamplesPerSecond:F0} windows/s, device {model.Device}; " +
            $"vocabulary {model.Vocabulary.Size} tokens; network:");
        Console.Write(model.Network.Summary([options.WindowLength]));
        if (history.Epochs[^1].ValidationLoss is { } last)
            Console.WriteLine($"Held-out cross-entropy after the last epoch: {last:F4} nats ({last / Math.Log(2):F4} bits) per token; best {history.Values("val_loss").Min():F4} in epoch {history.BestEpoch + 1}; " +
                $"the saved model holds the weights of epoch {history.WeightsEpoch + 1}" + (history.StopReason is { } why ? $" ({why})" : ""));
        var modelPath = Path.Combine(output, $"{name}.zip");
        ml.Model.SaveDeep(model, data.Schema, modelPath);
        File.WriteAllLines(Path.Combine(output, $"{name}-samples.txt"), log);
        File.WriteAllText(Path.Combine(output, $"{name}-history.csv"), history.ToCsv());
        Charts.TrainingCurves(Path.Combine(output, $"{name}-curves.png"), history, name);
        Console.WriteLine($"Saved model {modelPath}; wrote {name}-samples.txt, {name}-history.csv, {name}-curves.png in {output}");
        return 0;
    }

    /// <summary>A window's worth of the held-out text, from the start of its first full line.</summary>
    private static string DefaultPrompt(string body, TextGeneratorOptions options)
    {
        int cut = (int)(body.Length * (1 - options.ValidationFraction));
        int start = body.IndexOf('\n', Math.Min(cut, body.Length - 1)) is var n and >= 0 && n + 1 < body.Length ? n + 1 : 0;
        int chars = options.Level == TextLevel.Word ? options.WindowLength * 6 : options.WindowLength;
        var prompt = body.Substring(start, Math.Min(chars, body.Length - start)).Replace('\n', ' ').Trim();
        if (options.Level == TextLevel.Word && prompt.LastIndexOf(' ') is > 0 and var space) prompt = prompt[..space]; // whole words only
        return prompt.Length > 0 ? prompt : body[..Math.Min(chars, body.Length)];
    }


    private static Command Generate()
    {
        var model = new Option<string>("--model", "-m") { Description = "A model saved by 'text train'.", Required = true }.ExistingFile(OptionChecks.ModelHelpName);
        var prompt = new Option<string>("--prompt", "-p") { Description = "The text to continue.", Required = true };
        var length = new Option<int>("--length", "-n") { Description = "Tokens to generate.", DefaultValueFactory = _ => 400 }.AtLeast(1);
        var temperature = new Option<double>("--temperature", "-t") { Description = "Sampling temperature (> 0).", DefaultValueFactory = _ => 0.5 }.Positive();
        var topK = new Option<int>("--top-k") { Description = "Draw among the K most likely tokens only (0: all).", DefaultValueFactory = _ => 0 }.AtLeast(0);
        var greedy = new Option<bool>("--greedy") { Description = "Always take the most likely token." };
        var seed = new Option<int>("--seed") { Description = "Random seed of the draws.", DefaultValueFactory = _ => 1 };
        var command = new Command("generate", "Continue a prompt with a saved language model.") { model, prompt, length, temperature, topK, greedy, seed };
        command.SetAction(result =>
        {
            var ml = new MLContext(seed: 1);
            using var loaded = (IDisposable)ml.Model.LoadDeep(result.GetValue(model)!, out _);
            var generator = Find((ITransformer)loaded) ?? throw new InvalidDataException($"{result.GetValue(model)} holds no text generator.");
            var sampling = new Sampling(result.GetValue(temperature), result.GetValue(topK), result.GetValue(greedy));
            var text = generator.Generate(result.GetValue(prompt)!, result.GetValue(length), sampling, result.GetValue(seed));
            Console.WriteLine(result.GetValue(prompt) + (generator.Vocabulary.Level == TextLevel.Word ? " " : "") + text);
            return 0;
        });
        return command;
    }

    private static TextGeneratorTransformer? Find(ITransformer model) => model switch
    {
        TextGeneratorTransformer t => t,
        IEnumerable<ITransformer> many => many.OfType<TextGeneratorTransformer>().LastOrDefault(),
        _ => null,
    };
}
