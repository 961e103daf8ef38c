using Microsoft.ML;
using Microsoft.ML.Runtime;
using MlNetDeep.Data;
using MlNetDeep.Native;
using MlNetDeep.Networks;
using MlNetDeep.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace MlNetDeep.Models.Common;

/// <summary>What a family's estimator tells the shared Fit about its task.</summary>
internal sealed record TaskSetup(string? LabelColumnName, LabelKind LabelKind, int Outputs, int ClassCount, TrainingObjective Objective);

/// <summary>
/// The base of every deep trainer on a single feature column: checks the schema (for GetOutputSchema and Fit alike),
/// reads the data into tensors, builds the network, runs the one training engine and hands the trained module to
/// the family's transformer.
/// </summary>
public abstract class DeepEstimator<TOptions, TTransformer> : IEstimator<TTransformer>
    where TOptions : DeepTrainerOptions
    where TTransformer : DeepTransformer
{
    /// <summary>Keeps <paramref name="options"/> (not a copy) and checks them; <see cref="Fit"/> checks them again.</summary>
    private protected DeepEstimator(IHostEnvironment env, TOptions options)
    {
        Environment = env ?? throw new ArgumentNullException(nameof(env));
        Options = options ?? throw new ArgumentNullException(nameof(options));
        options.Validate();
    }

    protected IHostEnvironment Environment { get; }

    public TOptions Options { get; }

    /// <summary>A name for logs and seeds.</summary>
    private protected abstract string Name { get; }

    /// <summary>The family's network for this task (TaskOutputs layers resolved).</summary>
    private protected abstract NetworkSpec NetworkFor(TaskSetup task);

    /// <summary>Checks the label (or other task columns) in a schema and says what the task is.</summary>
    private protected abstract TaskSetup Setup(DataViewSchema schema);

    /// <summary>The output columns for GetOutputSchema, from the input's shape (checking it).</summary>
    private protected abstract IEnumerable<SchemaShape.Column> OutputShapes(SchemaShape inputSchema);

    /// <summary>Builds the TorchSharp module for the network (a plain sequential one unless a family needs more, e.g. an encoder and a decoder).</summary>
    private protected virtual nn.Module BuildModule(NetworkSpec network, int[] inputShape) => network.Build(inputShape);

    /// <summary>
    /// Trains the built module on the staged data: the one training engine over every parameter, unless a family needs
    /// phases of its own (a frozen backbone, then fine-tuning).
    /// </summary>
    private protected virtual TrainingHistory Train(nn.Module module, TaskSetup task, TensorData train, TensorData? validation, Device device, int seed, Generator random) =>
        TrainingEngine.Fit(module, task.Objective, train, validation, Options, device, seed, random);

    private protected abstract TTransformer CreateTransformer(nn.Module module, NetworkSpec network, int[] inputShape, Device device, TaskSetup task, DataViewSchema schema, TrainingHistory history);

    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        var features = ColumnChecks.Find(inputSchema, Options.FeatureColumnName, "feature");
        ColumnChecks.RequireFloatFeatures(features);
        return SchemaShapes.Extend(inputSchema, OutputShapes(inputSchema));
    }

    /// <summary>
    /// Checks the options (again: they may have changed since the estimator was made) and the schema, reads the data,
    /// trains and returns the transformer. <see cref="DeepTrainerOptions.ValidationData"/> given as rows shaped like the
    /// pipeline's input goes through the pipeline's fitted upstream transforms first, as the training rows did.
    /// </summary>
    public TTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        Options.Validate();
        TorchRuntime.EnsureLoaded();
        var schema = input.Schema;
        var featureColumn = ColumnChecks.Find(schema, Options.FeatureColumnName, "feature");
        int featureSize = ColumnChecks.RequireFloatFeatures(featureColumn);
        ColumnChecks.RequireShape(featureColumn, featureSize, Options.InputShape);
        int[] inputShape = Options.InputShape ?? [featureSize];
        var task = Setup(schema);
        var network = NetworkFor(task);
        var output = network.OutputShape(inputShape);
        if (output.Aggregate(1, (a, b) => a * b) != task.Outputs)
            throw new ArgumentException(task.ClassCount > 0
                ? $"The network '{network.Name}' outputs {string.Join("x", output)} values, but the label '{task.LabelColumnName}' has {task.ClassCount} classes. " +
                  "End the network with Dense(Dense.TaskOutputs) to size it to the label."
                : $"The network '{network.Name}' outputs {string.Join("x", output)} values, but the task needs {task.Outputs}.", nameof(Options));

        int seed = Options.Seed ?? HostEnvironments.NextSeed(Environment, Name);
        var device = HostEnvironments.Device(Environment);

        var loaded = DataViewTensors.Load(input, Options.FeatureColumnName, featureSize, task.LabelColumnName, task.LabelKind, task.ClassCount);
        DataViewTensors.ReportSkipped(Environment, Name, loaded, "training data");
        using var all = loaded.ToTensorData(inputShape);
        TensorData train = all;
        TensorData? validation = null;
        try
        {
            if (Options.ValidationFraction > 0)
                (train, validation) = DataViewTensors.Split(all, Options.ValidationFraction, seed);
            else if (Options.ValidationData is { } validationData)
                validation = LoadValidation(validationData, input, featureSize, inputShape, task);

            var (module, random) = TorchRuntime.SeededWithRandom(seed, () => BuildModule(network, inputShape));
            using (random)
            {
                try
                {
                    module.to(device);
                    var history = Train(module, task, train, validation, device, seed, random);
                    var transformer = CreateTransformer(module, network, inputShape, device, task, schema, history);
                    transformer.UseEnvironment(Environment);
                    return transformer;
                }
                catch
                {
                    module.Dispose();
                    throw;
                }
            }
        }
        finally
        {
            if (!ReferenceEquals(train, all)) train.Dispose();
            validation?.Dispose();
        }
    }

    /// <summary>The validation rows as tensors, in the training input's form (<see cref="UpstreamTransforms.Align"/>).</summary>
    private TensorData LoadValidation(IDataView validationData, IDataView input, int featureSize, int[] inputShape, TaskSetup task)
    {
        var aligned = UpstreamTransforms.Align(Environment, validationData, input, Options.FeatureColumnName);
        var v = ColumnChecks.Find(aligned.Schema, Options.FeatureColumnName, "validation feature");
        if (ColumnChecks.RequireFloatFeatures(v, "validation feature") != featureSize)
            throw new ArgumentException($"ValidationData's column '{Options.FeatureColumnName}' has {v.Size} values per row, the training data {featureSize}.", "ValidationData");
        var validationSetup = Setup(aligned.Schema);
        var loaded = DataViewTensors.Load(aligned, Options.FeatureColumnName, featureSize, validationSetup.LabelColumnName, task.LabelKind, task.ClassCount);
        DataViewTensors.ReportSkipped(Environment, Name, loaded, "validation data");
        return loaded.ToTensorData(inputShape);
    }
}
