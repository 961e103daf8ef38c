# The course's character model in PyTorch, on the same token windows as the MlNetDeep text benchmark.
# Usage: python3 pytorch_char_lstm.py <train.ids> <validation.ids> <vocabulary> <window> <stride> <epochs> <batch> <lr> <embedding> <units> <device>
# The .ids files are little-endian int32 token ids. Prints per epoch: "epoch <i> <windows/s> <validation cross-entropy in nats>".
import os, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

(train_path, val_path, vocab, window, stride, epochs, batch, lr, emb, units, device) = sys.argv[1:12]
vocab, window, stride, epochs, batch, emb, units, lr = int(vocab), int(window), int(stride), int(epochs), int(batch), int(emb), int(units), float(lr)
torch.manual_seed(1)
torch.set_num_threads(os.cpu_count())  # Debian's build defaults to 1; TorchSharp uses every core
print(f"threads {torch.get_num_threads()}", flush=True)
tokens = torch.tensor(np.fromfile(train_path, dtype='<i4').astype(np.int64)).to(device)
val = torch.tensor(np.fromfile(val_path, dtype='<i4').astype(np.int64)).to(device)
offsets = torch.arange(window + 1, device=device)


class CharModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.lower = nn.LSTM(emb, units, batch_first=True)
        self.upper = nn.LSTM(units, units, batch_first=True)
        self.head = nn.Linear(units, vocab)

    def forward(self, ids):
        sequence, _ = self.lower(self.embedding(ids))
        out, _ = self.upper(sequence)
        return self.head(out[:, -1])


model = CharModel().to(device)
opt = torch.optim.Adam(model.parameters(), lr=lr)
windows = (tokens.shape[0] - window - 1) // stride + 1


def validate():
    model.eval()
    total, n = 0.0, val.shape[0] - window
    with torch.no_grad():
        for start in range(0, n, 512):
            rows = val[torch.arange(start, min(n, start + 512), device=device).unsqueeze(1) + offsets]
            total += F.cross_entropy(model(rows[:, :window]), rows[:, window], reduction='sum').item()
    return total / n


for epoch in range(epochs):
    model.train()
    start = time.perf_counter()
    order = torch.randperm(windows, device=device)
    total = torch.zeros(1, device=device)
    for i in range(0, windows, batch):
        rows = tokens[(order[i:i + batch] * stride).unsqueeze(1) + offsets]
        opt.zero_grad()
        loss = F.cross_entropy(model(rows[:, :window]), rows[:, window])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        total += loss.detach()
    total.item()
    rate = windows / (time.perf_counter() - start)
    print(f"epoch {epoch} {rate:.1f} {validate():.5f}", flush=True)
