"""The completion entry points that take data and a rank, with small fixed options, so the policy
tests (inputs, scale, precision, autocast) can run every one of them the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from factorch.completion import cp_als, cp_wopt, gcp, tt_als, tucker_als
from factorch.random import planted

F64 = torch.float64


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


# name -> fit(tensor, rank, **options): every option but the data, mask and rank fixed.
ENTRY_POINTS: dict[str, Callable[..., Any]] = {
    "cp_als": lambda x, r, **kw: cp_als(x, r, max_iter=15, generator=_gen(), **kw),
    "cp_als_em": lambda x, r, **kw: cp_als(x, r, method="em", max_iter=15, generator=_gen(), **kw),
    "cp_wopt": lambda x, r, **kw: cp_wopt(x, r, max_iter=8, generator=_gen(), **kw),
    "gcp_gaussian": lambda x, r, **kw: gcp(x, r, max_iter=8, generator=_gen(), **kw),
    "gcp_huber": lambda x, r, huber_delta=0.5, **kw: gcp(
        x, r, loss="huber", huber_delta=huber_delta, max_iter=8, generator=_gen(), **kw
    ),
    "tucker_als": lambda x, r, **kw: tucker_als(x, r, max_iter=15, generator=_gen(), **kw),
    "tt_als": lambda x, r, **kw: tt_als(x, r, max_iter=15, generator=_gen(), **kw),
}

# The ALS methods (and the gradient ones on data scaled by a power of two) are exactly
# equivariant under scaling; these names are the ones whose fit of ``c X`` is ``c`` times the fit
# of ``X`` for every power of two ``c`` (same floating-point operations up to the scale).
FUNCTION_NAMES = {
    "cp_als": "cp_als",
    "cp_als_em": "cp_als",
    "cp_wopt": "cp_wopt",
    "gcp_gaussian": "gcp",
    "gcp_huber": "gcp",
    "tucker_als": "tucker_als",
    "tt_als": "tt_als",
}


def problem(
    shape: tuple[int, ...] = (8, 7, 6), dtype: torch.dtype = F64, hidden: float = 0.3, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A planted rank-2 CP tensor with 1 % noise and a mask hiding ``hidden`` of it."""
    gen = torch.Generator().manual_seed(seed)
    p = planted("cp", shape, 2, noise=0.01, generator=gen, dtype=F64)
    mask = torch.rand(shape, generator=gen) >= hidden
    return p.tensor.to(dtype), mask


def true_rmse(model: Any, x: torch.Tensor, mask: torch.Tensor) -> float:
    """RMSE of ``model`` at the observed entries of ``x``, in float64 with scaling."""
    dense = model.to(dtype=F64).to_dense()
    x64 = x.detach().to(F64)
    s = float(x64[mask].abs().max()) or 1.0
    return s * float(torch.sqrt(torch.mean(((dense[mask] - x64[mask]) / s) ** 2)))
