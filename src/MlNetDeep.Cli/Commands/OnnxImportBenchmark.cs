using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using MlNetDeep.Persistence.Onnx;
using static TorchSharp.torch;

namespace MlNetDeep.Cli.Commands;

/// <summary>
/// <c>mlnetdeep benchmark onnx-import FOLDER</c>: for each ONNX file, the import time and peak resident memory of
/// MlNetDeep's importer next to ONNX Runtime's session creation for the same file, each in a process of its own (peak
/// = the process's high-water mark minus its resident memory just before, with the native libraries already loaded);
/// where NAME.input.bin and NAME.output.bin lie beside NAME*.onnx, the largest difference from those reference outputs.
/// </summary>
internal static class OnnxImportBenchmark
{
    public static Command Create()
    {
        var folder = new Argument<string>("folder") { Description = "A folder of .onnx files (e.g. torchvision models exported with torch.onnx.export)." };
        var one = new Option<string?>("--measure") { Description = "Measure one file in this process (used by the benchmark itself).", Hidden = true };
        var engine = new Option<string>("--engine") { Description = "mlnetdeep or onnxruntime (with --measure).", DefaultValueFactory = _ => "mlnetdeep", Hidden = true };
        var command = new Command("onnx-import", "Import time and peak memory of the ONNX importer against ONNX Runtime's session creation, per file.") { folder, one, engine };
        command.SetAction(result =>
        {
            if (result.GetValue(one) is { } file) return Measure(file, result.GetValue(engine)!);
            var files = Directory.Exists(result.GetValue(folder)) ? Directory.GetFiles(result.GetValue(folder)!, "*.onnx").Order().ToArray()
                : throw new DirectoryNotFoundException($"The folder '{result.GetValue(folder)}' does not exist.");
            if (files.Length == 0) throw new FileNotFoundException($"'{result.GetValue(folder)}' holds no .onnx files.");
            Console.WriteLine($"{"file",-28}{"MB",8}{"import s",10}{"peak MB",9}{"x file",8}{"ORT s",8}{"ORT MB",8}{"max |diff|",12}");
            foreach (var path in files)
            {
                var ours = Child(path, "mlnetdeep");
                var ort = Child(path, "onnxruntime");
                double mb = new FileInfo(path).Length / 1e6;
                string Cell(Dictionary<string, string>? r, string key, string format) =>
                    r is not null && r.TryGetValue(key, out var v) ? double.Parse(v, CultureInfo.InvariantCulture).ToString(format, CultureInfo.InvariantCulture) : "-";
                string ratio = ours?.TryGetValue("peak_mb", out var peak) == true ? (double.Parse(peak, CultureInfo.InvariantCulture) / mb).ToString("F2", CultureInfo.InvariantCulture) : "-";
                Console.WriteLine($"{Path.GetFileName(path),-28}{mb,8:F1}{Cell(ours, "seconds", "F2"),10}{Cell(ours, "peak_mb", "F0"),9}{ratio,8}" +
                    $"{Cell(ort, "seconds", "F2"),8}{Cell(ort, "peak_mb", "F0"),8}{(ours?.GetValueOrDefault("max_diff") ?? ours?.GetValueOrDefault("error") ?? "-"),12}");
            }
            return 0;
        });
        return command;
    }

    /// <summary>Runs this command with --measure in a child process and reads its key=value line.</summary>
    private static Dictionary<string, string>? Child(string path, string engine)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (!Environment.ProcessPath!.EndsWith("MlNetDeep.Cli", StringComparison.Ordinal)) start.ArgumentList.Add(typeof(OnnxImportBenchmark).Assembly.Location);
        foreach (var argument in new[] { "benchmark", "onnx-import", ".", "--measure", path, "--engine", engine }) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEnd();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        var line = stdout.Split('\n').LastOrDefault(l => l.StartsWith("result ", StringComparison.Ordinal));
        if (line is null) return new() { ["error"] = (stderr.Split('\n').FirstOrDefault(l => l.Length > 0) ?? "failed").Trim() };
        return line["result ".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
    }

    private static int Measure(string path, string engine)
    {
        string F(double v) => v.ToString("G4", CultureInfo.InvariantCulture);
        if (engine == "onnxruntime")
        {
            using (var warm = new Microsoft.ML.OnnxRuntime.SessionOptions()) { } // the native library loaded before the baseline
            long before = Resident();
            var clock = Stopwatch.StartNew();
            using var session = new Microsoft.ML.OnnxRuntime.InferenceSession(path);
            double seconds = clock.Elapsed.TotalSeconds;
            Console.WriteLine($"result seconds={F(seconds)} peak_mb={F((Peak() - before) / 1e6)}");
            return 0;
        }
        Native.TorchRuntime.EnsureLoaded();
        long baseline = Resident();
        var timer = Stopwatch.StartNew();
        using var imported = OnnxImporter.Import(path);
        double importSeconds = timer.Elapsed.TotalSeconds;
        double peakMb = (Peak() - baseline) / 1e6;
        string difference = "-";
        var stem = Path.Combine(Path.GetDirectoryName(path)!, Path.GetFileNameWithoutExtension(path).Split("-op")[0]);
        if (File.Exists(stem + ".input.bin") && File.Exists(stem + ".output.bin"))
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var input = Floats(stem + ".input.bin");
            int sample = imported.InputShape.Aggregate(1, (a, b) => a * b);
            var x = tensor(input, [input.Length / sample, .. imported.InputShape.Select(d => (long)d)]);
            var ours = imported.Module.call(x).reshape(-1).data<float>().ToArray();
            var reference = Floats(stem + ".output.bin");
            if (ours.Length == reference.Length) difference = F(ours.Zip(reference).Max(p => Math.Abs(p.First - p.Second)));
        }
        Console.WriteLine($"result seconds={F(importSeconds)} peak_mb={F(peakMb)} max_diff={difference} layers={imported.Network.Layers.Count}");
        return 0;
    }

    private static float[] Floats(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var values = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
        return values;
    }

    /// <summary>The resident memory now, with the high-water mark reset to it (Linux's clear_refs 5) where the kernel allows.</summary>
    private static long Resident()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        return Status("VmRSS:");
    }

    private static long Peak() => Status("VmHWM:");

    private static long Status(string key)
    {
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal));
        return line is not null && long.TryParse(line[key.Length..].Trim().Split(' ')[0], out long kb) ? kb * 1024 : 0;
    }
}
