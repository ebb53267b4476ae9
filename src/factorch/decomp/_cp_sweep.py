"""The inner machinery of CP-ALS: a two-level dimension tree for MTTKRP and stable normal equations.

For an N-way tensor split into a left half ``L = {0..h-1}`` and a right half ``R = {h..N-1}``
(``h = ceil(N/2)``), one ALS sweep reads the tensor twice instead of N times:

1. ``P_L = X x_{m in R} A_m`` (shape ``I_0 x ... x I_{h-1} x R``): one GEMM over a right mode on
   a free reshape of X, then small contractions. Every left-mode MTTKRP is ``P_L`` contracted with
   the other left factors, so all left modes are updated from it.
2. ``P_R = X x_{m in L} A_m`` with the *updated* left factors (one GEMM over a left mode, as a
   batched GEMM when that is faster), from which every right-mode MTTKRP follows.

This is the two-pass scheme of Phan, Tichavsky and Cichocki (IEEE TSP 61(19), 2013) and the
binary dimension tree of Kaya and Ucar (Algorithmica 2018), restricted to one level; it gives the
same iterates as the textbook mode-by-mode sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..algebra.internal import RANK, contract

__all__ = ["hadamard_grams", "solve_normal", "sweep"]

_LETTERS = "abcdefghijklmnopqstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXY"
_R = "r"


def _subset_mttkrp(
    partial: torch.Tensor, factors: Sequence[torch.Tensor], keep: int
) -> torch.Tensor:
    """Contract every mode of ``partial`` (modes..., R) except ``keep`` with its factor."""
    k = partial.ndim - 1
    if k == 1:
        return partial
    idx = _LETTERS[:k]
    operands = [partial]
    subs = [idx + _R]
    for m in range(k):
        if m != keep:
            operands.append(factors[m])
            subs.append(idx[m] + _R)
    return torch.einsum(",".join(subs) + "->" + idx[keep] + _R, *operands)


def _partial(
    tensor: torch.Tensor, factors: Sequence[torch.Tensor], modes: Sequence[int]
) -> torch.Tensor:
    """``X x_{m in modes} A_m`` with the remaining modes in order and the rank index last.

    The one GEMM that reads the tensor contracts one of ``modes``; which one, and how, is chosen
    as for the dense MTTKRP (timed on first use for large CPU tensors, else a fixed rule; see
    :mod:`factorch.algebra._gemm`). The other modes are contracted out of the (``I_m / R`` times
    smaller) intermediate.
    """
    n = tensor.ndim
    shape = tensor.shape
    modes = list(modes)
    keep = [m for m in range(n) if m not in modes]
    y, labels = contract(tensor, factors, modes)
    for m in sorted((m for m in modes if m in labels), key=lambda m: -shape[m]):
        axis, rank_axis = labels.index(m), labels.index(RANK)
        view = [1] * y.ndim
        view[axis], view[rank_axis] = shape[m], y.shape[rank_axis]
        factor = (factors[m] if axis < rank_axis else factors[m].mT).reshape(view)
        # y is ours: scale it in place unless autograd records the product.
        records = torch.is_grad_enabled() and (y.requires_grad or factor.requires_grad)
        y = (y * factor if records else y.mul_(factor)).sum(axis)
        del labels[axis]
    order = [labels.index(m) for m in keep] + [labels.index(RANK)]
    return y.permute(order)


def solve_normal(mttkrp: torch.Tensor, gram: torch.Tensor, l2: float) -> torch.Tensor:
    """Solve ``A V = M`` for ``A`` with ``V`` symmetric positive semi-definite (``R x R``).

    Cholesky when ``V + l2 I`` is numerically positive definite; a pseudo-inverse (least-squares)
    fallback otherwise, so rank-deficient Grams (collinear components, fixed zero columns) never
    produce NaN.
    """
    v = gram
    if l2:
        v = v + l2 * torch.eye(v.shape[0], dtype=v.dtype, device=v.device)
    chol, info = torch.linalg.cholesky_ex(v)
    if int(info) == 0:
        diag = chol.diagonal().abs()
        # Guard against Cholesky "succeeding" on a numerically singular matrix.
        if float(diag.min()) > float(diag.max()) * torch.finfo(diag.dtype).eps ** 0.5:
            return torch.cholesky_solve(mttkrp.mT, chol).mT
    return mttkrp @ torch.linalg.pinv(v, hermitian=True)


def hadamard_grams(grams: Sequence[torch.Tensor], skip: int | None = None) -> torch.Tensor:
    """Entry-wise product of the Gram matrices, optionally leaving one out."""
    out: torch.Tensor | None = None
    for m, g in enumerate(grams):
        if m == skip:
            continue
        out = g.clone() if out is None else out.mul_(g)
    if out is None:
        raise RuntimeError(
            "hadamard_grams: needs at least one Gram matrix besides the skipped one."
        )
    return out


def sweep(
    tensor: torch.Tensor,
    factors: list[torch.Tensor],
    grams: list[torch.Tensor],
    update: Callable[[int, torch.Tensor], None],
) -> torch.Tensor:
    """One ALS sweep over all modes with the two-pass dimension tree.

    ``update(mode, mttkrp)`` must set ``factors[mode]`` and ``grams[mode]`` in place (in the lists).
    Returns the MTTKRP of the last mode (for the free error formula).
    """
    n = tensor.ndim
    h = (n + 1) // 2
    p_left = _partial(tensor, factors, range(h, n))
    for mode in range(h):
        update(mode, _subset_mttkrp(p_left, factors, mode))
    del p_left
    p_right = _partial(tensor, factors, range(h))
    last = p_right
    for mode in range(h, n):
        last = _subset_mttkrp(p_right, factors[h:], mode - h)
        update(mode, last)
    return last
