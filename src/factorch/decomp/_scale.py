"""Exact scaling of the data of the CP and NMF fits, so that tiny and huge data give true results.

Sums of squares of float32 data of magnitude ``1e-30`` underflow to 0 and of ``1e30`` overflow to
``inf`` (float64: ``1e-200`` / ``1e200``); Gram matrices and ``eigh`` fail the same way. Data
whose largest magnitude lies outside the *safe window* ``[2^(-e/4), 2^(e/4)]`` (``e`` the dtype's
largest exponent: ``[2.3e-10, 4.3e9]`` in float32, ``[8.6e-78, 1.2e77]`` in float64) is divided by
a power of four ``s`` with ``max|x| / s`` in ``[1, 4)`` before the fit, and the model is scaled
back after it.
Dividing by a power of four is exact and commutes with every rounding in the fit (square roots
included), so the fit of ``4^k X`` is the fit of ``X`` with its scale multiplied by ``4^k``.
Inside the window the data is used as is (no copy, same iterates as without scaling).
"""

from __future__ import annotations

import math

import torch

from .._checks import check_finite

__all__ = [
    "batch_fit_scale",
    "batch_peaks",
    "finite_fit_scale",
    "finite_peak",
    "fit_scale",
    "peak",
    "split_scale",
]


def _window(dtype: torch.dtype) -> tuple[float, float]:
    exponent = math.frexp(torch.finfo(dtype).max)[1]
    return math.ldexp(1.0, -exponent // 4), math.ldexp(1.0, exponent // 4)


def _lowest_exponent(dtype: torch.dtype) -> int:
    """The smallest even ``k`` with ``2^k`` representable in ``dtype`` (subnormals included)."""
    info = torch.finfo(dtype)
    low = math.frexp(info.tiny * info.eps)[1] - 1
    return low + (low % 2)


def peak(tensor: torch.Tensor) -> float:
    """``max |x|`` (NaN if any entry is NaN), in one pass without a temporary for real tensors
    and one read to the host."""
    if tensor.numel() == 0:
        return 0.0
    x = tensor.detach() if tensor.requires_grad else tensor
    if x.is_complex():
        return float(x.abs().max())
    low, high = torch.stack(torch.aminmax(x)).tolist()
    return math.nan if math.isnan(low) or math.isnan(high) else max(-low, high)


def finite_peak(tensor: torch.Tensor, fn: str, name: str = "tensor") -> float:
    """:func:`peak` of a tensor that must be finite: refuses NaN and Inf entries with
    :func:`~factorch._checks.check_finite`'s error, in one pass and one read for real tensors
    (the smallest and largest entries are finite exactly when every entry is)."""
    if tensor.is_complex() or tensor.numel() == 0:
        check_finite(tensor, fn, name)
        return peak(tensor)
    largest = peak(tensor)
    if not math.isfinite(largest):
        check_finite(tensor, fn, name)  # raises, with the count of bad entries
    return largest


def finite_fit_scale(
    tensor: torch.Tensor, fn: str, name: str = "tensor"
) -> tuple[float, float | None]:
    """:func:`fit_scale` of a tensor that must be finite (NaN and Inf refused as by
    :func:`finite_peak`) and, when one pass gave both, its sum of squares ``sum x^2`` (else None).

    For contiguous float32 and float64 tensors that pass is ``s = sum x^2`` alone: ``s`` is NaN or
    Inf when an entry is; otherwise ``max|x|`` lies in ``[sqrt(s / n), sqrt(s)]`` (``n`` entries),
    and when that interval, widened by a factor of 2 for rounding, is inside the safe window
    the scale is 1 without reading the peak. Other tensors, and ``s`` outside that range (overflow
    of huge finite data, underflow of tiny data, an all-zero tensor), take
    :func:`finite_peak` and :func:`fit_scale` as before.
    """
    if (
        tensor.dtype in (torch.float32, torch.float64)
        and tensor.numel() > 0
        and tensor.is_contiguous()
    ):
        flat = tensor.detach().reshape(-1)
        squares = float(torch.vdot(flat, flat))
        low, high = _window(tensor.dtype)
        if (
            math.isfinite(squares)
            and tensor.numel() * (2.0 * low) ** 2 <= squares <= (high / 2.0) ** 2
        ):
            return 1.0, squares
    largest = finite_peak(tensor, fn, name)
    return fit_scale(tensor, largest), None


def fit_scale(tensor: torch.Tensor, largest: float | None = None) -> float:
    """1.0 when the largest magnitude of ``tensor`` (``largest`` when already known) is in the
    safe window (or the tensor is zero or not finite), else a power of four ``s`` with
    ``max|x| / s`` in ``[1, 4)`` (representable in the tensor's dtype)."""
    if tensor.numel() == 0:
        return 1.0
    peak_ = peak(tensor) if largest is None else largest
    low, high = _window(tensor.dtype)
    if peak_ == 0.0 or not math.isfinite(peak_) or low <= peak_ <= high:
        return 1.0
    exponent = math.frexp(peak_)[1] - 1  # the peak is in [2^e, 2^(e+1))
    return math.ldexp(1.0, max(exponent - exponent % 2, _lowest_exponent(tensor.dtype)))


def batch_peaks(tensor: torch.Tensor) -> torch.Tensor:
    """``max |x|`` of every member of a stack ``(B, ...)`` (float64 ``(B,)``; NaN propagates)."""
    x = tensor.detach().reshape(tensor.shape[0], -1)
    if x.is_complex():
        return x.abs().amax(1).to(torch.float64)
    return torch.maximum(-x.amin(1), x.amax(1)).to(torch.float64)


def batch_fit_scale(tensor: torch.Tensor, peaks: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`fit_scale` of every member of a stack ``(B, ...)`` (``peaks``: their largest
    magnitudes, when already known), as a float64 ``(B,)`` tensor on the stack's device."""
    peaks = batch_peaks(tensor) if peaks is None else peaks
    low, high = _window(tensor.dtype)
    exponent = torch.frexp(peaks)[1] - 1
    exponent = (exponent - exponent.remainder(2)).clamp_min(_lowest_exponent(tensor.dtype))
    power = torch.ldexp(torch.ones_like(peaks), exponent)
    inside = (peaks == 0) | ~torch.isfinite(peaks) | ((peaks >= low) & (peaks <= high))
    return torch.where(inside, torch.ones_like(peaks), power)


def split_scale(scale: float) -> tuple[float, float]:
    """Two powers of two whose product is the power of two ``scale``, as equal as possible."""
    exponent = math.frexp(scale)[1] - 1
    return math.ldexp(1.0, exponent // 2), math.ldexp(1.0, exponent - exponent // 2)
