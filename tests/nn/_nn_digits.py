"""scikit-learn's bundled 8x8 digits and a small CNN, shared by the compression tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def load_digits_split(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``(x_train, y_train, x_test, y_test)``: images scaled to [0, 1], a 75/25 split."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[perm], y[perm]
    n = int(0.75 * len(y))
    return x[:n], y[:n], x[n:], y[n:]


def make_cnn(conv: type = nn.Conv2d, **conv_kwargs: object) -> nn.Sequential:
    return nn.Sequential(
        conv(1, 8, 3, padding=1, **conv_kwargs),
        nn.ReLU(),
        conv(8, 16, 3, padding=1, **conv_kwargs),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(256, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def batches(
    x: torch.Tensor, y: torch.Tensor, size: int, seed: int
) -> list[tuple[torch.Tensor, ...]]:
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    return [(x[perm[i : i + size]], y[perm[i : i + size]]) for i in range(0, len(y), size)]


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float = 3e-3,
    seed: int = 0,
) -> nn.Module:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for epoch in range(epochs):
        for xb, yb in batches(x, y, 64, seed + epoch):
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(1) == y).float().mean())
