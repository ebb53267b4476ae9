"""Bridges to TensorLy: factorized tensors and dense arrays, numpy and pytorch backends.

TensorLy is imported on first use (it is not a factorch dependency). Its process-wide backend is
never changed: a conversion to another backend than the current one builds the TensorLy object
inside ``tensorly.backend_context`` and restores the previous backend on the way out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Literal, get_args

import torch

from ..tensors import CPTensor, TRTensor, TTTensor, TuckerTensor
from ._common import describe, from_array, require, to_numpy

__all__ = ["TensorLyBackend", "TensorLyKind", "from_tensorly", "to_tensorly"]

TensorLyBackend = Literal["numpy", "pytorch"]
TensorLyKind = Literal["cp", "tucker", "tt", "tr", "dense"]

Convertible = CPTensor | TuckerTensor | TTTensor | TRTensor | torch.Tensor


@contextlib.contextmanager
def _backend(tl: Any, backend: str) -> Iterator[None]:
    if tl.get_backend() == backend:
        yield
        return
    with tl.backend_context(backend):
        yield


def _arr(t: torch.Tensor, backend: str) -> Any:
    """``t`` as an array of ``backend``: a numpy copy, or a detached torch clone."""
    return to_numpy(t) if backend == "numpy" else t.detach().clone()


def to_tensorly(model: Convertible, *, backend: TensorLyBackend | None = None) -> Any:
    """Convert a factorch model or dense tensor to TensorLy's type for it.

    ``CPTensor`` -> ``tensorly.cp_tensor.CPTensor((weights, factors))``; ``TuckerTensor`` ->
    ``tensorly.tucker_tensor.TuckerTensor((core, factors))``; ``TTTensor`` ->
    ``tensorly.tt_tensor.TTTensor(cores)``; ``TRTensor`` -> ``tensorly.tr_tensor.TRTensor(cores)``;
    a dense ``torch.Tensor`` -> an array of the backend. Values are copied exactly (same dtype;
    bfloat16 becomes float32 for numpy, which has no bfloat16):
    numpy arrays on the CPU for ``backend="numpy"``, detached torch clones (same device) for
    ``"pytorch"``. TensorLy's global backend is left as it was: to compute with the result in
    TensorLy (``to_tensor()``, decompositions), select the matching backend there.

    Args:
        model: the factorch object to convert.
        backend: the TensorLy backend whose arrays the result holds; ``None`` (default) uses
            TensorLy's current backend, which must then be ``"numpy"`` or ``"pytorch"``.

    Returns:
        The TensorLy object (``CPTensor``, ``TuckerTensor``, ``TTTensor``, ``TRTensor``) or array.

    Raises:
        ImportError: TensorLy is not installed.
        TypeError: ``model`` is not one of the types above.
        ValueError: an unsupported backend.

    Not differentiable for ``backend="numpy"``; the pytorch backend's tensors are detached.

    Example:
        >>> import torch
        >>> from factorch.interop import to_tensorly, from_tensorly
        >>> from factorch.random import random_cp
        >>> cp = random_cp((3, 4, 5), 2, generator=torch.Generator().manual_seed(0))
        >>> tl_cp = to_tensorly(cp, backend="numpy")
        >>> bool((from_tensorly(tl_cp).to_dense() == cp.to_dense()).all())
        True
    """
    fn = "to_tensorly"
    tl = require("tensorly", "tensorly", fn)
    if backend is None:
        backend = tl.get_backend()
    if backend not in get_args(TensorLyBackend):
        raise ValueError(
            f"{fn}: backend must be one of {get_args(TensorLyBackend)}; got {backend!r} (pass "
            "backend='numpy' or backend='pytorch' explicitly)."
        )
    with _backend(tl, backend):
        if isinstance(model, CPTensor):
            factors = [_arr(f, backend) for f in model.factors]
            return tl.cp_tensor.CPTensor((_arr(model.weights, backend), factors))
        if isinstance(model, TuckerTensor):
            factors = [_arr(f, backend) for f in model.factors]
            return tl.tucker_tensor.TuckerTensor((_arr(model.core, backend), factors))
        if isinstance(model, TTTensor):
            return tl.tt_tensor.TTTensor([_arr(c, backend) for c in model.cores])
        if isinstance(model, TRTensor):
            return tl.tr_tensor.TRTensor([_arr(c, backend) for c in model.cores])
        if isinstance(model, torch.Tensor):
            return _arr(model, backend)
    raise TypeError(
        f"{fn}: model must be a CPTensor, TuckerTensor, TTTensor, TRTensor or torch.Tensor; got "
        f"{describe(model)}."
    )


def _tl_class(obj: object) -> str | None:
    """``"cp"``, ``"tucker"``, ``"tt"`` or ``"tr"`` for TensorLy's factorized types."""
    module = type(obj).__module__
    if not module.startswith("tensorly."):
        return None
    return {
        "CPTensor": "cp",
        "TuckerTensor": "tucker",
        "TTTensor": "tt",
        "TRTensor": "tr",
    }.get(type(obj).__name__)


def _is_array(x: object) -> bool:
    return isinstance(x, torch.Tensor) or (hasattr(x, "__array__") and hasattr(x, "shape"))


def _guess_kind(obj: object, fn: str) -> str:
    """The kind of a TensorLy object or a plain tuple/list/array."""
    kind = _tl_class(obj)
    if kind is not None:
        return kind
    if _is_array(obj):
        return "dense"
    if isinstance(obj, (tuple, list)):
        if len(obj) == 2 and isinstance(obj[1], (list, tuple)) and not _is_array(obj[1]):
            head = obj[0]
            if head is None or (_is_array(head) and len(head.shape) == 1):
                return "cp"
            if _is_array(head):
                return "tucker"
        if obj and all(_is_array(c) and len(c.shape) == 3 for c in obj):
            first, last = obj[0].shape[0], obj[-1].shape[2]
            return "tt" if first == 1 and last == 1 else "tr"
    raise TypeError(
        f"{fn}: obj must be a TensorLy CPTensor, TuckerTensor, TTTensor or TRTensor, a "
        f"(weights, factors) or (core, factors) tuple, a list of 3-D cores or an array; got "
        f"{describe(obj)}. Pass kind= to say which it is."
    )


def _pair(obj: Any, fn: str, what: str) -> tuple[Any, Sequence[Any]]:
    try:
        head, tail = obj
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{fn}: a {what} must unpack as ({'weights' if what == 'CP' else 'core'}, factors); "
            f"got {describe(obj)}."
        ) from err
    if not isinstance(tail, (list, tuple)):
        raise TypeError(f"{fn}: the factors of a {what} must be a list; got {describe(tail)}.")
    return head, tail


def _cores(obj: Any, fn: str) -> list[torch.Tensor]:
    seq = obj.factors if hasattr(obj, "factors") else obj
    if not isinstance(seq, (list, tuple)):
        raise TypeError(f"{fn}: cores must be a list of 3-D arrays; got {describe(seq)}.")
    return [from_array(c, fn, f"cores[{i}]") for i, c in enumerate(seq)]


def from_tensorly(obj: object, *, kind: TensorLyKind | None = None) -> Any:
    """Convert a TensorLy object (or a TensorLy-style tuple/list/array) to factorch.

    Accepted: ``tensorly.cp_tensor.CPTensor`` or a ``(weights, factors)`` tuple (``weights`` may
    be ``None``: unit weights) -> :class:`~factorch.tensors.CPTensor`;
    ``tensorly.tucker_tensor.TuckerTensor`` or ``(core, factors)`` ->
    :class:`~factorch.tensors.TuckerTensor`; ``tensorly.tt_tensor.TTTensor`` or a list of 3-D
    cores with boundary ranks 1 -> :class:`~factorch.tensors.TTTensor`;
    ``tensorly.tr_tensor.TRTensor`` or a list of cores with ``r_0 = r_N > 1`` ->
    :class:`~factorch.tensors.TRTensor`; an array -> a dense ``torch.Tensor``. numpy arrays
    and torch tensors of either TensorLy backend are accepted; values are copied exactly (same
    dtype, torch tensors keep their device).

    Args:
        obj: the object to convert.
        kind: ``"cp"``, ``"tucker"``, ``"tt"``, ``"tr"`` or ``"dense"`` to say what a plain
            tuple/list is (a ``(weights, factors)`` pair with 1-D weights is CP by default, a
            list of cores whose end ranks are 1 is a TT).

    Returns:
        The factorch object (a factorized tensor or a ``torch.Tensor``).

    Raises:
        TypeError: ``obj`` is none of the above, or ``kind`` is not one of the kinds.
        ValueError: the pieces do not form a valid factorized tensor (the factorch type's own
            message).

    Not differentiable (the result owns copies of the data).

    Example:
        >>> import numpy as np
        >>> from factorch.interop import from_tensorly
        >>> weights, factors = np.ones(2), [np.ones((3, 2)), np.ones((4, 2))]
        >>> from_tensorly((weights, factors)).shape
        (3, 4)
    """
    fn = "from_tensorly"
    if kind is not None and kind not in get_args(TensorLyKind):
        raise TypeError(
            f"{fn}: kind must be one of {get_args(TensorLyKind)} or None; got {kind!r}."
        )
    which: str = kind or _guess_kind(obj, fn)
    if which == "dense":
        return from_array(obj, fn, "obj")
    if which == "cp":
        head, tail = _pair(obj, fn, "CP")
        factors = [from_array(f, fn, f"factors[{i}]") for i, f in enumerate(tail)]
        if head is None:
            return CPTensor.from_factors(factors)
        return CPTensor(from_array(head, fn, "weights"), tuple(factors))
    if which == "tucker":
        head, tail = _pair(obj, fn, "Tucker")
        factors = [from_array(f, fn, f"factors[{i}]") for i, f in enumerate(tail)]
        return TuckerTensor(from_array(head, fn, "core"), tuple(factors))
    if which == "tt":
        return TTTensor(tuple(_cores(obj, fn)))
    return TRTensor(tuple(_cores(obj, fn)))
