using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Runtime;
using TorchSharp;

namespace MlNetDeep.Native;

/// <summary>
/// Reaches the MLContext behind an ML.NET catalog: its environment (for seeds and logging) and its GPU settings.
/// ML.NET keeps a catalog's Environment and the context's GPU fields internal, so this is the one place that reads
/// them by reflection; a test pins it down.
/// </summary>
internal static class HostEnvironments
{
    private const BindingFlags Any = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic;

    /// <summary>The environment of an ML.NET catalog (or the MLContext itself).</summary>
    public static IHostEnvironment Of(object catalog)
    {
        if (catalog is IHostEnvironment env) return env;
        for (var type = catalog.GetType(); type is not null; type = type.BaseType)
        {
            foreach (var property in type.GetProperties(Any | BindingFlags.DeclaredOnly))
            {
                if (property.GetIndexParameters().Length > 0) continue;
                if (typeof(IHostEnvironment).IsAssignableFrom(property.PropertyType) && property.GetValue(catalog) is IHostEnvironment found) return found;
            }
            foreach (var field in type.GetFields(Any | BindingFlags.DeclaredOnly))
                if (typeof(IHostEnvironment).IsAssignableFrom(field.FieldType) && field.GetValue(catalog) is IHostEnvironment found) return found;
        }
        var owner = catalog.GetType().GetProperty("Owner", Any)?.GetValue(catalog);
        if (owner is not null) return Of(owner);
        throw new InvalidOperationException($"Cannot find the ML.NET environment behind {catalog.GetType().FullName}: this ML.NET version changed its catalogs.");
    }

    /// <summary>MLContext.GpuDeviceId as the environment holds it.</summary>
    public static int? GpuDeviceId(IHostEnvironment env) => Read<int?>(env, "GpuDeviceId");

    /// <summary>MLContext.FallbackToCpu as the environment holds it.</summary>
    public static bool FallbackToCpu(IHostEnvironment env) => Read<bool?>(env, "FallbackToCpu") ?? true;

    /// <summary>The torch device the environment's GPU settings ask for.</summary>
    public static torch.Device Device(IHostEnvironment env) =>
        env is MLContext ml ? TorchRuntime.SelectDevice(ml) : TorchRuntime.SelectDevice(GpuDeviceId(env), FallbackToCpu(env));

    /// <summary>A seed drawn from the environment's random source (deterministic for an MLContext made with a seed).</summary>
    public static int NextSeed(IHostEnvironment env, string name) => env.Register(name).Rand.Next();

    private static T? Read<T>(object env, string name)
    {
        for (var type = env.GetType(); type is not null; type = type.BaseType)
        {
            var property = type.GetProperty(name, Any | BindingFlags.DeclaredOnly);
            if (property is not null) return (T?)property.GetValue(env);
        }
        return default;
    }
}
