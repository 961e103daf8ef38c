using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Orleans;
using Orleans.Runtime;
using Orleans.Storage;

namespace MlNetDeep.Cluster;

/// <summary>
/// Grain state in JSON files in one folder (shared by every silo: a local folder for silos on one machine, a shared
/// volume for several): written to a temporary file and renamed, with an ETag checked on every write, so a stale
/// activation cannot overwrite newer state. Enough for job progress (a few writes a shard); a database (ADO.NET) or
/// Redis provider replaces it without a change to the grains.
/// </summary>
public sealed class FileGrainStorage(string folder) : IGrainStorage
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public string Folder { get; } = Path.GetFullPath(folder);

    private sealed class Record
    {
        public string GrainId { get; set; } = "";
        public string ETag { get; set; } = "";
        public JsonElement State { get; set; }
    }

    private string PathOf(string stateName, GrainId grainId)
    {
        string id = grainId.ToString();
        string readable = new(id.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').Take(80).ToArray());
        string hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(stateName + "\n" + id)))[..12].ToLowerInvariant();
        return Path.Combine(Folder, $"{stateName}.{readable}.{hash}.json");
    }

    private static Record? ReadRecord(string path)
    {
        try { return JsonSerializer.Deserialize<Record>(File.ReadAllBytes(path), Json); }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
    }

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var record = ReadRecord(PathOf(stateName, grainId));
        if (record is null)
        {
            grainState.State = Activator.CreateInstance<T>();
            grainState.ETag = null;
            grainState.RecordExists = false;
        }
        else
        {
            grainState.State = record.State.Deserialize<T>(Json) ?? Activator.CreateInstance<T>();
            grainState.ETag = record.ETag;
            grainState.RecordExists = true;
        }
        return Task.CompletedTask;
    }

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        string path = PathOf(stateName, grainId);
        Directory.CreateDirectory(Folder);
        CheckETag(path, grainState.ETag);
        var record = new Record { GrainId = grainId.ToString(), ETag = Guid.NewGuid().ToString("N"), State = JsonSerializer.SerializeToElement(grainState.State, Json) };
        string temporary = $"{path}.{Guid.NewGuid():N}.tmp";
        try
        {
            File.WriteAllBytes(temporary, JsonSerializer.SerializeToUtf8Bytes(record, Json));
            File.Move(temporary, path, overwrite: true);
        }
        finally { File.Delete(temporary); }
        grainState.ETag = record.ETag;
        grainState.RecordExists = true;
        return Task.CompletedTask;
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        string path = PathOf(stateName, grainId);
        CheckETag(path, grainState.ETag);
        File.Delete(path);
        grainState.ETag = null;
        grainState.RecordExists = false;
        grainState.State = Activator.CreateInstance<T>();
        return Task.CompletedTask;
    }

    private static void CheckETag(string path, string? expected)
    {
        string? stored = ReadRecord(path)?.ETag;
        if (stored != expected)
            throw new InconsistentStateException($"The state in '{path}' was written by another activation (ETag {stored ?? "none"}, expected {expected ?? "none"}).", stored, expected);
    }
}
