"""Slow, obviously correct references, tolerances and hypothesis strategies for the algebra tests.

The references loop over indices in Python or call ``torch.einsum`` with index strings written
out explicitly; they are only ever run on tiny tensors and always in float64 (or complex128).
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Sequence

import torch
from hypothesis import strategies as st

# Tolerances for comparing a result in ``dtype`` against a float64 reference on O(1) data of at
# most a few hundred terms per sum.
TOLERANCES: dict[torch.dtype, dict[str, float]] = {
    torch.float32: {"rtol": 2e-4, "atol": 2e-4},
    torch.float64: {"rtol": 1e-10, "atol": 1e-10},
    torch.complex64: {"rtol": 2e-4, "atol": 2e-4},
    torch.complex128: {"rtol": 1e-10, "atol": 1e-10},
}

REAL_DTYPES = (torch.float32, torch.float64)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, scale: float = 1.0) -> None:
    """``actual`` (any dtype) against a high-precision ``expected`` with the table tolerances."""
    tol = TOLERANCES[actual.dtype]
    torch.testing.assert_close(
        actual,
        expected.to(actual.dtype),
        rtol=tol["rtol"] * scale,
        atol=tol["atol"] * scale,
    )


def randn(shape: Sequence[int], gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float64).to(dtype)


def to_hi(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.complex128 if x.is_complex() else torch.float64)


# --------------------------------------------------------------------------- strategies

shapes = st.lists(st.integers(1, 4), min_size=2, max_size=5).map(tuple)
real_dtypes = st.sampled_from(REAL_DTYPES)
seeds = st.integers(0, 2**31 - 1)
ranks = st.integers(1, 4)


# --------------------------------------------------------------------------- references


def ref_unfold(x: torch.Tensor, mode: int) -> torch.Tensor:
    """Row ``i_mode``; column = row-major index of the remaining indices (last fastest)."""
    shape = x.shape
    others = [m for m in range(x.ndim) if m != mode]
    n_cols = 1
    for m in others:
        n_cols *= shape[m]
    out = torch.zeros(shape[mode], n_cols, dtype=x.dtype)
    for idx in itertools.product(*(range(s) for s in shape)):
        col = 0
        for m in others:
            col = col * shape[m] + idx[m]
        out[idx[mode], col] = x[idx]
    return out


def ref_fold(unfolded: torch.Tensor, mode: int, shape: Sequence[int]) -> torch.Tensor:
    others = [m for m in range(len(shape)) if m != mode]
    out = torch.zeros(tuple(shape), dtype=unfolded.dtype)
    for idx in itertools.product(*(range(s) for s in shape)):
        col = 0
        for m in others:
            col = col * shape[m] + idx[m]
        out[idx] = unfolded[idx[mode], col]
    return out


def letters(n: int) -> str:
    return string.ascii_lowercase[:n]


def ref_mode_dot(x: torch.Tensor, m: torch.Tensor, mode: int) -> torch.Tensor:
    """``x x_mode m`` with ``m`` (J, I) or a vector (I,), by an explicit einsum string."""
    idx = letters(x.ndim)
    if m.ndim == 1:
        out = idx[:mode] + idx[mode + 1 :]
        return torch.einsum(f"{idx},{idx[mode]}->{out}", x, m)
    out = idx[:mode] + "Z" + idx[mode + 1 :]
    return torch.einsum(f"{idx},Z{idx[mode]}->{out}", x, m)


def ref_khatri_rao(mats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Row ``(i_0, ..., i_k)`` in row-major order = product of the rows ``mats[j][i_j]``."""
    rank = mats[0].shape[1]
    rows = []
    for idx in itertools.product(*(range(m.shape[0]) for m in mats)):
        row = torch.ones(rank, dtype=mats[0].dtype)
        for m, i in zip(mats, idx):
            row = row * m[i]
        rows.append(row)
    return torch.stack(rows)


def ref_kron(mats: Sequence[torch.Tensor]) -> torch.Tensor:
    rows = 1
    cols = 1
    for m in mats:
        rows *= m.shape[0]
        cols *= m.shape[1]
    out = torch.zeros(rows, cols, dtype=mats[0].dtype)
    for ridx in itertools.product(*(range(m.shape[0]) for m in mats)):
        for cidx in itertools.product(*(range(m.shape[1]) for m in mats)):
            r = c = 0
            value = torch.ones((), dtype=mats[0].dtype)
            for m, i, j in zip(mats, ridx, cidx):
                r = r * m.shape[0] + i
                c = c * m.shape[1] + j
                value = value * m[i, j]
            out[r, c] = value
    return out


def ref_mttkrp(
    x: torch.Tensor,
    factors: Sequence[torch.Tensor],
    mode: int,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """``M[i_mode, r] = sum x[i] prod_{m != mode} A_m[i_m, r] * w[r]`` by an explicit einsum."""
    idx = letters(x.ndim)
    operands = [x]
    terms = [idx]
    for m, f in enumerate(factors):
        if m != mode:
            operands.append(f)
            terms.append(idx[m] + "R")
    if weights is not None:
        operands.append(weights)
        terms.append("R")
    return torch.einsum(",".join(terms) + f"->{idx[mode]}R", *operands)


def ref_inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    total = torch.zeros((), dtype=a.dtype)
    for u, v in zip(a.reshape(-1), b.reshape(-1)):
        total = total + u.conj() * v
    return total


def ref_norm(x: torch.Tensor, order: int) -> torch.Tensor:
    total = torch.zeros((), dtype=torch.float64)
    for v in x.reshape(-1):
        total = total + (abs(v) if order == 1 else abs(v) ** 2)
    return total if order == 1 else total.sqrt()
