"""scikit-learn's bundled 8x8 digits (BSD-3-Clause; the UCI optical digits test set, 1,797
images) and small training helpers for the paper-property experiments."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn


def digits(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)``: images ``(n, 1, 8, 8)`` in [0, 1], 70/30 split."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[perm], y[perm]
    n = int(0.7 * len(y))
    return x[:n], y[:n], x[n:], y[n:]


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float = 3e-3,
    batch: int = 64,
    seed: int = 0,
    params: Iterable[nn.Parameter] | None = None,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> nn.Module:
    """Adam on the trainable parameters (or ``params``), ``steps`` minibatches."""
    g = torch.Generator().manual_seed(seed)
    trainable = (
        list(params) if params is not None else [p for p in model.parameters() if p.requires_grad]
    )
    opt = torch.optim.Adam(trainable, lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(y), (batch,), generator=g)
        opt.zero_grad()
        loss(model(x[idx]), y[idx]).backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(-1) == y).float().mean())


def digits_cnn() -> nn.Sequential:
    """The small digits CNN of the compression tests (about 19k parameters)."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(256, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )
