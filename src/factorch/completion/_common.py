"""Shared plumbing of the completion methods: option checks, early stopping on a validation set,
random starts, memory estimates and CP values at the observed entries (the observed entries
themselves are prepared by :mod:`._observed`, results handed back by :mod:`._output`)."""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar

import torch

from .._checks import check_generator, check_positive_int
from .._numerics import check_memory
from ..algebra.internal import SparseLayout
from ..algebra.internal import sparse_mttkrp as sparse_mttkrp_kernel
from ..tensors import SparseTensor
from ._metrics import root_mean_square
from ._result import CompletionCallback, CompletionResult, CompletionState, Link

__all__ = [
    "LoopOptions",
    "Monitor",
    "check_cp_memory",
    "check_fraction",
    "check_nonneg",
    "cp_values",
    "data_alias",
    "randn",
]

P = ParamSpec("P")
R = TypeVar("R")

M = TypeVar("M")

_CHUNK_ELEMENTS = 2**20


def _real(value: object, fn: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: {name} must be a number; got {type(value).__name__}.")
    return float(value)


def check_nonneg(value: object, fn: str, name: str) -> float:
    """A finite real number ``>= 0`` (Python or numpy) as a Python float."""
    out = _real(value, fn, name)
    if not math.isfinite(out) or out < 0:
        raise ValueError(f"{fn}: {name} must be a finite number >= 0; got {value}.")
    return out


def check_fraction(value: object, fn: str, name: str) -> float:
    """A real number in ``(0, 1)`` as a Python float."""
    out = _real(value, fn, name)
    if not 0 < out < 1:
        raise ValueError(f"{fn}: {name} must be in (0, 1); got {value}.")
    return out


@dataclass(frozen=True)
class LoopOptions:
    """How an iterative fit stops: at most ``max_iter`` epochs; converged when the objective
    changes by less than ``tol`` relatively; stopped early after ``patience`` epochs without
    validation improvement."""

    max_iter: int
    tol: float
    patience: int


def check_loop(max_iter: object, tol: object, patience: object, fn: str) -> LoopOptions:
    return LoopOptions(
        check_positive_int(max_iter, fn, "max_iter"),
        check_nonneg(tol, fn, "tol"),
        check_positive_int(patience, fn, "patience"),
    )


def check_fit_options(
    l2: object, max_iter: object, tol: object, patience: object, generator: object, fn: str
) -> tuple[float, LoopOptions]:
    """The options every fitting loop takes: ``l2`` and the loop options checked (in that
    order, then ``generator``)."""
    ridge = check_nonneg(l2, fn, "l2")
    loop = check_loop(max_iter, tol, patience, fn)
    check_generator(generator, fn)
    return ridge, loop


def check_cp_memory(
    shape: Sequence[int], nnz: int, rank: int, dtype: torch.dtype, device: torch.device, fn: str
) -> None:
    """Refuse a rank whose CP working set cannot fit the device, before allocating.

    Counted (elements): the factors and as many gradient / optimiser copies as L-BFGS keeps
    (``2 * 20 + 4``), the per-row normal equations of the largest mode (``I R^2`` for the
    systems plus ``I R (R + 1) / 2`` accumulated), the factor rows of a chunk of entries, and
    ``R^2`` Grams per mode.
    """
    params = sum(shape) * rank
    rows = max(shape) * (rank * rank + rank * (rank + 1) // 2 + rank)
    chunk = min(nnz, 2**16) * rank
    need = 44 * params + rows + chunk + len(shape) * rank * rank
    check_memory(
        need,
        dtype,
        device,
        fn,
        f"a rank-{rank} CP model of a {tuple(shape)} tensor",
        hint="use a smaller rank",
    )


def data_alias(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: accept the deprecated keyword ``data=`` for the first argument ``tensor``.

    ``data`` was the first argument's name in completion until 0.2; it keeps working for one
    release with a ``DeprecationWarning`` pointing at the caller.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if "data" in kwargs:
                if args or "tensor" in kwargs:
                    raise TypeError(
                        f"{name}: got both tensor and data (the deprecated name of tensor); "
                        "pass tensor only."
                    )
                warnings.warn(
                    f"{name}: the keyword data= is deprecated; use tensor= (or pass the "
                    "tensor first, positionally).",
                    DeprecationWarning,
                    stacklevel=2,
                )
                kwargs["tensor"] = kwargs.pop("data")
            return fn(*args, **kwargs)

        return wrapper

    return decorate


def ridge_objective(
    pred: torch.Tensor, train: SparseTensor, l2: float, params: Sequence[torch.Tensor]
) -> tuple[float, float]:
    """``(train RMSE, sum of squared residuals + l2 * sum of squared parameters)`` of a ridge
    least-squares fit whose values at the observed entries of ``train`` are ``pred``."""
    resid2 = float(torch.sum((pred - train.values) ** 2))
    objective = resid2 + l2 * sum(float(torch.sum(p * p)) for p in params)
    return (resid2 / train.nnz) ** 0.5, objective


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
    def forward(
        ctx: Any, pattern: SparseTensor, layout: SparseLayout | None, *factors: torch.Tensor
    ) -> torch.Tensor:
        # ``ctx`` is torch's function context, which carries attributes set at run time.
        ctx.pattern = pattern
        ctx.layout = layout
        ctx.save_for_backward(*factors)
        return _cp_values_nograd(factors, pattern.indices)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
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
        out: torch.Tensor = _CPValues.apply(pattern, layout, *factors)
        return out
    return _cp_values_nograd(factors, pattern.indices)


class Monitor(Generic[M]):
    """Records RMSEs per epoch, keeps the best model on the validation set, decides stopping."""

    def __init__(
        self,
        fn: str,
        loop: LoopOptions,
        *,
        has_validation: bool,
        callback: CompletionCallback | None,
        snapshot: Callable[[M], M],
        stage: str = "fit",
    ) -> None:
        self.fn = fn
        self.has_validation = has_validation
        self.patience = loop.patience
        self.tol = loop.tol
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
                f"{self.fn}: the training objective became NaN or Inf at epoch {epoch}; lower "
                "the learning rate or raise l2."
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
    """RMSE of ``pred`` against ``target`` in float64, free of under- and overflow."""
    return root_mean_square(pred.double() - target.double())


def empty_slices(train: SparseTensor) -> tuple[torch.Tensor, ...]:
    """Per mode, the indices of slices with no observed entry."""
    return tuple((train.counts(n) == 0).nonzero().squeeze(1) for n in range(train.ndim))
