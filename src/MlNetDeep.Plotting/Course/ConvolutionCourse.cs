using MlNetDeep.Networks;
using TorchSharp;
using static MlNetDeep.Plotting.Course.CourseReport;
using static TorchSharp.torch;

namespace MlNetDeep.Plotting.Course;

/// <summary>The output of one layer for one image: [channels, height, width] values.</summary>
public sealed record FeatureMaps(string Layer, int Channels, int Height, int Width, float[] Values)
{
    /// <summary>The map of channel <paramref name="channel"/> (height x width values).</summary>
    public float[] Channel(int channel) => Values.AsSpan(channel * Height * Width, Height * Width).ToArray();

    /// <summary>The value at (channel, row, column).</summary>
    public float this[int channel, int row, int column] => Values[(channel * Height + row) * Width + column];
}

/// <summary>Hand-set weights of one convolution: [filters, channels, k, k] values and one bias per filter.</summary>
public sealed record FixedKernel(float[] Weights, float[] Biases);

/// <summary>
/// Convolution by hand: filters whose weights are set by hand in the library's own Conv2D layers. A 1x1 "yellow" filter on
/// a colour picture; a 3x3 kernel worked through with valid and same padding and stride 2; and a hierarchical detector
/// (strokes -> parts -> a face) on 27x27 pictures, pooled 27 -> 9 -> 3.
/// </summary>
public static class ConvolutionCourse
{
    /// <summary>The chapter: three experiments.</summary>
    public static CourseChapter Chapter { get; } = new("convolution", "Convolution by hand",
        "Filters with weights set by hand in the library's Conv2D: a yellow detector on a colour picture, a 3x3 kernel with valid and same padding " +
        "and stride, and a hierarchical detector that finds strokes, then parts, then a face.",
        [Yellow, Arithmetic, Hierarchy]);

    /// <summary>
    /// Builds <paramref name="network"/> for <paramref name="input"/>, sets the weights of the layers in <paramref name="kernels"/>
    /// (by layer index) and runs <paramref name="image"/> through it layer by layer: one <see cref="FeatureMaps"/> per layer.
    /// </summary>
    public static IReadOnlyList<FeatureMaps> Run(NetworkSpec network, int[] input, IReadOnlyDictionary<int, FixedKernel> kernels, float[] image)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var module = network.Build(input);
        module.eval();
        foreach (var (name, parameter) in module.named_parameters())
        {
            int layer = int.Parse(name[..name.IndexOf('.')], System.Globalization.CultureInfo.InvariantCulture);
            if (!kernels.TryGetValue(layer, out var kernel)) continue;
            var values = name.EndsWith("weight", StringComparison.Ordinal) ? kernel.Weights : kernel.Biases;
            if (values.Length != parameter.numel())
                throw new ArgumentException($"Layer {layer} ({network.Layers[layer].Describe()}): {name} holds {parameter.numel()} values, the hand-set kernel {values.Length}.");
            parameter.copy_(tensor(values).reshape(parameter.shape));
        }
        var shapes = network.InferShapes(input);
        var x = tensor(image).reshape([1, .. input.Select(d => (long)d)]);
        var maps = new List<FeatureMaps>();
        int i = 0;
        foreach (var child in module.children())
        {
            x = ((nn.Module<Tensor, Tensor>)child).call(x);
            var shape = shapes[i];
            maps.Add(new FeatureMaps(network.Layers[i].Describe(), shape[0], shape[1], shape[2], x.contiguous().data<float>().ToArray()));
            i++;
        }
        return maps;
    }

    // ---- 1. The yellow filter ----

    /// <summary>Named colours of the synthetic picture and the swatch table.</summary>
    public static IReadOnlyList<(string Name, float R, float G, float B)> Colours { get; } =
    [
        ("yellow", 1f, 1f, 0f), ("white", 1f, 1f, 1f), ("orange", 1f, 0.6f, 0f), ("red", 0.9f, 0.1f, 0.1f),
        ("green", 0.2f, 0.65f, 0.2f), ("sky blue", 0.45f, 0.7f, 1f), ("black", 0f, 0f, 0f), ("olive", 0.5f, 0.5f, 0f),
    ];

    /// <summary>The two 1x1 filters (weights on red, green, blue): the course's yellow as weights, and with blue subtracted.</summary>
    public static IReadOnlyList<(string Name, float[] Weights)> YellowFilters { get; } =
    [
        ("(1, 1, 0)", [1f, 1f, 0f]),
        ("(1, 1, -1)", [1f, 1f, -1f]),
    ];

    /// <summary>A 48x48 RGB picture (3 planes): sky, grass, a yellow sun, a white cloud, yellow and red flowers, an orange box and an olive bush.</summary>
    public static float[] Picture(int size = 48)
    {
        var rgb = new float[3 * size * size];
        (float, float, float) C(string name) { var c = Colours.Single(k => k.Name == name); return (c.R, c.G, c.B); }
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                var c = y < size * 2 / 3 ? C("sky blue") : C("green");
                double Dist(double cx, double cy) => Math.Sqrt((x - cx) * (x - cx) + (y - cy) * (y - cy));
                if (Dist(10, 9) < 6) c = C("yellow");
                if (Dist(29, 8) < 4 || Dist(34, 9) < 5 || Dist(39, 8) < 4) c = C("white");
                if (x >= 30 && x < 41 && y >= 22 && y < 32) c = C("orange");
                if (Dist(18, 27) < 5) c = C("olive");
                foreach (var (fx, fy, name) in new[] { (6, 38, "yellow"), (14, 42, "red"), (22, 37, "yellow"), (30, 43, "red"), (38, 39, "yellow"), (44, 44, "yellow") })
                    if (Dist(fx, fy) < 2.2) c = C(name);
                rgb[y * size + x] = c.Item1;
                rgb[size * size + y * size + x] = c.Item2;
                rgb[2 * size * size + y * size + x] = c.Item3;
            }
        return rgb;
    }

    /// <summary>A 1x1 convolution of two filters, no bias, no activation: the course's "core sample" times three weights, summed.</summary>
    public static NetworkSpec YellowNetwork { get; } = new([new Conv2D(2, 1, UseBias: false)]) { Name = "yellow" };

    private static FixedKernel YellowKernel => new([.. YellowFilters.SelectMany(f => f.Weights)], []);

    private static CourseExperiment Yellow(CourseRun run)
    {
        const int size = 48;
        var picture = Picture(size);
        var maps = Run(YellowNetwork, [3, size, size], new Dictionary<int, FixedKernel> { [0] = YellowKernel }, picture)[0];
        var swatches = new float[3 * Colours.Count];
        for (int i = 0; i < Colours.Count; i++) (swatches[i], swatches[Colours.Count + i], swatches[2 * Colours.Count + i]) = (Colours[i].R, Colours[i].G, Colours[i].B);
        var responses = Run(YellowNetwork, [3, 1, Colours.Count], new Dictionary<int, FixedKernel> { [0] = YellowKernel }, swatches)[0];

        static float[] Grey(float[] plane) => [.. plane.Select(v => Math.Clamp(v / 2, 0, 1)), .. plane.Select(v => Math.Clamp(v / 2, 0, 1)), .. plane.Select(v => Math.Clamp(v / 2, 0, 1))];
        var path = Path.Combine(run.Output, "convolution-yellow.png");
        ImageGrid.Save(path, [picture, Grey(maps.Channel(0)), Grey(maps.Channel(1))], size, size, 3, scale: 6,
            ["picture", $"filter {YellowFilters[0].Name}", $"filter {YellowFilters[1].Name}"],
            "1x1 convolutions on RGB: output 0 = black, +2 = white (negative values shown black)", channels: 3);
        run.Log.WriteLine($"Wrote {path}");

        float[] first = responses.Channel(0), second = responses.Channel(1);
        int yellow = 0, white = 1;
        bool agrees = second[yellow] == 2f && Enumerable.Range(0, Colours.Count).All(i => i == yellow || second[i] < 2f) && first[white] == 2f;
        return new CourseExperiment("The yellow filter: a 1x1 convolution on a colour picture",
            "A 1x1 filter multiplies each pixel's red, green and blue by three weights and adds them up, like a perceptron with a linear activation; " +
            "with weights for red and green it answers most (+2) on yellow pixels. Taken literally as weights (1, 1, 0), it answers +2 on white too; " +
            "subtracting blue, (1, 1, -1), keeps +2 for yellow alone (white drops to 1).",
            $"Filter (1, 1, -1): yellow {F(second[yellow], "F1")}, white {F(second[white], "F1")}, orange {F(second[2], "F1")}; " +
            $"filter (1, 1, 0): yellow {F(first[yellow], "F1")}, white {F(first[white], "F1")}.",
            agrees, [path],
            [new CourseTable("Each filter's output on pure colours (the library's Conv2D(2, 1x1) with the weights set by hand, no bias)",
                ["colour", "red", "green", "blue", $"filter {YellowFilters[0].Name}", $"filter {YellowFilters[1].Name}"],
                Colours.Select((c, i) => (IReadOnlyList<string>)[c.Name, F(c.R, "F2"), F(c.G, "F2"), F(c.B, "F2"), F(first[i], "F2"), F(second[i], "F2")]).ToList())],
            $"mlnetdeep course convolution{run.QuickFlag}");
    }

    // ---- 2. 3x3 arithmetic ----

    /// <summary>The 6x6 input of the arithmetic examples: its top-left 3x3 and top-right 3x3 are the workshop's two patches.</summary>
    public static float[,] ArithmeticInput { get; } = new float[,]
    {
        { 1, 1, 0, 0, 1, 0 },
        { 0, 0, 0, 0, 1, 0 },
        { 1, 0, 1, 0, 1, 0 },
        { 0, 0, 0, 0, 0, 0 },
        { 0, 1, 0, 0, 0, 0 },
        { 0, 1, 0, 0, 0, 0 },
    };

    /// <summary>The workshop's 3x3 kernel: +1 down the middle column, -1 on either side (a vertical-line detector).</summary>
    public static float[,] ArithmeticKernel { get; } = new float[,] { { -1, 1, -1 }, { -1, 1, -1 }, { -1, 1, -1 } };

    /// <summary>The kernel over the input by the library's Conv2D(1, 3x3, stride, padding) with the weights set by hand, no bias.</summary>
    public static float[,] Convolve(float[,] input, float[,] kernel, int stride, PaddingMode padding)
    {
        int n = input.GetLength(0), k = kernel.GetLength(0);
        var spec = new NetworkSpec([new Conv2D(1, k, stride, padding, UseBias: false)]) { Name = "arithmetic" };
        var map = Run(spec, [1, n, n], new Dictionary<int, FixedKernel> { [0] = new(kernel.Cast<float>().ToArray(), []) }, input.Cast<float>().ToArray())[0];
        var output = new float[map.Height, map.Width];
        for (int r = 0; r < map.Height; r++) for (int c = 0; c < map.Width; c++) output[r, c] = map[0, r, c];
        return output;
    }

    private static CourseTable Matrix(string title, float[,] m) =>
        new(title, ["", .. Enumerable.Range(0, m.GetLength(1)).Select(c => $"col {c}")],
            Enumerable.Range(0, m.GetLength(0)).Select(r => (IReadOnlyList<string>)[$"row {r}", .. Enumerable.Range(0, m.GetLength(1)).Select(c => F(m[r, c], "F0"))]).ToList());

    private static CourseExperiment Arithmetic(CourseRun run)
    {
        var cases = new (string Name, int Stride, PaddingMode Padding)[]
        {
            ("valid, stride 1", 1, PaddingMode.Valid), ("same, stride 1", 1, PaddingMode.Same),
            ("valid, stride 2", 2, PaddingMode.Valid), ("same, stride 2", 2, PaddingMode.Same),
        };
        var outputs = cases.Select(c => (c.Name, Output: Convolve(ArithmeticInput, ArithmeticKernel, c.Stride, c.Padding))).ToList();
        var valid = outputs[0].Output;
        var sizes = outputs.Select(o => $"{o.Output.GetLength(0)}x{o.Output.GetLength(1)}").ToList();
        bool agrees = valid[0, 0] == -2 && valid[0, 3] == 3 && sizes.SequenceEqual(["4x4", "6x6", "2x2", "3x3"]);
        return new CourseExperiment("A 3x3 kernel by the numbers: valid and same padding, stride",
            "The kernel is laid on each 3x3 patch, multiplied element by element and summed: on the workshop's patch (1 1 0 / 0 0 0 / 1 0 1) " +
            "the vertical-line kernel gives -3 + 1 = -2, on a vertical line 3. \"Valid\" convolution shrinks a 6x6 input to 4x4; \"same\" pads " +
            "with zeros to keep 6x6; a stride of 2 moves the kernel two pixels at a time (2x2 valid, 3x3 same).",
            $"Top-left patch: {F(valid[0, 0], "F0")}; the vertical line (top right): {F(valid[0, 3], "F0")}; output sizes {string.Join(", ", cases.Select((c, i) => $"{c.Name} {sizes[i]}"))}.",
            agrees, [],
            [Matrix("Input (6x6)", ArithmeticInput), Matrix("Kernel (3x3)", ArithmeticKernel),
                .. outputs.Select(o => Matrix($"Output, {o.Name} ({o.Output.GetLength(0)}x{o.Output.GetLength(1)})", o.Output))],
            $"mlnetdeep course convolution{run.QuickFlag}");
    }

    // ---- 3. The hierarchical detector ----

    /// <summary>The four strokes of the first layer, 3x3 each: horizontal, vertical, falling diagonal, rising diagonal.</summary>
    public static IReadOnlyList<(string Name, int[,] Pixels)> Strokes { get; } =
    [
        ("-", new[,] { { 0, 0, 0 }, { 1, 1, 1 }, { 0, 0, 0 } }),
        ("|", new[,] { { 0, 1, 0 }, { 0, 1, 0 }, { 0, 1, 0 } }),
        ("\\", new[,] { { 1, 0, 0 }, { 0, 1, 0 }, { 0, 0, 1 } }),
        ("/", new[,] { { 0, 0, 1 }, { 0, 1, 0 }, { 1, 0, 0 } }),
    ];

    /// <summary>The three parts of the second layer: 3x3 arrangements of strokes (indices into <see cref="Strokes"/>; -1: no stroke).</summary>
    public static IReadOnlyList<(string Name, int[,] Strokes)> Parts { get; } =
    [
        ("eye", new[,] { { 3, 0, 2 }, { 1, -1, 1 }, { 2, 0, 3 } }),
        ("nose", new[,] { { -1, 1, -1 }, { -1, 1, -1 }, { 3, 0, 2 } }),
        ("mouth", new[,] { { -1, -1, -1 }, { 2, 0, 3 }, { -1, -1, -1 } }),
    ];

    /// <summary>The face of the third layer: parts (indices into <see cref="Parts"/>) on a 3x3 grid; -1: don't care.</summary>
    public static int[,] Face { get; } = { { 0, -1, 0 }, { -1, 1, -1 }, { -1, 2, -1 } };

    /// <summary>
    /// The detector: Conv2D(4 strokes, 3x3, same, ReLU) - MaxPool(3): 27 -> 9 - Conv2D(3 parts, 3x3, same, ReLU) - MaxPool(3): 9 -> 3 -
    /// Conv2D(1 face, 3x3, valid, ReLU): 3 -> 1.
    /// </summary>
    public static NetworkSpec HierarchyNetwork { get; } = new(
    [
        new Conv2D(4, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU), new MaxPool2D(3),
        new Conv2D(3, 3, Padding: PaddingMode.Same, Activation: ActivationKind.ReLU), new MaxPool2D(3),
        new Conv2D(1, 3, Activation: ActivationKind.ReLU),
    ]) { Name = "hierarchy" };

    /// <summary>
    /// An exact-match filter: +1 where the pattern wants a feature, -1 on every other feature there (and on every feature
    /// where it wants none), 0 where it does not care; the bias is 1 - (features wanted), so a perfect match gives 1 and one
    /// miss or one intruder gives 0 or less (ReLU: 0).
    /// </summary>
    private static (float[] Weights, float Bias) ExactMatch(int channels, int[,] wanted, bool[,]? dontCare = null)
    {
        var w = new float[channels * 9];
        int count = 0;
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 3; c++)
            {
                if (dontCare?[r, c] == true) continue;
                for (int ch = 0; ch < channels; ch++) w[(ch * 3 + r) * 3 + c] = wanted[r, c] == ch ? 1 : -1;
                if (wanted[r, c] >= 0) count++;
            }
        return (w, 1 - count);
    }

    /// <summary>The hand-set weights of the detector's three convolutions (layers 0, 2 and 4).</summary>
    public static IReadOnlyDictionary<int, FixedKernel> HierarchyKernels()
    {
        FixedKernel Bank(IEnumerable<(float[] Weights, float Bias)> filters) => new([.. filters.SelectMany(f => f.Weights)], [.. filters.Select(f => f.Bias)]);
        var strokes = Bank(Strokes.Select(s =>
        {
            var wanted = new int[3, 3];
            for (int r = 0; r < 3; r++) for (int c = 0; c < 3; c++) wanted[r, c] = s.Pixels[r, c] == 1 ? 0 : -1;
            return ExactMatch(1, wanted);
        }));
        var parts = Bank(Parts.Select(p => ExactMatch(Strokes.Count, p.Strokes)));
        var dontCare = new bool[3, 3];
        for (int r = 0; r < 3; r++) for (int c = 0; c < 3; c++) dontCare[r, c] = Face[r, c] < 0;
        var face = Bank([ExactMatch(Parts.Count, Face, dontCare)]);
        return new Dictionary<int, FixedKernel> { [0] = strokes, [2] = parts, [4] = face };
    }

    /// <summary>A 27x27 picture of parts (indices into <see cref="Parts"/>; -1: empty) on a 3x3 grid of 9x9 blocks.</summary>
    public static float[] Draw(int[,] parts)
    {
        var cells = new int[9, 9];
        for (int i = 0; i < 81; i++) cells[i / 9, i % 9] = -1;
        for (int br = 0; br < 3; br++)
            for (int bc = 0; bc < 3; bc++)
                if (parts[br, bc] >= 0)
                    for (int r = 0; r < 3; r++)
                        for (int c = 0; c < 3; c++)
                            cells[br * 3 + r, bc * 3 + c] = Parts[parts[br, bc]].Strokes[r, c];
        return DrawStrokes(cells);
    }

    /// <summary>A 27x27 picture of strokes (indices into <see cref="Strokes"/>; -1: empty) on a 9x9 grid of 3x3 cells.</summary>
    public static float[] DrawStrokes(int[,] cells)
    {
        var image = new float[27 * 27];
        for (int cr = 0; cr < 9; cr++)
            for (int cc = 0; cc < 9; cc++)
                if (cells[cr, cc] >= 0)
                    for (int r = 0; r < 3; r++)
                        for (int c = 0; c < 3; c++)
                            if (Strokes[cells[cr, cc]].Pixels[r, c] == 1) image[(cr * 3 + r) * 27 + cc * 3 + c] = 1;
        return image;
    }

    /// <summary>The pictures the detector is shown: the face, its parts moved about, and its strokes shuffled.</summary>
    public static IReadOnlyList<(string Name, float[] Image)> HierarchyPictures()
    {
        var face = Draw(Face);
        var moved = Draw(new[,] { { 2, -1, 1 }, { -1, 0, -1 }, { 0, -1, -1 } });
        // The face's strokes, each moved to another cell by a fixed permutation of the 81 cells.
        var cells = new int[9, 9];
        for (int br = 0; br < 3; br++)
            for (int bc = 0; bc < 3; bc++)
                for (int r = 0; r < 3; r++)
                    for (int c = 0; c < 3; c++)
                        cells[br * 3 + r, bc * 3 + c] = Face[br, bc] >= 0 ? Parts[Face[br, bc]].Strokes[r, c] : -1;
        var shuffled = new int[9, 9];
        for (int i = 0; i < 81; i++) shuffled[i * 37 % 81 / 9, i * 37 % 81 % 9] = cells[i / 9, i % 9];
        return [("face", face), ("parts moved about", moved), ("strokes shuffled", DrawStrokes(shuffled))];
    }

    /// <summary>Runs the detector on a 27x27 picture: the maps of its five layers.</summary>
    public static IReadOnlyList<FeatureMaps> Detect(float[] image) => Run(HierarchyNetwork, [1, 27, 27], HierarchyKernels(), image);

    private static float[] Upscale(float[] map, int side, int to)
    {
        int f = to / side;
        var big = new float[to * to];
        for (int y = 0; y < to; y++) for (int x = 0; x < to; x++) big[y * to + x] = map[y / f * side + x / f];
        return big;
    }

    private static CourseExperiment Hierarchy(CourseRun run)
    {
        var pictures = HierarchyPictures();
        var files = new List<string>();
        var rows = new List<IReadOnlyList<string>>();
        var faces = new List<float>();
        foreach (var (name, image) in pictures)
        {
            var maps = Detect(image);
            var tiles = new List<float[]>();
            var captions = new List<string>();
            var blank = Enumerable.Repeat(0.25f, 27 * 27).ToArray();
            void Add(float[] tile, string caption) { tiles.Add(tile); captions.Add(caption); }
            Add(image, "input 27x27");
            for (int s = 0; s < Strokes.Count; s++) Add(maps[0].Channel(s), $"stroke {Strokes[s].Name} 27x27");
            Add(blank, "");
            for (int s = 0; s < Strokes.Count; s++) Add(Upscale(maps[1].Channel(s), 9, 27), $"pooled {Strokes[s].Name} 9x9");
            Add(blank, "");
            for (int p = 0; p < Parts.Count; p++) Add(Upscale(maps[2].Channel(p), 9, 27), $"{Parts[p].Name} 9x9");
            Add(blank, "");
            Add(blank, "");
            for (int p = 0; p < Parts.Count; p++) Add(Upscale(maps[3].Channel(p), 3, 27), $"pooled {Parts[p].Name} 3x3");
            float face = maps[4].Values[0];
            // The 1x1 output fills the tile inside a grey frame (white on the page's white would not show).
            Add(Enumerable.Range(0, 27 * 27).Select(i => i / 27 is 0 or 26 || i % 27 is 0 or 26 ? 0.25f : Math.Clamp(face, 0, 1)).ToArray(), $"face 1x1: {face:F0}");
            var path = Path.Combine(run.Output, $"convolution-hierarchy-{name.Replace(' ', '-')}.png");
            ImageGrid.Save(path, tiles, 27, 27, 5, scale: 5, captions,
                $"{name}: strokes -> max pool 3 -> parts -> max pool 3 -> face (white = fires; grey = no map)");
            run.Log.WriteLine($"Wrote {path}");
            files.Add(path);
            faces.Add(face);
            var partsAt = new List<string>();
            for (int r = 0; r < 3; r++)
                for (int c = 0; c < 3; c++)
                {
                    var found = Enumerable.Range(0, Parts.Count).Where(p => maps[3][p, r, c] > 0.5f).Select(p => Parts[p].Name).ToList();
                    if (found.Count > 0) partsAt.Add($"({r},{c}) {string.Join("+", found)}");
                }
            int strokes = Enumerable.Range(0, Strokes.Count).Sum(s => maps[1].Channel(s).Count(v => v > 0.5f));
            rows.Add([name, strokes.ToString(), partsAt.Count == 0 ? "none" : string.Join(", ", partsAt), F(face, "F0")]);
        }
        bool agrees = faces[0] > 0.5f && faces.Skip(1).All(f => f < 0.5f);
        return new CourseExperiment("A hierarchical detector: strokes, parts, a face (27 -> 9 -> 3)",
            "No filter needs to know the whole face: small filters find strokes, max pooling (27x27 to 9x9) forgets their exact pixel, " +
            "filters on the pooled map find parts (eyes, nose, mouth) made of strokes, pooling again (9x9 to 3x3) and one last filter finds the face " +
            "from its parts. It fires on the face and not on the same parts in the wrong places, nor on the same strokes shuffled.",
            $"Face output: {string.Join(", ", pictures.Select((p, i) => $"{p.Name} {F(faces[i], "F0")}"))}.",
            agrees, files,
            [
                new CourseTable("What each layer found (the library's Conv2D and MaxPool2D layers in a NetworkSpec, weights set by hand)",
                    ["picture", "strokes found (9x9 cells)", "parts found (3x3 blocks)", "face"], rows),
                new CourseTable("The network", ["layer", "output shape"],
                    HierarchyNetwork.Layers.Select((l, i) => (IReadOnlyList<string>)[l.Describe(), "[" + string.Join(", ", HierarchyNetwork.InferShapes([1, 27, 27])[i]) + "]"]).ToList()),
            ],
            $"mlnetdeep course convolution{run.QuickFlag}");
    }
}
