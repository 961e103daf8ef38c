// The training half of the model, in Model Builder's layout: the pipeline and the code that trains and saves it.
using Microsoft.ML;
using MlNetDeep;
using MlNetDeep.Models.Anomaly;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Networks;

namespace TumourAnomalies;

public partial class TumourAnomalyModel
{
    /// <summary>Loads the CSV, trains the pipeline on its benign rows and saves the model to <paramref name="outputModelPath"/>.</summary>
    public static void Train(string outputModelPath, string inputDataFilePath)
    {
        var ml = new MLContext(seed: 1);
        var data = LoadData(ml, inputDataFilePath);
        var model = BuildPipeline(ml).Fit(data);
        ml.Model.SaveDeep(model, data.Schema, outputModelPath);
    }

    public static IDataView LoadData(MLContext ml, string path) =>
        ml.Data.LoadFromTextFile<ModelInput>(path, separatorChar: ',', hasHeader: true, allowQuoting: true);

    /// <summary>
    /// The 30 measurements as one vector, standardised, then an autoencoder anomaly detector that learns the benign
    /// tumours (the rows whose Malignant label is false) and flags rows it reconstructs worse than 99 % of them.
    /// </summary>
    public static IEstimator<ITransformer> BuildPipeline(MLContext ml) =>
        ml.Transforms.NormalizeMeanVariance(@"Features", @"Measurements", fixZero: false)
            .Append(ml.AnomalyDetection.Trainers.Autoencoder(new AutoencoderAnomalyOptions
            {
                LabelColumnName = @"Malignant", // train on the benign rows only
                ThresholdQuantile = 0.99,
                Autoencoder = new AutoencoderOptions
                {
                    FeatureColumnName = @"Features", LatentSize = 4, Epochs = 200, BatchSize = 16, Seed = 1,
                    Encoder = new NetworkSpec([new Dense(16, ActivationKind.ReLU), new Dense(Dense.TaskOutputs)]) { Name = "encoder-16" },
                    Decoder = new NetworkSpec([new Dense(16, ActivationKind.ReLU), new Dense(Dense.TaskOutputs)]) { Name = "decoder-16" },
                },
            }));
}
