using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML;
using MlNetDeep.Data;
using MlNetDeep.Models.Classification;
using MlNetDeep.Networks;
using MlNetDeep.Plotting;
using MlNetDeep.Training;

namespace MlNetDeep.Cli.Commands;

/// <summary><c>mlnetdeep train mnist</c>: the MNIST CNN or MLP, trained and evaluated on the 10k test images.</summary>
internal static class TrainMnistCommand
{
    public static Command Create()
    {
        var common = new CommonOptions();
        var model = new Option<string>("--model", "-m") { Description = "cnn (Keras' MNIST CNN) or mlp (512 ReLU + dropout).", DefaultValueFactory = _ => "cnn" };
        model.AcceptOnlyFromAmong("cnn", "mlp");
        var epochs = new Option<int?>("--epochs", "-e") { Description = "Epochs (default: 12 for cnn, 20 for mlp)." }.AtLeast(1);
        var batch = new Option<int>("--batch-size", "-b") { Description = "Mini-batch size.", DefaultValueFactory = _ => 128 }.AtLeast(1);
        var optimizer = new Option<string>("--optimizer") { Description = "adam (default), adadelta (the Keras example's choice), sgd or rmsprop.", DefaultValueFactory = _ => "adam" };
        optimizer.AcceptOnlyFromAmong([.. OptimizerSpec.Names]);
        var rate = new Option<double?>("--learning-rate", "--lr") { Description = "Learning rate (default: the optimizer's own: adam 1e-3, adadelta 1.0, sgd 0.01, rmsprop 1e-3)." }.Positive();
        var momentum = new Option<double>("--momentum") { Description = "Momentum, in [0, 1): sgd and rmsprop only.", DefaultValueFactory = _ => 0 };
        var nesterov = new Option<bool>("--nesterov") { Description = "Nesterov momentum (sgd with --momentum only)." };
        var rows = new Option<int?>("--train-rows") { Description = "Use only the first N training images (quick runs)." }.AtLeast(1);
        var adversarial = new Option<string>("--adversarial") { Description = "Adversarial training: none, fgsm (from a random start) or pgd.", DefaultValueFactory = _ => "none" };
        adversarial.AcceptOnlyFromAmong("none", "fgsm", "pgd");
        var adversarialEpsilon = new Option<double>("--adversarial-epsilon") { Description = "Epsilon of the training attack (pixels in [0, 1]).", DefaultValueFactory = _ => 0.1 };
        var adversarialSteps = new Option<int>("--adversarial-steps") { Description = "PGD steps of the training attack.", DefaultValueFactory = _ => 7 }.AtLeast(1);
        var adversarialFraction = new Option<double>("--adversarial-fraction") { Description = "Share of each batch replaced by adversarial images, in (0, 1].", DefaultValueFactory = _ => 0.5 };
        var command = new Command("mnist", "Train the MNIST CNN or MLP and evaluate it on MNIST's 10,000 test images (fetches MNIST on first use).")
        {
            model, epochs, batch, optimizer, rate, momentum, nesterov, rows, adversarial, adversarialEpsilon, adversarialSteps, adversarialFraction,
        };
        common.AddTo(command);
        command.Validators.Add(result =>
        {
            string name = result.GetValue(optimizer) ?? "adam";
            double m = result.GetValue(momentum);
            if (!(m >= 0 && m < 1)) result.AddError($"--momentum must be in [0, 1), got {m}.");
            else if (m != 0 && name is not ("sgd" or "rmsprop")) result.AddError($"--momentum applies to --optimizer sgd or rmsprop, not {name}.");
            if (result.GetValue(nesterov) && (name != "sgd" || m == 0)) result.AddError("--nesterov needs --optimizer sgd and a --momentum above 0.");
        });
        command.SetAction(result =>
        {
            string kind = result.GetValue(model)!;
            bool cnn = kind == "cnn";
            var options = new NeuralNetworkClassifierOptions
            {
                FeatureColumnName = "Pixels",
                InputShape = cnn ? [1, 28, 28] : null,
                Network = cnn ? Networks.Networks.KerasMnistCnn : Networks.Networks.MnistMlp,
                Epochs = result.GetValue(epochs) ?? (cnn ? 12 : 20),
                BatchSize = result.GetValue(batch),
                Optimizer = OptimizerSpec.FromName(result.GetValue(optimizer)!, result.GetValue(rate), result.GetValue(momentum), result.GetValue(nesterov)),
                AdversarialTraining = result.GetValue(adversarial) switch
                {
                    "fgsm" => new AdversarialTraining(Vision.Attack.Fgsm(result.GetValue(adversarialEpsilon), randomStart: true), result.GetValue(adversarialFraction)),
                    "pgd" => new AdversarialTraining(Vision.Attack.Pgd(result.GetValue(adversarialEpsilon), result.GetValue(adversarialSteps)),
                        result.GetValue(adversarialFraction)),
                    _ => null,
                },
            };
            int? trainRows = result.GetValue(rows);
            // The trainer's own checks, before MNIST is loaded (or downloaded).
            _ = new NeuralNetworkClassifier(new MLContext(), options);
            string name = $"mnist-{kind}" + (options.AdversarialTraining is null ? "" : $"-{result.GetValue(adversarial)}");
            return Run(common.CreateContext(result), options, name, common.OutputFolder(result), trainRows);
        });
        return command;
    }

    internal static int Run(MLContext ml, NeuralNetworkClassifierOptions options, string name, string output, int? trainRows)
    {
        Console.WriteLine("Loading MNIST ...");
        var train = ml.Data.LoadMnist(MnistSplit.Train, maxRows: trainRows);
        var test = ml.Data.LoadMnist(MnistSplit.Test);
        Console.WriteLine($"Network {options.Network.Name}, optimizer {options.Optimizer}, batch {options.BatchSize}, {options.Epochs} epochs:");
        Console.Write(options.Network.WithTaskOutputs(10).Summary(options.InputShape ?? [Mnist.PixelCount]));
        if (options.AdversarialTraining is { } adversarial)
            Console.WriteLine($"Adversarial training: {adversarial.Fraction:P0} of each batch replaced by {adversarial.Attack.Method} images, epsilon {adversarial.Attack.Epsilon}, " +
                $"{adversarial.Attack.Steps} step(s) of {adversarial.Attack.EffectiveStepSize:G3}{(adversarial.Attack.RandomStart ? " from a random start" : "")}");
        options.ValidationData = test;

        var clock = Stopwatch.StartNew();
        var model = ConsoleProgress.Run($"{name}", progress =>
        {
            options.Progress = progress;
            var pipeline = ml.MulticlassClassification.Trainers.NeuralNetwork(options)
                .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
            return pipeline.Fit(train);
        });
        var trainSeconds = clock.Elapsed.TotalSeconds;
        var deep = model.OfType<NeuralNetworkClassificationTransformer>().Single();

        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
        Console.WriteLine();
        Console.WriteLine($"Test accuracy (10,000 images): {metrics.MicroAccuracy:P2}   macro accuracy {metrics.MacroAccuracy:P2}   log-loss {metrics.LogLoss:F4}");
        Console.WriteLine($"Training: {trainSeconds:F0} s, {deep.History!.SamplesPerSecond:F0} samples/s, device {deep.Device}");
        Console.WriteLine(metrics.ConfusionMatrix.GetFormattedConfusionTable());

        var modelPath = Path.Combine(output, $"{name}.zip");
        ml.Model.SaveDeep(model, train.Schema, modelPath);
        var onnxPath = Path.Combine(output, $"{name}.onnx");
        deep.SaveAsOnnx(onnxPath);
        var curves = Path.Combine(output, $"{name}-curves.png");
        Charts.TrainingCurves(curves, deep.History, name, validationName: "test");
        File.WriteAllText(Path.Combine(output, $"{name}-history.csv"), deep.History.ToCsv());
        Console.WriteLine($"Saved model {modelPath} (ONNX: {onnxPath}), curves {curves}, history {Path.Combine(output, $"{name}-history.csv")}");
        return 0;
    }
}
