"""Input validation shared by every public entry point.

Each helper raises ``TypeError`` / ``ValueError`` / ``IndexError`` with a message of the form
``"<fn>: <what> must be <expectation>; got <value>."`` so the user sees what to change.
"""

from __future__ import annotations

import cmath
import operator
from collections.abc import Sequence

import torch

__all__ = [
    "as_index",
    "as_tensor",
    "check_finite",
    "check_floating",
    "check_generator",
    "check_matrix",
    "check_mode",
    "check_modes",
    "check_positive_int",
    "check_same_device_dtype",
    "check_tensor",
]


def as_tensor(x: object, fn: str, name: str = "tensor") -> torch.Tensor:
    """Accept a ``torch.Tensor`` unchanged, or convert a numpy array or array-like once.

    The public boundary of factorch takes what numpy users pass (``np.ndarray``, objects with
    ``__array__``, nested lists of numbers) and returns torch results. The conversion goes through
    numpy so dtypes are numpy's (a list of floats becomes float64, as in numpy and TensorLy); the
    data is shared with a numpy array when possible, never copied twice. Anything else raises
    ``TypeError`` naming the argument.
    """
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (str, bytes, dict, set)) or x is None:
        raise TypeError(
            f"{fn}: {name} must be a torch.Tensor or a numpy array; got {type(x).__name__}."
        )
    import numpy as np

    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as err:
        raise TypeError(
            f"{fn}: {name} must be a torch.Tensor or a numpy array; got {type(x).__name__} "
            f"that numpy cannot convert ({err})."
        ) from err
    if arr.dtype == object or arr.dtype.kind not in "biufc":
        raise TypeError(
            f"{fn}: {name} must be a torch.Tensor or a numeric numpy array; got "
            f"{type(x).__name__} with numpy dtype {arr.dtype}."
        )
    if not arr.flags.writeable:
        arr = arr.copy()
    return torch.from_numpy(np.ascontiguousarray(arr).reshape(arr.shape))  # keeps 0-d as 0-d


def as_index(value: object, fn: str, name: str) -> int:
    """An integral value (Python or numpy int; bools refused) as a Python ``int``."""
    if isinstance(value, bool) or (type(value).__name__ == "bool_"):
        raise TypeError(f"{fn}: {name} must be an int; got {type(value).__name__}.")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_floating_point() or value.is_complex():
            raise TypeError(
                f"{fn}: {name} must be an int; got a tensor of shape "
                f"{tuple(value.shape)} and dtype {value.dtype}."
            )
        return int(value)
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError as err:
        raise TypeError(f"{fn}: {name} must be an int; got {type(value).__name__}.") from err


def check_generator(generator: object, fn: str) -> torch.Generator | None:
    """``None`` or a ``torch.Generator``; a seed or anything else raises ``TypeError``."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    raise TypeError(
        f"{fn}: generator must be a torch.Generator or None; got {type(generator).__name__}. "
        "Pass e.g. generator=torch.Generator().manual_seed(0)."
    )


def check_tensor(
    x: object,
    fn: str,
    name: str = "tensor",
    *,
    min_ndim: int = 0,
    ndim: int | None = None,
    floating: bool = True,
    finite: bool = True,
    nonempty: bool = True,
) -> torch.Tensor:
    """Validate a tensor argument and return it unchanged.

    Checks type, number of dimensions, floating (or complex) dtype, non-empty dimensions and,
    when ``finite`` is set, the absence of NaN/Inf (one reduction over the data).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor; got {type(x).__name__}.")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{fn}: {name} must have {ndim} dimensions; got shape {tuple(x.shape)}.")
    if x.ndim < min_ndim:
        raise ValueError(
            f"{fn}: {name} must have at least {min_ndim} dimensions; got shape {tuple(x.shape)}."
        )
    if nonempty and any(s == 0 for s in x.shape):
        raise ValueError(
            f"{fn}: {name} has an empty dimension (shape {tuple(x.shape)}); every dimension "
            "must be at least 1."
        )
    if floating:
        check_floating(x, fn, name)
    if finite:
        check_finite(x, fn, name)
    return x


def check_floating(x: torch.Tensor, fn: str, name: str = "tensor") -> None:
    """Require a floating-point or complex dtype (integer and bool tensors are refused)."""
    if not (x.is_floating_point() or x.is_complex()):
        raise TypeError(
            f"{fn}: {name} must have a floating-point or complex dtype; got {x.dtype}. "
            f"Convert it first, e.g. {name}.double() or {name}.float()."
        )


def check_finite(x: torch.Tensor, fn: str, name: str = "tensor") -> None:
    """Refuse NaN and Inf entries.

    One reduction: NaN and Inf propagate through a sum, so a finite sum proves every entry finite;
    only when the sum is not finite (bad entries, or an overflow of finite ones) are the entries
    checked one by one.
    """
    if not x.numel() or cmath.isfinite(x.sum().item()):  # two operations, one read
        return
    if not bool(torch.isfinite(x).all()):
        n_bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{fn}: {name} contains {n_bad} NaN or Inf entries; all entries must be finite "
            "(use a mask or a completion method for missing values)."
        )


def check_matrix(x: object, fn: str, name: str) -> torch.Tensor:
    """A finite floating 2-D tensor with non-empty dimensions."""
    return check_tensor(x, fn, name, ndim=2)


def check_mode(mode: object, ndim: int, fn: str, name: str = "mode") -> int:
    """Normalise a (possibly negative) mode index; ``IndexError`` when out of range."""
    if isinstance(mode, bool) or not isinstance(mode, int):
        raise TypeError(f"{fn}: {name} must be an int; got {type(mode).__name__}.")
    if not -ndim <= mode < ndim:
        raise IndexError(
            f"{fn}: {name} must be in [{-ndim}, {ndim - 1}] for a {ndim}-way tensor; got {mode}."
        )
    return mode % ndim


def check_modes(modes: Sequence[int], ndim: int, fn: str, name: str = "modes") -> tuple[int, ...]:
    """Normalise a sequence of distinct modes."""
    out = tuple(check_mode(m, ndim, fn, name) for m in modes)
    if len(set(out)) != len(out):
        raise ValueError(f"{fn}: {name} must be distinct; got {tuple(modes)}.")
    return out


def check_positive_int(value: object, fn: str, name: str) -> int:
    """A strictly positive integral value (Python or numpy int; bools refused) as a Python int."""
    try:
        out = as_index(value, fn, name)
    except TypeError as err:
        raise TypeError(
            f"{fn}: {name} must be a positive int; got {type(value).__name__}."
        ) from err
    if out < 1:
        raise ValueError(f"{fn}: {name} must be a positive int; got {out}.")
    return out


def check_same_device_dtype(tensors: Sequence[torch.Tensor], fn: str, name: str) -> None:
    """All tensors on one device with one dtype."""
    if not tensors:
        return
    dev, dt = tensors[0].device, tensors[0].dtype
    for i, t in enumerate(tensors):
        if t.device != dev:
            raise ValueError(
                f"{fn}: {name}[{i}] is on {t.device} but {name}[0] is on {dev}; move them to "
                "one device."
            )
        if t.dtype != dt:
            raise TypeError(
                f"{fn}: {name}[{i}] has dtype {t.dtype} but {name}[0] has {dt}; use one dtype."
            )
