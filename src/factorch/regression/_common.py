"""Shared pieces of the tensor regression estimators: input checks, ridge solves, scaling."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .._checks import as_tensor, check_tensor
from .._numerics import HALF_DTYPES, check_memory, power_of_two_scale, upcast
from ..algebra.internal import khatri_rao as _khatri_rao

__all__: list[str] = []

_SAFE_EXPONENT = {torch.float32: 32, torch.float64: 256}


def check_features(x: object, fn: str, *, name: str = "x", min_ndim: int = 2) -> torch.Tensor:
    """Samples along mode 0: a finite real floating tensor (numpy accepted), detached."""
    t = as_tensor(x, fn, name)
    check_tensor(t, fn, name, min_ndim=min_ndim)
    if t.is_complex():
        raise TypeError(f"{fn}: {name} must be real; got {t.dtype}.")
    return t.detach()


def check_targets(y: object, x: torch.Tensor, fn: str) -> torch.Tensor:
    """The responses: one row per sample, a finite floating tensor of ``x``'s dtype and device."""
    t = as_tensor(y, fn, "y")
    check_tensor(t, fn, "y", min_ndim=1)
    if t.is_complex():
        raise TypeError(f"{fn}: y must be real; got {t.dtype}.")
    if t.shape[0] != x.shape[0]:
        raise ValueError(
            f"{fn}: x and y must have one row per sample; x has {x.shape[0]} samples and y has "
            f"{t.shape[0]}."
        )
    if t.dtype != x.dtype or t.device != x.device:
        raise TypeError(
            f"{fn}: y is {t.dtype} on {t.device} but x is {x.dtype} on {x.device}; convert y "
            "with y.to(x)."
        )
    return t.detach()


def check_nonneg_float(value: object, fn: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{fn}: {name} must be a non-negative float; got {type(value).__name__}.")
    v = float(value)
    if not (v >= 0 and math.isfinite(v)):
        raise ValueError(f"{fn}: {name} must be a non-negative finite float; got {value!r}.")
    return v


def safe_scale(t: torch.Tensor) -> float:
    """1.0 while ``t``'s largest magnitude lies in the dtype's safe band (squares and Gram
    entries cannot under- or overflow), else the power of two that brings it to ``O(1)``."""
    s = power_of_two_scale(t)
    q = _SAFE_EXPONENT.get(upcast(t).dtype, 32)
    return 1.0 if 2.0**-q <= s <= 2.0**q else s


def rescaled_penalty(l2: float, c: float, sy: float) -> float:
    """``l2 c^2 / sy^2`` without intermediate under- or overflow (``c``, ``sy`` positive): the
    penalty of the problem on data divided by powers of two, whose factors are ``1 / c`` times
    the original ones."""
    if l2 == 0:
        return 0.0
    e = math.log2(l2) + 2 * math.log2(c) - 2 * math.log2(sy)
    if e > 1023:
        return math.inf
    return 0.0 if e < -1074 else 2.0**e


def ridge_solve(gram: torch.Tensor, rhs: torch.Tensor, l2: float) -> torch.Tensor:
    """Solve ``(gram + l2 I) w = rhs`` for a symmetric PSD ``gram``; a singular system gets
    the minimum-norm solution (eigen-decomposition with a relative cut-off)."""
    n = gram.shape[0]
    a = gram + l2 * torch.eye(n, dtype=gram.dtype, device=gram.device) if l2 else gram
    chol, info = torch.linalg.cholesky_ex(a)
    if int(info) == 0:
        return torch.cholesky_solve(rhs, chol)
    evals, evecs = torch.linalg.eigh(a)
    cut = evals[-1].clamp_min(0) * n * torch.finfo(a.dtype).eps
    inv = torch.where(evals > cut, 1.0 / evals, torch.zeros_like(evals))
    return evecs @ (inv[:, None] * (evecs.mT @ rhs))


def check_size(n_elements: int, dtype: torch.dtype, device: torch.device, fn: str) -> None:
    check_memory(
        n_elements, dtype, device, fn, "the normal equations and contractions",
        hint="use a smaller rank",
    )  # fmt: skip


def working(x: torch.Tensor) -> torch.Tensor:
    """float32 for half precision, else the tensor's own dtype."""
    return upcast(x) if x.dtype in HALF_DTYPES else x


def contract_all(x: torch.Tensor, factors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``Z[s, r] = sum_i x[s, i_1, ..., i_p] prod_k factors[k][i_k, r]``: one GEMM with the
    Khatri--Rao product of the factors (row-major, matching ``x.reshape(n, -1)``)."""
    return x.reshape(x.shape[0], -1) @ _khatri_rao(list(factors))


def contract_all_t(xt: torch.Tensor, factors: Sequence[torch.Tensor]) -> torch.Tensor:
    """:func:`contract_all` from ``xt = x.reshape(n, -1).T`` stored contiguously (a wide GEMM
    with ``R`` rows instead of a skinny one with ``R`` columns)."""
    return (_khatri_rao(list(factors)).T @ xt).T


def unfoldings(x: torch.Tensor) -> list[torch.Tensor]:
    """For each feature mode ``k``: ``x`` with mode ``k`` moved next to the samples, stored
    transposed as a contiguous ``prod(other feature sizes) x (n I_k)`` matrix (computed once per
    fit): the contractions then run as wide GEMMs ``K^T U`` (``R`` rows), which BLAS executes
    2-3x faster than the skinny ``U K`` with ``R`` columns."""
    n = x.shape[0]
    return [
        x.movedim(k + 1, 1).reshape(n * x.shape[k + 1], -1).T.contiguous()
        for k in range(x.ndim - 1)
    ]


def contract_but(
    unfolded: torch.Tensor, n: int, factors: Sequence[torch.Tensor], k: int
) -> torch.Tensor:
    """``G[s, j, r]``: the features contracted with the columns of every feature factor except
    ``k``: one GEMM of the other factors' Khatri--Rao product with ``unfolded``
    (:func:`unfoldings`); for a single feature mode, the features repeated along ``r``."""
    size = unfolded.shape[1] // n
    r = factors[0].shape[1]
    if len(factors) == 1:
        return unfolded.reshape(n, size, 1).expand(n, size, r)
    others = [f for m, f in enumerate(factors) if m != k]
    return (_khatri_rao(others).T @ unfolded).T.reshape(n, size, r)
