"""What a completion fit works on: the observed entries, prepared once at the public boundary.

Every completion entry point calls :func:`observe` first. It accepts

* a dense ``torch.Tensor``, a numpy array or an array-like (converted once by
  :func:`factorch._checks.as_tensor`), with an optional bool ``mask`` (True = observed; also
  array-like): the observed entries are those of the mask, or every entry without one;
* a :class:`~factorch.tensors.SparseTensor` or a torch sparse tensor (COO, CSR, CSC, BSR, BSC):
  its *listed* entries are the observed ones, as everywhere in completion (to treat unlisted
  entries as zeros, densify it first, or use :func:`~factorch.completion.sparse_cp`);

and returns an :class:`Observed`:

* data that require grad are detached (completion fits are not differentiable with respect to
  the data);
* float16 / bfloat16 values are computed in float32 (:func:`factorch._numerics.working_dtype`;
  torch has no half-precision Cholesky, QR or eigh on the CPU, and an 8--11 bit mantissa cannot
  carry a least-squares sweep); the model is cast back to the input dtype at the end;
* the values are divided by an exact power of two ``s`` close to their largest magnitude
  (:func:`factorch._numerics.power_of_two_scale`), so that squares, Grams and sums of squares
  cannot under- or overflow whatever the magnitude of the data (float32 data of ``1e-30`` or
  ``1e30``); the model is multiplied back by ``s`` at the end (:mod:`._output`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._checks import as_tensor
from .._numerics import power_of_two_scale, working_dtype
from ..tensors import SparseTensor

__all__ = ["Observed", "observe", "observe_validation", "scaled_ridge"]

_SPARSE_LAYOUTS = (torch.sparse_csr, torch.sparse_csc, torch.sparse_bsr, torch.sparse_bsc)


@dataclass(frozen=True)
class Observed:
    """The observed entries of a completion problem, ready for a fit.

    Attributes:
        train: the observed entries in the working dtype (float32 or float64), values divided
            by ``scale``.
        scale: the power of two the values were divided by (1.0 when not scaled).
        dtype: the input dtype: the returned model's dtype.
    """

    train: SparseTensor
    scale: float
    dtype: torch.dtype

    @property
    def upcast(self) -> bool:
        """True when the input was half precision (computed in float32)."""
        return self.dtype != self.train.dtype


def _sparse_input(tensor: torch.Tensor, fn: str) -> SparseTensor:
    if tensor.layout in _SPARSE_LAYOUTS:
        tensor = tensor.to_sparse_coo()
    if not tensor.dtype.is_floating_point:
        raise TypeError(
            f"{fn}: tensor must have a real floating dtype; got a sparse tensor of {tensor.dtype}."
        )
    tensor = tensor.detach().to(working_dtype(tensor.dtype)).coalesce()
    if tensor.ndim < 2 or tensor._nnz() == 0:
        raise ValueError(
            f"{fn}: tensor must have at least 2 modes and one listed (observed) entry; got a "
            f"sparse tensor of shape {tuple(tensor.shape)} with {tensor._nnz()} entries."
        )
    if not bool(torch.isfinite(tensor.values()).all()):
        raise ValueError(f"{fn}: tensor lists NaN or Inf values; observed values must be finite.")
    return SparseTensor.from_torch(tensor)


def _dense_input(data: torch.Tensor, mask: object, fn: str, name: str) -> SparseTensor:
    if not data.is_floating_point():
        raise TypeError(
            f"{fn}: {name} must have a real floating dtype; got {data.dtype} (convert it, e.g. "
            f"{name}.double())."
        )
    if data.ndim < 2 or data.numel() == 0:
        raise ValueError(
            f"{fn}: {name} must have at least 2 modes and no empty mode; got shape "
            f"{tuple(data.shape)}."
        )
    data = data.detach()
    if mask is None:
        if bool(torch.isnan(data).any()):
            raise ValueError(
                f"{fn}: {name} contains NaN; pass mask=~torch.isnan({name}) to treat NaN "
                "entries as missing."
            )
        mask = torch.ones_like(data, dtype=torch.bool)
    else:
        mask = as_tensor(mask, fn, "mask")
    if mask.layout != torch.strided:
        raise TypeError(f"{fn}: mask must be a dense bool tensor; got a {mask.layout} tensor.")
    if mask.dtype != torch.bool:
        raise TypeError(f"{fn}: mask must be a bool tensor (True = observed); got {mask.dtype}.")
    if mask.shape != data.shape:
        raise ValueError(
            f"{fn}: mask shape {tuple(mask.shape)} must equal the {name} shape {tuple(data.shape)}."
        )
    if mask.device != data.device:
        raise ValueError(f"{fn}: mask is on {mask.device} but {name} on {data.device}.")
    observed = data[mask]
    if observed.numel() and not bool(torch.isfinite(observed).all()):
        raise ValueError(
            f"{fn}: {name} has {int((~torch.isfinite(observed)).sum())} NaN or Inf entries "
            "where mask is True; observed entries must be finite (set mask False there)."
        )
    return SparseTensor.from_dense(data.to(working_dtype(data.dtype)), mask)


def observe(
    tensor: object, mask: object, fn: str, *, scale: bool = True, name: str = "tensor"
) -> Observed:
    """The observed entries of ``tensor`` (see the module docstring), scaled when ``scale``.

    Raises ``TypeError`` / ``ValueError`` naming ``fn`` for anything a fit cannot use: wrong types
    or dtypes, fewer than 2 modes, an empty mode, NaN or Inf observed values, no observed entry.
    """
    if isinstance(tensor, SparseTensor) or (
        isinstance(tensor, torch.Tensor) and tensor.layout != torch.strided
    ):
        if mask is not None:
            raise ValueError(
                f"{fn}: mask is only for dense tensors; a sparse {name} lists its observed "
                "entries already."
            )
        if isinstance(tensor, SparseTensor):
            dtype = tensor.dtype
            sp = tensor if working_dtype(dtype) == dtype else tensor.to(dtype=working_dtype(dtype))
            sp = sp.with_values(sp.values.detach()) if sp.values.requires_grad else sp
        else:
            dtype = tensor.dtype
            sp = _sparse_input(tensor, fn)
    else:
        if not isinstance(tensor, torch.Tensor):
            if isinstance(tensor, (int, float, complex)) or tensor is None:
                raise TypeError(
                    f"{fn}: {name} must be a dense torch.Tensor, a numpy array, a SparseTensor "
                    f"or a torch sparse tensor; got {type(tensor).__name__}."
                )
            tensor = as_tensor(tensor, fn, name)
        dtype = tensor.dtype
        sp = _dense_input(tensor, mask, fn, name)
    if sp.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{fn}: {name} must be a real floating tensor; got {dtype}.")
    if sp.ndim < 2:
        raise ValueError(f"{fn}: {name} must have at least 2 modes; got shape {sp.shape}.")
    if sp.nnz == 0:
        raise ValueError(
            f"{fn}: {name} has no observed entries; completion needs at least one "
            "(check the mask or the split)."
        )
    s = power_of_two_scale(sp.values) if scale else 1.0
    if s != 1.0:
        sp = sp.with_values(sp.values / s)
    return Observed(sp, s, dtype)


def observe_validation(validation: object, obs: Observed, fn: str) -> SparseTensor | None:
    """``None`` or the held-out entries in the working dtype and device, divided by the scale of
    the training values."""
    if validation is None:
        return None
    train = obs.train
    if not isinstance(validation, SparseTensor):
        raise TypeError(
            f"{fn}: validation must be a SparseTensor of held-out entries or None; got "
            f"{type(validation).__name__} (use SparseTensor.from_dense(x, mask))."
        )
    if validation.shape != train.shape:
        raise ValueError(
            f"{fn}: validation has shape {validation.shape} but the data has {train.shape}."
        )
    if validation.nnz == 0:
        raise ValueError(f"{fn}: validation has no entries; pass None or a non-empty split.")
    val = validation.to(device=train.device, dtype=train.dtype)
    if obs.scale == 1.0 and not val.values.requires_grad:
        return val
    values = val.values.detach() / obs.scale
    if not bool(torch.isfinite(values).all()):
        raise ValueError(
            f"{fn}: validation values overflow {train.dtype} at the scale of the training "
            "data; hold out entries of the training data's magnitude."
        )
    return val.with_values(values)


def scaled_ridge(l2: float, scale: float, power: float, dtype: torch.dtype) -> float:
    """``l2 * scale**power``: an absolute ridge weight expressed for data divided by ``scale``.

    Computed through logarithms (``scale`` may be ``2**-660``) and capped at the square root of
    the dtype's largest value, so that ``G + l2 I`` stays finite: a cap reached means the penalty
    dominates the data by far, and the solution is (numerically) zero either way.
    """
    if l2 == 0.0 or scale == 1.0:
        return l2
    log2 = math.log2(l2) + power * math.log2(scale)
    cap = math.log2(torch.finfo(dtype).max) / 2
    return 2.0 ** min(log2, cap)
