// The training half of the model, in Model Builder's layout: the pipeline and the code that trains and saves it.
using Microsoft.ML;
using MlNetDeep;
using MlNetDeep.Models.Regression;
using MlNetDeep.Networks;
using MlNetDeep.Training;

namespace DiabetesRegression;

public partial class DiabetesModel
{
    public const string LabelColumn = @"Progression";

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

    /// <summary>The measurements as one standardised vector, then a small network with dropout and weight decay, trained with mean squared error.</summary>
    public static IEstimator<ITransformer> BuildPipeline(MLContext ml) =>
        ml.Transforms.Concatenate(@"Features", new[] { @"Age", @"Sex", @"Bmi", @"BloodPressure", @"TotalCholesterol", @"Ldl", @"Hdl", @"CholesterolRatio", @"Triglycerides", @"BloodSugar" })
            .Append(ml.Transforms.NormalizeMeanVariance(@"Features", fixZero: false))
            .Append(ml.Regression.Trainers.NeuralNetwork(new NeuralNetworkRegressorOptions
            {
                LabelColumnName = LabelColumn, FeatureColumnName = @"Features",
                Network = Networks.Mlp([16], dropout: 0.2), Epochs = 100, BatchSize = 32, Optimizer = new Adam(1e-2, WeightDecay: 1e-2),
            }));
}
