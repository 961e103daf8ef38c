// Regression: a least-squares line, polynomial features by degree, and one-hidden-layer networks of width 1-16.
using Microsoft.ML;
using MlNetDeep.Plotting.Course;

var ml = new MLContext(seed: 1);
var output = args.Length > 0 ? args[0] : "out";
Directory.CreateDirectory(output);
var result = RegressionCourse.Run(ml, output, Console.Out);
var best = result.Degrees.MinBy(d => d.ValidationMse);
Console.WriteLine($"Lowest validation error at degree {best.Degree}.");
