using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Models.Common;
using MlNetDeep.Models.Regression;
using MlNetDeep.Networks;
using MlNetDeep.Persistence;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Tests;

/// <summary>
/// A model file is untrusted input: crafted sizes, shapes, counts, hashes and zip entries give an
/// <see cref="InvalidDataException"/> that names the cause, before native memory is allocated; saves are atomic.
/// </summary>
public class ModelFileHardeningTests
{
    /// <summary>A tiny regressor (Flatten, Dense(4, ReLU), Dense(1)), trained once for the whole class, and its saved bytes.</summary>
    private sealed record Saved(ITransformer Model, DataViewSchema Schema, IDataView Data, byte[] Bytes);

    private static readonly Lazy<Saved> Small = new(() =>
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.Sine(ml, 32);
        var model = ml.Regression.Trainers.NeuralNetwork(new NeuralNetworkRegressorOptions
        {
            Network = Networks.Networks.Mlp(4), Epochs = 1, BatchSize = 16,
        }).Fit(data);
        var stream = new MemoryStream();
        ml.Model.SaveDeep(model, data.Schema, stream);
        return new Saved(model, data.Schema, data, stream.ToArray());
    });

    private static InvalidDataException LoadError(byte[] bytes, ModelFileLimits? limits = null) =>
        Assert.Throws<InvalidDataException>(() => DeepModelFile.Load(new MLContext(1).Model, new MemoryStream(bytes), out _, "crafted.zip", limits ?? ModelFileLimits.Default));

    private static void AssertMessage(Exception ex, params string[] parts)
    {
        foreach (var part in parts) Assert.Contains(part, ex.Message);
    }

    // ---- crafted sizes and shapes in the record --------------------------------------------------------------------

    [Fact]
    public void OversizeDenseLayerInTheRecordFailsBeforeAllocating()
    {
        var zip = ModelZip.Open(Small.Value.Bytes);
        zip.EditRecord(r => r["Network"]!["Layers"]![1]!["Units"] = 2_000_000_000);
        var ex = LoadError(zip.ToBytes());
        AssertMessage(ex, "Dense(2000000000", "parameter values, more than the", "weights.bin");
    }

    [Fact]
    public void OverflowingInputShapeInTheRecord()
    {
        var zip = ModelZip.Open(Small.Value.Bytes);
        zip.EditRecord(r => r["InputShape"] = new JsonArray(65536, 65536, 65536));
        var ex = LoadError(zip.ToBytes());
        AssertMessage(ex, "[65536, 65536, 65536]", "overflows", "transformer.json");
    }

    [Fact]
    public void NonPositiveInputShapeInTheRecord()
    {
        var zip = ModelZip.Open(Small.Value.Bytes);
        zip.EditRecord(r => r["InputShape"] = new JsonArray(-1));
        AssertMessage(LoadError(zip.ToBytes()), "input shape [-1]", "positive sizes");
    }

    [Fact]
    public void OverflowingLayerShapeInTheRecord()
    {
        // Dense(2^31 - 1) then Reshape to [46341, 46341]: the reshape's size overflows an int.
        var zip = ModelZip.Open(Small.Value.Bytes);
        zip.EditRecord(r => r["Network"]!["Layers"] = JsonNode.Parse("""
            [{"type": "Flatten"}, {"type": "Dense", "Units": 2147483647}, {"type": "Reshape", "Shape": [46341, 46341]}]
            """));
        var ex = LoadError(zip.ToBytes());
        AssertMessage(ex, "Reshape", "overflows");
        Assert.IsType<InvalidOperationException>(ex.InnerException!.InnerException);
    }

    [Fact]
    public void CraftedScoringBatchSize()
    {
        var zip = ModelZip.Open(Small.Value.Bytes);
        zip.EditRecord(r => r["ScoringBatchSize"] = int.MaxValue);
        AssertMessage(LoadError(zip.ToBytes()), "ScoringBatchSize 2147483647", "values per batch");
    }

    // ---- files saved by earlier versions ----------------------------------------------------------------------------

    [Fact]
    public void AMinibatchSpreadGanSavedBeforeItKeptItsSpreadLoadsGeneratesAndRefusesToScoreWithTheReason()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.MnistTrain(ml, 64);
        using var generator = ml.Transforms.GenerativeAdversarialNetwork(new Models.Generative.GanOptions
        {
            Kind = Models.Generative.GanKind.Dense, Epochs = 1, BatchSize = 32, LatentSize = 16, Seed = 7, MinibatchStdDev = true,
        }).Fit(data);
        var stream = new MemoryStream();
        ml.Model.SaveDeep(generator, generator.NoiseData(ml, 1, 1).Schema, stream);
        // The file as it was written before: no "keptSpread" setting and no spread buffers among the weights.
        var zip = ModelZip.Open(stream.ToArray());
        zip.EditRecord(r => Assert.True(r["Settings"]!.AsObject().Remove("keptSpread")));
        var tensors = Weights.Read(zip.Weights);
        Assert.Equal(2, tensors.RemoveAll(t => t.Name.StartsWith("spread_", StringComparison.Ordinal)));
        zip.Weights = Weights.Write(tensors);

        var loaded = Assert.IsType<Models.Generative.GeneratorTransformer>(
            ((TransformerChain<ITransformer>)DeepModelFile.Load(ml.Model, new MemoryStream(zip.ToBytes()), out _, "old.zip", ModelFileLimits.Default)).Single());
        using (loaded)
        {
            Assert.Equal(generator.Generate(3, seed: 2), loaded.Generate(3, seed: 2));
            var pixels = TestData.Column(data, "Pixels").Take(2).ToList();
            AssertMessage(Assert.Throws<InvalidOperationException>(() => loaded.Realness(pixels)), "saved before it kept the spread", "Train it again");
            using var discriminator = loaded.CreateDiscriminator();
            AssertMessage(Assert.Throws<InvalidOperationException>(() => discriminator.Transform(data).GetColumn<float>("Realness").First()), "saved before");
        }
    }

    // ---- crafted weights -------------------------------------------------------------------------------------------

    [Fact]
    public void WeightsTensorWhoseShapeOverflows()
    {
        var zip = ModelZip.Open(Small.Value.Bytes);
        zip.Weights = Weights.Write([new("1.layer.weight", 0, [1L << 40, 1L << 40], [])]);
        AssertMessage(LoadError(zip.ToBytes()), "tensor '1.layer.weight'", "[1099511627776, 1099511627776]", "overflows a 64-bit count");
    }

    [Fact]
    public void WeightsTensorLargerThanItsData()
    {
        var zip = ModelZip.Open(Small.Value.Bytes);
        zip.Weights = Weights.Write([new("2.weight", 0, [1_000_000, 1000], new byte[16])]);
        AssertMessage(LoadError(zip.ToBytes()), "tensor '2.weight'", "needs 4,000,000,000 bytes, but only 16 remain");
    }

    [Fact]
    public void WeightsDeclaringTooManyTensors()
    {
        var zip = ModelZip.Open(Small.Value.Bytes);
        zip.Weights = Weights.Write([], count: int.MaxValue);
        AssertMessage(LoadError(zip.ToBytes()), "declare 2,147,483,647 tensors", "weights.bin");
    }

    [Fact]
    public void DuplicateTensorNames()
    {
        var zip = ModelZip.Open(Small.Value.Bytes);
        var tensors = Weights.Read(zip.Weights);
        tensors[1] = tensors[1] with { Name = tensors[0].Name };
        zip.Weights = Weights.Write(tensors);
        AssertMessage(LoadError(zip.ToBytes()), $"tensor '{tensors[0].Name}' twice", "duplicate tensor name");
    }

    [Fact]
    public void UnknownDtypeAndTooManyDimensions()
    {
        var zip = ModelZip.Open(Small.Value.Bytes);
        var tensors = Weights.Read(zip.Weights);
        zip.Weights = Weights.Write([tensors[0] with { Dtype = 7 }, .. tensors.Skip(1)]);
        AssertMessage(LoadError(zip.ToBytes()), $"tensor '{tensors[0].Name}' has an unknown dtype code 7");
        zip.Weights = Weights.Write([tensors[0] with { Shape = Enumerable.Repeat(1L, 9).ToArray() }, .. tensors.Skip(1)]);
        AssertMessage(LoadError(zip.ToBytes()), $"tensor '{tensors[0].Name}' has 9 dimensions");
    }

    [Fact]
    public void TruncatedWeightsEntry()
    {
        var zip = ModelZip.Open(Small.Value.Bytes);
        zip.Weights = zip.Weights[..^2];
        var ex = LoadError(zip.ToBytes());
        AssertMessage(ex, "weights.bin", "needs 4 bytes, but only 2 remain", "the weights are truncated");
    }

    [Fact]
    public void WeightsWithBytesAfterTheLastTensor()
    {
        var zip = ModelZip.Open(Small.Value.Bytes);
        zip.Weights = [.. zip.Weights, 1, 2, 3];
        AssertMessage(LoadError(zip.ToBytes()), "3 bytes after their last tensor");
    }

    // ---- the integrity hash ----------------------------------------------------------------------------------------

    [Fact]
    public void TamperedWeightsFailTheirHash()
    {
        var zip = ModelZip.Open(Small.Value.Bytes);
        var weights = zip.Weights;
        weights[^3] ^= 0x5a;
        zip.Weights = weights;
        AssertMessage(LoadError(zip.ToBytes(rehash: false)), $"entry '{zip.DeepFolder}/weights.bin' is damaged", "SHA-256 does not match");
    }

    [Fact]
    public void TamperedHashInTheManifest()
    {
        var zip = ModelZip.Open(Small.Value.Bytes);
        var stage = zip.DeepStage;
        var hashes = stage["Sha256"]!.GetValue<string>().Split(':');
        stage["Sha256"] = new string('0', 64) + ":" + hashes[1];
        AssertMessage(LoadError(zip.ToBytes(rehash: false)), $"entry '{zip.DeepFolder}/transformer.json' is damaged", "SHA-256 does not match");
    }

    [Fact]
    public void MissingHashIsRefused()
    {
        var zip = ModelZip.Open(Small.Value.Bytes);
        zip.DeepStage.Remove("Sha256");
        AssertMessage(LoadError(zip.ToBytes()), $"stage 1 ('{zip.DeepFolder}') has no SHA-256", "not written by MlNetDeep");

        zip = ModelZip.Open(Small.Value.Bytes);
        zip.Stages[0]!.AsObject().Remove("Sha256");
        AssertMessage(LoadError(zip.ToBytes()), "entry 'stages/input-schema.zip' has no SHA-256");
    }

    [Fact]
    public void ManifestStageWithoutAnEntry()
    {
        var zip = ModelZip.Open(Small.Value.Bytes);
        zip.DeepStage.Remove("Entry");
        AssertMessage(LoadError(zip.ToBytes(rehash: false)), "stage 1 has no type or no entry");
    }

    // ---- zip bombs -------------------------------------------------------------------------------------------------

    [Fact]
    public void EntryDeclaringAHugeSizeIsAZipBomb()
    {
        var zip = ModelZip.Open(Small.Value.Bytes);
        var bytes = ModelZip.PatchDeclaredSize(zip.ToBytes(), zip.DeepFolder + "/weights.bin", 0xF000_0000);
        AssertMessage(LoadError(bytes), $"entry '{zip.DeepFolder}/weights.bin' declares 4,026,531,840 bytes", "zip bomb");
    }

    [Fact]
    public void EntryLargerThanTheCapIsAZipBomb()
    {
        // 2 MiB of zeros compress to a few KB; with a 1 MiB cap the entry is refused before it is decompressed.
        var zip = ModelZip.Open(Small.Value.Bytes);
        zip.Weights = new byte[2 << 20];
        var ex = LoadError(zip.ToBytes(), ModelFileLimits.Default with { MaxEntryBytes = 1 << 20 });
        AssertMessage(ex, $"entry '{zip.DeepFolder}/weights.bin' declares 2,097,152 bytes", "more than the 1,048,576 allowed", "zip bomb");
    }

    [Fact]
    public void EntryUnderstatingItsSizeReadsNoMoreAndFailsItsHash()
    {
        var zip = ModelZip.Open(Small.Value.Bytes);
        zip.Weights = new byte[1 << 20];
        var bytes = ModelZip.PatchDeclaredSize(zip.ToBytes(), zip.DeepFolder + "/weights.bin", 100);
        AssertMessage(LoadError(bytes), $"entry '{zip.DeepFolder}/weights.bin' is damaged", "SHA-256 does not match");
    }

    [Fact]
    public void ZipBombInsideTheMlNetStage()
    {
        var zip = ModelZip.Open(Small.Value.Bytes);
        var nested = zip["stages/input-schema.zip"];
        string inner;
        using (var archive = new ZipArchive(new MemoryStream(nested))) inner = archive.Entries[0].FullName;
        zip["stages/input-schema.zip"] = ModelZip.PatchDeclaredSize(nested, inner, 0xF000_0000);
        AssertMessage(LoadError(zip.ToBytes()), $"entry 'stages/input-schema.zip' holds '{inner}'", "declares 4,026,531,840 bytes", "zip bomb");
    }

    // ---- failures half-way -----------------------------------------------------------------------------------------

    /// <summary>A format that builds and creates as the regressor's does, keeping what it built, optionally failing in Create.</summary>
    private sealed class TrackingFormat(string kind, Exception? createError = null) : NetworkModelFormat
    {
        public override string Kind => kind;
        public List<Tensor> BuiltParameters { get; } = [];
        public List<DeepTransformer> Created { get; } = [];
        private static NetworkModelFormat Real => SavedModelFormats.Find<NetworkModelFormat>("NeuralNetworkRegression");

        public override nn.Module BuildModule(TransformerRecord record)
        {
            var module = Real.BuildModule(record);
            BuiltParameters.AddRange(module.parameters());
            return module;
        }

        public override ITransformer Create(TransformerRecord record, nn.Module module, Device device)
        {
            if (createError is not null) throw createError;
            var transformer = (DeepTransformer)Real.Create(record, module, device);
            Created.Add(transformer);
            return transformer;
        }
    }

    [Fact]
    public void DeviceErrorKeepsItsTypeAndTheBuiltModuleIsDisposed()
    {
        var format = new TrackingFormat("HardeningDeviceFailure", new ExternalException("CUDA error: out of memory"));
        DeepModelFile.Register(format);
        var zip = ModelZip.Open(Small.Value.Bytes);
        zip.EditRecord(r => r["Kind"] = format.Kind);
        var ex = Assert.Throws<ExternalException>(() => DeepModelFile.Load(new MLContext(1).Model, new MemoryStream(zip.ToBytes()), out _));
        Assert.Equal("CUDA error: out of memory", ex.Message);
        Assert.NotEmpty(format.BuiltParameters);
        Assert.All(format.BuiltParameters, p => Assert.True(p.IsInvalid, "a parameter of the failed stage was not disposed"));
    }

    [Fact]
    public void StagesLoadedBeforeAFailingStageAreDisposed()
    {
        var format = new TrackingFormat("HardeningTrackedStage");
        DeepModelFile.Register(format);
        var zip = ModelZip.Open(Small.Value.Bytes);
        zip.EditRecord(r => r["Kind"] = format.Kind);
        // A second deep stage: a copy of the first whose weights hold a duplicate tensor name.
        var tensors = Weights.Read(zip.Weights);
        tensors[1] = tensors[1] with { Name = tensors[0].Name };
        zip.AddDeepStage("stages/9", zip.RecordBytes, Weights.Write(tensors));
        var ex = LoadError(zip.ToBytes());
        AssertMessage(ex, "stages/9/weights.bin", "duplicate tensor name");
        var first = Assert.Single(format.Created);
        Assert.Throws<ObjectDisposedException>(() => first.Score(new float[1], 1, new float[1]));
        Assert.All(format.BuiltParameters, p => Assert.True(p.IsInvalid, "a parameter of the first stage was not disposed"));
    }

    [Fact]
    public void RecordTheFamilyCannotUseNamesTheStageAndKeepsTheCause()
    {
        var zip = ModelZip.Open(Small.Value.Bytes);
        zip.EditRecord(r => r["Network"]!["Layers"]![1]!["Units"] = -3);
        var ex = LoadError(zip.ToBytes());
        AssertMessage(ex, "stage 1", "record cannot be turned into a model", "Dense units must be positive, got -3");
        Assert.IsType<InvalidOperationException>(ex.InnerException!.InnerException);
    }

    // ---- durable saves ---------------------------------------------------------------------------------------------

    [Fact]
    public void ConcurrentSavesToOnePathAllSucceedAndTheFileIsAlwaysWhole()
    {
        var saved = Small.Value;
        InTempFolder(folder =>
        {
            var path = Path.Combine(folder, "model.zip");
            new MLContext(1).Model.SaveDeep(saved.Model, saved.Schema, path);
            using var done = new CancellationTokenSource();
            int loads = 0;
            var reader = Task.Run(() =>
            {
                var ml = new MLContext(1);
                while (!done.IsCancellationRequested)
                {
                    ml.Model.LoadDeep(path, out _); // must always find a whole model
                    loads++;
                }
            });
            Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, _ =>
            {
                var ml = new MLContext(1);
                for (int i = 0; i < 3; i++) ml.Model.SaveDeep(saved.Model, saved.Schema, path);
            });
            done.Cancel();
            reader.Wait();
            Assert.True(loads > 0);
            var loaded = new MLContext(1).Model.LoadDeep(path, out _);
            Assert.Equal(saved.Model.Transform(saved.Data).GetColumn<float>("Score"), loaded.Transform(saved.Data).GetColumn<float>("Score"));
            Assert.Equal(new[] { "model.zip" }, FilesIn(folder));
        });
    }

    /// <summary>An ML.NET stage whose save fails part-way through the model file.</summary>
    private sealed class FailingSaveTransformer : ITransformer
    {
        public bool IsRowToRowMapper => false;
        public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => inputSchema;
        public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => throw new NotSupportedException();
        public IDataView Transform(IDataView input) => input;
        public void Save(ModelSaveContext ctx) => throw new IOException("No space left on device");
    }

    [Fact]
    public void FailedSaveKeepsThePreviousFileAndLeavesNoTemporaryFile()
    {
        var saved = Small.Value;
        InTempFolder(folder =>
        {
            var path = Path.Combine(folder, "model.zip");
            var ml = new MLContext(1);
            ml.Model.SaveDeep(saved.Model, saved.Schema, path);
            var before = File.ReadAllBytes(path);
            var failing = new TransformerChain<ITransformer>(saved.Model, new FailingSaveTransformer());
            var ex = Assert.Throws<IOException>(() => ml.Model.SaveDeep(failing, saved.Schema, path));
            Assert.Contains("No space left on device", ex.Message);
            Assert.Equal(before, File.ReadAllBytes(path));
            Assert.Equal(new[] { "model.zip" }, FilesIn(folder));
        });
    }

    [Fact]
    public void FailedOnnxExportLeavesNoFile()
    {
        // A GAN's discriminator has no ONNX export.
        var ml = new MLContext(seed: 1);
        using var generator = ml.Transforms.GenerativeAdversarialNetwork(new MlNetDeep.Models.Generative.GanOptions
        {
            Kind = MlNetDeep.Models.Generative.GanKind.Dense, Epochs = 1, BatchSize = 64, LatentSize = 8, Seed = 7,
        }).Fit(TestData.MnistTrain(ml, 64));
        using var autoencoder = generator.CreateDiscriminator();
        InTempFolder(folder =>
        {
            var fresh = Path.Combine(folder, "new.onnx");
            var ex = Assert.Throws<NotSupportedException>(() => autoencoder.SaveAsOnnx(fresh));
            Assert.Contains("cannot be exported to ONNX", ex.Message);
            Assert.False(File.Exists(fresh), "a failed export left a file");

            var existing = Path.Combine(folder, "old.onnx");
            File.WriteAllText(existing, "the previous export");
            Assert.Throws<NotSupportedException>(() => autoencoder.SaveAsOnnx(existing));
            Assert.Equal("the previous export", File.ReadAllText(existing));
            Assert.Equal(new[] { "old.onnx" }, FilesIn(folder));
        });
    }

    // ---- shape arithmetic in the layers ----------------------------------------------------------------------------

    [Fact]
    public void OverflowingLayerShapesAreClearErrors()
    {
        var upsample = Assert.Throws<InvalidOperationException>(() => new NetworkSpec([new Upsample2D(65536)]).InferShapes([1, 65536, 2]));
        AssertMessage(upsample, "Upsample2D(65536x)", "overflows");
        var flatten = Assert.Throws<InvalidOperationException>(() => new NetworkSpec([new Flatten()]).InferShapes([65536, 65536]));
        AssertMessage(flatten, "[65536, 65536]", "overflows");
        var transposed = Assert.Throws<InvalidOperationException>(() => new NetworkSpec([new ConvTranspose2D(1, 3, 65536)]).InferShapes([1, 65536, 4]));
        AssertMessage(transposed, "ConvTranspose2D", "overflows");
    }

    [Fact]
    public void StateSizeMatchesTheBuiltModuleForEveryLayerWithState()
    {
        (Layer Layer, int[] Input)[] cases =
        [
            (new Dense(3), [5]), (new Dense(3, ActivationKind.ReLU, UseBias: false), [5]),
            (new Conv2D(4, 3), [2, 6, 6]), (new Conv2D(4, 3, Padding: PaddingMode.Same, UseBias: false), [2, 6, 6]),
            (new ConvTranspose2D(3, 3, 2, PaddingMode.Same), [2, 4, 4]), (new ConvTranspose2D(2, 4, 2, PaddingMode.Same), [2, 4, 4]),
            (new Embedding(10, 4), [5]), (new BatchNorm(), [6]), (new BatchNorm(), [3, 4, 4]),
            (new Flatten(), [2, 3]), (new MaxPool2D(2), [1, 4, 4]), (new Upsample2D(2), [1, 2, 2]), (new Dropout(0.1), [4]),
        ];
        foreach (var (layer, input) in cases)
        {
            using var module = layer.Build(input);
            Assert.True(module.state_dict().Values.Sum(t => t.numel()) == layer.StateSize(input), $"{layer.Describe()} on [{string.Join(", ", input)}]");
        }
    }

    // ---- helpers ---------------------------------------------------------------------------------------------------

    private static void InTempFolder(Action<string> test)
    {
        var folder = Directory.CreateTempSubdirectory("mlnetdeep-files-").FullName;
        try { test(folder); }
        finally { Directory.Delete(folder, recursive: true); }
    }

    private static string[] FilesIn(string folder) => Directory.GetFileSystemEntries(folder).Select(f => Path.GetFileName(f)).Order().ToArray();

    /// <summary>Weights files written tensor by tensor, so that any field can be crafted.</summary>
    private static class Weights
    {
        public sealed record Tensor(string Name, int Dtype, long[] Shape, byte[] Data);

        public static List<Tensor> Read(byte[] weights) =>
            WeightsFile.ReadLayout(weights).Select(t => new Tensor(t.Name, t.Dtype, t.Shape, weights[t.Offset..(t.Offset + t.Length)])).ToList();

        public static byte[] Write(IReadOnlyList<Tensor> tensors, int? count = null)
        {
            var stream = new MemoryStream();
            using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
            {
                writer.Write("MLNDW001"u8);
                writer.Write(count ?? tensors.Count);
                foreach (var t in tensors)
                {
                    writer.Write(t.Name);
                    writer.Write(t.Dtype);
                    writer.Write(t.Shape.Length);
                    foreach (var d in t.Shape) writer.Write(d);
                    writer.Write(t.Data);
                }
            }
            return stream.ToArray();
        }
    }

    /// <summary>A saved model opened for editing: entries, manifest and record; written back with the hashes recomputed or not.</summary>
    private sealed class ModelZip
    {
        private const string ManifestName = "mlnetdeep.json";
        private readonly List<(string Name, byte[] Data)> _entries = [];
        private JsonObject _manifest = [];

        public static ModelZip Open(byte[] bytes)
        {
            var zip = new ModelZip();
            using var archive = new ZipArchive(new MemoryStream(bytes), ZipArchiveMode.Read);
            foreach (var entry in archive.Entries)
            {
                var data = new MemoryStream();
                using (var s = entry.Open()) s.CopyTo(data);
                if (entry.FullName == ManifestName) zip._manifest = JsonNode.Parse(data.ToArray())!.AsObject();
                else zip._entries.Add((entry.FullName, data.ToArray()));
            }
            return zip;
        }

        public byte[] this[string name]
        {
            get => _entries.Single(e => e.Name == name).Data;
            set
            {
                int i = _entries.FindIndex(e => e.Name == name);
                if (i < 0) _entries.Add((name, value)); else _entries[i] = (name, value);
            }
        }

        public JsonArray Stages => _manifest["Stages"]!.AsArray();
        public JsonObject DeepStage => Stages.First(s => s!["Type"]!.GetValue<string>() == "deep")!.AsObject();
        public string DeepFolder => DeepStage["Entry"]!.GetValue<string>();
        public byte[] RecordBytes => this[DeepFolder + "/transformer.json"];

        public byte[] Weights
        {
            get => (byte[])this[DeepFolder + "/weights.bin"].Clone();
            set => this[DeepFolder + "/weights.bin"] = value;
        }

        public void EditRecord(Action<JsonObject> edit)
        {
            var record = JsonNode.Parse(RecordBytes)!.AsObject();
            edit(record);
            this[DeepFolder + "/transformer.json"] = Encoding.UTF8.GetBytes(record.ToJsonString());
        }

        public void AddDeepStage(string folder, byte[] record, byte[] weights)
        {
            this[folder + "/transformer.json"] = record;
            this[folder + "/weights.bin"] = weights;
            Stages.Add(new JsonObject { ["Type"] = "deep", ["Entry"] = folder, ["Sha256"] = "", ["Kind"] = "NeuralNetworkRegression" });
        }

        public byte[] ToBytes(bool rehash = true)
        {
            if (rehash)
                foreach (var stage in Stages.Select(s => s!.AsObject()).Where(s => s.ContainsKey("Sha256") && s.ContainsKey("Entry")))
                {
                    var entry = stage["Entry"]!.GetValue<string>();
                    stage["Sha256"] = stage["Type"]!.GetValue<string>() == "deep"
                        ? Hash(this[entry + "/transformer.json"]) + ":" + Hash(this[entry + "/weights.bin"])
                        : Hash(this[entry]);
                }
            var output = new MemoryStream();
            using (var archive = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true))
            {
                foreach (var (name, data) in _entries.Append((ManifestName, Encoding.UTF8.GetBytes(_manifest.ToJsonString()))))
                {
                    using var s = archive.CreateEntry(name).Open();
                    s.Write(data);
                }
            }
            return output.ToArray();
        }

        private static string Hash(byte[] bytes) => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(bytes));

        /// <summary>Rewrites the uncompressed size that the zip's headers (central directory and local) declare for <paramref name="entry"/>.</summary>
        public static byte[] PatchDeclaredSize(byte[] zip, string entry, uint size)
        {
            var bytes = (byte[])zip.Clone();
            int end = bytes.Length - 22;
            while (BitConverter.ToUInt32(bytes, end) != 0x06054b50) end--;
            int count = BitConverter.ToUInt16(bytes, end + 10), at = BitConverter.ToInt32(bytes, end + 16);
            for (int i = 0; i < count; i++)
            {
                int nameLength = BitConverter.ToUInt16(bytes, at + 28), extra = BitConverter.ToUInt16(bytes, at + 30), comment = BitConverter.ToUInt16(bytes, at + 32);
                if (Encoding.UTF8.GetString(bytes, at + 46, nameLength) == entry)
                {
                    BitConverter.GetBytes(size).CopyTo(bytes, at + 24);
                    BitConverter.GetBytes(size).CopyTo(bytes, BitConverter.ToInt32(bytes, at + 42) + 22);
                    return bytes;
                }
                at += 46 + nameLength + extra + comment;
            }
            throw new InvalidOperationException($"No entry '{entry}' in the zip.");
        }
    }
}
