// Data preparation: encodings, normalisation, and a CNN on 1,000 MNIST images with and without augmentation.
using Microsoft.ML;
using MlNetDeep.Plotting.Course;

var ml = new MLContext(seed: 1);
var output = args.Length > 0 ? args[0] : "out";
Directory.CreateDirectory(output);
AugmentationCourse.DataPreparation(ml, Console.Out);
var result = AugmentationCourse.Run(ml, new AugmentationSettings(), output, Console.Out);
Console.WriteLine($"Without augmentation {result.PlainAccuracy:P2}, with {result.AugmentedAccuracy:P2}");
