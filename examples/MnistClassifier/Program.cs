// Model Builder-style example: train a digit classifier on MNIST, evaluate it, save it, and use it.
//   dotnet run --project examples/MnistClassifier -c Release [-- cnn|mlp [epochs] [training rows]]
using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Training;

string kind = args.ElementAtOrDefault(0) ?? "cnn";
int epochs = int.TryParse(args.ElementAtOrDefault(1), out var e) ? e : 3;
int? rows = int.TryParse(args.ElementAtOrDefault(2), out var r) ? r : 10_000;

var ml = new MLContext(seed: 1) { GpuDeviceId = 0, FallbackToCpu = true };

// 1. Data: Label is a key over the digits, Pixels a vector<float>[784] in [0, 1].
IDataView train = ml.Data.LoadMnist(MnistSplit.Train, maxRows: rows);
IDataView test = ml.Data.LoadMnist(MnistSplit.Test);

// 2. Pipeline: the trainer, then the predicted key back to the digit.
var options = new NeuralNetworkClassifierOptions
{
    FeatureColumnName = "Pixels",
    InputShape = kind == "cnn" ? [1, 28, 28] : null,
    Network = kind == "cnn" ? Networks.KerasMnistCnn : Networks.MnistMlp,
    Epochs = epochs,
    BatchSize = 128,
    Optimizer = new Adam(LearningRate: 1e-3),
    ValidationFraction = 0.1,
    EarlyStopping = new EarlyStopping(Patience: 2),
    Progress = new Progress<TrainingProgress>(p =>
    {
        if (p.Completed is { } m)
            Console.WriteLine($"epoch {m.Epoch + 1}: loss {m.TrainLoss:F4}, validation accuracy {m.ValidationAccuracy:P2}");
    }),
};
var pipeline = ml.MulticlassClassification.Trainers.NeuralNetwork(options)
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));

// 3. Train and evaluate.
Console.WriteLine($"Training the {kind} on {rows} images for up to {epochs} epochs ...");
var model = pipeline.Fit(train);
var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
Console.WriteLine($"Test accuracy {metrics.MicroAccuracy:P2}, log-loss {metrics.LogLoss:F4}");

// 4. Save the whole pipeline and load it back.
var path = Path.Combine(Path.GetTempPath(), $"mnist-{kind}.zip");
ml.Model.SaveDeep(model, train.Schema, path);
var loaded = ml.Model.LoadDeep(path, out _);
Console.WriteLine($"Saved to {path} ({new FileInfo(path).Length / 1024} KB) and loaded back.");

// 5. Consume: one prediction at a time with a PredictionEngine.
var engine = ml.Model.CreatePredictionEngine<MnistImage, DigitPrediction>(loaded);
foreach (var image in Mnist.Read(MnistSplit.Test, maxRows: 5))
{
    var prediction = engine.Predict(image);
    Console.WriteLine($"digit {image.Label}: predicted {prediction.PredictedLabel} (p = {prediction.Score.Max():P1})");
}

internal sealed class DigitPrediction
{
    public uint PredictedLabel { get; set; }
    public float[] Score { get; set; } = [];
}
