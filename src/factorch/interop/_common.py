"""Pieces shared by the TensorLy and pyttb bridges: lazy imports and array conversion."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import torch

__all__: list[str] = []


def require(module: str, package: str, fn: str) -> ModuleType:
    """Import an optional dependency on first use, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{fn}: this bridge needs the optional package {package!r}, which is not installed; "
            f"install it with `pip install {package}` (it is not a factorch dependency)."
        ) from err


def to_numpy(t: torch.Tensor) -> Any:
    """A numpy copy of ``t`` (detached, on the CPU, same dtype; bfloat16, which numpy lacks,
    widened exactly to float32): exact, and never aliasing the caller's frozen tensor."""
    t = t.detach().cpu().resolve_conj()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy().copy()


def from_array(x: object, fn: str, name: str) -> torch.Tensor:
    """A torch tensor from a numpy array or a torch tensor (copied: the result owns its data)."""
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    import numpy as np

    if not isinstance(x, np.ndarray) and not hasattr(x, "__array__"):
        raise TypeError(
            f"{fn}: {name} must be a numpy array or a torch.Tensor; got {type(x).__name__}."
        )
    arr = np.array(x, copy=True, order="C")
    if arr.dtype == object or arr.dtype.kind not in "biufc":
        raise TypeError(f"{fn}: {name} must hold numbers; got numpy dtype {arr.dtype}.")
    return torch.from_numpy(arr)


def describe(x: object) -> str:
    """A short description of a value for an error message."""
    shape = getattr(x, "shape", None)
    if shape is not None and not callable(shape):
        return f"{type(x).__name__} of shape {tuple(shape)}"
    return type(x).__name__
