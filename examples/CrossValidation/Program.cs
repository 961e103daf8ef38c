// 5-fold cross-validation of the network trainer on MNIST, and learning curves with and without dropout or early stopping.
using Microsoft.ML;
using MlNetDeep.Plotting.Course;

var ml = new MLContext(seed: 1);
var output = args.Length > 0 ? args[0] : "out";
Directory.CreateDirectory(output);
var result = CrossValidationCourse.Run(ml, new CrossValidationSettings(), output, Console.Out);
Console.WriteLine($"Accuracy {result.Mean:P2} ± {result.StandardDeviation:P2}");
