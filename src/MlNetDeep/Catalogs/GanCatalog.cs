using Microsoft.ML;
using MlNetDeep.Models.Generative;
using MlNetDeep.Native;

namespace MlNetDeep;

/// <summary>Generative adversarial networks on ML.NET's transforms catalog.</summary>
public static class GanCatalog
{
    /// <summary>
    /// A GAN (DCGAN by default; the course's dense GAN with <see cref="GanKind.Dense"/>; conditional with a label column)
    /// trained on an image column; the fitted transformer is the generator.
    /// </summary>
    public static GanEstimator GenerativeAdversarialNetwork(this TransformsCatalog catalog, GanOptions options) =>
        new(HostEnvironments.Of(catalog), options);
}
