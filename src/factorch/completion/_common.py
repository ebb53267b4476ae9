"""Shared plumbing of the completion methods: observed-entry handling, option checks, early
stopping on a validation set, random starts and CP values at the observed entries."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import torch

from .._checks import check_positive_int
from ..algebra.internal import SparseLayout
from ..algebra.internal import sparse_mttkrp as sparse_mttkrp_kernel
from ..tensors import SparseTensor
from ._result import CompletionCallback, CompletionResult, CompletionState, Link

__all__ = [
    "Monitor",
    "check_fraction",
    "check_nonneg",
    "cp_values",
    "observations",
    "randn",
    "validation_set",
]

M = TypeVar("M")

_CHUNK_ELEMENTS = 2**20


def observations(
    data: object, mask: torch.Tensor | None, fn: str, name: str = "data"
) -> SparseTensor:
    """The observed entries as a :class:`SparseTensor` (float32/float64, at least one entry).

    ``data`` is a SparseTensor (its listed entries are the observed ones) or a dense tensor with
    an optional bool ``mask`` (True = observed; without a mask every entry is observed and NaN is
    refused)."""
    if isinstance(data, SparseTensor):
        if mask is not None:
            raise ValueError(
                f"{fn}: mask is only for dense tensors; a SparseTensor lists its observed "
                "entries already."
            )
        sp = data
    elif isinstance(data, torch.Tensor):
        if not data.is_floating_point():
            raise TypeError(f"{fn}: {name} must have a real floating dtype; got {data.dtype}.")
        if data.ndim < 2 or data.numel() == 0:
            raise ValueError(
                f"{fn}: {name} must have at least 2 modes and no empty mode; got shape "
                f"{tuple(data.shape)}."
            )
        if mask is None:
            if bool(torch.isnan(data).any()):
                raise ValueError(
                    f"{fn}: {name} contains NaN; pass mask=~torch.isnan({name}) to treat NaN "
                    "entries as missing."
                )
            mask = torch.ones_like(data, dtype=torch.bool)
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise TypeError(f"{fn}: mask must be a bool tensor (True = observed); got {got}.")
        if mask.shape != data.shape:
            raise ValueError(
                f"{fn}: mask shape {tuple(mask.shape)} must equal the {name} shape "
                f"{tuple(data.shape)}."
            )
        if mask.device != data.device:
            raise ValueError(f"{fn}: mask is on {mask.device} but {name} on {data.device}.")
        observed = data[mask]
        if observed.numel() and not bool(torch.isfinite(observed).all()):
            raise ValueError(
                f"{fn}: {name} has {int((~torch.isfinite(observed)).sum())} NaN or Inf entries "
                "where mask is True; observed entries must be finite (set mask False there)."
            )
        sp = SparseTensor.from_dense(data, mask)
    else:
        raise TypeError(
            f"{fn}: {name} must be a SparseTensor or a dense torch.Tensor; got "
            f"{type(data).__name__}."
        )
    if sp.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{fn}: {name} must be float32 or float64; got {sp.dtype}.")
    if sp.ndim < 2:
        raise ValueError(f"{fn}: {name} must have at least 2 modes; got shape {sp.shape}.")
    if sp.nnz == 0:
        raise ValueError(
            f"{fn}: {name} has no observed entries; completion needs at least one "
            "(check the mask or the split)."
        )
    return sp


def validation_set(validation: object, train: SparseTensor, fn: str) -> SparseTensor | None:
    """``None`` or a SparseTensor of the training shape, cast to its dtype and device."""
    if validation is None:
        return None
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
    return validation.to(device=train.device, dtype=train.dtype)


def check_nonneg(value: object, fn: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{fn}: {name} must be a number; got {type(value).__name__}.")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{fn}: {name} must be a finite number >= 0; got {value}.")
    return float(value)


def check_fraction(value: object, fn: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{fn}: {name} must be a number; got {type(value).__name__}.")
    if not 0 < value < 1:
        raise ValueError(f"{fn}: {name} must be in (0, 1); got {value}.")
    return float(value)


def check_loop(max_iter: object, tol: object, patience: object, fn: str) -> tuple[int, float, int]:
    return (
        check_positive_int(max_iter, fn, "max_iter"),
        check_nonneg(tol, fn, "tol"),
        check_positive_int(patience, fn, "patience"),
    )


def check_fit_options(
    l2: object, max_iter: object, tol: object, patience: object, generator: object, fn: str
) -> tuple[float, int, float, int]:
    """The options every fitting loop takes: ``(l2, max_iter, tol, patience)`` checked (in that
    order, then ``generator``)."""
    l2 = check_nonneg(l2, fn, "l2")
    max_iter, tol, patience = check_loop(max_iter, tol, patience, fn)
    check_generator(generator, fn)
    return l2, max_iter, tol, patience


def ridge_objective(
    pred: torch.Tensor, train: SparseTensor, l2: float, params: Sequence[torch.Tensor]
) -> tuple[float, float]:
    """``(train RMSE, sum of squared residuals + l2 * sum of squared parameters)`` of a ridge
    least-squares fit whose values at the observed entries of ``train`` are ``pred``."""
    resid2 = float(torch.sum((pred - train.values) ** 2))
    objective = resid2 + l2 * sum(float(torch.sum(p * p)) for p in params)
    return (resid2 / train.nnz) ** 0.5, objective


def normalized(result: CompletionResult[M]) -> CompletionResult[M]:
    """``result`` with its CP model normalized (unit-norm factor columns, norms in the weights)."""
    return dataclasses.replace(result, model=result.model.normalize())  # type: ignore[attr-defined]


def randn(
    shape: Sequence[int],
    generator: torch.Generator | None,
    dtype: torch.dtype,
    device: torch.device,
    scale: float = 1.0,
) -> torch.Tensor:
    """Gaussian draw on the CPU (so a seed gives the same numbers on every device), moved."""
    out = torch.randn(tuple(shape), generator=generator, dtype=torch.float64) * scale
    return out.to(device=device, dtype=dtype)


def cp_scale(train: SparseTensor, rank: int) -> float:
    """Per-factor std so that a random CP model has the RMS of the observed values."""
    rms = float(torch.sqrt(torch.mean(train.values.double() ** 2)))
    rms = rms if rms > 0 else 1.0
    return (rms / math.sqrt(rank)) ** (1.0 / train.ndim)


def _cp_values_nograd(factors: Sequence[torch.Tensor], indices: torch.Tensor) -> torch.Tensor:
    nnz = indices.shape[1]
    rank = factors[0].shape[1]
    out = torch.empty(nnz, dtype=factors[0].dtype, device=factors[0].device)
    chunk = max(256, _CHUNK_ELEMENTS // max(rank, 1))
    for s in range(0, nnz, chunk):
        e = min(nnz, s + chunk)
        prod = factors[0].index_select(0, indices[0, s:e])
        for n in range(1, len(factors)):
            prod.mul_(factors[n].index_select(0, indices[n, s:e]))
        torch.sum(prod, 1, out=out[s:e])
    return out


class _CPValues(torch.autograd.Function):
    """CP model values at a fixed set of entries; the backward pass is one sparse MTTKRP per
    factor (the gradient of ``sum_p g_p m_p`` with respect to ``A_n`` is the MTTKRP of ``g``)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, pattern: SparseTensor, layout: SparseLayout | None, *factors: torch.Tensor
    ) -> torch.Tensor:
        ctx.pattern = pattern
        ctx.layout = layout
        ctx.save_for_backward(*factors)
        return _cp_values_nograd(factors, pattern.indices)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        factors = ctx.saved_tensors
        grads: list[torch.Tensor | None] = [None, None]
        g = grad.contiguous()
        wanted = [n for n in range(len(factors)) if ctx.needs_input_grad[n + 2]]
        layout = ctx.layout or SparseLayout.build(ctx.pattern, modes=wanted)
        for n in range(len(factors)):
            if n in wanted:
                grads.append(sparse_mttkrp_kernel(layout, factors, n, g))
            else:
                grads.append(None)
        return tuple(grads)


def cp_values(
    factors: Sequence[torch.Tensor], pattern: SparseTensor, layout: SparseLayout | None = None
) -> torch.Tensor:
    """``m_p = sum_r prod_n A_n[i_n(p), r]`` at every listed entry of ``pattern``.

    Chunked without autograd; with autograd, the backward pass uses sparse MTTKRPs (fast,
    deterministic) instead of the per-row ``index_add_`` of indexing's backward; ``layout``
    (built once by the solver, ``SparseLayout.build(pattern)``) saves a sort per backward pass.
    """
    if torch.is_grad_enabled() and any(f.requires_grad for f in factors):
        return _CPValues.apply(pattern, layout, *factors)
    return _cp_values_nograd(factors, pattern.indices)


class Monitor(Generic[M]):
    """Records RMSEs per epoch, keeps the best model on the validation set, decides stopping."""

    def __init__(
        self,
        *,
        has_validation: bool,
        patience: int,
        tol: float,
        callback: CompletionCallback | None,
        snapshot: Callable[[M], M],
        stage: str = "fit",
    ) -> None:
        self.has_validation = has_validation
        self.patience = patience
        self.tol = tol
        self.callback = callback
        self.snapshot = snapshot
        self.stage = stage
        self.train: list[float] = []
        self.val: list[float] = []
        self.best_epoch = 0
        self.best_model: M | None = None
        self.last_model: M | None = None
        self.converged = False
        self.stopped_early = False
        self._best_val = math.inf
        self._bad = 0
        self._prev_objective: float | None = None

    def step(
        self, epoch: int, train_rmse: float, val_rmse: float, model: M, objective: float
    ) -> bool:
        """Record an epoch; True when the run must stop. ``objective`` drives ``tol``."""
        if not math.isfinite(objective):
            raise FloatingPointError(
                "the training objective became NaN or Inf at epoch "
                f"{epoch}; lower the learning rate or raise l2."
            )
        self.train.append(train_rmse)
        self.last_model = model
        if self.has_validation:
            self.val.append(val_rmse)
            if val_rmse < self._best_val:
                self._best_val = val_rmse
                self.best_epoch = epoch
                self.best_model = self.snapshot(model)
                self._bad = 0
            else:
                self._bad += 1
                if self._bad >= self.patience:
                    self.stopped_early = True
        else:
            self.best_epoch = epoch
        prev = self._prev_objective
        if prev is not None and abs(prev - objective) <= self.tol * max(abs(prev), 1e-300):
            self.converged = True
        self._prev_objective = objective
        stop = False
        if self.callback is not None:
            stop = bool(
                self.callback(CompletionState(epoch, train_rmse, val_rmse, model, self.stage))
            )
        return stop or self.converged or self.stopped_early

    def result(
        self,
        final: M,
        time_s: float,
        *,
        link: Link = "identity",
        extras: dict[str, object] | None = None,
    ) -> CompletionResult[M]:
        model = self.best_model if self.has_validation and self.best_model is not None else final
        return CompletionResult(
            model=model,
            train_rmse=tuple(self.train),
            val_rmse=tuple(self.val),
            best_epoch=self.best_epoch if self.has_validation else len(self.train),
            epochs=len(self.train),
            converged=self.converged,
            stopped_early=self.stopped_early,
            time_s=time_s,
            link=link,
            extras=dict(extras or {}),
        )


def rmse_of(pred: torch.Tensor, target: torch.Tensor) -> float:
    return math.sqrt(float(torch.mean((pred.double() - target.double()) ** 2)))


def empty_slices(train: SparseTensor) -> tuple[torch.Tensor, ...]:
    """Per mode, the indices of slices with no observed entry."""
    return tuple((train.counts(n) == 0).nonzero().squeeze(1) for n in range(train.ndim))


def check_generator(generator: object, fn: str) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{fn}: generator must be a torch.Generator or None; got {type(generator).__name__}."
        )
