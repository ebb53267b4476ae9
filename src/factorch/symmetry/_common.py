"""Argument checks shared by the symmetry subpackage (internal)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .._checks import as_index, as_tensor
from .._numerics import upcast
from ._irreps import Irreps

__all__ = [
    "check_choice",
    "check_finite",
    "check_irreps",
    "check_lmax",
    "check_real_tensor",
    "check_representable",
    "check_rotations",
    "rescale_product",
    "scale_input",
]


def check_choice(value: object, choices: Sequence[str], fn: str, name: str) -> str:
    """A ``Literal`` option checked at entry."""
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{fn}: {name} must be one of {listed}; got {value!r}.")
    return value


def check_lmax(value: object, fn: str, name: str = "lmax", *, limit: int = 64) -> int:
    """A degree ``0 <= l <= limit`` (numpy ints accepted, bools refused)."""
    try:
        out = as_index(value, fn, name)
    except TypeError as err:
        raise TypeError(
            f"{fn}: {name} must be a non-negative int; got {type(value).__name__}."
        ) from err
    if out < 0:
        raise ValueError(f"{fn}: {name} must be a non-negative int; got {out}.")
    if out > limit:
        raise ValueError(
            f"{fn}: {name} must be at most {limit} (the coupling tables grow like l^3 to l^6); "
            f"got {out}."
        )
    return out


def check_irreps(value: object, fn: str, name: str) -> Irreps:
    """An :class:`Irreps` (strings and e3nn irreps are parsed), naming the argument in errors."""
    if isinstance(value, Irreps):
        return value
    try:
        return Irreps(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        kind = type(err)
        raise kind(
            f"{fn}: {name} must be irreps such as '2x0e + 1x1o'; got {value!r} ({err})."
        ) from err


def check_real_tensor(
    x: object,
    fn: str,
    name: str,
    *,
    min_ndim: int = 1,
    last_dim: int | None = None,
    finite: bool = True,
) -> torch.Tensor:
    """A real floating tensor with finite entries, no empty dimension and, if given, a fixed last
    dimension; numpy arrays and array-likes are converted once (:func:`as_tensor`)."""
    if isinstance(x, (bool, int, float, complex)):
        raise TypeError(
            f"{fn}: {name} must be a torch.Tensor or a numpy array; got {type(x).__name__}."
        )
    x = as_tensor(x, fn, name)
    if not x.is_floating_point():
        raise TypeError(
            f"{fn}: {name} must have a real floating-point dtype; got {x.dtype}. Convert it "
            f"first, e.g. {name}.double()."
        )
    if x.ndim < min_ndim:
        raise ValueError(
            f"{fn}: {name} must have at least {min_ndim} dimensions; got shape {tuple(x.shape)}."
        )
    if last_dim is not None and x.shape[-1] != last_dim:
        raise ValueError(
            f"{fn}: {name} must have last dimension {last_dim}; got shape {tuple(x.shape)}."
        )
    if any(s == 0 for s in x.shape):
        raise ValueError(
            f"{fn}: {name} has an empty dimension (shape {tuple(x.shape)}); every dimension "
            "must be at least 1."
        )
    if finite:
        check_finite(x, fn, name)
    return x


def check_finite(x: torch.Tensor, fn: str, name: str) -> None:
    """Refuse NaN and Inf (one reduction: a finite sum proves every entry finite)."""
    if bool(torch.isfinite(x.detach().sum())):
        return
    if not bool(torch.isfinite(x.detach()).all()):
        raise ValueError(f"{fn}: {name} contains NaN or Inf entries; all entries must be finite.")


def scale_input(x: torch.Tensor, fn: str, name: str) -> tuple[torch.Tensor, float]:
    """``(x / s, s)`` in the working dtype, ``s`` a power of two near ``max|x|`` (exact).

    The one reduction also refuses NaN and Inf (they make the maximum non-finite).
    """
    peak = float(x.detach().abs().amax())
    if not math.isfinite(peak):
        raise ValueError(f"{fn}: {name} contains NaN or Inf entries; all entries must be finite.")
    x = upcast(x)
    if peak == 0.0:
        return x, 1.0
    scale = math.ldexp(1.0, math.frexp(peak)[1])
    return x / scale, scale


def rescale_product(
    scaled: torch.Tensor, factor: float, dtype: torch.dtype, fn: str
) -> torch.Tensor:
    """``scaled * factor`` in ``dtype`` for a bilinear result computed on power-of-two-scaled
    inputs; refuses a result that overflows, or that underflows to all zeros while non-zero."""
    peak = float(scaled.detach().abs().amax()) if scaled.numel() else 0.0
    info = torch.finfo(dtype)
    if not math.isfinite(peak * factor) or peak * factor > info.max:
        raise ValueError(
            f"{fn}: the product overflows {dtype} (its entries exceed {info.max:.1e}); rescale "
            "the inputs or use float64."
        )
    if peak > 0 and peak * factor < info.smallest_normal * info.eps:
        raise ValueError(
            f"{fn}: the product underflows {dtype} (every entry is below its smallest positive "
            f"value, {info.smallest_normal * info.eps:.1e}); rescale the inputs or use float64."
        )
    return (scaled * factor if factor != 1.0 else scaled).to(dtype)


def check_representable(out: torch.Tensor, fn: str, what: str) -> torch.Tensor:
    """Refuse a result that overflowed its dtype (the inputs were finite)."""
    if not bool(torch.isfinite(out).all()):
        raise ValueError(
            f"{fn}: the {what} overflows {out.dtype} (its entries exceed "
            f"{torch.finfo(out.dtype).max:.1e}); rescale the inputs or use float64."
        )
    return out


def check_rotations(
    r: object, fn: str, name: str = "rotation", *, tol: float | None = None
) -> torch.Tensor:
    """Real ``(..., 3, 3)`` orthogonal matrices (``R^T R = I`` to a dtype-dependent tolerance)."""
    r = check_real_tensor(r, fn, name, min_ndim=2)
    if r.shape[-2:] != (3, 3):
        raise ValueError(f"{fn}: {name} must have shape (..., 3, 3); got {tuple(r.shape)}.")
    if tol is None:
        tol = 1e-4 if r.dtype in (torch.float16, torch.bfloat16, torch.float32) else 1e-8
    eye = torch.eye(3, dtype=r.dtype, device=r.device)
    if r.numel():
        err = float((r.mT @ r - eye).detach().abs().max())
        if err > tol:
            raise ValueError(
                f"{fn}: {name} must be orthogonal matrices (R^T R = I); got a deviation of "
                f"{err:.2e} (> {tol:.0e})."
            )
    return r
