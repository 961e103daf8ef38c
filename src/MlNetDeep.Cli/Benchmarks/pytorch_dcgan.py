# The same DCGAN (generator and discriminator) and step in PyTorch, for `mlnetdeep benchmark gan`.
# Usage: python3 pytorch_dcgan.py <train-images-idx> <rows> <epochs> <batch> <device>
# Prints one line per epoch: "epoch <i> <samples/s>".
import os, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mnist_idx import read_idx

images, rows, epochs, batch, device = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.manual_seed(1)
torch.set_num_threads(os.cpu_count())
x = torch.tensor(read_idx(images)[:rows].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28).to(device)
latent = 100
g = nn.Sequential(nn.Linear(latent, 128 * 7 * 7, bias=False), nn.BatchNorm1d(128 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (128, 7, 7)),
                  nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                  nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Tanh()).to(device)
d = nn.Sequential(nn.Conv2d(1, 64, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(64, 128, 4, 2, 1, bias=False), nn.BatchNorm2d(128),
                  nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(128 * 7 * 7, 1)).to(device)
og = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
od = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
n = x.shape[0]
for epoch in range(epochs):
    start = time.perf_counter()
    order = torch.randperm(n, device=device)
    total = torch.zeros(1, device=device)
    for i in range(0, n, batch):
        real = x[order[i:i + batch]] * 2 - 1
        fake = g(torch.randn(real.shape[0], latent).to(device))
        od.zero_grad()
        rl, fl = d(real).reshape(-1), d(fake.detach()).reshape(-1)
        dl = F.binary_cross_entropy_with_logits(rl, torch.ones_like(rl)) + F.binary_cross_entropy_with_logits(fl, torch.zeros_like(fl))
        dl.backward()
        od.step()
        og.zero_grad()
        gl = F.binary_cross_entropy_with_logits(d(fake).reshape(-1), torch.ones_like(rl))
        gl.backward()
        og.step()
        total += dl.detach() + gl.detach()
    total.item()
    print(f"epoch {epoch} {n / (time.perf_counter() - start):.1f}", flush=True)
