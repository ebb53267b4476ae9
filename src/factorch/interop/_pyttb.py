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


def to_pyttb(model: CPTensor | TuckerTensor | SparseTensor | torch.Tensor) -> Any:
    """Convert a factorch object to pyttb.

    ``CPTensor`` -> ``pyttb.ktensor(factors, weights)``; ``TuckerTensor`` ->
    ``pyttb.ttensor(pyttb.tensor(core), factors)``; :class:`~factorch.tensors.SparseTensor` ->
    ``pyttb.sptensor(subs, vals, shape)`` (entries in the same sorted order); a dense
    ``torch.Tensor`` -> ``pyttb.tensor``. Values are copied exactly to numpy on the CPU in the same
    dtype (pyttb computes in float64; convert float32 models first if you need its arithmetic).

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
        return ttb.ktensor([to_numpy(f) for f in model.factors], to_numpy(model.weights))
    if isinstance(model, TuckerTensor):
        core = ttb.tensor(to_numpy(model.core))
        return ttb.ttensor(core, [to_numpy(f) for f in model.factors])
    if isinstance(model, SparseTensor):
        subs = to_numpy(model.indices.T.long())
        vals = to_numpy(model.values).reshape(-1, 1)
        return ttb.sptensor(subs, vals, tuple(model.shape))
    if isinstance(model, torch.Tensor):
        return ttb.tensor(to_numpy(model))
    raise TypeError(
        f"{fn}: model must be a CPTensor, TuckerTensor, SparseTensor or torch.Tensor; got "
        f"{describe(model)}."
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
