"""Assertions for tests: relative-norm closeness with a per-dtype tolerance table."""

from __future__ import annotations

import math

import torch

from ..tensors import FactorizedTensor

__all__ = ["assert_close_tensors", "assert_recovers", "tolerance"]

# (rtol, atol) for comparisons of whole tensors in relative Frobenius norm: about 100 unit
# roundoffs for float32 (eps 1.2e-7) and half precision, about 1e6 for float64 (eps 2.2e-16),
# which leaves room for the conditioning of contractions over a few hundred terms.
_TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float16: (5e-3, 1e-4),
    torch.bfloat16: (3e-2, 1e-3),
    torch.float32: (1e-5, 1e-6),
    torch.complex64: (1e-5, 1e-6),
    torch.float64: (1e-10, 1e-12),
    torch.complex128: (1e-10, 1e-12),
}


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """``(rtol, atol)`` for :func:`assert_close_tensors` at ``dtype``.

    float16 (5e-3, 1e-4), bfloat16 (3e-2, 1e-3), float32 / complex64 (1e-5, 1e-6),
    float64 / complex128 (1e-10, 1e-12).

    Args:
        dtype: a floating or complex dtype.

    Returns:
        ``(rtol, atol)``.

    Raises:
        TypeError: ``dtype`` that is not a ``torch.dtype``.
        ValueError: a dtype without a tolerance (an integer dtype, ...).

    Example:
        >>> tolerance(torch.float32)
        (1e-05, 1e-06)
    """
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"tolerance: dtype must be a torch.dtype; got {type(dtype).__name__}.")
    if dtype not in _TOLERANCES:
        raise ValueError(
            f"tolerance: no tolerance for {dtype}; known dtypes are "
            f"{', '.join(str(d) for d in _TOLERANCES)}."
        )
    return _TOLERANCES[dtype]


def _dense(x: object, fn: str, name: str) -> torch.Tensor:
    if isinstance(x, FactorizedTensor):
        return x.to_dense()
    if isinstance(x, torch.Tensor):
        return x
    raise TypeError(
        f"{fn}: {name} must be a torch.Tensor or a factorized tensor; got {type(x).__name__}."
    )


def assert_close_tensors(
    actual: torch.Tensor | FactorizedTensor,
    expected: torch.Tensor | FactorizedTensor,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    msg: str = "",
) -> None:
    """Raise ``AssertionError`` unless ``||actual - expected|| <= atol + rtol * ||expected||``.

    Norms are Frobenius norms computed in float64 (complex128) on the CPU; factorized tensors
    are densified. Shapes must be equal. ``rtol``/``atol`` default to :func:`tolerance` of the
    less precise of the two dtypes. Non-finite entries in ``actual`` always fail. The message
    reports the relative error, the bound, both shapes and dtypes, then ``msg``.

    Args:
        actual: the tensor (or factorized tensor) under test.
        expected: the reference.
        rtol: relative tolerance (default from :func:`tolerance`).
        atol: absolute tolerance (default from :func:`tolerance`).
        msg: appended to the failure message.

    Raises:
        AssertionError: shapes that differ, non-finite ``actual``, or an error over the bound.
        TypeError: an argument that is not a tensor, or dtypes without a default tolerance and
            no ``rtol``/``atol``.

    Example:
        >>> x = torch.ones(3, dtype=torch.float64)
        >>> assert_close_tensors(x + 1e-13, x)
        >>> assert_close_tensors(x + 1e-3, x, msg="(example)")
        Traceback (most recent call last):
            ...
        AssertionError: assert_close_tensors: relative error 1.000e-03 ... (example)
    """
    fn = "assert_close_tensors"
    a = _dense(actual, fn, "actual")
    e = _dense(expected, fn, "expected")
    suffix = f" {msg}" if msg else ""
    if tuple(a.shape) != tuple(e.shape):
        raise AssertionError(
            f"{fn}: shapes differ: actual {tuple(a.shape)} vs expected {tuple(e.shape)}.{suffix}"
        )
    if rtol is None or atol is None:
        loose = [tolerance(t.dtype) for t in (a, e) if t.dtype in _TOLERANCES]
        if not loose:
            raise TypeError(
                f"{fn}: give rtol and atol explicitly for dtypes {a.dtype} / {e.dtype}."
            )
        rtol = max(t[0] for t in loose) if rtol is None else rtol
        atol = max(t[1] for t in loose) if atol is None else atol
    wide = torch.complex128 if (a.is_complex() or e.is_complex()) else torch.float64
    a64 = a.detach().to(device="cpu", dtype=wide)
    e64 = e.detach().to(device="cpu", dtype=wide)
    if a64.numel() and not bool(torch.isfinite(a64).all()):
        raise AssertionError(
            f"{fn}: actual has {int((~torch.isfinite(a64)).sum())} NaN/Inf entries; shape "
            f"{tuple(a.shape)}, dtype {a.dtype}.{suffix}"
        )
    err = float(torch.linalg.vector_norm(a64 - e64))
    ref = float(torch.linalg.vector_norm(e64))
    bound = atol + rtol * ref
    if not err <= bound:
        rel = err / ref if ref > 0 else math.inf
        raise AssertionError(
            f"{fn}: relative error {rel:.3e} (||actual - expected|| = {err:.3e}, ||expected|| = "
            f"{ref:.3e}) exceeds the bound atol + rtol * ||expected|| = {bound:.3e} "
            f"(rtol {rtol:.1e}, atol {atol:.1e}); shapes {tuple(a.shape)} / {tuple(e.shape)}, "
            f"dtypes {a.dtype} / {e.dtype}.{suffix}"
        )


def assert_recovers(
    truth: torch.Tensor | FactorizedTensor,
    estimate: torch.Tensor | FactorizedTensor,
    *,
    tol: float,
) -> None:
    """Raise ``AssertionError`` unless ``||estimate - truth|| / ||truth|| <= tol``.

    Compares dense reconstructions (factors are not unique), in float64 on the CPU.

    Args:
        truth: the planted tensor (dense or factorized).
        estimate: the recovered tensor (dense or factorized).
        tol: the largest relative error accepted.

    Raises:
        AssertionError: shapes that differ, or a relative error above ``tol``.
        TypeError: an argument that is not a tensor.
        ValueError: ``tol`` that is not a non-negative number.

    Example:
        >>> p = factorch.random.planted("cp", (4, 5, 6), 2,
        ...                             generator=torch.Generator().manual_seed(0))
        >>> assert_recovers(p.truth, p.tensor, tol=1e-12)
    """
    fn = "assert_recovers"
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
        raise ValueError(f"{fn}: tol must be a float >= 0; got {tol!r}.")
    t = _dense(truth, fn, "truth")
    e = _dense(estimate, fn, "estimate")
    if tuple(t.shape) != tuple(e.shape):
        raise AssertionError(
            f"{fn}: shapes differ: truth {tuple(t.shape)} vs estimate {tuple(e.shape)}."
        )
    wide = torch.complex128 if (t.is_complex() or e.is_complex()) else torch.float64
    t64 = t.detach().to(device="cpu", dtype=wide)
    e64 = e.detach().to(device="cpu", dtype=wide)
    ref = float(torch.linalg.vector_norm(t64))
    err = float(torch.linalg.vector_norm(e64 - t64))
    rel = err / ref if ref > 0 else (0.0 if err == 0 else math.inf)
    if not rel <= tol:
        raise AssertionError(
            f"{fn}: relative reconstruction error {rel:.3e} exceeds tol {tol:.1e} "
            f"(||estimate - truth|| = {err:.3e}, ||truth|| = {ref:.3e}); shape "
            f"{tuple(t.shape)}, dtypes {t.dtype} / {e.dtype}."
        )
