"""A small trainer for neural operators: normalisation, AdamW, a schedule, relative losses,
evaluation at several resolutions, a progress bar.

:func:`train_operator` fits a model to input/output pairs (a
:class:`~factorch.datasets.pde.PDEData` or a pair of tensors), in mini-batches drawn by a seeded
generator, minimising the relative H1 (or L2) error of the standardised outputs, as
neuraloperator's Darcy example does; after the last epoch (and every ``eval_every`` epochs) it
reports the relative L2 and H1 errors in physical units on each test set, which may be sampled at
other resolutions than the training data (zero-shot super-resolution). The returned model
includes the standardisation (:class:`NormalizedOperator`), so it maps physical inputs to
physical outputs and is what :func:`~factorch.train.save_checkpoint` stores.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

import torch
from torch import nn

from .._checks import as_tensor, check_generator, check_positive_int
from ..datasets.pde import PDEData
from ._losses import relative_h1, relative_lp
from ._optim import RealViewAdamW

__all__ = [
    "EpochRecord",
    "NormalizedOperator",
    "Schedule",
    "TrainResult",
    "evaluate",
    "train_operator",
]

Schedule = Literal["cosine", "step", "constant"]
LossName = Literal["h1", "l2"]
Pairs = PDEData | tuple[torch.Tensor, torch.Tensor]


def _check_statistics(operator: object, *stats: torch.Tensor) -> None:
    fn = "NormalizedOperator"
    if not isinstance(operator, nn.Module):
        raise TypeError(f"{fn}: operator must be a torch.nn.Module; got {type(operator).__name__}.")
    names = ("in_mean", "in_std", "out_mean", "out_std")
    for name, t in zip(names, stats):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            got = f"a {t.dtype} tensor" if isinstance(t, torch.Tensor) else type(t).__name__
            raise TypeError(f"{fn}: {name} must be a floating-point tensor; got {got}.")
    for side in ("in", "out"):
        mean, std = stats[names.index(f"{side}_mean")], stats[names.index(f"{side}_std")]
        if mean.shape != std.shape:
            raise ValueError(
                f"{fn}: {side}_mean has shape {tuple(mean.shape)} but {side}_std has shape "
                f"{tuple(std.shape)}; pass per-channel statistics of one shape (see fit)."
            )
        if not bool(torch.isfinite(std).all()) or not bool((std > 0).all()):
            raise ValueError(
                f"{fn}: {side}_std must be positive and finite in every channel; replace zero "
                "deviations by 1 (as fit does)."
            )


class NormalizedOperator(nn.Module):
    """``y = mu_y + s_y * operator((x - mu_x) / s_x)`` with per-channel means and standard
    deviations (buffers, saved with the model). Differentiable.

    Args:
        operator: the operator on normalized data.
        in_mean: per-channel mean of the inputs, ``(c_in, 1, ...)``.
        in_std: per-channel standard deviation of the inputs (positive).
        out_mean: per-channel mean of the outputs.
        out_std: per-channel standard deviation of the outputs (positive).

    Raises:
        TypeError: ``operator`` is not an ``nn.Module`` or a statistic is not a floating-point
            tensor.
        ValueError: a mean and its standard deviation of different shapes, or a standard
            deviation with an entry that is not positive and finite.

    Example:
        >>> x, y = torch.randn(4, 1, 8), torch.randn(4, 1, 8)
        >>> op = NormalizedOperator.fit(torch.nn.Identity(), x, y)
        >>> op(torch.zeros(1, 1, 8)).shape
        torch.Size([1, 1, 8])
    """

    in_mean: torch.Tensor
    in_std: torch.Tensor
    out_mean: torch.Tensor
    out_std: torch.Tensor

    def __init__(
        self,
        operator: nn.Module,
        in_mean: torch.Tensor,
        in_std: torch.Tensor,
        out_mean: torch.Tensor,
        out_std: torch.Tensor,
    ) -> None:
        super().__init__()
        _check_statistics(operator, in_mean, in_std, out_mean, out_std)
        self.operator = operator
        self.register_buffer("in_mean", in_mean)
        self.register_buffer("in_std", in_std)
        self.register_buffer("out_mean", out_mean)
        self.register_buffer("out_std", out_std)

    @staticmethod
    def _stats(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dims = [0, *range(2, t.ndim)]
        mean = t.mean(dim=dims, keepdim=True)[0]
        std = t.std(dim=dims, keepdim=True)[0]
        return mean, torch.where(std > 0, std, torch.ones_like(std))

    @classmethod
    def fit(cls, operator: nn.Module, x: torch.Tensor, y: torch.Tensor) -> NormalizedOperator:
        """Statistics of ``x`` and ``y`` (``(n, c, *grid)``) per channel, over samples and grid
        (one number per channel, so the same model applies at every resolution)."""
        return cls(operator, *cls._stats(x.detach()), *cls._stats(y.detach()))

    def encode_input(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.in_mean) / self.in_std

    def encode_output(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.out_mean) / self.out_std

    def decode_output(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.out_std + self.out_mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_output(self.operator(self.encode_input(x)))


@dataclass(frozen=True)
class EpochRecord:
    """One epoch: mean training loss, its wall and process CPU time (training only; CPU time is
    what a busy shared machine inflates least), and the test metrics when evaluated
    (``{set name: {"l2": .., "h1": ..}}``, empty otherwise).

    Attributes:
        epoch: the 1-based epoch.
        train_loss: the mean training loss over the epoch.
        seconds: wall-clock seconds of the epoch's training.
        cpu_seconds: process CPU seconds of the epoch's training.
        metrics: the test metrics when evaluated this epoch, else empty.

    Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(8, 1, 16, generator=g)
    >>> result = train_operator(torch.nn.Conv1d(1, 1, 3, padding=1), (x, 2 * x),
    ...                         test={"test": (x, 2 * x)}, epochs=2, batch_size=4,
    ...                         periodic=True, generator=g)
    >>> [(r.epoch, sorted(r.metrics)) for r in result.history]
    [(1, []), (2, ['test'])]
    """

    epoch: int
    train_loss: float
    seconds: float
    cpu_seconds: float = 0.0
    metrics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_operator` returns.

    Attributes:
        model: the trained model (a :class:`NormalizedOperator` around the operator when
            ``normalize=True``), in eval mode.
        history: one :class:`EpochRecord` per epoch run.
        metrics: the final test metrics, ``{set name: {"l2": .., "h1": ..}}`` (physical units).
        seconds_per_epoch: median training seconds per epoch (wall clock).
        cpu_seconds_per_epoch: median process CPU seconds per training epoch.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(8, 1, 16, generator=g)
        >>> result = train_operator(torch.nn.Conv1d(1, 1, 3, padding=1), (x, 2 * x),
        ...                         test={"test": (x, 2 * x)}, epochs=2, batch_size=4,
        ...                         periodic=True, generator=g)
        >>> len(result.history), sorted(result.metrics["test"]), result.model.training
        (2, ['h1', 'l2'], False)
    """

    model: nn.Module
    history: tuple[EpochRecord, ...]
    metrics: Mapping[str, Mapping[str, float]]
    seconds_per_epoch: float
    cpu_seconds_per_epoch: float


def _pairs(data: object, fn: str, name: str) -> tuple[torch.Tensor, torch.Tensor, bool | None]:
    if isinstance(data, PDEData):
        return data.x, data.y, data.periodic
    if not isinstance(data, tuple) or len(data) != 2:
        raise TypeError(
            f"{fn}: {name} must be a PDEData or a pair of tensors (x, y); got "
            f"{type(data).__name__}."
        )
    x, y = (as_tensor(t, fn, f"{name}[{i}]") for i, t in enumerate(data))
    if x.ndim < 3 or y.ndim != x.ndim or x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[2:]:
        raise ValueError(
            f"{fn}: {name} must be (x, y) with shapes (n, c_in, *grid) and (n, c_out, *grid); "
            f"got {tuple(x.shape)} and {tuple(y.shape)}."
        )
    if not x.is_floating_point() or not y.is_floating_point():
        raise TypeError(
            f"{fn}: {name} must hold real floating-point tensors; got {x.dtype} and {y.dtype} "
            "(convert with .float())."
        )
    if x.numel() == 0 or y.numel() == 0:
        raise ValueError(f"{fn}: {name} must not be empty; got {tuple(x.shape)}.")
    if not bool(torch.isfinite(x).all()) or not bool(torch.isfinite(y).all()):
        raise ValueError(f"{fn}: {name} has NaN or Inf entries; clean the data first.")
    return x.detach(), y.detach(), None  # fitting is not differentiable in the data


def _device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Pairs,
    *,
    periodic: bool | None = None,
    batch_size: int = 64,
) -> dict[str, float]:
    """Mean per-sample relative L2 and H1 errors of ``model`` on ``data`` (physical units).

    Args:
        model: maps ``x`` to predictions of ``y``'s shape.
        data: a :class:`~factorch.datasets.pde.PDEData` or ``(x, y)``.
        periodic: the grid's boundary for the H1 derivatives (default: ``data.periodic``;
            required for tensors).
        batch_size: samples per forward call.

    Returns:
        ``{"l2": .., "h1": ..}``. Not differentiable (no graph is built).

    Raises:
        TypeError: ``data`` that is neither a ``PDEData`` nor a pair of floating tensors, or a
            ``batch_size`` that is not an int.
        ValueError: shapes that do not fit, no ``periodic`` for tensor data, a ``batch_size``
            below 1, or predictions of another shape than ``y``.

    Example:
        >>> x = torch.randn(3, 1, 16)
        >>> evaluate(torch.nn.Identity(), (x, x), periodic=True)
        {'l2': 0.0, 'h1': 0.0}
    """
    fn = "evaluate"
    x, y, data_periodic = _pairs(data, fn, "data")
    periodic_ = data_periodic if periodic is None else bool(periodic)
    if periodic_ is None:
        raise ValueError(f"{fn}: periodic must be given for tensor data (True or False).")
    bs = check_positive_int(batch_size, fn, "batch_size")
    device = _device(model)
    was_training = model.training
    model.eval()
    dims = x.ndim - 2
    l2 = h1 = 0.0
    try:
        for start in range(0, x.shape[0], bs):
            xb = x[start : start + bs].to(device)
            yb = y[start : start + bs].to(device)
            pred = model(xb)
            if not isinstance(pred, torch.Tensor) or pred.shape != yb.shape:
                got = tuple(pred.shape) if isinstance(pred, torch.Tensor) else type(pred).__name__
                raise ValueError(
                    f"{fn}: the model must map x to predictions of y's shape "
                    f"{tuple(yb.shape)}; got {got}."
                )
            if not bool(torch.isfinite(pred).all()):
                raise ValueError(
                    f"{fn}: the model's predictions have NaN or Inf entries (data beyond the "
                    f"range of the model's dtype {pred.dtype}?); rescale the data or train a "
                    "normalized model."
                )
            pred = pred.to(yb.dtype)
            l2 += float(relative_lp(pred, yb, dims=dims, reduction="none").mean(1).sum())
            h1 += float(
                relative_h1(pred, yb, periodic=periodic_, dims=dims, reduction="none").mean(1).sum()
            )
    finally:
        model.train(was_training)
    n = x.shape[0]
    return {"l2": l2 / n, "h1": h1 / n}


def _scheduler(
    optimizer: torch.optim.Optimizer, schedule: Schedule, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler:
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 4), gamma=0.5)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def _positive(value: object, fn: str, name: str, *, zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{fn}: {name} must be a finite number; got {value!r}.")
    if value < 0 or (value == 0 and not zero):
        raise ValueError(f"{fn}: {name} must be {'>= 0' if zero else '> 0'}; got {value!r}.")
    return float(value)


def train_operator(
    model: nn.Module,
    train: Pairs,
    *,
    test: Mapping[str, Pairs] | None = None,
    epochs: int = 20,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    schedule: Schedule = "cosine",
    loss: LossName = "h1",
    normalize: bool = True,
    periodic: bool | None = None,
    eval_every: int | None = None,
    progress: bool = False,
    generator: torch.Generator | None = None,
    callback: Callable[[EpochRecord], object] | None = None,
) -> TrainResult:
    """Train a neural operator on input/output pairs (module docstring).

    Args:
        model: the operator (e.g. :class:`~factorch.models.FNO`); trained in place.
        train: training pairs (:class:`~factorch.datasets.pde.PDEData` or ``(x, y)``: finite
            real floating tensors or numpy arrays, detached: training is not differentiable
            in the data).
        test: named test sets, possibly at other resolutions (``{"32": .., "64": ..}``).
        epochs: passes over the training set.
        batch_size: samples per step.
        lr, weight_decay: AdamW's learning rate and (decoupled) weight decay.
        schedule: ``"cosine"`` (annealed to 0 over ``epochs``), ``"step"`` (halved every quarter)
            or ``"constant"``.
        loss: training loss, ``"h1"`` (relative H1, default) or ``"l2"`` (relative L2).
        normalize: standardise inputs and outputs per channel with the training statistics
            (the returned model includes it: a :class:`NormalizedOperator`).
        periodic: the grid's boundary (default from the data; required for tensor pairs).
        eval_every: evaluate the test sets every this many epochs (default: only after the last).
        progress: show a tqdm progress bar on stderr (off by default in library use).
        generator: shuffling source (CPU ``torch.Generator``; ``None``: fresh entropy).
        callback: called with each :class:`EpochRecord`; returning True stops training.

    Returns:
        :class:`TrainResult` (model in eval mode, history, final metrics, median s/epoch).

    Raises:
        TypeError: an argument of the wrong type, or non-float data.
        ValueError: bad values or data (empty, NaN/Inf, mismatched shapes), or a non-finite
            training loss (the message gives the epoch; lower ``lr``).

    Example:
        >>> from factorch.datasets.pde import darcy_flow
        >>> from factorch.models import FNO
        >>> gen = torch.Generator().manual_seed(0)
        >>> train, test = darcy_flow(40, resolution=16, generator=gen).split(32)
        >>> res = train_operator(FNO(1, 1, (6, 6), hidden_channels=8, periodic=False), train,
        ...                      test={"16": test}, epochs=2, generator=gen)
        >>> sorted(res.metrics["16"])
        ['h1', 'l2']
    """
    fn = "train_operator"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{fn}: model must be a torch.nn.Module; got {type(model).__name__}.")
    x, y, data_periodic = _pairs(train, fn, "train")
    periodic_ = data_periodic if periodic is None else bool(periodic)
    if periodic_ is None:
        raise ValueError(f"{fn}: periodic must be given for tensor data (True or False).")
    sets = {str(k): _pairs(v, fn, f"test[{k!r}]") for k, v in (test or {}).items()}
    n_epochs = check_positive_int(epochs, fn, "epochs")
    bs = check_positive_int(batch_size, fn, "batch_size")
    lr_ = _positive(lr, fn, "lr")
    wd = _positive(weight_decay, fn, "weight_decay", zero=True)
    if schedule not in get_args(Schedule):
        raise ValueError(f"{fn}: schedule must be one of {get_args(Schedule)}; got {schedule!r}.")
    if loss not in get_args(LossName):
        raise ValueError(f"{fn}: loss must be one of {get_args(LossName)}; got {loss!r}.")
    every = n_epochs if eval_every is None else check_positive_int(eval_every, fn, "eval_every")
    gen = check_generator(generator, fn)
    device = _device(model)
    net: nn.Module = NormalizedOperator.fit(model, x, y).to(device) if normalize else model
    optimizer = RealViewAdamW(model.parameters(), lr=lr_, weight_decay=wd)
    scheduler = _scheduler(optimizer.optimizer, schedule, n_epochs)
    dims = x.ndim - 2

    def objective(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if loss == "h1":
            return relative_h1(pred, target, periodic=periodic_, dims=dims)
        return relative_lp(pred, target, dims=dims)

    from tqdm import tqdm

    bar = tqdm(total=n_epochs, desc="train", file=sys.stderr, disable=not progress, leave=False)
    history: list[EpochRecord] = []
    try:
        for epoch in range(1, n_epochs + 1):
            net.train()
            start, start_cpu = time.perf_counter(), time.process_time()
            order = torch.randperm(x.shape[0], generator=gen)
            total, seen = 0.0, 0
            for i in range(0, x.shape[0], bs):
                idx = order[i : i + bs]
                xb, yb = x[idx].to(device), y[idx].to(device)
                if isinstance(net, NormalizedOperator):
                    pred, target = net.operator(net.encode_input(xb)), net.encode_output(yb)
                else:
                    pred, target = net(xb), yb
                value = objective(pred, target)
                optimizer.zero_grad()
                value.backward()
                optimizer.step()
                total += float(value.detach()) * idx.numel()
                seen += idx.numel()
            scheduler.step()
            seconds = time.perf_counter() - start
            cpu_seconds = time.process_time() - start_cpu
            mean_loss = total / seen
            if not math.isfinite(mean_loss):
                raise ValueError(
                    f"{fn}: the training loss became {mean_loss} in epoch {epoch}; lower lr."
                )
            metrics: dict[str, dict[str, float]] = {}
            if epoch % every == 0 or epoch == n_epochs:
                metrics = {
                    k: evaluate(net, (sx, sy), periodic=periodic_)
                    for k, (sx, sy, _) in sets.items()
                }
            record = EpochRecord(epoch, mean_loss, seconds, cpu_seconds, metrics)
            history.append(record)
            bar.update(1)
            bar.set_postfix(
                loss=f"{mean_loss:.4f}", **{f"l2@{k}": f"{m['l2']:.4f}" for k, m in metrics.items()}
            )
            if callback is not None and callback(record) is True:
                break
    finally:
        bar.close()
    net.eval()
    final = next((r.metrics for r in reversed(history) if r.metrics), {})
    if history and not history[-1].metrics and sets:
        final = {k: evaluate(net, (sx, sy), periodic=periodic_) for k, (sx, sy, _) in sets.items()}
    return TrainResult(
        net,
        tuple(history),
        final,
        statistics.median(r.seconds for r in history),
        statistics.median(r.cpu_seconds for r in history),
    )
