using Microsoft.ML;
using Microsoft.ML.Data;

namespace MlNetDeep.Models.Common;

/// <summary>
/// The ML.NET side of a transformer whose work is a row-by-row mapping (an ML.NET CustomMapping built for the input's
/// schema): Transform, the output schema and the row mapper (so PredictionEngine works) all come from
/// <see cref="Mapper"/>. ML.NET's Model.Save cannot hold it; SaveDeep can.
/// </summary>
public abstract class RowMappingTransformer : ITransformer
{
    /// <summary>The mapping for <paramref name="inputSchema"/>; checks the schema and says which column is wrong.</summary>
    private protected abstract ITransformer Mapper(DataViewSchema inputSchema);

    public bool IsRowToRowMapper => true;

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        return Mapper(inputSchema).GetOutputSchema(inputSchema);
    }

    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return Mapper(input.Schema).Transform(input);
    }

    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        return Mapper(inputSchema).GetRowToRowMapper(inputSchema);
    }

    void ICanSaveModel.Save(ModelSaveContext ctx) =>
        throw new NotSupportedException($"ML.NET's Model.Save cannot store a {GetType().Name} (ML.NET keeps its model-saving API internal). " +
            "Save the pipeline with mlContext.Model.SaveDeep(model, inputSchema, path) and load it with mlContext.Model.LoadDeep(path, out schema).");
}
