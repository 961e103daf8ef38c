using Microsoft.ML;
using MlNetDeep.Models.Anomaly;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Native;

namespace MlNetDeep;

/// <summary>Autoencoder anomaly detection on ML.NET's anomaly-detection catalog.</summary>
public static class AnomalyDetectionCatalogExtensions
{
    /// <summary>
    /// An autoencoder anomaly detector (dense, convolutional or variational underneath, as the options' autoencoder
    /// says). Adds <c>Score</c>, <c>PredictedLabel</c> and <c>FeatureErrors</c>; <c>AnomalyDetection.Evaluate</c> reads them.
    /// </summary>
    public static AutoencoderAnomalyDetector Autoencoder(this AnomalyDetectionCatalog.AnomalyDetectionTrainers catalog, AutoencoderAnomalyOptions options) =>
        new(HostEnvironments.Of(catalog), options);

    /// <summary>A dense autoencoder anomaly detector with the common settings as arguments (threshold: the <paramref name="thresholdQuantile"/> of the training scores).</summary>
    public static AutoencoderAnomalyDetector Autoencoder(this AnomalyDetectionCatalog.AnomalyDetectionTrainers catalog, string featureColumnName = "Features",
        int latentSize = 32, int epochs = 20, double thresholdQuantile = 0.99) =>
        catalog.Autoencoder(new AutoencoderAnomalyOptions
        {
            Autoencoder = new AutoencoderOptions { FeatureColumnName = featureColumnName, LatentSize = latentSize, Epochs = epochs },
            ThresholdQuantile = thresholdQuantile,
        });

    /// <summary>
    /// The detector with another threshold, as ML.NET's <c>ChangeModelThreshold</c> does for its own detectors: a new
    /// model (with its own copy of the network) whose PredictedLabel is Score &gt; <paramref name="threshold"/>.
    /// </summary>
    public static AutoencoderAnomalyTransformer ChangeModelThreshold(this AnomalyDetectionCatalog catalog, AutoencoderAnomalyTransformer model, float threshold)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.Threshold == threshold ? model : model.WithThreshold(threshold);
    }
}
