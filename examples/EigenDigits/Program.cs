// PCA on MNIST: eigen-digits, reconstructions from 12/50/100 components, and PCA(50) -> MLP vs raw pixels.
using Microsoft.ML;
using MlNetDeep.Plotting.Course;

var ml = new MLContext(seed: 1);
var output = args.Length > 0 ? args[0] : "out";
Directory.CreateDirectory(output);
var result = PcaCourse.Run(ml, new PcaSettings(), output, Console.Out);
Console.WriteLine($"{result.Raw.Name}: {result.Raw.TestAccuracy:P2}; {result.Projected.Name}: {result.Projected.TestAccuracy:P2}");
