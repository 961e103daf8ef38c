using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Common;
using MlNetDeep.Networks;

namespace MlNetDeep.Tests;

/// <summary>Every bad input gets a .NET exception that names the column and what was expected.</summary>
public class BadInputTests
{
    private sealed class Row
    {
        [VectorType(4)] public float[] Features { get; set; } = [];
        public string Label { get; set; } = "";
        public float Value { get; set; }
    }

    private static IDataView Rows(MLContext ml, int n = 20, Func<int, float[]>? features = null) =>
        ml.Data.LoadFromEnumerable(Enumerable.Range(0, n).Select(i => new Row
        {
            Features = features?.Invoke(i) ?? [i, i % 3, 1, 0], Label = (i % 3).ToString(), Value = i,
        }).ToList());

    private static IEstimator<ITransformer> Classifier(MLContext ml, NeuralNetworkClassifierOptions? options = null) =>
        ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.MulticlassClassification.Trainers.NeuralNetwork(options ?? new NeuralNetworkClassifierOptions { Epochs = 1 }));

    private static Exception FitError(MLContext ml, IDataView data, IEstimator<ITransformer> estimator) =>
        Record.Exception(() => estimator.Fit(data)) ?? throw new Xunit.Sdk.XunitException("Fit succeeded on bad input");

    [Fact]
    public void MissingFeatureColumn()
    {
        var ml = new MLContext(1);
        var ex = FitError(ml, Rows(ml), Classifier(ml, new NeuralNetworkClassifierOptions { FeatureColumnName = "Pixels" }));
        Assert.Contains("'Pixels'", ex.Message);
        Assert.Contains("not in the data", ex.Message);
    }

    [Fact]
    public void WrongFeatureType()
    {
        var ml = new MLContext(1);
        var ex = FitError(ml, Rows(ml), Classifier(ml, new NeuralNetworkClassifierOptions { FeatureColumnName = "Label" }));
        Assert.Contains("'Label'", ex.Message);
        Assert.Contains("vector of Single", ex.Message);
    }

    [Fact]
    public void LabelThatIsNotAKey()
    {
        var ml = new MLContext(1);
        var ex = FitError(ml, Rows(ml), ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions { LabelColumnName = "Value" }));
        Assert.Contains("'Value'", ex.Message);
        Assert.Contains("MapValueToKey", ex.Message);
    }

    [Fact]
    public void NaNAndInfiniteFeatures()
    {
        var ml = new MLContext(1);
        var nan = FitError(ml, Rows(ml, features: i => i == 7 ? [float.NaN, 0, 0, 0] : [i, 0, 0, 0]), Classifier(ml));
        Assert.Contains("row 7", nan.Message);
        Assert.Contains("NaN", nan.Message);
        var inf = FitError(ml, Rows(ml, features: i => i == 3 ? [0, float.PositiveInfinity, 0, 0] : [i, 0, 0, 0]), Classifier(ml));
        Assert.Contains("'Features' row 3 slot 1", inf.Message);
    }

    [Fact]
    public void MoreClassesThanTheNetworkOutputs()
    {
        var ml = new MLContext(1);
        var options = new NeuralNetworkClassifierOptions { Epochs = 1, Network = new NetworkSpec([new Dense(2)]) };
        var ex = FitError(ml, Rows(ml), Classifier(ml, options));
        Assert.Contains("3 classes", ex.Message);
        Assert.Contains("outputs 2", ex.Message);
    }

    [Fact]
    public void EmptyData()
    {
        var ml = new MLContext(1);
        var empty = ml.Data.LoadFromEnumerable(new List<Row>());
        var ex = FitError(ml, empty, ml.Regression.Trainers.NeuralNetwork(labelColumnName: "Value"));
        Assert.Contains("no rows", ex.Message);
    }

    [Fact]
    public void ImageShapeNotMatchingTheVectorSize()
    {
        var ml = new MLContext(1);
        var ex = FitError(ml, Rows(ml), Classifier(ml, new NeuralNetworkClassifierOptions { InputShape = [1, 28, 28] }));
        Assert.Contains("[1, 28, 28]", ex.Message);
        Assert.Contains("4 per row", ex.Message);
    }

    [Fact]
    public void ScoringDataWithTheWrongVectorSize()
    {
        var ml = new MLContext(1);
        var data = ml.Transforms.Conversion.MapValueToKey("Label").Fit(Rows(ml)).Transform(Rows(ml));
        var model = ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions { Epochs = 1 }).Fit(data);
        var other = ml.Data.LoadFromEnumerable(new[] { new { Features = new float[3] } }.Select(_ => new Small()).ToList());
        var ex = Record.Exception(() => { model.Transform(other); });
        Assert.NotNull(ex);
        Assert.Contains("'Features'", ex!.Message);
    }

    [Fact]
    public void BadOptionsAreRejectedUpFront()
    {
        var ml = new MLContext(1);
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions { Epochs = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions { BatchSize = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions { Optimizer = new MlNetDeep.Training.Sgd(-1) }));
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions { ValidationFraction = 1 }));
        Assert.Throws<ArgumentException>(() => ml.MulticlassClassification.Trainers.ConvolutionalNetwork(new NeuralNetworkClassifierOptions()));
    }

    [Fact]
    public void GetOutputSchemaChecksColumnsBeforeAnyTraining()
    {
        var ml = new MLContext(1);
        var estimator = ml.MulticlassClassification.Trainers.NeuralNetwork(new NeuralNetworkClassifierOptions());
        var shape = SchemaShapes.Extend(new SchemaShape([]), [SchemaShapes.Column("Features", SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false)]);
        Assert.Contains("'Label'", Assert.ThrowsAny<ArgumentException>(() => estimator.GetOutputSchema(shape)).Message);
    }

    private sealed class Small
    {
        [VectorType(3)] public float[] Features { get; set; } = new float[3];
    }
}
