// k-means (ML.NET KMeans) on MNIST and on 2-D toy data: inertia, NMI and purity by k; centroids as images.
using Microsoft.ML;
using MlNetDeep.Plotting.Course;

var ml = new MLContext(seed: 1);
var output = args.Length > 0 ? args[0] : "out";
Directory.CreateDirectory(output);
KMeansCourse.RunToy(ml, output, Console.Out);
var result = KMeansCourse.RunMnist(ml, new KMeansSettings { Rows = 10_000 }, output, Console.Out);
var ten = result.Raw.First(r => r.K == 10);
Console.WriteLine($"k = 10 on raw pixels: NMI {ten.NormalizedMutualInformation:F3}");
