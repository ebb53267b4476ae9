"""Bridges to pyttb (the Python Tensor Toolbox): ``ktensor``, ``ttensor``, ``tensor``, ``sptensor``.

pyttb is imported on first use (it is not a factorch dependency). pyttb stores dense data in
Fortran order; the conversions copy element by element (``X[i, j, k]`` is the same number on both
sides), so round trips are exact.
"""

from __future__ import annotations

from typing import Any

import torch

from ..tensors import CPTensor, SparseTensor, TuckerTensor
from ._common import describe, from_array, require, to_numpy

__all__ = ["from_pyttb", "to_pyttb"]


def _f64(t: torch.Tensor) -> Any:
    """A float64 numpy copy (exact for every real floating dtype)."""
    return to_numpy(t.detach().to(torch.float64))


def to_pyttb(model: CPTensor | TuckerTensor | SparseTensor | torch.Tensor) -> Any:
    """Convert a factorch object to pyttb.

    ``CPTensor`` -> ``pyttb.ktensor(factors, weights)``; ``TuckerTensor`` ->
    ``pyttb.ttensor(pyttb.tensor(core), factors)``; :class:`~factorch.tensors.SparseTensor` ->
    ``pyttb.sptensor(subs, vals, shape)`` (entries in the same sorted order); a dense
    ``torch.Tensor`` -> ``pyttb.tensor``. Values are copied to float64 numpy arrays on the CPU
    (pyttb's ``ktensor`` accepts only float64; widening float16/bfloat16/float32 is exact).

    Args:
        model: the factorch object to convert.

    Returns:
        The pyttb object.

    Raises:
        ImportError: pyttb is not installed.
        TypeError: ``model`` is not one of the types above.

    Not differentiable (numpy copies).

    Example:
        >>> import torch
        >>> from factorch.interop import from_pyttb, to_pyttb
        >>> x = torch.arange(24, dtype=torch.float64).reshape(2, 3, 4)
        >>> bool((from_pyttb(to_pyttb(x)) == x).all())
        True
    """
    fn = "to_pyttb"
    ttb = require("pyttb", "pyttb", fn)
    if isinstance(model, CPTensor):
        return ttb.ktensor([_f64(f) for f in model.factors], _f64(model.weights))
    if isinstance(model, TuckerTensor):
        core = ttb.tensor(_f64(model.core))
        return ttb.ttensor(core, [_f64(f) for f in model.factors])
    if isinstance(model, SparseTensor):
        subs = to_numpy(model.indices.T.long())
        vals = _f64(model.values).reshape(-1, 1)
        return ttb.sptensor(subs, vals, tuple(model.shape))
    if isinstance(model, torch.Tensor) and (model.is_floating_point() or model.is_complex()):
        return ttb.tensor(to_numpy(model) if model.is_complex() else _f64(model))
    raise TypeError(
        f"{fn}: model must be a CPTensor, TuckerTensor, SparseTensor or floating torch.Tensor; "
        f"got {describe(model)}."
    )


def from_pyttb(obj: object) -> CPTensor | TuckerTensor | SparseTensor | torch.Tensor:
    """Convert a pyttb object to factorch.

    ``pyttb.ktensor`` -> :class:`~factorch.tensors.CPTensor`; ``pyttb.ttensor`` (with a dense
    core) -> :class:`~factorch.tensors.TuckerTensor`; ``pyttb.sptensor`` ->
    :class:`~factorch.tensors.SparseTensor` (entries sorted; duplicate coordinates with different
    values are refused, as :class:`SparseTensor` does); ``pyttb.tensor`` -> a dense
    ``torch.Tensor`` (C order, same values). Values keep their dtype.

    Args:
        obj: the pyttb object.

    Returns:
        The factorch object.

    Raises:
        ImportError: pyttb is not installed.
        TypeError: ``obj`` is not a pyttb ``ktensor``, ``ttensor``, ``tensor`` or ``sptensor``, or
            a ``ttensor`` has a sparse core.

    Not differentiable (the result owns copies of the data).

    Example:
        >>> import numpy as np
        >>> import pyttb as ttb
        >>> from factorch.interop import from_pyttb
        >>> k = ttb.ktensor([np.ones((3, 2)), np.ones((4, 2))], np.array([1.0, 2.0]))
        >>> from_pyttb(k).weights.tolist()
        [1.0, 2.0]
    """
    fn = "from_pyttb"
    ttb = require("pyttb", "pyttb", fn)
    if isinstance(obj, ttb.ktensor):
        factors = tuple(from_array(f, fn, f"factor_matrices[{i}]") for i, f in
                        enumerate(obj.factor_matrices))  # fmt: skip
        return CPTensor(from_array(obj.weights, fn, "weights"), factors)
    if isinstance(obj, ttb.ttensor):
        if not isinstance(obj.core, ttb.tensor):
            raise TypeError(
                f"{fn}: a ttensor with a {type(obj.core).__name__} core is not supported; convert "
                "its core to a dense pyttb.tensor first (core.full())."
            )
        factors = tuple(from_array(f, fn, f"factor_matrices[{i}]") for i, f in
                        enumerate(obj.factor_matrices))  # fmt: skip
        return TuckerTensor(from_array(obj.core.data, fn, "core"), factors)
    if isinstance(obj, ttb.sptensor):
        shape = tuple(int(s) for s in obj.shape)
        values = from_array(obj.vals, fn, "vals").reshape(-1)
        if values.numel() == 0:
            indices = torch.zeros((len(shape), 0), dtype=torch.int64)
        else:
            indices = from_array(obj.subs, fn, "subs").long().T
        return SparseTensor(indices, values, shape)
    if isinstance(obj, ttb.tensor):
        return from_array(obj.data, fn, "data")
    raise TypeError(
        f"{fn}: obj must be a pyttb ktensor, ttensor, tensor or sptensor; got {describe(obj)}."
    )
