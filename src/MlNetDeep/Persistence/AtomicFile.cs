namespace MlNetDeep.Persistence;

/// <summary>
/// Writes a file so that readers only ever see the old content or the whole new content: the data goes to a unique
/// temporary file in the same folder, is flushed to disk, and then replaces the target in one rename. Concurrent
/// writers to one path each finish with a complete file (the last rename wins); a failed write leaves the target as
/// it was and no temporary file behind.
/// </summary>
internal static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var target = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(target) ?? throw new ArgumentException($"'{path}' is not a file path.", nameof(path));
        Directory.CreateDirectory(directory);
        var temp = Path.Combine(directory, $".{Path.GetFileName(target)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 81920))
            {
                write(file);
                file.Flush(flushToDisk: true);
            }
            Replace(temp, target);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>
    /// Renames <paramref name="temp"/> over <paramref name="target"/>. A rename is atomic; on Windows it can fail for a
    /// moment while another writer's rename or a reader holds the target, so it is retried briefly.
    /// </summary>
    private static void Replace(string temp, string target)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                File.Move(temp, target, overwrite: true);
                return;
            }
            catch (Exception ex) when (OperatingSystem.IsWindows() && attempt < 20 && ex is IOException or UnauthorizedAccessException)
            {
                Thread.Sleep(10 * attempt);
            }
        }
    }
}
