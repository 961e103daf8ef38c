using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Persistence;

/// <summary>
/// One file for a whole fitted pipeline that mixes ML.NET stages and deep transformers: a zip whose runs of ML.NET
/// stages are stored by ML.NET's own Model.Save, and whose deep stages are stored as a record (JSON) and checked weights.
/// </summary>
public static class DeepModelFile
{
    public const string Format = "MlNetDeep.Model";
    public const int Version = 1;
    private const string ManifestEntry = "mlnetdeep.json";

    private sealed record Manifest(string Format, int Version, List<StageEntry> Stages);
    private sealed record StageEntry(string Type, string Entry, string? Sha256, string? Kind);

    /// <summary>Registers the saved-model format of a family defined outside MlNetDeep (the library's own are found by themselves).</summary>
    public static void Register(SavedModelFormat format) => SavedModelFormats.Register(format);

    public static void Save(ModelOperationsCatalog catalog, ITransformer model, DataViewSchema inputSchema, string path)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null) Directory.CreateDirectory(directory);
        var temp = path + ".saving";
        using (var file = File.Create(temp)) Save(catalog, model, inputSchema, file);
        File.Move(temp, path, overwrite: true);
    }

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

    public static ITransformer Load(ModelOperationsCatalog catalog, Stream stream, out DataViewSchema inputSchema, string name = "stream")
    {
        try
        {
            return LoadChecked(catalog, stream, out inputSchema, name);
        }
        catch (Exception ex) when (ex is InvalidDataException or IOException or JsonException or FormatException or ArgumentException
                                       or InvalidOperationException or NotSupportedException or KeyNotFoundException or OverflowException
                                       or IndexOutOfRangeException or NullReferenceException or InvalidCastException)
        {
            throw new InvalidDataException($"'{name}' is not a readable MlNetDeep model: {ex.Message}", ex);
        }
    }

    private static ITransformer LoadChecked(ModelOperationsCatalog catalog, Stream stream, out DataViewSchema inputSchema, string name)
    {
        using var zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        var manifestEntry = zip.GetEntry(ManifestEntry);
        if (manifestEntry is null)
        {
            bool mlnet = zip.Entries.Any(e => e.FullName.StartsWith("TransformerChain/", StringComparison.Ordinal) || e.FullName.StartsWith("Schema/", StringComparison.Ordinal));
            throw new InvalidDataException(mlnet
                ? "it is an ML.NET model file, not an MlNetDeep one: load it with mlContext.Model.Load."
                : "it is a zip file without an MlNetDeep manifest.");
        }
        Manifest manifest;
        using (var s = manifestEntry.Open())
            manifest = JsonSerializer.Deserialize<Manifest>(s) ?? throw new InvalidDataException("its manifest is empty.");
        if (manifest.Format != Format) throw new InvalidDataException($"its format is '{manifest.Format}', expected '{Format}'.");
        if (manifest.Version > Version) throw new InvalidDataException($"it was written by a newer MlNetDeep (format version {manifest.Version}; this one reads up to {Version}).");
        if (manifest.Stages is not { Count: > 0 } || manifest.Stages[0].Type != "mlnet") throw new InvalidDataException("it has no input schema stage.");

        var device = HostEnvironments.Device(HostEnvironments.Of(catalog));
        var stages = new List<ITransformer>();
        inputSchema = null!;
        for (int i = 0; i < manifest.Stages.Count; i++)
        {
            var stage = manifest.Stages[i];
            if (stage.Type == "mlnet")
            {
                var bytes = ReadEntry(zip, stage.Entry, stage.Sha256);
                var transformer = catalog.Load(new MemoryStream(bytes), out var schema);
                if (i == 0) { inputSchema = schema; continue; }
                stages.AddRange(Flatten(transformer));
            }
            else if (stage.Type == "deep")
            {
                stages.Add(ReadDeep(zip, stage, device));
            }
            else if (stage.Type == "transform")
            {
                stages.Add(ReadTransform(zip, stage));
            }
            else throw new InvalidDataException($"stage {i} has an unknown type '{stage.Type}'.");
        }
        return new TransformerChain<ITransformer>(stages.ToArray());
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
        Persistence.WeightsFile.Write(deep.Module, weights);
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

    private static ITransformer ReadTransform(ZipArchive zip, StageEntry stage)
    {
        var settings = System.Text.Json.Nodes.JsonNode.Parse(ReadEntry(zip, stage.Entry, stage.Sha256)) as System.Text.Json.Nodes.JsonObject
            ?? throw new InvalidDataException($"{stage.Entry}: the settings are not a JSON object.");
        var format = SavedModelFormats.Find<TransformModelFormat>(stage.Kind);
        return format.Create(settings);
    }

    private static ITransformer ReadDeep(ZipArchive zip, StageEntry stage, Device device)
    {
        var hashes = stage.Sha256?.Split(':') ?? [];
        var recordBytes = ReadEntry(zip, stage.Entry + "/transformer.json", hashes.ElementAtOrDefault(0));
        var weightBytes = ReadEntry(zip, stage.Entry + "/weights.bin", hashes.ElementAtOrDefault(1));
        var record = JsonSerializer.Deserialize<TransformerRecord>(recordBytes) ?? throw new InvalidDataException($"{stage.Entry}: empty record.");
        var format = SavedModelFormats.Find<NetworkModelFormat>(record.Kind);
        SavedModelFormats.CheckVersion(format, record.Version);
        TorchRuntime.EnsureLoaded();
        var module = format.BuildModule(record);
        try
        {
            WeightsFile.Read(module, new MemoryStream(weightBytes));
            module.to(device);
            return format.Create(record, module, device);
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    private static byte[] ReadEntry(ZipArchive zip, string name, string? sha256)
    {
        var entry = zip.GetEntry(name) ?? throw new InvalidDataException($"entry '{name}' is missing.");
        using var stream = entry.Open();
        var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        var bytes = buffer.ToArray();
        if (sha256 is not null && Hash(bytes) != sha256) throw new InvalidDataException($"entry '{name}' is damaged (checksum mismatch).");
        return bytes;
    }

    private static string Hash(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes));
}
