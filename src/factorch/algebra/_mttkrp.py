"""Dense MTTKRP (matricized tensor times Khatri--Rao product) without copies of the tensor.

``mttkrp(X, [A_0..A_{N-1}], n) = unfold(X, n) @ khatri_rao([A_m, m != n])`` (``I_n x R``).

Neither the Khatri--Rao product nor a permuted unfolding is formed. One GEMM reads the tensor
once, on a free reshape: for ``n < N-1`` it contracts the *last* mode,
``X(I_0...I_{N-2}, I_{N-1}) @ A_{N-1}``; for ``n = N-1`` the first,
``A_0.T @ X(I_0, I_1...I_{N-1})``. The remaining modes are then contracted out of that
intermediate (already ``I_end / R`` times smaller than X) by batched contractions, one mode at a
time. Peak extra memory: the intermediate, ``|X| R / I_end`` entries, and its contraction.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._checks import check_mode, check_same_device_dtype, check_tensor

__all__ = ["mttkrp"]


def _contract_right(y: torch.Tensor, factors: Sequence[torch.Tensor], stop: int) -> torch.Tensor:
    """Contract trailing modes ``stop..`` of ``y`` (modes..., R) with ``factors`` (rank last)."""
    for m in range(y.ndim - 2, stop - 1, -1):
        lead = y.shape[:m]
        y3 = y.reshape(-1, y.shape[m], y.shape[-1])
        y = torch.einsum("lir,ir->lr", y3, factors[m]).reshape(*lead, y.shape[-1])
    return y


def _mttkrp(
    tensor: torch.Tensor, factors: Sequence[torch.Tensor], mode: int
) -> torch.Tensor:
    """MTTKRP without validation. ``factors[mode]`` is ignored (may be None)."""
    n = tensor.ndim
    shape = tensor.shape
    if n == 1:
        rank = next(f.shape[1] for i, f in enumerate(factors) if i != mode)
        return tensor[:, None].expand(shape[0], rank)
    if mode < n - 1:
        # One GEMM over the last mode: (prod_{<N-1}, I_last) @ (I_last, R).
        y = (tensor.reshape(-1, shape[-1]) @ factors[-1]).reshape(*shape[:-1], -1)
        y = _contract_right(y, factors, mode + 1)  # now (I_0..I_mode, R)
        # Contract leading modes 0..mode-1 one at a time.
        for m in range(mode):
            y3 = y.reshape(shape[m], -1, y.shape[-1])
            y = torch.einsum("ilr,ir->lr", y3, factors[m])
        return y.reshape(shape[mode], -1)
    # mode == N-1: one GEMM over the first mode: (R, I_0) @ (I_0, prod_{>0}).
    rank = factors[0].shape[1]
    y = (factors[0].mT @ tensor.reshape(shape[0], -1)).reshape(rank, *shape[1:])
    for m in range(1, n - 1):
        y3 = y.reshape(rank, shape[m], -1)
        y = torch.einsum("rit,ir->rt", y3, factors[m])
    return y.reshape(rank, shape[-1]).mT


def mttkrp(
    tensor: torch.Tensor,
    factors: Sequence[torch.Tensor],
    mode: int,
    *,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Matricized tensor times Khatri--Rao product for mode ``mode``.

    Computes ``unfold(tensor, mode) @ khatri_rao(factors, skip=mode, weights=weights)``, an
    ``I_mode x R`` matrix, without forming the Khatri--Rao product or copying the tensor (see the
    module docstring for the contraction order). ``factors[mode]`` is only checked for its rank.
    Differentiable with respect to the tensor and every factor.
    """
    fn = "mttkrp"
    check_tensor(tensor, fn, "tensor", min_ndim=1, finite=False)
    if isinstance(factors, torch.Tensor) or not isinstance(factors, Sequence):
        raise TypeError(f"{fn}: factors must be a sequence of matrices; got {type(factors).__name__}.")
    if len(factors) != tensor.ndim:
        raise ValueError(
            f"{fn}: need one factor per mode ({tensor.ndim}); got {len(factors)} factors."
        )
    mode = check_mode(mode, tensor.ndim, fn)
    for i, f in enumerate(factors):
        check_tensor(f, fn, f"factors[{i}]", ndim=2, finite=False)
    check_same_device_dtype([tensor, *factors], fn, "(tensor, *factors)")
    rank = factors[0].shape[1]
    for i, f in enumerate(factors):
        if f.shape[1] != rank:
            raise ValueError(
                f"{fn}: factors must share one rank; factors[0] has {rank} columns and "
                f"factors[{i}] has {f.shape[1]}."
            )
        if i != mode and f.shape[0] != tensor.shape[i]:
            raise ValueError(
                f"{fn}: factors[{i}] has {f.shape[0]} rows but the tensor has size "
                f"{tensor.shape[i]} along mode {i}."
            )
    out = _mttkrp(tensor, factors, mode)
    if weights is not None:
        check_tensor(weights, fn, "weights", ndim=1, finite=False)
        if weights.shape[0] != rank:
            raise ValueError(f"{fn}: weights must have {rank} entries; got {weights.shape[0]}.")
        out = out * weights
    return out
