using Microsoft.ML;
using TorchSharp;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Regression;
using MlNetDeep.Native;
using MlNetDeep.Networks;
using MlNetDeep.Persistence;
using MlNetDeep.Training;

namespace MlNetDeep;

/// <summary>MlNetDeep's trainers on ML.NET's own catalogs.</summary>
public static class DeepLearningCatalog
{
    /// <summary>A neural-network multiclass classifier (an MLP by default; any <see cref="NetworkSpec"/>, e.g. a CNN).</summary>
    public static NeuralNetworkClassifier NeuralNetwork(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        NeuralNetworkClassifierOptions options) => new(HostEnvironments.Of(catalog), options);

    /// <summary>
    /// A sequence classifier over token keys of any length (TokenizeIntoWords then MapValueToKey): an embedding and an
    /// LSTM (or GRU, plain RNN, 1-D convolution) with the padding masked; Score and PredictedLabel as the neural network's.
    /// </summary>
    public static SequenceClassifier SequenceClassifier(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        SequenceClassifierOptions? options = null) => new(HostEnvironments.Of(catalog), options ?? new SequenceClassifierOptions());

    /// <summary>
    /// Image classification from a pretrained backbone (an ONNX file, a saved model, a trained network): the backbone
    /// cut after a layer, a new head, a frozen phase on cached features and optional fine-tuning
    /// (<see cref="Models.Transfer.TransferLearningOptions"/>). Score and PredictedLabel as the neural network's.
    /// </summary>
    public static Models.Transfer.TransferLearningClassifier TransferLearning(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        Models.Transfer.TransferLearningOptions options) => new(HostEnvironments.Of(catalog), options);

    /// <summary>Binary image classification (a Boolean label) from a pretrained backbone; Score, Probability and PredictedLabel as the binary neural network's.</summary>
    public static Models.Transfer.BinaryTransferLearningClassifier TransferLearning(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog,
        Models.Transfer.BinaryTransferLearningOptions options) => new(HostEnvironments.Of(catalog), options);

    /// <summary>A neural-network multiclass classifier with the common settings as arguments.</summary>
    public static NeuralNetworkClassifier NeuralNetwork(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = "Label", string featureColumnName = "Features", NetworkSpec? network = null,
        int epochs = 10, int batchSize = 32, double learningRate = 1e-3, int[]? inputShape = null) =>
        catalog.NeuralNetwork(new NeuralNetworkClassifierOptions
        {
            LabelColumnName = labelColumnName, FeatureColumnName = featureColumnName, Network = network ?? Networks.Networks.Mlp(),
            Epochs = epochs, BatchSize = batchSize, Optimizer = new Adam(learningRate), InputShape = inputShape,
        });

    /// <summary>
    /// A convolutional multiclass classifier: the same trainer as <see cref="NeuralNetwork(MulticlassClassificationCatalog.MulticlassClassificationTrainers, NeuralNetworkClassifierOptions)"/>,
    /// with an image <see cref="DeepTrainerOptions.InputShape"/> required ([channels, height, width]) and Keras' MNIST CNN as the network unless one is set.
    /// The estimator works on a copy of <paramref name="options"/> (<see cref="DeepTrainerOptions.Clone"/>), so the caller's object is never changed;
    /// change the estimator's own <c>Options</c> to adjust it afterwards.
    /// </summary>
    public static NeuralNetworkClassifier ConvolutionalNetwork(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        NeuralNetworkClassifierOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.InputShape is not { Length: 3 })
            throw new ArgumentException("A convolutional network needs InputShape = [channels, height, width], e.g. [1, 28, 28] for MNIST.", nameof(options));
        var copy = (NeuralNetworkClassifierOptions)options.Clone();
        if (copy.Network == DefaultMlp) copy.Network = Networks.Networks.KerasMnistCnn;
        return new(HostEnvironments.Of(catalog), copy);
    }

    private static readonly NetworkSpec DefaultMlp = Networks.Networks.Mlp();

    /// <summary>
    /// A neural-network binary classifier on a Boolean label (an MLP(32) by default), with ML.NET's binary output
    /// columns (Score, Probability, PredictedLabel) for BinaryClassification.Evaluate and CrossValidate.
    /// </summary>
    public static NeuralNetworkBinaryClassifier NeuralNetwork(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog,
        NeuralNetworkBinaryClassifierOptions options) => new(HostEnvironments.Of(catalog), options);

    /// <summary>A neural-network binary classifier with the common settings as arguments.</summary>
    public static NeuralNetworkBinaryClassifier NeuralNetwork(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog,
        string labelColumnName = "Label", string featureColumnName = "Features", NetworkSpec? network = null,
        int epochs = 50, int batchSize = 32, double learningRate = 1e-3) =>
        catalog.NeuralNetwork(new NeuralNetworkBinaryClassifierOptions
        {
            LabelColumnName = labelColumnName, FeatureColumnName = featureColumnName, Network = network ?? Networks.Networks.Mlp(32),
            Epochs = epochs, BatchSize = batchSize, Optimizer = new Adam(learningRate),
        });

    /// <summary>A neural-network regressor (an MLP by default).</summary>
    public static NeuralNetworkRegressor NeuralNetwork(this RegressionCatalog.RegressionTrainers catalog, NeuralNetworkRegressorOptions options) =>
        new(HostEnvironments.Of(catalog), options);

    /// <summary>A neural-network regressor with the common settings as arguments.</summary>
    public static NeuralNetworkRegressor NeuralNetwork(this RegressionCatalog.RegressionTrainers catalog,
        string labelColumnName = "Label", string featureColumnName = "Features", NetworkSpec? network = null,
        int epochs = 100, int batchSize = 32, double learningRate = 1e-2) =>
        catalog.NeuralNetwork(new NeuralNetworkRegressorOptions
        {
            LabelColumnName = labelColumnName, FeatureColumnName = featureColumnName, Network = network ?? Networks.Networks.Mlp(64),
            Epochs = epochs, BatchSize = batchSize, Optimizer = new Adam(learningRate),
        });

    /// <summary>
    /// Saves a fitted pipeline, ML.NET stages and MlNetDeep stages mixed, to one file
    /// (ML.NET's own Model.Save cannot hold third-party transformers).
    /// </summary>
    public static void SaveDeep(this ModelOperationsCatalog catalog, ITransformer model, DataViewSchema inputSchema, string path) =>
        DeepModelFile.Save(catalog, model, inputSchema, path);

    /// <summary>Saves a fitted pipeline to a stream.</summary>
    public static void SaveDeep(this ModelOperationsCatalog catalog, ITransformer model, DataViewSchema inputSchema, Stream stream) =>
        DeepModelFile.Save(catalog, model, inputSchema, stream);

    /// <summary>Loads a pipeline saved by <see cref="SaveDeep(ModelOperationsCatalog, ITransformer, DataViewSchema, string)"/>; deep stages go to the MLContext's device.</summary>
    /// <exception cref="InvalidDataException">The file is damaged, truncated or not an MlNetDeep model.</exception>
    public static ITransformer LoadDeep(this ModelOperationsCatalog catalog, string path, out DataViewSchema inputSchema) =>
        DeepModelFile.Load(catalog, path, out inputSchema);

    /// <summary>
    /// An ONNX classifier a user brings (a torchvision or Keras export, say) as an ML.NET transformer: it reads
    /// <paramref name="featureColumnName"/> (the file's input, e.g. 3 x 224 x 224 pixels per row) and adds Score (the
    /// class probabilities: a softmax over the network's outputs unless it ends in one) and PredictedLabel (a key with
    /// <paramref name="labels"/> as its values when given). It saves with SaveDeep, scores in PredictionEngine, exports
    /// back to ONNX, and runs on the MLContext's device.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is damaged or its graph is malformed.</exception>
    /// <exception cref="NotSupportedException">The file uses an operator the importer does not read (named in the message).</exception>
    public static NeuralNetworkClassificationTransformer ImportOnnxClassifier(this ModelOperationsCatalog catalog, string onnxPath,
        string featureColumnName = "Features", IReadOnlyList<string>? labels = null, string scoreColumnName = "Score", string predictedLabelColumnName = "PredictedLabel")
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentException.ThrowIfNullOrWhiteSpace(featureColumnName);
        var env = HostEnvironments.Of(catalog);
        var device = HostEnvironments.Device(env);
        var imported = Persistence.Onnx.OnnxImporter.Import(onnxPath);
        try
        {
            var output = imported.Network.OutputShape(imported.InputShape);
            if (output.Length != 1 || output[0] < 2)
                throw new NotSupportedException($"'{onnxPath}' outputs [{string.Join(", ", output)}] per sample; a classifier outputs a vector of two or more class scores.");
            if (labels is not null && labels.Count != output[0])
                throw new ArgumentException($"{labels.Count} labels were given for the {output[0]} classes of '{onnxPath}'.", nameof(labels));
            imported.Module.to(device);
            return new NeuralNetworkClassificationTransformer(imported.Module, imported.Network, featureColumnName, imported.InputShape, device, 64, output[0],
                labels is null ? null : new Models.Common.KeyValues("Text", labels.ToArray()), scoreColumnName, predictedLabelColumnName);
        }
        catch
        {
            imported.Dispose();
            throw;
        }
    }

    /// <summary>Loads a pipeline from a stream.</summary>
    public static ITransformer LoadDeep(this ModelOperationsCatalog catalog, Stream stream, out DataViewSchema inputSchema) =>
        DeepModelFile.Load(catalog, stream, out inputSchema);
}
