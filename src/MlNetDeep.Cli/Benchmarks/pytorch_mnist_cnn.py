# The same Keras MNIST CNN and loop in PyTorch, for the MlNetDeep benchmark.
# Usage: python3 pytorch_mnist_cnn.py <train-images-idx> <train-labels-idx> <rows> <epochs> <batch> <device>
# Prints one line per epoch: "epoch <i> <samples/s>".
import os, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mnist_idx import read_idx

images, labels, rows, epochs, batch, device = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
torch.manual_seed(1)
torch.set_num_threads(os.cpu_count())  # Debian's build defaults to 1; TorchSharp uses every core
print(f"threads {torch.get_num_threads()}", flush=True)
x = torch.tensor(read_idx(images)[:rows].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28).to(device)
y = torch.tensor(read_idx(labels)[:rows].astype(np.int64)).to(device)
model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
                      nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10)).to(device)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
model.train()
n = x.shape[0]
for epoch in range(epochs):
    start = time.perf_counter()
    order = torch.randperm(n, device=device)
    total = torch.zeros(1, device=device)
    for i in range(0, n, batch):
        idx = order[i:i + batch]
        opt.zero_grad()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        total += loss.detach()
    total.item()
    print(f"epoch {epoch} {n / (time.perf_counter() - start):.1f}", flush=True)
