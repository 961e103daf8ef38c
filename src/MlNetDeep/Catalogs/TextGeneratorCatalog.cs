using Microsoft.ML;
using MlNetDeep.Models.Recurrent;
using MlNetDeep.Native;

namespace MlNetDeep;

/// <summary>Recurrent language models on ML.NET's text transforms catalog.</summary>
public static class TextGeneratorCatalog
{
    /// <summary>
    /// A character- or word-level language model (two LSTM layers by default) trained on a text column; the fitted
    /// transformer generates text and adds next-token probabilities.
    /// </summary>
    public static TextGeneratorEstimator TextGenerator(this TransformsCatalog.TextTransforms catalog, TextGeneratorOptions? options = null) =>
        new(HostEnvironments.Of(catalog), options ?? new TextGeneratorOptions());
}
