using System.Runtime.CompilerServices;

namespace MlNetDeep.Native;

/// <summary>
/// Prepares TorchSharp's native shim as soon as MlNetDeep's assembly loads, so that the first TorchSharp call an app
/// makes through MlNetDeep (an importer, a network built from a spec, a tensor) finds the loadable shim, not only a
/// trainer's. A failure here is left for <see cref="TorchRuntime.EnsureLoaded"/> to report with its remedy.
/// </summary>
internal static class NativeStartup
{
#pragma warning disable CA2255 // a library's module initializer: the native fix must precede any TorchSharp call
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Prepare()
    {
        try
        {
            NativeShimLoader.Prepare();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or DllNotFoundException or BadImageFormatException or InvalidOperationException)
        {
            // Reported, with what to do, by TorchRuntime.EnsureLoaded on the first call that needs libtorch.
        }
    }
}
