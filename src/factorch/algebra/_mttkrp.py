"""Dense MTTKRP (matricized tensor times Khatri--Rao product) without copies of the tensor.

``mttkrp(X, [A_0..A_{N-1}], n) = unfold(X, n) @ khatri_rao([A_m, m != n])`` (``I_n x R``), i.e.

    M[i_n, r] = sum over all i_m, m != n, of X[i_0, ..., i_{N-1}] * prod_{m != n} A_m[i_m, r].

No permuted unfolding is formed, nor (but for mode 0, below) the Khatri--Rao product. One GEMM
reads the tensor once, on a free reshape, and contracts one mode ``m != n``, e.g. (the fixed
rule's forms):

* ``m = N-1``: ``X(I_0...I_{N-2}, I_{N-1}) @ A_{N-1}``;
* ``m = 0``: ``A_0.T @ X(I_0, I_1...I_{N-1})``;
* ``0 < m < N-1``: the batched GEMM ``A_m.T @ X(L, I_m, T)`` over the ``L`` leading indices
  (``torch.bmm`` on an expanded view of ``A_m.T``: no copy of the tensor even when the factors
  require gradients, unlike ``torch.matmul``'s folding).

For ``n = 0`` on large float64 CPU tensors whose first mode is the largest, the fixed rule
instead runs one GEMM ``X(I_0, I_1...I_{N-1}) @ KR`` with the Khatri--Rao product of the other
factors formed (:func:`first_mode_one_gemm`; as many entries as the intermediate below).

The result, ``|X| R / I_m`` entries, is smaller than ``X`` by ``I_m / R``; the remaining modes
are contracted out of it one at a time, largest first, by broadcast products and sums (the rank
index acts as a batch index). ``m`` is chosen among the modes whose size is at least half the
largest (so the intermediate is at most twice the smallest possible). Which of them, and which of
the equivalent GEMM formulations (which operand BLAS sees transposed, where the rank index lands,
padding the rank, the factor's layout), is picked by a fixed rule of the shape, rank, dtype and
device (:class:`~factorch.algebra.ContractionPlan`; deterministic: bit-identical results in
every process), or, when the user turns it on, by timing (:func:`factorch.algebra.set_autotune`).
The GEMM dominates: ``2 |X| R`` flops; the other contractions cost ``2 |X| R / I_m`` and less.
Peak extra memory: about ``2 |X| R / I_m`` entries. See ``BENCHMARKS.md`` for timings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import torch

from .._checks import as_index, check_mode, check_same_device_dtype, check_tensor
from .._numerics import check_memory
from ._args import as_array
from ._autotune import is_autotune_enabled
from ._fused import fused_mttkrp, fused_reason
from ._gemm import RANK, contract
from ._plans import RULE_MIN_ENTRIES
from ._products import _khatri_rao
from ._scaling import check_overflow

__all__ = ["MTTKRPKernel", "mttkrp", "mttkrp_kernel"]

_RANK = RANK  # label of the rank axis in the intermediate

MTTKRPKernel = Literal["default", "fused"]
"""``"default"``: the tensor-reading GEMM (fixed rule or opt-in autotuner); ``"fused"``: the
compiled fused loop where it applies (:func:`~factorch.algebra.fused_mttkrp_status`), else the
default."""


def _mttkrp(tensor: torch.Tensor, factors: Sequence[torch.Tensor], mode: int) -> torch.Tensor:
    """MTTKRP without validation. ``factors[mode]`` is ignored (may be None) unless the tensor
    is 1-way, where it only supplies the rank."""
    n = tensor.ndim
    if n == 1:
        return tensor[:, None].expand(tensor.shape[0], factors[0].shape[1]).clone()
    shape = tensor.shape
    if mode == 0 and first_mode_one_gemm(tensor):
        # Two batches of rows, not one GEMM: BLAS would split the long reduction across
        # threads (results would depend on the thread count); a batched GEMM runs each batch
        # on one thread.
        kr = _khatri_rao(factors[1:])
        rows = tensor.reshape(2, shape[0] // 2, kr.shape[0])
        return torch.bmm(rows, kr.expand(2, *kr.shape)).reshape(shape[0], kr.shape[1])
    y, labels = contract(tensor, factors, [m for m in range(n) if m != mode])
    rank = y.shape[labels.index(_RANK)]
    rest = sorted((m for m in labels if m not in (mode, _RANK)), key=lambda m: -shape[m])
    # y is ours: scale it in place unless autograd needs the unscaled values.
    in_place = not (torch.is_grad_enabled() and any(factors[m].requires_grad for m in rest))
    for m in rest:
        axis, rank_axis = labels.index(m), labels.index(_RANK)
        view = [1] * y.ndim
        view[axis], view[rank_axis] = shape[m], rank
        factor = (factors[m] if axis < rank_axis else factors[m].mT).reshape(view)
        y = (y.mul_(factor) if in_place and not y.requires_grad else y * factor).sum(axis)
        del labels[axis]
    return (y if labels[0] == mode else y.mT).contiguous()


def first_mode_one_gemm(tensor: torch.Tensor) -> bool:
    """The fixed rule for mode 0: one GEMM ``X(I_0, I_1...I_{N-1}) @ KR`` with the Khatri--Rao
    product of the other factors formed (``|X| R / I_0`` entries, no more than the default
    path's intermediate since ``I_0`` is the largest mode) instead of the contraction of one
    mode and the follow-ups. Taken for large float64 CPU tensors of 3 or more modes whose first
    mode is the largest and even (the GEMM runs as two batches of ``I_0 / 2`` rows, so that no
    thread count splits its reduction: bit-identical results on any number of threads), with
    the autotuner off: 1.5-1.9x faster on the Intel Xeon of BENCHMARKS.md ("Default mode-0
    MTTKRP") at R = 3..16, 1.25x at R = 32 (float32 mixed: 0.9x at R = 10, so not taken)."""
    shape = tensor.shape
    return (
        tensor.ndim >= 3
        and tensor.device.type == "cpu"
        and tensor.dtype == torch.float64
        and tensor.numel() >= RULE_MIN_ENTRIES
        and shape[0] >= max(shape[1:])
        and shape[0] % 2 == 0
        and not is_autotune_enabled()
    )


def mttkrp_kernel(
    tensor: torch.Tensor, factors: Sequence[torch.Tensor], mode: int, kernel: MTTKRPKernel
) -> torch.Tensor:
    """MTTKRP without validation by the kernel asked for: the fused kernel when ``kernel`` is
    ``"fused"`` and it applies (:func:`~factorch.algebra._fused.fused_reason`), else the
    default path. For callers that validated once (e.g. a CP-ALS sweep)."""
    if kernel == "fused" and not fused_reason(tensor, factors, mode):
        return fused_mttkrp(tensor, factors, mode)
    return _mttkrp(tensor, factors, mode)


def check_factors_and_mode(factors: object, ndim: int, mode: object, fn: str) -> int:
    """MTTKRP's ``factors`` are a sequence of one entry per mode (their contents are checked by
    the caller); returns ``mode`` normalised (numpy ints accepted)."""
    if isinstance(factors, torch.Tensor) or not isinstance(factors, Sequence):
        raise TypeError(
            f"{fn}: factors must be a sequence of matrices; got {type(factors).__name__}."
        )
    if len(factors) != ndim:
        raise ValueError(f"{fn}: need one factor per mode ({ndim}); got {len(factors)} factors.")
    return check_mode(as_index(mode, fn, "mode"), ndim, fn)


def mttkrp(
    tensor: torch.Tensor,
    factors: Sequence[torch.Tensor],
    mode: int,
    *,
    weights: torch.Tensor | None = None,
    kernel: MTTKRPKernel = "default",
) -> torch.Tensor:
    """Matricized tensor times Khatri--Rao product for mode ``mode``.

    Computes ``unfold(tensor, mode) @ khatri_rao(factors, skip=mode, weights=weights)``, an
    ``I_mode x R`` matrix, without forming the Khatri--Rao product or copying the tensor (see the
    module docstring for the contraction order). No complex conjugation is applied (TensorLy's
    ``unfolding_dot_khatri_rao`` conjugates the Khatri--Rao product; the two agree on real
    input). With autotuning off (the default) the result is bit-identical across runs,
    threads and processes.

    Args:
        tensor: a dense floating or complex tensor (numpy arrays accepted).
        factors: one ``(I_m, R)`` matrix per mode, same dtype and device; ``factors[mode]`` is
            only checked for its rank.
        mode: the output mode (negative values count from the end).
        weights: optional ``(R,)`` column weights.
        kernel: ``"default"`` (the tensor-reading GEMM above) or ``"fused"``: one compiled C++
            loop nest that reads each entry once and keeps the intermediate in registers
            (:func:`~factorch.algebra.fused_mttkrp_status`). Faster than the default where the
            GEMM and its follow-up contraction are compute-bound (1.5-2.1x at 20 x 200 x 200,
            R = 10, float64), about equal where memory bandwidth bounds both (BENCHMARKS.md). The
            first use on a machine compiles it (seconds); later processes load it from disk
            in milliseconds. Where it does not apply -- CUDA, complex or half dtypes, autograd
            recording, a non-contiguous or small tensor, a vector, a matrix other than ``X @ C``
            with at least 32 columns, ``torch.compile``, no C++
            compiler (:func:`~factorch.algebra.fused_mttkrp_status`) -- the default path runs.
            Results agree with the default path to round-off and are bit-identical across runs
            and thread counts.

    Returns:
        ``(I_mode, R)`` tensor.

    Raises:
        TypeError: non-tensor input, integer dtypes, mismatched dtypes.
        ValueError: factor shapes or ranks disagree; the working set would not fit in memory;
            an unknown ``kernel``.
        IndexError: ``mode`` out of range.

    Differentiable with respect to the tensor, every factor and the weights. Under autocast it
    computes like the ``torch.matmul``/``bmm`` it is made of (the autocast dtype).

    Example:
        >>> x = torch.ones(2, 3, 4)
        >>> mttkrp(x, [torch.ones(2, 5), torch.ones(3, 5), torch.ones(4, 5)], 0)[0, 0]
        tensor(12.)
    """
    fn = "mttkrp"
    if kernel not in get_args(MTTKRPKernel):
        raise ValueError(
            f"{fn}: kernel must be one of {list(get_args(MTTKRPKernel))}; got {kernel!r}."
        )
    tensor = as_array(tensor, fn)
    check_tensor(tensor, fn, "tensor", min_ndim=1, finite=False)
    mode = check_factors_and_mode(factors, tensor.ndim, mode, fn)
    factors = [as_array(f, fn, f"factors[{i}]") for i, f in enumerate(factors)]
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
    if weights is not None:
        weights = as_array(weights, fn, "weights")
        check_tensor(weights, fn, "weights", ndim=1, finite=False)
        check_same_device_dtype([tensor, weights], fn, "(tensor, weights)")
        if weights.shape[0] != rank:
            raise ValueError(f"{fn}: weights must have {rank} entries; got {weights.shape[0]}.")
    largest = max((s for m, s in enumerate(tensor.shape) if m != mode), default=1)
    check_memory(
        tensor.numel() // largest * rank + tensor.shape[mode] * rank,
        tensor.dtype,
        tensor.device,
        fn,
        "the intermediate",
        hint="use a smaller rank",
    )
    out = mttkrp_kernel(tensor, factors, mode, kernel)
    out = out if weights is None else out * weights
    inputs = [tensor, *(f for m, f in enumerate(factors) if m != mode)]
    check_overflow(out, inputs if weights is None else [*inputs, weights], fn)
    return out
