# Makes the small ONNX vision models that the import tests read (run once with PyTorch; the outputs are committed):
#   cnn.onnx       Conv, Relu, MaxPool, Flatten, Gemm, Softmax   (input [1, 1, 28, 28])
#   batchnorm.onnx Conv, BatchNormalization, Relu, AveragePool, GlobalAveragePool, Flatten, Gemm   (input [1, 3, 32, 32])
#   residual.onnx  Conv, Relu, Add (an identity and a projection shortcut), MaxPool with padding, GlobalAveragePool, Gemm   (input [1, 3, 32, 32])
# Each model gets <name>.input.bin and <name>.output.bin (float32, little-endian): an input and PyTorch's output for it.
import sys
import torch
import torch.nn as nn

torch.manual_seed(7)


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(16 * 6 * 6, 10)

    def forward(self, x):
        return torch.softmax(self.head(torch.flatten(self.features(x), 1)), dim=1)


class WithBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        # A ReLU between each convolution and its batch normalisation keeps the exporter from folding the two together.
        self.features = nn.Sequential(nn.Conv2d(3, 12, 3, stride=2, padding=1), nn.ReLU(), nn.BatchNorm2d(12), nn.AvgPool2d(2),
                                      nn.Conv2d(12, 24, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(24), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(24, 5)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
        self.b = nn.Conv2d(cout, cout, 3, padding=1)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = self.b(torch.relu(self.a(x)))
        return torch.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1))
        self.blocks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2))
        self.head = nn.Linear(32, 7)

    def forward(self, x):
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


def export(model, name, shape, folder):
    model.eval()
    if isinstance(model, WithBatchNorm):
        with torch.no_grad():  # non-trivial statistics, as after training
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)
    x = torch.rand(*shape)
    torch.onnx.export(model, x, f"{folder}/{name}.onnx", input_names=["input"], output_names=["output"], opset_version=13,
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    with torch.no_grad():
        y = model(x)
    x.numpy().astype("<f4").tofile(f"{folder}/{name}.input.bin")
    y.numpy().astype("<f4").tofile(f"{folder}/{name}.output.bin")
    print(name, tuple(y.shape))


folder = sys.argv[1] if len(sys.argv) > 1 else "."
export(Cnn(), "cnn", (2, 1, 28, 28), folder)
export(WithBatchNorm(), "batchnorm", (2, 3, 32, 32), folder)
export(Residual(), "residual", (2, 3, 32, 32), folder)
