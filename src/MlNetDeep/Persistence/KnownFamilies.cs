namespace MlNetDeep.Persistence;

/// <summary>Makes every built-in family register its loader (and every persistent transform) with <see cref="DeepModelFile"/> before a model is read.</summary>
internal static class KnownFamilies
{
    public static void EnsureRegistered()
    {
        Models.Classification.NeuralNetworkClassificationTransformer.EnsureRegistered();
        Models.Regression.NeuralNetworkRegressionTransformer.EnsureRegistered();
        Data.PolynomialFeaturesTransformer.EnsureRegistered();
        Models.Autoencoders.AutoencoderTransformer.EnsureRegistered();
        Models.Autoencoders.VariationalAutoencoderTransformer.EnsureRegistered();
        Models.Autoencoders.DecoderTransformer.EnsureRegistered();
    }
}
