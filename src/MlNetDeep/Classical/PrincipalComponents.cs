using Microsoft.ML;
using MlNetDeep.Data;
using MlNetDeep.Native;
using static TorchSharp.torch;

namespace MlNetDeep.Classical;

/// <summary>
/// An exact principal component analysis (eigen-decomposition of the covariance matrix, in double precision), for when the
/// components themselves are wanted, e.g. to draw MNIST's "eigen-digits" or reconstruct images from k components.
/// ML.NET's <c>ProjectToPrincipalComponents</c> (randomized PCA) is the transform to use inside pipelines; it does not give
/// its components back.
/// </summary>
public sealed class PrincipalComponents
{
    private PrincipalComponents(float[] mean, float[][] components, double[] variances, double totalVariance)
    {
        Mean = mean;
        Components = components;
        Variances = variances;
        TotalVariance = totalVariance;
    }

    /// <summary>The mean of the rows, subtracted before projecting.</summary>
    public float[] Mean { get; }

    /// <summary>The components (unit vectors), largest variance first.</summary>
    public float[][] Components { get; }

    /// <summary>The variance along each kept component.</summary>
    public double[] Variances { get; }

    /// <summary>The total variance of the data (the sum over all dimensions).</summary>
    public double TotalVariance { get; }

    /// <summary>The fraction of the total variance explained by the first 1, 2, ... kept components.</summary>
    public double[] CumulativeExplainedVariance()
    {
        var result = new double[Variances.Length];
        double sum = 0;
        for (int i = 0; i < Variances.Length; i++) result[i] = (sum += Variances[i]) / TotalVariance;
        return result;
    }

    /// <summary>Fits the first <paramref name="components"/> components of a float vector column.</summary>
    public static PrincipalComponents Fit(IDataView data, string featureColumn, int components)
    {
        var column = ColumnChecks.Find(data.Schema, featureColumn, "feature");
        int size = ColumnChecks.RequireFloatFeatures(column);
        var loaded = DataViewTensors.Load(data, featureColumn, size, null, LabelKind.None);
        return Fit(loaded.Features, loaded.Rows, size, components);
    }

    /// <summary>Fits the first <paramref name="components"/> components of <paramref name="rows"/> x <paramref name="size"/> values (row-major).</summary>
    public static PrincipalComponents Fit(float[] values, int rows, int size, int components)
    {
        if (rows < 2) throw new ArgumentOutOfRangeException(nameof(rows), rows, "PCA needs at least 2 rows.");
        if ((long)rows * size != values.Length) throw new ArgumentException($"{values.Length} values are not {rows} rows of {size}.", nameof(values));
        if (components < 1 || components > size)
            throw new ArgumentOutOfRangeException(nameof(components), components, $"components must be between 1 and the number of features ({size}).");
        TorchRuntime.EnsureLoaded();
        using var scope = NewDisposeScope();
        var x = tensor(values, [rows, size]).to(float64);
        var mean = x.mean([0]);
        var centred = x - mean;
        var covariance = centred.t().matmul(centred) / (rows - 1);
        var (eigenvalues, eigenvectors) = linalg.eigh(covariance);
        var order = eigenvalues.argsort(descending: true);
        var top = order.slice(0, 0, components, 1);
        var variances = eigenvalues.index_select(0, top).clamp_min(0).data<double>().ToArray();
        var vectors = eigenvectors.index_select(1, top).t().contiguous().to(float32).data<float>().ToArray();
        double total = eigenvalues.clamp_min(0).sum().item<double>();
        var comps = Enumerable.Range(0, components).Select(i => vectors.AsSpan(i * size, size).ToArray()).ToArray();
        // Eigenvectors have an arbitrary sign: make each component's largest entry positive so drawings are stable.
        foreach (var c in comps)
            if (c.MaxBy(Math.Abs) < 0) for (int j = 0; j < c.Length; j++) c[j] = -c[j];
        return new PrincipalComponents(mean.to(float32).data<float>().ToArray(), comps, variances, total);
    }

    /// <summary>The coordinates of <paramref name="row"/> on the first <paramref name="count"/> components.</summary>
    public float[] Project(float[] row, int count)
    {
        CheckRow(row, count);
        var result = new float[count];
        for (int c = 0; c < count; c++)
        {
            double dot = 0;
            var component = Components[c];
            for (int j = 0; j < row.Length; j++) dot += (row[j] - Mean[j]) * component[j];
            result[c] = (float)dot;
        }
        return result;
    }

    /// <summary><paramref name="row"/> rebuilt from its first <paramref name="count"/> components: mean + sum of coordinate x component.</summary>
    public float[] Reconstruct(float[] row, int count)
    {
        var coordinates = Project(row, count);
        var result = (float[])Mean.Clone();
        for (int c = 0; c < count; c++)
        {
            var component = Components[c];
            for (int j = 0; j < result.Length; j++) result[j] += coordinates[c] * component[j];
        }
        return result;
    }

    /// <summary>The mean squared error per value of reconstructing <paramref name="rows"/> from <paramref name="count"/> components.</summary>
    public double ReconstructionError(IReadOnlyList<float[]> rows, int count)
    {
        double sum = 0;
        long n = 0;
        foreach (var row in rows)
        {
            var rebuilt = Reconstruct(row, count);
            for (int j = 0; j < row.Length; j++) { double d = row[j] - rebuilt[j]; sum += d * d; }
            n += row.Length;
        }
        return n == 0 ? 0 : sum / n;
    }

    private void CheckRow(float[] row, int count)
    {
        ArgumentNullException.ThrowIfNull(row);
        if (row.Length != Mean.Length) throw new ArgumentException($"The row has {row.Length} values; this PCA was fitted on {Mean.Length}.", nameof(row));
        if (count < 0 || count > Components.Length) throw new ArgumentOutOfRangeException(nameof(count), count, $"count must be between 0 and the {Components.Length} fitted components.");
    }
}
