"""Initialisation of CP factors: randomized "SVD" init, random init, or user-given CPTensor.

The "svd" initialisation takes, for every mode, the leading left singular vectors of the mode-n
unfolding (as TensorLy and the Tensor Toolbox's ``nvecs`` do) without an SVD of the wide
unfolding and without copying the tensor:

* small modes (``I_n <= R + oversample``): eigenvectors of the ``I_n x I_n`` Gram matrix of the
  unfolding, accumulated in chunks over a free 3-D reshape of the tensor;
* larger modes: a randomized range finder whose test matrix is a Khatri--Rao product of Gaussian
  matrices, so the sketch ``Y = X_(n) (Omega_0 (.) ... )`` is one copy-free MTTKRP; then
  ``Q = qr(Y)``, ``B = Q^T X_(n)`` (a mode product) and the eigenvectors of ``B B^T``
  (Halko, Martinsson and Tropp 2011; Khatri--Rao sketches: Battaglino, Ballard, Kolda 2018).

Columns beyond the mode size are filled with random values from the generator.
"""

from __future__ import annotations

from typing import Literal

import torch

from ..algebra.internal import mode_dot as _mode_dot
from ..tensors import CPTensor
from ._cp_sweep import tree_partial

__all__ = ["CPInit", "gram_of_unfolding", "init_factors"]

CPInit = Literal["svd", "random"]
_OVERSAMPLE = 10
_CHUNK = 1 << 21


def _rand(
    shape: tuple[int, ...], like: torch.Tensor, gen: torch.Generator | None, normal: bool
) -> torch.Tensor:
    draw = torch.randn if normal else torch.rand
    real = like.real.dtype if like.is_complex() else like.dtype
    return draw(shape, generator=gen, dtype=real).to(device=like.device, dtype=like.dtype)


def gram_of_unfolding(tensor: torch.Tensor, mode: int) -> torch.Tensor:
    """``unfold(X, mode) @ unfold(X, mode).T`` without materialising the unfolding."""
    shape = tensor.shape
    size = shape[mode]
    lead = 1
    for s in shape[:mode]:
        lead *= s
    x3 = tensor.reshape(lead, size, -1)
    if lead == 1:
        return x3[0] @ x3[0].mH
    if x3.shape[2] == 1:
        return x3[:, :, 0].mT @ x3[:, :, 0].conj()
    step = max(1, _CHUNK // max(1, size * x3.shape[2]))
    gram = torch.zeros(size, size, dtype=tensor.dtype, device=tensor.device)
    for start in range(0, lead, step):
        chunk = x3[start : start + step].transpose(0, 1).reshape(size, -1)
        gram += chunk @ chunk.mH
    return gram


def _leading_vectors(
    tensor: torch.Tensor, mode: int, k: int, gen: torch.Generator | None
) -> torch.Tensor:
    size = tensor.shape[mode]
    p = min(k + _OVERSAMPLE, size)
    if size <= k + _OVERSAMPLE:
        gram = gram_of_unfolding(tensor, mode)
        q = None
    else:
        sketch = [
            _rand((s, p), tensor, gen, normal=True) if m != mode else None
            for m, s in enumerate(tensor.shape)
        ]
        others = [m for m in range(tensor.ndim) if m != mode]
        y = tree_partial(tensor, sketch, others).contiguous()  # the MTTKRP of the sketch
        q = torch.linalg.qr(y).Q
        gram = gram_of_unfolding(_mode_dot(tensor, q.mH, mode), mode)
    _, vecs = torch.linalg.eigh(gram)
    vecs = vecs.flip(1)[:, : min(k, size)]
    return vecs if q is None else q @ vecs


def init_factors(
    tensor: torch.Tensor,
    rank: int,
    init: str | CPTensor,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Initial ``(weights, factors)`` for CP-ALS on ``tensor`` (validated by the caller)."""
    ones = torch.ones(rank, dtype=tensor.dtype, device=tensor.device)
    if isinstance(init, CPTensor):
        if init.shape != tuple(tensor.shape) or init.rank != rank:
            raise ValueError(
                f"cp: init CPTensor has shape {init.shape} and rank {init.rank}; expected shape "
                f"{tuple(tensor.shape)} and rank {rank}."
            )
        if init.dtype != tensor.dtype or init.device != tensor.device:
            raise ValueError(
                f"cp: init CPTensor is {init.dtype} on {init.device}; the tensor is "
                f"{tensor.dtype} on {tensor.device}. Use init.to(...)."
            )
        return init.weights.clone(), [f.clone() for f in init.factors]
    if init == "random":
        return ones, [_rand((s, rank), tensor, generator, normal=False) for s in tensor.shape]
    factors = []
    for mode, size in enumerate(tensor.shape):
        u = _leading_vectors(tensor, mode, rank, generator)
        if u.shape[1] < rank:
            extra = _rand((size, rank - u.shape[1]), tensor, generator, normal=True)
            u = torch.cat([u, extra], dim=1)
        factors.append(u)
    return ones, factors
