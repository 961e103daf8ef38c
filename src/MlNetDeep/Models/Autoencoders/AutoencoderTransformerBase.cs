using MlNetDeep.Models.Common;
using MlNetDeep.Networks;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Autoencoders;

/// <summary>
/// What a fitted autoencoder or VAE offers besides its columns: encoding and decoding rows directly (for the latent-space
/// tools), and a decoder of its own (latent column in, images out) for an IDataView of latent vectors.
/// </summary>
public abstract class AutoencoderTransformerBase : DeepTransformer
{
    private protected AutoencoderTransformerBase(nn.Module module, NetworkSpec network, NetworkSpec encoder, NetworkSpec decoder, int[] latentShape,
        string featureColumnName, int[] inputShape, Device device, int scoringBatchSize, string latentColumnName, string reconstructionColumnName)
        : base(module, network, featureColumnName, inputShape, device, scoringBatchSize)
    {
        Encoder = encoder;
        Decoder = decoder;
        LatentShape = latentShape;
        LatentSize = latentShape.Aggregate(1, (a, b) => a * b);
        LatentColumnName = latentColumnName;
        ReconstructionColumnName = reconstructionColumnName;
    }

    /// <summary>The encoder's spec (task-sized layers resolved).</summary>
    public NetworkSpec Encoder { get; }

    /// <summary>The decoder's spec (task-sized layers resolved).</summary>
    public NetworkSpec Decoder { get; }

    /// <summary>The shape of the latent code as the decoder reads it (e.g. [2], or [32, 7, 7] for the convolutional denoiser).</summary>
    public int[] LatentShape { get; }

    /// <summary>Values in the latent column.</summary>
    public int LatentSize { get; }

    /// <summary>Name of the latent output column.</summary>
    public string LatentColumnName { get; }

    /// <summary>Name of the reconstruction output column.</summary>
    public string ReconstructionColumnName { get; }

    private protected IAutoencoderModule Parts => (IAutoencoderModule)Module;

    /// <summary>
    /// The autoencoder as ONNX: the feature column [N, features] in; two outputs, the latent column (a VAE's mean) and
    /// the reconstruction column (flattened), under the transformer's column names. A VAE's sampled latent column is
    /// not exported (ONNX Runtime's random draws would not match the seeded ones).
    /// </summary>
    private protected override byte[] ExportOnnx(string outputName)
    {
        var graph = new Persistence.Onnx.OnnxGraph();
        var (body, bodyShape) = Persistence.Onnx.OnnxExporter.EmitNetwork(graph, Encoder, Parts.EncoderModule, FeatureColumnName, InputShape);
        string latent = bodyShape.Length == 1 ? body : graph.Node("Flatten", [body], ("axis", 1L));
        if (Parts is VariationalAutoencoderModule vae)
        {
            var head = vae.MeanHead.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
            latent = Persistence.Onnx.OnnxExporter.EmitLayer(graph, new Dense(LatentSize), latent, [bodyShape.Aggregate(1, (a, b) => a * b)], head);
        }
        var (decoded, decodedShape) = Persistence.Onnx.OnnxExporter.EmitNetwork(graph, Decoder, Parts.DecoderModule, latent, LatentShape);
        string reconstruction = decodedShape.Length == 1 ? decoded : graph.Node("Flatten", [decoded], ("axis", 1L));
        return graph.ToModel(Network.Name, FeatureColumnName, FeatureSize,
            [(latent, LatentColumnName, LatentSize), (reconstruction, ReconstructionColumnName, FeatureSize)]);
    }

    /// <summary>Autoencoders export both columns: <c>SaveAsOnnx</c>'s output name is not used.</summary>
    private protected override Persistence.Onnx.OnnxExporter.Head? OnnxHead => Persistence.Onnx.OnnxExporter.Head.None;

    /// <summary>The latent codes (a VAE's means) of <paramref name="inputs"/>, each of the feature column's size.</summary>
    public float[][] Encode(IReadOnlyList<float[]> inputs) => Run(inputs, FeatureSize, InputShape, Parts.EncodeLatent, LatentSize);

    /// <summary>The decoded images of latent codes, each of <see cref="LatentSize"/> values.</summary>
    public float[][] Decode(IReadOnlyList<float[]> latents) => Run(latents, LatentSize, LatentShape, Parts.Decode, FeatureSize);

    private protected float[][] Run(IReadOnlyList<float[]> rows, int width, int[] shape, Func<Tensor, Tensor> pass, int outputWidth)
    {
        ArgumentNullException.ThrowIfNull(rows);
        for (int i = 0; i < rows.Count; i++)
            if (rows[i] is null || rows[i].Length != width) throw new ArgumentException($"Row {i} has {rows[i]?.Length ?? 0} values; expected {width}.", nameof(rows));
        var result = new float[rows.Count][];
        return WithModule(_ =>
        {
            for (int start = 0; start < rows.Count; start += ScoringBatchSize)
            {
                int n = Math.Min(ScoringBatchSize, rows.Count - start);
                using var scope = NewDisposeScope();
                using var noGrad = no_grad();
                var flat = new float[n * width];
                for (int i = 0; i < n; i++) rows[start + i].CopyTo(flat, i * width);
                var x = InputTensor(flat, [n, .. shape.Select(d => (long)d)], Device);
                var y = pass(x).reshape(n, -1).to(CPU).contiguous().data<float>().ToArray();
                for (int i = 0; i < n; i++) result[start + i] = y.AsSpan(i * outputWidth, outputWidth).ToArray();
            }
            return result;
        });
    }

    /// <summary>
    /// A transformer of its own that decodes a latent column (vector&lt;float&gt;[<see cref="LatentSize"/>]) into an image column:
    /// latents IDataView in, images IDataView out. It holds a copy of the decoder's weights (dispose it separately).
    /// </summary>
    public DecoderTransformer CreateDecoder(string? latentColumnName = null, string? outputColumnName = null)
    {
        var module = Decoder.Build(LatentShape);
        try
        {
            WithModule(_ => CopyWeights(Parts.DecoderModule, module));
            module.to(Device);
            return new DecoderTransformer(module, Decoder, latentColumnName ?? LatentColumnName, LatentShape, Device, ScoringBatchSize,
                outputColumnName ?? ReconstructionColumnName, FeatureSize);
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }
}
