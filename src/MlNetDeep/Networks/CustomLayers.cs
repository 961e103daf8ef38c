using System.Collections.Concurrent;
using MlNetDeep.Persistence.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Networks;

/// <summary>
/// Makes a user's own TorchSharp module for an input shape (batch excluded) and the layer's <see cref="Custom.Settings"/>
/// text. It must be deterministic: the same shape and settings give a module with the same parameters and buffers (names
/// and shapes), since a saved model's weights are loaded into a module made anew by the same factory.
/// </summary>
public delegate nn.Module<Tensor, Tensor> CustomLayerFactory(int[] inputShape, string? settings);

/// <summary>
/// The registry of custom layers: factories by name, as families from other assemblies register their model formats.
/// Register each factory once at start-up, before training or before <c>LoadDeep</c> reads a model that uses it.
/// </summary>
public static class CustomLayers
{
    private static readonly ConcurrentDictionary<string, CustomLayerFactory> Factories = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<(string, string?, string), (int[] Shape, long State)> Probes = new();

    /// <summary>Registers <paramref name="factory"/> under <paramref name="name"/>; registering a name again replaces its factory.</summary>
    public static void Register(string name, CustomLayerFactory factory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(factory);
        Factories[name] = factory;
        foreach (var key in Probes.Keys.Where(k => k.Item1 == name)) Probes.TryRemove(key, out _);
    }

    /// <summary>Whether a factory is registered under <paramref name="name"/>.</summary>
    public static bool IsRegistered(string name) => Factories.ContainsKey(name);

    internal static nn.Module<Tensor, Tensor> Create(string name, int[] input, string? settings)
    {
        if (!Factories.TryGetValue(name, out var factory))
            throw new InvalidOperationException($"The network uses the custom layer '{name}', and no factory is registered under that name: " +
                $"call CustomLayers.Register(\"{name}\", ...) at start-up, before training or loading the model." +
                (Factories.IsEmpty ? "" : $" Registered: {string.Join(", ", Factories.Keys.Order())}."));
        var module = factory(input.ToArray(), settings) ?? throw new InvalidOperationException($"The factory of the custom layer '{name}' returned no module.");
        return module;
    }

    /// <summary>The output shape and the number of state values of the module made for <paramref name="input"/>, from one dry run on zeros (kept).</summary>
    internal static (int[] Shape, long State) Probe(string name, int[] input, string? settings) =>
        Probes.GetOrAdd((name, settings, string.Join(",", input)), _ =>
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            using var module = Create(name, input, settings);
            module.eval();
            Tensor output;
            try
            {
                output = module.call(zeros([1, .. input.Select(d => (long)d)]));
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                throw new InvalidOperationException($"The custom layer '{name}' fails on an input of shape [{string.Join(", ", input)}]: {ex.Message}", ex);
            }
            if (output.dim() < 2 || output.shape[0] != 1)
                throw new InvalidOperationException($"The custom layer '{name}' returned [{string.Join(", ", output.shape)}] for a batch of one; it must keep the batch as the first axis.");
            var shape = output.shape.Skip(1).Select(d => checked((int)d)).ToArray();
            long state = module.parameters().Sum(p => p.numel()) + module.buffers().Sum(b => b.numel());
            return (shape, state);
        });
}

/// <summary>
/// A layer made by a user's TorchSharp module (see <see cref="CustomLayers.Register"/>): <paramref name="Name"/> names
/// the registered factory and <paramref name="Settings"/> is any text the factory reads (JSON, say), saved with the
/// network. Its output shape comes from one dry run of the module. It trains in every trainer, saves and loads with
/// SaveDeep/LoadDeep (weights by the module's own parameter names), and scores in Transform and PredictionEngine. ONNX
/// export is refused: TorchSharp cannot trace a module into ONNX, so a network with a custom layer scores with TorchSharp.
/// </summary>
public sealed record Custom(string Name, string? Settings = null) : Layer
{
    public override int[] OutputShape(int[] input)
    {
        if (string.IsNullOrWhiteSpace(Name)) throw new InvalidOperationException("A custom layer needs the name of its factory.");
        return CustomLayers.Probe(Name, input, Settings).Shape;
    }

    public override nn.Module<Tensor, Tensor> Build(int[] input)
    {
        OutputShape(input);
        return CustomLayers.Create(Name, input, Settings);
    }

    internal override long StateSize(int[] input) => CustomLayers.Probe(Name, input, Settings).State;

    public override string Describe() => $"Custom({Name})";

    internal override string ToOnnx(OnnxGraph g, IReadOnlyList<string> x, IReadOnlyList<int[]> shapes, LayerWeights w) =>
        throw new NotSupportedException($"ONNX export does not support the custom layer '{Name}': a user's TorchSharp module cannot be traced into ONNX operators. Score it with TorchSharp (Transform, PredictionEngine, SaveDeep).");
}
