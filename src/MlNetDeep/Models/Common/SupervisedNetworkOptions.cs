using MlNetDeep.Networks;
using MlNetDeep.Training;

namespace MlNetDeep.Models.Common;

/// <summary>Options of a trainer that learns a label with one network: the label column, the network and the score column.</summary>
public abstract class SupervisedNetworkOptions : DeepTrainerOptions
{
    protected SupervisedNetworkOptions(NetworkSpec defaultNetwork) { Network = defaultNetwork; }

    /// <summary>The label column.</summary>
    public string LabelColumnName { get; set; } = "Label";

    /// <summary>The network; its Dense(Dense.TaskOutputs) layer is sized to the task's outputs.</summary>
    public NetworkSpec Network { get; set; }

    /// <summary>The output column of the prediction's score.</summary>
    public string ScoreColumnName { get; set; } = "Score";

    internal override void Validate()
    {
        base.Validate();
        if (Network is null) throw new ArgumentNullException(nameof(Network));
        if (string.IsNullOrWhiteSpace(LabelColumnName)) throw new ArgumentException("LabelColumnName must name a column.", nameof(LabelColumnName));
        if (string.IsNullOrWhiteSpace(ScoreColumnName)) throw new ArgumentException("ScoreColumnName must name a column.", nameof(ScoreColumnName));
        CheckColumnNames();
    }

    /// <summary>The output columns' names, by option.</summary>
    private protected virtual IEnumerable<(string Option, string? Name)> OutputColumnNames => [(nameof(ScoreColumnName), ScoreColumnName)];

    /// <summary>The outputs' names are distinct and none is the feature or the label column (checked at construction, Fit and GetOutputSchema).</summary>
    internal void CheckColumnNames() => Common.OutputColumnNames.Check(OutputColumnNames,
        [(nameof(FeatureColumnName), FeatureColumnName, "feature"), (nameof(LabelColumnName), LabelColumnName, "label")]);
}
