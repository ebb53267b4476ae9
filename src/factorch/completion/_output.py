"""What a completion fit hands back: the model in the user's units and dtype, and true RMSEs.

A fit runs on :class:`~._observed.Observed` entries: values divided by a power of two ``s``, in
float32 for half-precision inputs. :func:`finish` turns its result into the user's:

* the model multiplied by ``s`` (exact) and cast to the input dtype, in its standard form
  (normalized CP, orthonormal Tucker factors, left-orthonormal TT cores). When that form has an
  entry the input dtype cannot hold (float16 tops out at 65504, so a normalized CP weight, the
  Frobenius norm of a component, overflows long before the data do), the scale is spread evenly
  over the parts instead (CP: unit weights; Tucker, TT: core and factors of one magnitude); when
  even that overflows, ``ValueError``;
* the RMSE histories multiplied by ``s``; when the model was cast to half precision, the
  training and validation RMSEs of the returned model (entry ``best_epoch - 1``) are recomputed
  from the cast model in float64, so the reported error is that of the model the user holds;
* the per-epoch objective (``extras["loss"]``) multiplied by ``s**2`` (``inf`` where that
  exceeds float64).

Callbacks see the same view of each epoch (:func:`presenting`), without the recomputation.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TypeVar

import torch

from ..decomp import cp_degeneracy
from ..tensors import CPTensor, SparseTensor, TTTensor, TuckerTensor
from ._metrics import predict, root_mean_square
from ._observed import Observed
from ._result import CompletionCallback, CompletionResult, CompletionState, Link

__all__ = [
    "finish",
    "finish_cp",
    "present_cp",
    "present_tt",
    "present_tucker",
    "presenting",
    "true_rmse",
]

M = TypeVar("M", CPTensor, TuckerTensor, TTTensor)


def _unrepresentable(fn: str, dtype: torch.dtype) -> ValueError:
    return ValueError(
        f"{fn}: the fitted model cannot be represented in {dtype} (its parts exceed the "
        f"dtype's range of {torch.finfo(dtype).max:.3g}); pass the data as float32 or float64."
    )


def _fits(tensors: tuple[torch.Tensor, ...]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def present_cp(model: CPTensor, obs: Observed, fn: str, *, check: bool = True) -> CPTensor:
    """``model`` (a fit of the scaled values) normalized, times the scale, in the input dtype."""
    m = model.normalize()
    weights = m.weights.double() * obs.scale
    out = CPTensor(weights.to(obs.dtype), tuple(f.to(obs.dtype) for f in m.factors))
    if not check or _fits(out._tensors()):
        return out
    # Spread |w_r| evenly over the N factors (the sign goes to the first one).
    n = m.ndim
    root = torch.exp(torch.log(weights.abs()) / n)
    root = torch.where(weights == 0, torch.zeros_like(root), root)
    factors = [f.double() * root for f in m.factors]
    factors[0] = factors[0] * torch.where(weights < 0, -1.0, 1.0).to(factors[0])
    ones = torch.ones_like(weights)
    out = CPTensor(ones.to(obs.dtype), tuple(f.to(obs.dtype) for f in factors))
    if _fits(out._tensors()):
        return out
    raise _unrepresentable(fn, obs.dtype)


def _balance(
    core: torch.Tensor, parts: list[torch.Tensor], dtype: torch.dtype
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Spread ``max|core|`` evenly over the core and the ``len(parts)`` orthonormal parts."""
    peak = float(core.abs().max())
    if peak == 0 or not math.isfinite(peak):
        return core.to(dtype), [p.to(dtype) for p in parts]
    c = math.exp(math.log(peak) / (len(parts) + 1))
    core = core / c ** len(parts)
    return core.to(dtype), [(p * c).to(dtype) for p in parts]


def present_tucker(
    model: TuckerTensor, obs: Observed, fn: str, *, check: bool = True
) -> TuckerTensor:
    """``model`` with its core times the scale, in the input dtype (orthonormal factors)."""
    core = model.core.double() * obs.scale
    out = TuckerTensor(core.to(obs.dtype), tuple(f.to(obs.dtype) for f in model.factors))
    if not check or _fits(out._tensors()):
        return out
    core_b, factors = _balance(core, [f.double() for f in model.factors], obs.dtype)
    out = TuckerTensor(core_b, tuple(factors))
    if _fits(out._tensors()):
        return out
    raise _unrepresentable(fn, obs.dtype)


def present_tt(model: TTTensor, obs: Observed, fn: str, *, check: bool = True) -> TTTensor:
    """``model`` with its last core times the scale, in the input dtype (left-orthonormal)."""
    *first, last = model.cores
    last = last.double() * obs.scale
    out = TTTensor((*(c.to(obs.dtype) for c in first), last.to(obs.dtype)))
    if not check or _fits(out._tensors()):
        return out
    last_b, cores = _balance(last, [c.double() for c in first], obs.dtype)
    out = TTTensor((*cores, last_b))
    if _fits(out._tensors()):
        return out
    raise _unrepresentable(fn, obs.dtype)


def true_rmse(
    model: CPTensor | TuckerTensor | TTTensor, entries: SparseTensor, scale: float, link: Link
) -> float:
    """RMSE of ``model`` (user units) at ``entries`` (values divided by ``scale``), in float64."""
    wide = model.to(dtype=torch.float64)
    pred = predict(wide, entries.indices.mT.long(), link=link) / scale
    return scale * root_mean_square(pred - entries.values.double())


def finish(
    result: CompletionResult[M],
    obs: Observed,
    val: SparseTensor | None,
    present: Callable[[M], M],
) -> CompletionResult[M]:
    """The user's view of ``result`` (see the module docstring)."""
    s = obs.scale
    model = present(result.model)
    train_rmse = [r * s for r in result.train_rmse]
    val_rmse = [r * s for r in result.val_rmse]
    if obs.upcast and train_rmse:
        k = result.best_epoch - 1
        train_rmse[k] = true_rmse(model, obs.train, s, result.link)
        if val is not None and val_rmse:
            val_rmse[k] = true_rmse(model, val, s, result.link)
    extras = dict(result.extras)
    loss = extras.get("loss")
    if isinstance(loss, tuple) and s != 1.0:
        extras["loss"] = tuple(float(v) * s * s for v in loss)
    return dataclasses.replace(
        result,
        model=model,
        train_rmse=tuple(train_rmse),
        val_rmse=tuple(val_rmse),
        extras=extras,
    )


def finish_cp(
    result: CompletionResult[CPTensor], obs: Observed, val: SparseTensor | None, fn: str
) -> CompletionResult[CPTensor]:
    """:func:`finish` for a CP fit, with ``extras["degeneracy"]``: the
    :func:`~factorch.decomp.cp_degeneracy` check of the returned model (cancelling components)."""
    out = finish(result, obs, val, lambda m: present_cp(m, obs, fn))
    extras = {**out.extras, "degeneracy": cp_degeneracy(out.model)}
    return dataclasses.replace(out, extras=extras)


def presenting(
    callback: CompletionCallback | None, obs: Observed, present: Callable[[M], M]
) -> CompletionCallback | None:
    """``callback`` seeing each epoch's model and RMSEs in the user's units and dtype."""
    if callback is None or (obs.scale == 1.0 and not obs.upcast):
        return callback
    user = callback
    s = obs.scale

    def wrapped(state: CompletionState) -> bool | None:
        view = dataclasses.replace(
            state,
            train_rmse=state.train_rmse * s,
            val_rmse=state.val_rmse * s,
            model=present(state.model),
        )
        return user(view)

    return wrapped
