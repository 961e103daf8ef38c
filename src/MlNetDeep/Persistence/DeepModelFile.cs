using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Native;
using MlNetDeep.Networks;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Persistence;

/// <summary>
/// One file for a whole fitted pipeline that mixes ML.NET stages and deep transformers: a zip whose runs of ML.NET
/// stages are stored by ML.NET's own Model.Save, and whose deep stages are stored as a record (JSON) and checked weights.
/// </summary>
internal static class DeepModelFile
{
    public const string Format = "MlNetDeep.Model";
    public const int Version = 1;
    private const string ManifestEntry = "mlnetdeep.json";

    private sealed record Manifest(string Format, int Version, List<StageEntry> Stages);
    private sealed record StageEntry(string Type, string Entry, string? Sha256, string? Kind);

    /// <summary>Registers the saved-model format of a family defined outside MlNetDeep (the library's own are found by themselves).</summary>
    public static void Register(SavedModelFormat format) => SavedModelFormats.Register(format);

    /// <summary>
    /// Saves to <paramref name="path"/> durably: a unique temporary file in the same folder, flushed to disk, then renamed
    /// over the target, so the path always holds a complete model (the old one until the new one is whole).
    /// </summary>
    public static void Save(ModelOperationsCatalog catalog, ITransformer model, DataViewSchema inputSchema, string path) =>
        AtomicFile.Write(path, stream => Save(catalog, model, inputSchema, stream));

    public static void Save(ModelOperationsCatalog catalog, ITransformer model, DataViewSchema inputSchema, Stream stream)
    {
        var stages = Flatten(model).ToList();
        var manifest = new Manifest(Format, Version, []);
        using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);

        // Entry 0 always holds the pipeline's input schema (an empty ML.NET chain carries it).
        var schema = inputSchema;
        var pending = new List<ITransformer>();
        var pendingSchema = schema;
        manifest.Stages.Add(WriteMlNet(catalog, zip, "stages/input-schema.zip", new TransformerChain<ITransformer>(), schema));

        foreach (var stage in stages)
        {
            if (stage is ISavedNetwork or IPersistentTransformer)
            {
                if (pending.Count > 0)
                {
                    manifest.Stages.Add(WriteMlNet(catalog, zip, $"stages/{manifest.Stages.Count}.zip", new TransformerChain<ITransformer>(pending.ToArray()), pendingSchema));
                    pending.Clear();
                }
                manifest.Stages.Add(stage is ISavedNetwork deep
                    ? WriteDeep(zip, $"stages/{manifest.Stages.Count}", deep)
                    : WriteTransform(zip, $"stages/{manifest.Stages.Count}.json", (IPersistentTransformer)stage));
                schema = stage.GetOutputSchema(schema);
                pendingSchema = schema;
            }
            else
            {
                pending.Add(stage);
                schema = stage.GetOutputSchema(schema);
            }
        }
        if (pending.Count > 0)
            manifest.Stages.Add(WriteMlNet(catalog, zip, $"stages/{manifest.Stages.Count}.zip", new TransformerChain<ITransformer>(pending.ToArray()), pendingSchema));

        using var entry = zip.CreateEntry(ManifestEntry).Open();
        JsonSerializer.Serialize(entry, manifest, new JsonSerializerOptions { WriteIndented = true });
    }

    public static ITransformer Load(ModelOperationsCatalog catalog, string path, out DataViewSchema inputSchema)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Model file not found: {path}", path);
        using var file = File.OpenRead(path);
        return Load(catalog, file, out inputSchema, path);
    }

    /// <summary>
    /// Loads a model from <paramref name="stream"/>, treating it as untrusted input: every entry's size is capped, every
    /// entry's SHA-256 must match the manifest, and every size, shape and count is checked before native memory is
    /// allocated. A file that fails these checks gives an <see cref="InvalidDataException"/> naming the cause; other
    /// failures (I/O, device errors) keep their own type. What was built before a failure is disposed.
    /// </summary>
    public static ITransformer Load(ModelOperationsCatalog catalog, Stream stream, out DataViewSchema inputSchema, string name = "stream") =>
        Load(catalog, stream, out inputSchema, name, ModelFileLimits.Default);

    internal static ITransformer Load(ModelOperationsCatalog catalog, Stream stream, out DataViewSchema inputSchema, string name, ModelFileLimits limits)
    {
        try
        {
            return LoadChecked(catalog, stream, out inputSchema, name, limits);
        }
        catch (Exception ex) when (ex is InvalidDataException or JsonException or EndOfStreamException)
        {
            throw new InvalidDataException($"'{name}' is not a readable MlNetDeep model: {ex.Message}", ex);
        }
    }

    private static ITransformer LoadChecked(ModelOperationsCatalog catalog, Stream stream, out DataViewSchema inputSchema, string name, ModelFileLimits limits)
    {
        using var zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        var entries = new EntryReader(zip, limits);
        var manifest = ReadManifest(zip, entries, limits);
        var environment = HostEnvironments.Of(catalog);
        var device = HostEnvironments.Device(environment);
        var stages = new List<ITransformer>();
        inputSchema = null!;
        try
        {
            for (int i = 0; i < manifest.Stages.Count; i++)
            {
                var stage = manifest.Stages[i];
                if (stage.Type == "mlnet")
                {
                    var transformer = ReadMlNet(catalog, entries, stage, i, limits, out var schema);
                    if (i == 0) { inputSchema = schema; continue; }
                    stages.AddRange(Flatten(transformer));
                }
                else if (stage.Type == "deep")
                {
                    var deep = ReadDeep(entries, stage, i, device, limits);
                    if (deep is Models.Common.DeepTransformer scored) scored.UseEnvironment(environment);
                    stages.Add(deep);
                }
                else if (stage.Type == "transform")
                {
                    stages.Add(ReadTransform(entries, stage, i));
                }
                else throw new InvalidDataException($"stage {i} has an unknown type '{stage.Type}'.");
            }
            return new TransformerChain<ITransformer>(stages.ToArray());
        }
        catch
        {
            // The stages built so far hold native tensors: free them now rather than leave them to the finalizer.
            foreach (var stage in stages) (stage as IDisposable)?.Dispose();
            throw;
        }
    }

    private static Manifest ReadManifest(ZipArchive zip, EntryReader entries, ModelFileLimits limits)
    {
        if (zip.GetEntry(ManifestEntry) is null)
        {
            bool mlnet = zip.Entries.Any(e => e.FullName.StartsWith("TransformerChain/", StringComparison.Ordinal) || e.FullName.StartsWith("Schema/", StringComparison.Ordinal));
            throw new InvalidDataException(mlnet
                ? "it is an ML.NET model file, not an MlNetDeep one: load it with mlContext.Model.Load."
                : "it is a zip file without an MlNetDeep manifest.");
        }
        Manifest manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<Manifest>(entries.ReadUnhashed(ManifestEntry, limits.MaxManifestBytes)) ?? throw new InvalidDataException("its manifest is empty.");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"its manifest is not valid JSON: {ex.Message}", ex);
        }
        if (manifest.Format != Format) throw new InvalidDataException($"its format is '{manifest.Format}', expected '{Format}'.");
        if (manifest.Version > Version) throw new InvalidDataException($"it was written by a newer MlNetDeep (format version {manifest.Version}; this one reads up to {Version}).");
        if (manifest.Version < 1) throw new InvalidDataException($"its format version {manifest.Version} is invalid.");
        if (manifest.Stages is not { Count: > 0 } || manifest.Stages[0]?.Type != "mlnet") throw new InvalidDataException("it has no input schema stage.");
        if (manifest.Stages.Count > limits.MaxStages) throw new InvalidDataException($"its manifest lists {manifest.Stages.Count:N0} stages (at most {limits.MaxStages:N0} allowed).");
        for (int i = 0; i < manifest.Stages.Count; i++)
            if (manifest.Stages[i] is not { Type: not null, Entry: not null })
                throw new InvalidDataException($"its manifest's stage {i} has no type or no entry.");
        return manifest;
    }

    private static IEnumerable<ITransformer> Flatten(ITransformer model)
    {
        if (model is IEnumerable<ITransformer> chain)
        {
            foreach (var inner in chain) foreach (var t in Flatten(inner)) yield return t;
        }
        else yield return model;
    }

    private static StageEntry WriteMlNet(ModelOperationsCatalog catalog, ZipArchive zip, string name, ITransformer chain, DataViewSchema schema)
    {
        var buffer = new MemoryStream();
        catalog.Save(chain, schema, buffer);
        var bytes = buffer.ToArray();
        using (var entry = zip.CreateEntry(name, CompressionLevel.NoCompression).Open()) entry.Write(bytes);
        return new StageEntry("mlnet", name, Hash(bytes), null);
    }

    private static StageEntry WriteDeep(ZipArchive zip, string folder, ISavedNetwork deep)
    {
        var record = deep.ToRecord();
        var weights = new MemoryStream();
        if (deep is Models.Common.DeepTransformer transformer) transformer.WriteWeights(weights);
        else Persistence.WeightsFile.Write(deep.Module, weights);
        var weightBytes = weights.ToArray();
        var recordBytes = JsonSerializer.SerializeToUtf8Bytes(record, new JsonSerializerOptions { WriteIndented = true });
        using (var e = zip.CreateEntry(folder + "/transformer.json").Open()) e.Write(recordBytes);
        using (var e = zip.CreateEntry(folder + "/weights.bin").Open()) e.Write(weightBytes);
        return new StageEntry("deep", folder, Hash(recordBytes) + ":" + Hash(weightBytes), record.Kind);
    }

    private static StageEntry WriteTransform(ZipArchive zip, string name, IPersistentTransformer transform)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(transform.Settings());
        using (var e = zip.CreateEntry(name).Open()) e.Write(bytes);
        return new StageEntry("transform", name, Hash(bytes), transform.Kind);
    }

    private static ITransformer ReadMlNet(ModelOperationsCatalog catalog, EntryReader entries, StageEntry stage, int index, ModelFileLimits limits, out DataViewSchema schema)
    {
        var bytes = entries.Read(stage.Entry, stage.Sha256);
        // ML.NET reads this nested zip with System.IO.Compression, which reads no entry past its declared size: capping
        // the declared sizes caps what ML.NET decompresses.
        CheckNestedZip(bytes, stage.Entry, limits);
        try
        {
            return catalog.Load(new MemoryStream(bytes, writable: false), out schema);
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException or InvalidDataException or ArgumentException
                                       or NotSupportedException or KeyNotFoundException or EndOfStreamException)
        {
            throw new InvalidDataException($"stage {index} ('{stage.Entry}'): ML.NET could not load it: {ex.Message}", ex);
        }
    }

    private static void CheckNestedZip(byte[] bytes, string name, ModelFileLimits limits)
    {
        using var nested = new ZipArchive(new MemoryStream(bytes, writable: false), ZipArchiveMode.Read);
        long total = 0;
        foreach (var entry in nested.Entries)
        {
            if (entry.Length > limits.MaxEntryBytes || (total += entry.Length) > limits.MaxTotalBytes)
                throw new InvalidDataException($"entry '{name}' holds '{entry.FullName}', which declares {entry.Length:N0} bytes when decompressed " +
                    $"({limits.MaxEntryBytes:N0} allowed per entry, {limits.MaxTotalBytes:N0} in all): a damaged file or a zip bomb.");
        }
    }

    private static ITransformer ReadTransform(EntryReader entries, StageEntry stage, int index)
    {
        var settings = JsonNodeOrError(entries.Read(stage.Entry, stage.Sha256), stage.Entry);
        var format = SavedModelFormats.Find<TransformModelFormat>(stage.Kind);
        return Interpret(() => format.Create(settings), index, stage.Entry, format.Kind);
    }

    private static System.Text.Json.Nodes.JsonObject JsonNodeOrError(byte[] bytes, string entry)
    {
        try
        {
            return System.Text.Json.Nodes.JsonNode.Parse(bytes) as System.Text.Json.Nodes.JsonObject
                ?? throw new InvalidDataException($"{entry}: the settings are not a JSON object.");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{entry}: the settings are not valid JSON: {ex.Message}", ex);
        }
    }

    private static ITransformer ReadDeep(EntryReader entries, StageEntry stage, int index, Device device, ModelFileLimits limits)
    {
        var hashes = stage.Sha256?.Split(':');
        if (hashes is not { Length: 2 })
            throw new InvalidDataException($"stage {index} ('{stage.Entry}') has no SHA-256 pair (record:weights) in the manifest; MlNetDeep always writes one, so the file was altered or not written by MlNetDeep.");
        string recordEntry = stage.Entry + "/transformer.json", weightsEntry = stage.Entry + "/weights.bin";
        var recordBytes = entries.Read(recordEntry, hashes[0], limits.MaxRecordBytes);
        var weightBytes = entries.Read(weightsEntry, hashes[1]);
        var record = ReadRecord(recordBytes, recordEntry);
        var format = SavedModelFormats.Find<NetworkModelFormat>(record.Kind);
        SavedModelFormats.CheckVersion(format, record.Version);
        CheckRecord(record, recordEntry, limits);

        IReadOnlyList<WeightsFile.StoredTensor> layout;
        try { layout = WeightsFile.ReadLayout(weightBytes); }
        catch (InvalidDataException ex) { throw new InvalidDataException($"{weightsEntry}: {ex.Message}", ex); }

        // The network may allocate no more values than the weights hold: each layer is checked before it is built.
        TorchRuntime.EnsureLoaded();
        nn.Module module;
        using (StateBudget.Limit(layout.Sum(t => t.Values), $"the weights of '{weightsEntry}'"))
            module = Interpret(() => format.BuildModule(record), index, recordEntry, format.Kind);
        try
        {
            try { WeightsFile.Read(module, weightBytes, layout); }
            catch (InvalidDataException ex) { throw new InvalidDataException($"{weightsEntry}: {ex.Message}", ex); }
            module.to(device);
            return Interpret(() => format.Create(record, module, device), index, recordEntry, format.Kind);
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    private static TransformerRecord ReadRecord(byte[] bytes, string entry)
    {
        try
        {
            return JsonSerializer.Deserialize<TransformerRecord>(bytes) ?? throw new InvalidDataException($"{entry}: empty record.");
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or ArgumentException or InvalidOperationException)
        {
            throw new InvalidDataException($"{entry}: the record is not valid: {ex.Message}", ex);
        }
    }

    /// <summary>The record's sizes against the limits, before anything is built from them.</summary>
    private static void CheckRecord(TransformerRecord record, string entry, ModelFileLimits limits)
    {
        if (string.IsNullOrEmpty(record.FeatureColumnName)) throw new InvalidDataException($"{entry}: the record names no feature column.");
        if (record.Network?.Layers is null || record.Settings is null) throw new InvalidDataException($"{entry}: the record has no network or no settings.");
        var shape = record.InputShape ?? throw new InvalidDataException($"{entry}: the record has no input shape.");
        string text = $"[{string.Join(", ", shape)}]";
        if (shape.Length is 0 or > WeightsFile.MaxDimensions || shape.Any(d => d <= 0))
            throw new InvalidDataException($"{entry}: the input shape {text} needs 1 to {WeightsFile.MaxDimensions} positive sizes.");
        long values = 1;
        foreach (var d in shape)
        {
            values *= d; // below 2^31 times an int: no long overflow
            if (values > int.MaxValue)
                throw new InvalidDataException($"{entry}: the input shape {text} holds more than {int.MaxValue:N0} values per sample (the size overflows).");
        }
        if (record.ScoringBatchSize < 1 || (long)record.ScoringBatchSize * values > limits.MaxScoringBatchValues)
            throw new InvalidDataException($"{entry}: ScoringBatchSize {record.ScoringBatchSize} with {values:N0} values per sample is outside 1 to {limits.MaxScoringBatchValues:N0} values per batch.");
    }

    /// <summary>
    /// Runs a format's code on a record from the file: the errors it raises on values it cannot use become
    /// <see cref="InvalidDataException"/>s that name the stage and keep the cause; anything else passes unchanged.
    /// </summary>
    private static T Interpret<T>(Func<T> build, int index, string entry, string kind)
    {
        try
        {
            return build();
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or KeyNotFoundException or OverflowException
                                       or FormatException or JsonException or NotSupportedException)
        {
            throw new InvalidDataException($"stage {index} ('{entry}'): its '{kind}' record cannot be turned into a model: {ex.Message}", ex);
        }
    }

    private static string Hash(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes));

    /// <summary>Reads entries of one file within the limits: per-entry and total caps, and the manifest's SHA-256.</summary>
    private sealed class EntryReader(ZipArchive zip, ModelFileLimits limits)
    {
        private long _total;

        public byte[] Read(string name, string? sha256, long? cap = null)
        {
            if (string.IsNullOrEmpty(sha256))
                throw new InvalidDataException($"entry '{name}' has no SHA-256 in the manifest; MlNetDeep always writes one, so the file was altered or not written by MlNetDeep.");
            var bytes = ReadUnhashed(name, cap ?? limits.MaxEntryBytes);
            if (!string.Equals(Hash(bytes), sha256, StringComparison.OrdinalIgnoreCase))
                throw new InvalidDataException($"entry '{name}' is damaged: its SHA-256 does not match the manifest (checksum mismatch).");
            return bytes;
        }

        public byte[] ReadUnhashed(string name, long cap)
        {
            var entry = zip.GetEntry(name) ?? throw new InvalidDataException($"entry '{name}' is missing.");
            cap = Math.Min(cap, limits.MaxEntryBytes);
            if (entry.Length > cap)
                throw new InvalidDataException($"entry '{name}' declares {entry.Length:N0} bytes when decompressed, more than the {cap:N0} allowed: a damaged file or a zip bomb.");
            if (_total + entry.Length > limits.MaxTotalBytes)
                throw new InvalidDataException($"entry '{name}' takes the file past {limits.MaxTotalBytes:N0} decompressed bytes: a damaged file or a zip bomb.");
            var bytes = new byte[entry.Length];
            int read = 0;
            bool longer;
            try
            {
                using var stream = entry.Open();
                for (int n; read < bytes.Length && (n = stream.Read(bytes, read, bytes.Length - read)) > 0;) read += n;
                longer = read == bytes.Length && stream.Read(new byte[1]) > 0;
            }
            catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException)
            {
                throw new InvalidDataException($"entry '{name}' cannot be decompressed: {ex.Message}", ex);
            }
            if (read < bytes.Length) throw new InvalidDataException($"entry '{name}' is truncated: {read:N0} of its {bytes.Length:N0} bytes.");
            if (longer) throw new InvalidDataException($"entry '{name}' holds more than the {bytes.Length:N0} bytes its header declares: a damaged file or a zip bomb.");
            _total += bytes.Length;
            return bytes;
        }
    }
}

/// <summary>The limits a model file is checked against while it is read (see docs/reliability.md).</summary>
internal sealed record ModelFileLimits
{
    public static ModelFileLimits Default { get; } = new();

    /// <summary>The most bytes one zip entry may hold once decompressed, by its header and in fact.</summary>
    public long MaxEntryBytes { get; init; } = 1L << 30;

    /// <summary>The most decompressed bytes all entries of a file may hold together (nested ML.NET entries per stage).</summary>
    public long MaxTotalBytes { get; init; } = 4L << 30;

    public long MaxManifestBytes { get; init; } = 1 << 20;

    public long MaxRecordBytes { get; init; } = 16 << 20;

    public int MaxStages { get; init; } = 10_000;

    /// <summary>The most values one scoring batch may hold (ScoringBatchSize x values per sample).</summary>
    public long MaxScoringBatchValues { get; init; } = 1 << 28;
}
