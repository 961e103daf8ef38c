using System.CommandLine;
using MlNetDeep.Cli.Commands;

var root = new RootCommand("mlnetdeep: deep learning as ML.NET pipelines (TorchSharp engine).");
var train = new Command("train", "Train a model and evaluate it.");
train.Subcommands.Add(TrainMnistCommand.Create());
train.Subcommands.Add(ImageFolderCommands.Train());
root.Subcommands.Add(train);
root.Subcommands.Add(BenchmarkCommand.Create());
root.Subcommands.Add(ExportOnnxCommand.Create());
root.Subcommands.Add(ImageFolderCommands.Export());
root.Subcommands.Add(ServingCommands.Serve());
root.Subcommands.Add(ServingCommands.Score());
foreach (var command in CourseCommands.Create()) root.Subcommands.Add(command);
var autoencoder = new Command("autoencoder", "Autoencoders: dense, convolutional, denoising and variational.");
autoencoder.Subcommands.Add(AutoencoderCommand.Create());
root.Subcommands.Add(autoencoder);
var gan = new Command("gan", "Generative adversarial networks: dense GAN, DCGAN, conditional GAN.");
gan.Subcommands.Add(GanCommand.Create());
root.Subcommands.Add(gan);
root.Subcommands.Add(TextCommands.Create());
root.Subcommands.Add(ReinforcementCommands.Create());
root.Subcommands.Add(VisionCommands.Create());
root.Subcommands.Add(OnnxCommands.Create());
var series = new Command("series", "Time series: forecasting with an LSTM next to ML.NET's regressors.");
series.Subcommands.Add(SequenceCommands.Forecast());
root.Subcommands.Add(series);
try
{
    return root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or InvalidDataException or IOException or NotSupportedException)
{
    // A user-facing problem (bad data or options, missing files, no GPU): its message says what to do; no stack trace.
    Console.Error.WriteLine($"error: {ex.Message}");
    return 1;
}
