"""Compress a small CNN trained on scikit-learn's 8x8 digits with ``factorch.compress``.

Trains the dense CNN (a few seconds on a CPU), then compresses its convolutions and linear layers
to 25 % and 10 % of their parameters (energy-based rank allocation), fine-tunes briefly, and
prints accuracy and the per-layer report. Also trains the same network a priori factorized
(CP convolutions from the start, Boukraichi et al. 2023) for comparison.

Run: ``python examples/compress_digits.py``  (needs scikit-learn).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import factorch.nn as fnn


def load_digits_tensors(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``(x_train, y_train, x_test, y_test)``: 8x8 images scaled to [0, 1], a 75/25 split."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[perm], y[perm]
    n_train = int(0.75 * len(y))
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def make_cnn(conv: type | None = None, **conv_kwargs: object) -> nn.Sequential:
    """Two 3x3 convolutions, max-pooling, two linear layers (~18k parameters).

    ``conv`` replaces ``nn.Conv2d`` (e.g. ``fnn.FactorizedConv2d`` with ``format="cp"``).
    """
    conv_cls = conv or nn.Conv2d
    return nn.Sequential(
        conv_cls(1, 8, 3, padding=1, **conv_kwargs),
        nn.ReLU(),
        conv_cls(8, 16, 3, padding=1, **conv_kwargs),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 64),
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
    epochs: int = 15,
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


def main() -> None:
    torch.manual_seed(0)
    x_tr, y_tr, x_te, y_te = load_digits_tensors()
    dense = train(make_cnn(), x_tr, y_tr)
    print(
        f"dense: {sum(p.numel() for p in dense.parameters())} params, "
        f"test accuracy {accuracy(dense, x_te, y_te):.3f}"
    )
    for ratio in (0.25, 0.10):
        for fmt in ("lowrank", "tucker", "cp"):
            model, report = fnn.compress(
                dense,
                ratio=ratio,
                format=fmt,
                example_input=x_te[:1],
                finetune=fnn.FineTune(batches(x_tr, y_tr, 64, 1), epochs=3, lr=1e-3),
            )
            print(f"\nratio {ratio}, format {fmt}: test accuracy {accuracy(model, x_te, y_te):.3f}")
            print(report.table())
    torch.manual_seed(0)
    apriori = train(make_cnn(fnn.FactorizedConv2d, format="cp", rank=4), x_tr, y_tr)
    print(
        f"\na priori CP-factorized convolutions (rank 4): "
        f"{sum(p.numel() for p in apriori.parameters())} params, "
        f"test accuracy {accuracy(apriori, x_te, y_te):.3f}"
    )


if __name__ == "__main__":
    main()
