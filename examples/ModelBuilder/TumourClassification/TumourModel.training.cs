// The training half of the model, in Model Builder's layout: the pipeline and the code that trains and saves it.
using Microsoft.ML;
using MlNetDeep;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Training;

namespace TumourClassification;

public partial class TumourModel
{
    public const string LabelColumn = @"Malignant";

    /// <summary>Loads the CSV, trains the pipeline on all of it and saves the model to <paramref name="outputModelPath"/>.</summary>
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
    /// The measurements concatenated into one vector, standardised (centred: a network needs it, where ML.NET's default
    /// NormalizeMeanVariance keeps zero at zero), then a small neural network with weight decay.
    /// </summary>
    public static IEstimator<ITransformer> BuildPipeline(MLContext ml) =>
        ml.Transforms.Concatenate(@"Features", new[] { @"radius_mean", @"texture_mean", @"perimeter_mean", @"area_mean", @"smoothness_mean", @"compactness_mean", @"concavity_mean", @"concave_points_mean", @"symmetry_mean", @"fractal_dimension_mean", @"radius_se", @"texture_se", @"perimeter_se", @"area_se", @"smoothness_se", @"compactness_se", @"concavity_se", @"concave_points_se", @"symmetry_se", @"fractal_dimension_se", @"radius_worst", @"texture_worst", @"perimeter_worst", @"area_worst", @"smoothness_worst", @"compactness_worst", @"concavity_worst", @"concave_points_worst", @"symmetry_worst", @"fractal_dimension_worst" })
            .Append(ml.Transforms.NormalizeMeanVariance(@"Features", fixZero: false))
            .Append(ml.BinaryClassification.Trainers.NeuralNetwork(new NeuralNetworkBinaryClassifierOptions
            {
                LabelColumnName = LabelColumn, FeatureColumnName = @"Features",
                Network = Networks.Mlp(32), Epochs = 60, BatchSize = 32, Optimizer = new Adam(1e-3, WeightDecay: 1e-2),
            }));
}
