using Microsoft.ML;
using Microsoft.ML.Data;
using MlNetDeep.Models.Autoencoders;
using MlNetDeep.Models.Classification;
using MlNetDeep.Models.Common;
using MlNetDeep.Models.Generative;
using MlNetDeep.Models.Regression;

namespace MlNetDeep.Tests;

/// <summary>
/// Scoring on inputs nobody tried: a source that gives different rows on each pass, chained deep stages, a batch that
/// fails half-way, NaN features, and output column names that collide. CI also runs this class in parallel with others.
/// </summary>
[Trait("Category", "Parallel")]
public class ScoringHardeningTests
{
    /// <summary>
    /// A source of <c>Id</c> (int) and <c>Features</c> (4 floats that depend on the id only) that gives its rows in another
    /// order on each pass (rotated by 7 rows per cursor), as a streaming or shuffled source does, and counts its cursors and reads.
    /// </summary>
    private sealed class ShiftingSource(int rows, int? shortRow = null) : IDataView
    {
        private readonly int _rows = rows;
        private readonly int? _shortRow = shortRow;
        public int Cursors;
        public long Reads;

        public static float[] FeaturesOf(int id) => [id * 0.05f - 1, MathF.Sin(id), MathF.Cos(id), id % 5 * 0.2f];

        public bool CanShuffle => false;
        public DataViewSchema Schema { get; } = BuildSchema();
        public long? GetRowCount() => _rows;

        private static DataViewSchema BuildSchema()
        {
            var builder = new DataViewSchema.Builder();
            builder.AddColumn("Id", NumberDataViewType.Int32);
            builder.AddColumn("Features", new VectorDataViewType(NumberDataViewType.Single, 4));
            return builder.ToSchema();
        }

        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
            new Cursor(this, Interlocked.Increment(ref Cursors) - 1, columnsNeeded.Select(c => c.Index).ToHashSet());

        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
            [GetRowCursor(columnsNeeded, rand)];

        private sealed class Cursor(ShiftingSource source, int pass, HashSet<int> active) : DataViewRowCursor
        {
            private long _position = -1;
            private int Id => (int)((_position + pass * 7) % source._rows);

            public override DataViewSchema Schema => source.Schema;
            public override long Position => _position;
            public override long Batch => 0;

            public override bool MoveNext()
            {
                if (_position + 1 >= source._rows) return false;
                _position++;
                Interlocked.Increment(ref source.Reads);
                return true;
            }

            public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId value) => value = new DataViewRowId((ulong)Id, 0);
            public override bool IsColumnActive(DataViewSchema.Column column) => active.Contains(column.Index);

            public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
            {
                if (column.Index == 0) return (ValueGetter<TValue>)(Delegate)(ValueGetter<int>)((ref int value) => value = Id);
                return (ValueGetter<TValue>)(Delegate)(ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) =>
                {
                    var features = FeaturesOf(Id);
                    value = _position == source._shortRow ? new VBuffer<float>(3, features[..3]) : new VBuffer<float>(4, features);
                });
            }
        }
    }

    /// <summary>A tiny regressor on 4 features that scores in batches of 4.</summary>
    private static readonly Lazy<NeuralNetworkRegressionTransformer> Regressor = new(() =>
    {
        var ml = new MLContext(seed: 1);
        var options = TinyFamilies.Regressor();
        options.ScoringBatchSize = 4;
        return ml.Regression.Trainers.NeuralNetwork(options).Fit(TinyFamilies.Data(ml));
    });

    private static float[] ScoreRow(DeepTransformer model, float[] features)
    {
        var output = new float[model.OutputWidth];
        model.Score(features, 1, output);
        return output;
    }

    // ---- one cursor over the input -------------------------------------------------------------------------------------

    [Fact]
    public void ANonRepeatableSourceGetsEachScoreWithItsOwnRowFromOneCursor()
    {
        var model = Regressor.Value;
        var source = new ShiftingSource(30);
        var scored = model.Transform(source);
        using (var cursor = scored.GetRowCursor(scored.Schema))
        {
            var id = cursor.GetGetter<int>(scored.Schema["Id"]);
            var features = cursor.GetGetter<VBuffer<float>>(scored.Schema["Features"]);
            var score = cursor.GetGetter<float>(scored.Schema["Score"]);
            int rows = 0, value = 0;
            VBuffer<float> f = default;
            float s = 0;
            while (cursor.MoveNext())
            {
                id(ref value);
                features(ref f);
                score(ref s);
                Assert.Equal(ShiftingSource.FeaturesOf(value), f.DenseValues().ToArray());
                Close.Equal(ScoreRow(model, ShiftingSource.FeaturesOf(value))[0], s);
                Assert.Equal(rows, cursor.Position);
                rows++;
            }
            Assert.Equal(30, rows);
        }
        Assert.Equal(1, source.Cursors);
        Assert.Equal(30, source.Reads);
    }

    [Fact]
    public void ThreeChainedDeepStagesReadTheSourceOnce()
    {
        var ml = new MLContext(seed: 1);
        var chain = ml.Transforms.Autoencoder(TinyFamilies.Autoencoder("Features", "1"))
            .Append(ml.Transforms.Autoencoder(TinyFamilies.Autoencoder("Reconstruction1", "2")))
            .Append(ml.Transforms.Autoencoder(TinyFamilies.Autoencoder("Reconstruction2", "3")))
            .Fit(TinyFamilies.Data(ml));
        var stages = TinyFamilies.DeepStages(chain).Cast<AutoencoderTransformer>().ToArray();
        Assert.Equal(3, stages.Length);

        var source = new ShiftingSource(20);
        var scored = chain.Transform(source);
        var ids = new List<int>();
        var last = new List<float[]>();
        using (var cursor = scored.GetRowCursor([scored.Schema["Id"], scored.Schema["Reconstruction3"]]))
        {
            var id = cursor.GetGetter<int>(scored.Schema["Id"]);
            var reconstruction = cursor.GetGetter<VBuffer<float>>(scored.Schema["Reconstruction3"]);
            int value = 0;
            VBuffer<float> r = default;
            while (cursor.MoveNext())
            {
                id(ref value);
                reconstruction(ref r);
                ids.Add(value);
                last.Add(r.DenseValues().ToArray());
            }
        }
        Assert.Equal(1, source.Cursors);
        Assert.Equal(20, source.Reads);
        // Each row's third reconstruction is its own features through the three stages.
        var expected = ids.Select(i => stages.Aggregate(ShiftingSource.FeaturesOf(i), (x, stage) => ScoreRow(stage, x)[stage.LatentSize..])).ToList();
        Close.Equal(expected, last);
        foreach (var stage in stages) stage.Dispose();
    }

    [Fact]
    public void AfterABatchFailsTheCursorKeepsFailingInsteadOfShiftingRows()
    {
        var model = Regressor.Value;
        var scored = model.Transform(new ShiftingSource(12, shortRow: 5));
        using var cursor = scored.GetRowCursor(scored.Schema);
        for (int i = 0; i < 4; i++) Assert.True(cursor.MoveNext());
        var first = Assert.Throws<InvalidOperationException>(() => cursor.MoveNext());
        Assert.Contains("Column 'Features' row 5 has 3 values; expected 4", first.Message);
        for (int i = 0; i < 3; i++)
        {
            var again = Assert.Throws<InvalidOperationException>(() => cursor.MoveNext());
            Assert.Contains("cannot go on after row 3", again.Message);
            Assert.Contains("row 5 has 3 values", again.Message);
            Assert.Same(first, again.InnerException);
        }
    }

    [Fact]
    public void ASourceReadWithoutTheScoresPassesThroughUntouched()
    {
        var source = new ShiftingSource(10);
        var scored = Regressor.Value.Transform(source);
        Assert.Equal(Enumerable.Range(0, 10), scored.GetColumn<int>("Id"));
        Assert.Equal(1, source.Cursors);
    }

    // ---- NaN at scoring -------------------------------------------------------------------------------------------------

    public sealed class ClassPrediction
    {
        public float[] Score { get; set; } = [];
        public uint PredictedLabel { get; set; }
    }

    public sealed class BinaryPrediction
    {
        public float Score { get; set; }
        public float Probability { get; set; }
        public bool PredictedLabel { get; set; }
    }

    public sealed class RegressionPrediction
    {
        public float Score { get; set; }
    }

    private const int NaNRow = 3;

    /// <summary>Six good rows, and the same with a row whose second feature is NaN at position <see cref="NaNRow"/>.</summary>
    private static (List<TinyFamilies.Row> Good, List<TinyFamilies.Row> WithNaN) NaNRows()
    {
        var good = TinyFamilies.Rows(6, seed: 9);
        var withNaN = good.ToList();
        withNaN.Insert(NaNRow, new TinyFamilies.Row { Features = [0.5f, float.NaN, 0, 0], Class = 1, Pixels = new float[16] });
        return (good, withNaN);
    }

    private static List<T> Predict<T>(MLContext ml, ITransformer model, IEnumerable<TinyFamilies.Row> rows) where T : class, new()
    {
        using var engine = ml.Model.CreatePredictionEngine<TinyFamilies.Row, T>(model, new PredictionEngineOptions { OwnsTransformer = false });
        return rows.Select(r => engine.Predict(r)).ToList();
    }

    private static List<T> WithoutNaNRow<T>(List<T> rows) => rows.Where((_, i) => i != NaNRow).ToList();

    [Fact]
    public void ANaNFeatureGivesAMulticlassRowNaNScoresAndTheMissingKeyWhileTheOtherRowsScoreAsBefore()
    {
        var ml = new MLContext(seed: 1);
        using var model = ml.MulticlassClassification.Trainers.NeuralNetwork(TinyFamilies.Classifier()).Fit(TinyFamilies.Data(ml));
        var (good, withNaN) = NaNRows();
        var expected = ml.Data.CreateEnumerable<ClassPrediction>(model.Transform(ml.Data.LoadFromEnumerable(good)), false).ToList();

        foreach (var actual in new[] { ml.Data.CreateEnumerable<ClassPrediction>(model.Transform(ml.Data.LoadFromEnumerable(withNaN)), false).ToList(),
                                       Predict<ClassPrediction>(ml, model, withNaN) })
        {
            Assert.Equal(7, actual.Count);
            Assert.All(actual[NaNRow].Score, s => Assert.True(float.IsNaN(s)));
            Assert.Equal(0u, actual[NaNRow].PredictedLabel);
            var others = WithoutNaNRow(actual);
            Close.Equal(expected.Select(p => p.Score).ToList(), others.Select(p => p.Score).ToList());
            Assert.Equal(expected.Select(p => p.PredictedLabel), others.Select(p => p.PredictedLabel));
            Assert.All(others, p => Assert.InRange(p.PredictedLabel, 1u, 4u));
        }
    }

    [Fact]
    public void ANaNFeatureGivesBinaryAndRegressionRowsNaNScoresWhileTheOtherRowsScoreAsBefore()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFamilies.Data(ml);
        var (good, withNaN) = NaNRows();
        using var binary = ml.BinaryClassification.Trainers.NeuralNetwork(TinyFamilies.Binary()).Fit(data);
        var binaryExpected = Predict<BinaryPrediction>(ml, binary, good);
        foreach (var actual in new[] { ml.Data.CreateEnumerable<BinaryPrediction>(binary.Transform(ml.Data.LoadFromEnumerable(withNaN)), false).ToList(),
                                       Predict<BinaryPrediction>(ml, binary, withNaN) })
        {
            Assert.True(float.IsNaN(actual[NaNRow].Score) && float.IsNaN(actual[NaNRow].Probability));
            Assert.False(actual[NaNRow].PredictedLabel);
            var others = WithoutNaNRow(actual);
            Close.Equal(binaryExpected.Select(p => p.Score), others.Select(p => p.Score));
            Assert.Equal(binaryExpected.Select(p => p.PredictedLabel), others.Select(p => p.PredictedLabel));
        }

        using var regressor = ml.Regression.Trainers.NeuralNetwork(TinyFamilies.Regressor()).Fit(data);
        var regressionExpected = Predict<RegressionPrediction>(ml, regressor, good);
        foreach (var actual in new[] { ml.Data.CreateEnumerable<RegressionPrediction>(regressor.Transform(ml.Data.LoadFromEnumerable(withNaN)), false).ToList(),
                                       Predict<RegressionPrediction>(ml, regressor, withNaN) })
        {
            Assert.True(float.IsNaN(actual[NaNRow].Score));
            Close.Equal(regressionExpected.Select(p => p.Score), WithoutNaNRow(actual).Select(p => p.Score));
        }
    }

    [Fact]
    public void ANaNFeatureIsStillRejectedForTraining()
    {
        var ml = new MLContext(seed: 1);
        var (_, withNaN) = NaNRows();
        var error = Assert.Throws<InvalidOperationException>(() => ml.Regression.Trainers.NeuralNetwork(TinyFamilies.Regressor()).Fit(ml.Data.LoadFromEnumerable(withNaN)));
        Assert.Contains($"Column 'Features' row {NaNRow} slot 1 holds NaN; deep models need finite features", error.Message);
    }

    // ---- output column names ----------------------------------------------------------------------------------------------

    public static TheoryData<string, Func<MLContext, object>, string> CollidingNames => new()
    {
        { "classifier: Score = PredictedLabel", ml => ml.MulticlassClassification.Trainers.NeuralNetwork(With(TinyFamilies.Classifier(), o => { o.ScoreColumnName = "Out"; o.PredictedLabelColumnName = "Out"; })),
          "The output columns must have distinct names, but ScoreColumnName and PredictedLabelColumnName are both 'Out'." },
        { "classifier: PredictedLabel = label", ml => ml.MulticlassClassification.Trainers.NeuralNetwork(With(TinyFamilies.Classifier(), o => o.PredictedLabelColumnName = "Class")),
          "PredictedLabelColumnName 'Class' is also the label column (LabelColumnName)" },
        { "classifier: Score = features", ml => ml.MulticlassClassification.Trainers.NeuralNetwork(With(TinyFamilies.Classifier(), o => o.ScoreColumnName = "Features")),
          "ScoreColumnName 'Features' is also the feature column (FeatureColumnName)" },
        { "binary: Probability = PredictedLabel", ml => ml.BinaryClassification.Trainers.NeuralNetwork(With(TinyFamilies.Binary(), o => o.ProbabilityColumnName = "PredictedLabel")),
          "but ProbabilityColumnName and PredictedLabelColumnName are both 'PredictedLabel'" },
        { "binary: Score = label", ml => ml.BinaryClassification.Trainers.NeuralNetwork(With(TinyFamilies.Binary(), o => o.ScoreColumnName = "Flag")),
          "ScoreColumnName 'Flag' is also the label column (LabelColumnName)" },
        { "regressor: Score = label", ml => ml.Regression.Trainers.NeuralNetwork(With(TinyFamilies.Regressor(), o => o.ScoreColumnName = "Target")),
          "ScoreColumnName 'Target' is also the label column (LabelColumnName)" },
        { "autoencoder: Latent = Reconstruction", ml => ml.Transforms.Autoencoder(With(TinyFamilies.Autoencoder(), o => o.LatentColumnName = "Reconstruction")),
          "but LatentColumnName and ReconstructionColumnName are both 'Reconstruction'" },
        { "autoencoder: Reconstruction = features", ml => ml.Transforms.Autoencoder(With(TinyFamilies.Autoencoder(), o => o.ReconstructionColumnName = "Pixels")),
          "ReconstructionColumnName 'Pixels' is also the feature column (FeatureColumnName)" },
        { "VAE: Sample = Reconstruction", ml => ml.Transforms.VariationalAutoencoder(With(TinyFamilies.Vae(), o => o.SampleColumnName = "Reconstruction")),
          "but ReconstructionColumnName and SampleColumnName are both 'Reconstruction'" },
        { "GAN: Output = noise", ml => ml.Transforms.GenerativeAdversarialNetwork(With(TinyFamilies.Gan(), o => o.OutputColumnName = "Noise")),
          "OutputColumnName 'Noise' is also the noise column (NoiseColumnName)" },
    };

    private static T With<T>(T options, Action<T> change)
    {
        change(options);
        return options;
    }

    [Theory]
    [MemberData(nameof(CollidingNames))]
    public void CollidingOutputColumnNamesAreRejectedAtConstruction(string name, Func<MLContext, object> create, string message)
    {
        var error = Assert.Throws<ArgumentException>(() => create(new MLContext(seed: 1)));
        Assert.True(error.Message.Contains(message), $"{name}: {error.Message}");
    }

    [Fact]
    public void AScoreColumnRenamedToTheLabelAfterConstructionIsRejectedAtGetOutputSchemaAndFit()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFamilies.Data(ml);
        var options = TinyFamilies.Regressor();
        var trainer = ml.Regression.Trainers.NeuralNetwork(options);
        options.ScoreColumnName = "Target";
        var atSchema = Assert.Throws<ArgumentException>(() => trainer.GetOutputSchema(new SchemaShape(data.Schema.Select(SchemaShapes.FromSchemaColumn))));
        Assert.Contains("ScoreColumnName 'Target' is also the label column (LabelColumnName)", atSchema.Message);
        var atFit = Assert.Throws<ArgumentException>(() => trainer.Fit(data));
        Assert.Contains("ScoreColumnName 'Target' is also the label column (LabelColumnName)", atFit.Message);
    }

    [Fact]
    public void ADecoderWhoseOutputIsItsOwnInputColumnIsRejectedAtTransform()
    {
        var ml = new MLContext(seed: 1);
        var data = TinyFamilies.Data(ml);
        using var autoencoder = ml.Transforms.Autoencoder(TinyFamilies.Autoencoder()).Fit(data);
        using var decoder = autoencoder.CreateDecoder(outputColumnName: "Latent");
        var error = Assert.Throws<ArgumentException>(() => decoder.Transform(autoencoder.Transform(data)));
        Assert.Contains("output 1 'Latent' is also the feature column (FeatureColumnName)", error.Message);
    }

    [Fact]
    public void AnOutputMayReplaceAnInputColumnThatTheModelDoesNotRead()
    {
        // As in ML.NET: a second model's Score hides the first's.
        var ml = new MLContext(seed: 1);
        var data = TinyFamilies.Data(ml);
        var first = Regressor.Value.Transform(data);
        var twice = Regressor.Value.Transform(first);
        Assert.Equal(2, twice.Schema.Count(c => c.Name == "Score"));
        Close.Equal(first.GetColumn<float>("Score"), twice.GetColumn<float>("Score"));
    }
}
