"""Layer cases shared by the factorized-layer test files.

A case builds, in a given dtype, a dense reference layer and the factorized layer made from it
by ``from_dense`` at a rank where the factorization is exact:

* low rank, Tucker and TT: a random dense layer at full rank (SVD, HOSVD/HOOI and TT-SVD are
  exact there);
* CP and TR: a *planted* dense layer whose weight is itself a CP / TR tensor of that rank (a
  random tensor has no exact CP or uniform-rank TR of known rank; ALS and TR-SVD recover a
  planted one).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import factorch.nn as fnn

FORMATS = ("lowrank", "cp", "tucker", "tt", "tr")
CP_OPTS = {"max_iter": 3000, "tol": 1e-16}
TR_OPTS = {"max_iter": 3000, "tol": 1e-15}  # TR-ALS from TR-SVD converges linearly


def _opts(fmt: str) -> dict | None:
    return {"cp": CP_OPTS, "tr": TR_OPTS}.get(fmt)


_CACHE: dict[tuple[str, torch.dtype], tuple[nn.Module, nn.Module]] = {}


@dataclass(frozen=True)
class Case:
    name: str
    format: str
    builder: Callable[[torch.dtype, torch.Generator], tuple[nn.Module, nn.Module]]
    make_input: Callable[[torch.dtype, torch.Generator], torch.Tensor]

    def __str__(self) -> str:
        return self.name

    def build(self, dtype: torch.dtype, g: torch.Generator) -> tuple[nn.Module, nn.Module]:
        """Fresh copies of ``(dense, factorized)``; built once per dtype (fixed seed) since the
        ALS-based cases take a while. ``g`` is advanced so inputs still differ per test."""
        key = (self.name, dtype)
        if key not in _CACHE:
            _CACHE[key] = self.builder(dtype, torch.Generator().manual_seed(1234))
        torch.randn(1, generator=g)
        return copy.deepcopy(_CACHE[key])


# --- linear --------------------------------------------------------------------------------------
LINEAR_FULL = {"lowrank": 12, "tucker": (4, 3, 5, 4), "tt": 1000}
LINEAR_PLANT = {"cp": 3, "tr": (2, 2, 2)}


def _linear_build(fmt: str) -> Callable:
    def build(dtype: torch.dtype, g: torch.Generator) -> tuple[nn.Module, nn.Module]:
        if fmt in LINEAR_FULL:
            dense = nn.Linear(20, 12, dtype=dtype)
            with torch.no_grad():
                dense.weight.copy_(torch.randn(12, 20, generator=g, dtype=dtype))
                dense.bias.copy_(torch.randn(12, generator=g, dtype=dtype))
            rank = LINEAR_FULL[fmt]
        else:
            rank = LINEAR_PLANT[fmt]
            dense = fnn.FactorizedLinear(
                20, 12, format=fmt, rank=rank, generator=g, init_std=1.0, dtype=dtype
            ).to_dense()
        opts = _opts(fmt)
        return dense, fnn.FactorizedLinear.from_dense(
            dense, format=fmt, rank=rank, decomposition=opts
        )

    return build


# --- convolutions ---------------------------------------------------------------------------------
def _conv_build(dims: int, fmt: str) -> Callable:
    dense_cls = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1]
    fac_cls = (fnn.FactorizedConv1d, fnn.FactorizedConv2d, fnn.FactorizedConv3d)[dims - 1]
    cin, cout = 4, 6
    kernel = (3, 2, 2)[:dims]
    kwargs = {"stride": (1, 2, 1)[:dims], "padding": (1, 0, 1)[:dims], "dilation": (2, 1, 1)[:dims]}

    def build(dtype: torch.dtype, g: torch.Generator) -> tuple[nn.Module, nn.Module]:
        if fmt in ("lowrank", "tucker", "tt"):
            dense = dense_cls(cin, cout, kernel, **kwargs, dtype=dtype)
            with torch.no_grad():
                dense.weight.copy_(torch.randn(dense.weight.shape, generator=g, dtype=dtype))
            rank = {"lowrank": cout, "tucker": (cout, cin, *kernel), "tt": 1000}[fmt]
        else:
            rank = 3 if fmt == "cp" else (2,) * (dims + 3)
            dense = fac_cls(
                cin,
                cout,
                kernel,
                **kwargs,
                format=fmt,
                rank=rank,
                generator=g,
                init_std=1.0,
                dtype=dtype,
            ).to_dense()
        opts = _opts(fmt)
        return dense, fac_cls.from_dense(dense, format=fmt, rank=rank, decomposition=opts)

    return build


def _conv_input(dims: int) -> Callable:
    def make(dtype: torch.dtype, g: torch.Generator) -> torch.Tensor:
        return torch.randn(2, 4, *(7, 6, 5)[:dims], generator=g, dtype=dtype)

    return make


# --- embedding ------------------------------------------------------------------------------------
def _embedding_build(fmt: str) -> Callable:
    # three cores for the chain lookups; TR-ALS can stall on a planted 3-core ring this small,
    # so the TR case uses two cores, where TR-SVD is exact
    shape = (
        fnn.TensorizedShape((6, 4), (3, 2))
        if fmt == "tr"
        else fnn.TensorizedShape((4, 3, 2), (3, 2))
    )

    def build(dtype: torch.dtype, g: torch.Generator) -> tuple[nn.Module, nn.Module]:
        if fmt in ("lowrank", "tucker", "tt"):
            dense = nn.Embedding(24, 6, dtype=dtype)
            with torch.no_grad():
                dense.weight.copy_(torch.randn(24, 6, generator=g, dtype=dtype))
            rank = {"lowrank": 6, "tucker": (4, 3, 2, 3, 2), "tt": 1000}[fmt]
        else:
            rank = 3 if fmt == "cp" else (2, 2, 2)
            dense = fnn.FactorizedEmbedding(
                24, 6, format=fmt, rank=rank, shape=shape, generator=g, dtype=dtype
            ).to_dense()
        opts = _opts(fmt)
        return dense, fnn.FactorizedEmbedding.from_dense(
            dense, format=fmt, rank=rank, shape=shape, decomposition=opts
        )

    return build


def _embedding_input(dtype: torch.dtype, g: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 24, (3, 5), generator=g)


# --- tensor regression ----------------------------------------------------------------------------
def _trl_build(fmt: str) -> Callable:
    def build(dtype: torch.dtype, g: torch.Generator) -> tuple[nn.Module, nn.Module]:
        rank = {"lowrank": 5, "tucker": (5, 3, 4), "tt": 1000, "cp": 3, "tr": (2, 2, 2)}[fmt]
        trl = fnn.TensorRegression((3, 4), 5, format=fmt, rank=rank, generator=g, dtype=dtype)
        if fmt in ("lowrank", "tucker", "tt"):  # full rank: any dense weight is reachable
            dense = nn.Linear(12, 5, dtype=dtype)
            with torch.no_grad():
                dense.weight.copy_(torch.randn(5, 12, generator=g, dtype=dtype))
        else:
            dense = trl.linear.to_dense()
        opts = _opts(fmt)
        trl.linear = fnn.FactorizedLinear.from_dense(
            dense, format=fmt, rank=rank, shape=trl.linear.shape, decomposition=opts
        )
        return _Unflatten(dense), trl

    return build


class _Unflatten(nn.Module):
    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(-2))


def _trl_input(dtype: torch.dtype, g: torch.Generator) -> torch.Tensor:
    return torch.randn(6, 3, 4, generator=g, dtype=dtype)


def _linear_input(dtype: torch.dtype, g: torch.Generator) -> torch.Tensor:
    return torch.randn(2, 3, 20, generator=g, dtype=dtype)


CASES: list[Case] = []
for _fmt in FORMATS:
    CASES.append(Case(f"linear-{_fmt}", _fmt, _linear_build(_fmt), _linear_input))
    for _d in (1, 2, 3):
        CASES.append(Case(f"conv{_d}d-{_fmt}", _fmt, _conv_build(_d, _fmt), _conv_input(_d)))
    CASES.append(Case(f"embedding-{_fmt}", _fmt, _embedding_build(_fmt), _embedding_input))
    CASES.append(Case(f"trl-{_fmt}", _fmt, _trl_build(_fmt), _trl_input))


def factorized_layers(module: nn.Module) -> list[fnn.FactorizedLayer]:
    return [m for m in module.modules() if isinstance(m, fnn.FactorizedLayer)]


def set_implementation(module: nn.Module, implementation: str) -> None:
    for m in factorized_layers(module):
        m.implementation = implementation
