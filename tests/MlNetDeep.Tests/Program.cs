namespace MlNetDeep.Tests;

/// <summary>
/// The test assembly's entry point (the test runner does not use it). <c>dotnet MlNetDeep.Tests.dll concurrent-load-fit
/// &lt;model files&gt;</c> runs <see cref="TinyFamilies.LoadAndFitAtOnce"/> in a fresh process, where nothing has been
/// loaded, registered or initialised yet: exit code 0 when everything finished, 3 on a hang, 1 on an error.
/// </summary>
internal static class Program
{
    public const string ConcurrentLoadFit = "concurrent-load-fit";

    public static int Main(string[] args)
    {
        if (args is not [ConcurrentLoadFit, .. var files]) return 0;
        try
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            bool finished = TinyFamilies.LoadAndFitAtOnce(files, TimeSpan.FromSeconds(120));
            Console.WriteLine(finished ? $"finished in {clock.Elapsed.TotalSeconds:F1} s" : "still running after 120 s: a hang");
            return finished ? 0 : 3;
        }
        catch (Exception ex)
        {
            Console.Error.WriteLine(ex);
            return 1;
        }
    }
}
