// Decision boundaries on half-moons and circles; a deep network without activations stays linear.
using Microsoft.ML;
using MlNetDeep.Plotting.Course;

var ml = new MLContext(seed: 1);
var output = args.Length > 0 ? args[0] : "out";
Directory.CreateDirectory(output);
foreach (var r in ToyClassificationCourse.Run(ml, output, Console.Out))
    Console.WriteLine($"{r.DataSet}, {r.Model}: {r.TestAccuracy:P1}");
