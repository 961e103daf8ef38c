using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Common;
using MlNetDeep.Native;

namespace MlNetDeep.Tests;

/// <summary>Pins the two places that reach ML.NET internals, so an ML.NET upgrade that breaks them fails here.</summary>
public class MlNetInteropTests
{
    [Fact]
    public void SchemaShapeColumnsCanBeMade()
    {
        var annotations = new SchemaShape([SchemaShapes.Column("KeyValues", SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance, false)]);
        var column = SchemaShapes.Column("PredictedLabel", SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.UInt32, true, annotations);
        Assert.Equal("PredictedLabel", column.Name);
        Assert.True(column.IsKey);
        Assert.Single(column.Annotations);
        var extended = SchemaShapes.Extend(new SchemaShape([column]), [SchemaShapes.Column("PredictedLabel", SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false)]);
        Assert.Single(extended);
        Assert.False(extended[0].IsKey);
    }

    [Fact]
    public void TheMlContextBehindACatalogIsFound()
    {
        var ml = new MLContext(seed: 5) { GpuDeviceId = 3, FallbackToCpu = false };
        var env = HostEnvironments.Of(ml.MulticlassClassification.Trainers);
        Assert.Equal(3, HostEnvironments.GpuDeviceId(env));
        Assert.False(HostEnvironments.FallbackToCpu(env));
        Assert.NotNull(HostEnvironments.Of(ml.Regression.Trainers));
        Assert.NotNull(HostEnvironments.Of(ml.Model));
        int a = HostEnvironments.NextSeed(HostEnvironments.Of(new MLContext(seed: 5).Regression.Trainers), "x");
        int b = HostEnvironments.NextSeed(HostEnvironments.Of(new MLContext(seed: 5).Regression.Trainers), "x");
        Assert.Equal(a, b);
    }
}
