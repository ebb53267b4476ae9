"""Exact power-of-two rescaling that cannot itself over- or underflow.

Dividing data by a power of two ``2^e`` near its largest magnitude is exact and brings it to
``O(1)``, where squares and sums are safe; the result is scaled back by ``2^e``. Done naively
(``t / 2.0**e``) the scale itself may not be representable in the tensor's dtype (``2^128`` in
float32 for data above ``1.7e38``, ``2^16`` in float16 for data above ``32768``) and turns into
``inf``; here every multiplication is by a power of two at most ``2^(maxexp/2)`` away from 1, so
the factors are always representable and the products exact (barring gradual underflow of
entries far below the largest, which cannot change a norm).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["check_overflow", "exponent_of", "times_power_of_two"]


def exponent_of(tensor: torch.Tensor) -> int:
    """``e`` with ``max|x| / 2^e`` in ``[0.5, 1)``; 0 for an empty, all-zero or non-finite
    tensor."""
    if tensor.numel() == 0:
        return 0
    peak = float(tensor.detach().abs().max())
    if peak == 0.0 or not math.isfinite(peak):
        return 0
    return math.frexp(peak)[1]


def times_power_of_two(tensor: torch.Tensor, exponent: int) -> torch.Tensor:
    """``tensor * 2^exponent``, exactly, in ``tensor``'s dtype (differentiable)."""
    if exponent == 0:
        return tensor
    real = tensor.real.dtype if tensor.is_complex() else tensor.dtype
    step = max(1, math.frexp(torch.finfo(real).max)[1] // 2)
    out = tensor
    left = exponent
    while left:
        e = max(-step, min(step, left))
        out = out * math.ldexp(1.0, e)
        left -= e
    return out


def check_overflow(
    out: torch.Tensor, inputs: Sequence[torch.Tensor], fn: str, what: str = "result"
) -> None:
    """``ValueError`` when ``out`` has Inf or NaN entries although every input is finite (the
    result overflowed its dtype). Non-finite inputs propagate, as in torch. One reduction over
    ``out`` (and, only when that is not finite, one over each input)."""
    if out.numel() == 0 or bool(torch.isfinite(out.detach().sum())):
        return
    if bool(torch.isfinite(out.detach()).all()):
        return  # the check's own sum overflowed, the entries are fine
    if all(bool(torch.isfinite(t.detach()).all()) for t in inputs):
        real = out.real.dtype if out.is_complex() else out.dtype
        raise ValueError(
            f"{fn}: the {what} overflows {out.dtype} (entries beyond "
            f"{torch.finfo(real).max:.3g}) although the inputs are finite; compute in float64 "
            "(pass .double() inputs) or rescale them."
        )
