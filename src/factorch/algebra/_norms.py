"""Inner products and norms of dense tensors, free of spurious under- and overflow.

``torch.linalg.vector_norm`` squares the entries on the CPU, so the norm of float32 entries of
``1e-30`` comes out 0 and of ``1e30`` comes out ``inf``, although both norms are representable.
Here the entries are first divided by a power of two near the largest magnitude
(exact; :mod:`factorch.algebra._scaling`), the reduction runs on ``O(1)`` numbers,
and the result is scaled back. Results that are themselves outside the dtype's range are refused
with a ``ValueError`` rather than returned as ``inf`` (see each function).
"""

from __future__ import annotations

import math

import torch

from .._checks import check_same_device_dtype, check_tensor
from .._numerics import no_autocast, upcast
from ._args import as_array
from ._scaling import exponent_of, times_power_of_two

__all__ = ["inner", "norm"]


def _check_representable(
    mantissa: float, exponent: int, dtype: torch.dtype, fn: str, what: str, *, low: bool = False
) -> None:
    """``ValueError`` when ``mantissa * 2^exponent`` exceeds the largest number of ``dtype`` or,
    with ``low``, is non-zero and below its smallest normal number."""
    info = torch.finfo(dtype)
    if mantissa == 0.0 or not math.isfinite(mantissa):
        return
    log10 = math.log10(abs(mantissa)) + exponent * math.log10(2.0)
    if log10 < math.log10(info.max) and not (low and log10 < math.log10(info.tiny)):
        return
    whole = math.floor(log10)
    about = f"about {10 ** (log10 - whole):.2g}e{whole:+03d}"
    if log10 >= math.log10(info.max):
        where = f"exceeds the largest {dtype} number ({info.max:.3g})"
    else:
        where = f"is below the smallest normal {dtype} number ({info.tiny:.3g})"
    raise ValueError(
        f"{fn}: the {what} ({about}) {where}; compute it in float64 (pass tensor.double())."
    )


@no_autocast
def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Frobenius inner product ``<a, b> = sum conj(a) * b`` (plain ``sum a*b`` for real tensors).

    Computed as ``2^(e_a + e_b) <a / 2^e_a, b / 2^e_b>`` with power-of-two scales near each
    input's largest magnitude, so the sum neither overflows nor underflows on the way (float32
    data of ``1e20`` whose inner product is representable gives it, not ``inf``). Half-precision
    inputs are computed in float32 and the result returned in their dtype.

    Args:
        a: a tensor (numpy arrays accepted).
        b: a tensor of the same shape, dtype and device.

    Returns:
        A 0-d tensor in the inputs' dtype (exactly 0 when the scaled products cancel exactly).

    Raises:
        TypeError: non-tensor input, integer dtypes, or mismatched dtypes.
        ValueError: mismatched shapes or devices; the inner product is outside the dtype's
            normal range (float32 data of magnitude ``1e30`` or ``1e-30``: ``<a, b>`` is about
            ``1e60`` or ``1e-60``): compute it in float64.

    Differentiable with respect to ``a`` and ``b``. Runs with autocast off (in the inputs'
    dtype): it is the kind of reduction errors are computed from.

    Example:
        >>> inner(torch.ones(2, 3), torch.full((2, 3), 2.0))
        tensor(12.)
    """
    fn = "inner"
    a = check_tensor(as_array(a, fn, "a"), fn, "a", finite=False, nonempty=False)
    b = check_tensor(as_array(b, fn, "b"), fn, "b", finite=False, nonempty=False)
    check_same_device_dtype([a, b], fn, "(a, b)")
    if a.shape != b.shape:
        raise ValueError(
            f"{fn}: a and b must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}."
        )
    dtype = a.dtype
    a, b = upcast(a), upcast(b)
    ea, eb = exponent_of(a), exponent_of(b)
    scaled = torch.vdot(
        times_power_of_two(a, -ea).reshape(-1), times_power_of_two(b, -eb).reshape(-1)
    )
    value = times_power_of_two(scaled, ea + eb)
    magnitude = abs(complex(scaled.detach()))
    _check_representable(magnitude, ea + eb, dtype, fn, "inner product", low=True)
    return value.to(dtype)


@no_autocast
def norm(tensor: torch.Tensor, order: int = 2) -> torch.Tensor:
    """Entry-wise ``order``-norm (2: Frobenius, 1: sum of absolute values).

    Computed on the entries divided by a power of two near their largest magnitude, so it is
    true across the dtype's whole range (float32 ``1e-30`` or ``1e30`` entries included) and is
    0 only for an all-zero tensor. Half-precision input is computed in float32 and the result
    returned in its dtype.

    Args:
        tensor: a floating or complex tensor (numpy arrays accepted).
        order: 1 or 2.

    Returns:
        A real 0-d tensor (float32 for float32 or complex64 input, ...).

    Raises:
        TypeError: non-tensor input or an integer dtype.
        ValueError: ``order`` not 1 or 2; the norm exceeds the dtype's range.

    Differentiable. Runs with autocast off (in the input's dtype).

    Example:
        >>> norm(torch.full((4,), 1e-30))
        tensor(2.0000e-30)
    """
    fn = "norm"
    tensor = check_tensor(as_array(tensor, fn), fn, "tensor", finite=False, nonempty=False)
    if isinstance(order, bool) or order not in (1, 2):
        raise ValueError(f"{fn}: order must be 1 or 2; got {order!r}.")
    wide = upcast(tensor)
    e = exponent_of(wide)
    scaled = torch.linalg.vector_norm(times_power_of_two(wide, -e), ord=order)
    out = times_power_of_two(scaled, e)
    real = tensor.real.dtype if tensor.is_complex() else tensor.dtype
    _check_representable(float(scaled.detach()), e, real, fn, "norm")
    return out.to(real)
