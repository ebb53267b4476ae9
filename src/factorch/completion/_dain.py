"""DAIN: influence-guided data augmentation for neural tensor completion.

Oh, Kim, Rossi, Kumar, "Influence-guided data augmentation for neural tensor completion",
CIKM 2021 (arXiv 2108.10248; reference code ``srijankr/DAIN``). Steps:

1. Train a neural completion model on the training cells (early stopping on validation).
2. Cell influence (TracIn restricted to the last layer): with ``h_e(x)`` the penultimate
   activations and ``r_e(x) = y_hat_e(x) - y(x)`` the residual of the model after epoch ``e``,
   the gradient of ``(1/2) r^2`` with respect to the output weights is ``g_e(x) = r_e(x) h_e(x)``
   and

       I(x) = sum_{e <= e*} < g_e(x), sum_{v in validation} g_e(v) >,

   summed up to the best epoch ``e*``, then divided by ``max |I|`` and, as in the reference
   code, made absolute (``use_abs``; strongly harmful cells count as important too).
3. Entity importance: ``E_k(i) = sum_{train x with x_k = i} I(x)``, normalised per mode.
4. Augmentation: ``aug_ratio * |train|`` cells, each index drawn independently per mode from
   ``E_k``; cells already in the training or validation set and repeated draws are dropped; the
   values are the step-1 model's predictions.
5. Train a fresh model (same factory, same settings) on training + augmented cells.

Memory: the reference stores every cell's gradient at every epoch (``epochs x cells x H``
floats, about 25 GB for a million cells). Here each epoch adds ``r_e(x) <h_e(x), G_e>`` to a
running sum (one float per cell), and that sum is copied whenever the validation RMSE improves,
so memory is two floats per training cell whatever the number of epochs. Influences are
computed in float64 with autocast off (the training passes honour an active autocast, as in
:func:`~factorch.completion.fit_neural`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .._checks import check_generator, check_positive_int
from .._numerics import autocast_disabled
from ..tensors import SparseTensor
from ._common import check_nonneg
from ._neural import NeuralCompletionModel, fit_neural, neural_data
from ._observed import observe
from ._result import CompletionCallback, CompletionResult, CompletionState

__all__ = ["DAINResult", "dain"]

_BATCH = 65536


@dataclass(frozen=True)
class DAINResult:
    """Outcome of :func:`dain`.

    Attributes:
        base: the model trained on the training cells only (step 1).
        augmented: the fresh model trained on training + augmented cells (step 5).
        influence: ``(train.nnz,)`` cell influences in the canonical order of ``train``
            (normalised by their largest magnitude; absolute values when ``use_abs``).
        importance: per mode, the ``(I_k,)`` sampling distribution of the entities.
        augmentation: the added cells with their predicted values.

    Example:
        >>> from factorch.completion import EmbeddingMLP, dain
        >>> from factorch.tensors import SparseTensor
        >>> g = torch.Generator().manual_seed(0)
        >>> x = SparseTensor.from_dense(torch.rand(6, 5, 4, generator=g))
        >>> train, val = x.split((0.8, 0.2), generator=g)
        >>> def make():
        ...     return EmbeddingMLP((6, 5, 4), 2, (4,), generator=torch.Generator().manual_seed(0))
        >>> res = dain(make, train, val, epochs=1, generator=g)
        >>> res.model is res.augmented.model, res.influence.shape == (train.nnz,)
        (True, True)
    """

    base: CompletionResult[NeuralCompletionModel]
    augmented: CompletionResult[NeuralCompletionModel]
    influence: torch.Tensor
    importance: tuple[torch.Tensor, ...]
    augmentation: SparseTensor

    @property
    def model(self) -> NeuralCompletionModel:
        """The augmented model (the method's output)."""
        return self.augmented.model


def _gradient_parts(
    model: NeuralCompletionModel, data: SparseTensor, s: int, e: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate activations and residuals of the entries ``s:e``, in float64."""
    idx = data.indices[:, s:e].long().mT
    h = model.penultimate(idx)
    resid = model.output(h).squeeze(-1) - data.values[s:e]
    return h.double(), resid.double()


def epoch_influence(
    model: NeuralCompletionModel, train: SparseTensor, val: SparseTensor
) -> torch.Tensor:
    """``<g(x), sum_v g(v)>`` for every training cell ``x`` at the model's current state
    (float64, autocast off)."""
    was = model.training
    model.eval()
    with torch.no_grad(), autocast_disabled():
        g_val = torch.zeros(model.output.in_features, dtype=torch.float64, device=val.device)
        for s in range(0, val.nnz, _BATCH):
            h, r = _gradient_parts(model, val, s, min(val.nnz, s + _BATCH))
            g_val += r @ h
        out = torch.empty(train.nnz, dtype=torch.float64, device=train.device)
        for s in range(0, train.nnz, _BATCH):
            e = min(train.nnz, s + _BATCH)
            h, r = _gradient_parts(model, train, s, e)
            out[s:e] = r * (h @ g_val)
    model.train(was)
    return out


@dataclass
class _Influence:
    """Running TracIn sum over the epochs of the base run; copied at each validation best."""

    train: SparseTensor
    val: SparseTensor
    callback: CompletionCallback | None
    running: torch.Tensor = field(init=False)
    best: torch.Tensor = field(init=False)
    best_val: float = float("inf")

    def __post_init__(self) -> None:
        self.running = torch.zeros(self.train.nnz, dtype=torch.float64, device=self.train.device)
        self.best = torch.zeros_like(self.running)

    def on_epoch(self, state: CompletionState) -> bool | None:
        self.running.add_(epoch_influence(state.model, self.train, self.val))
        if state.val_rmse < self.best_val:
            self.best_val = state.val_rmse
            self.best = self.running.clone()
        return self.callback(state) if self.callback is not None else None


@dataclass(frozen=True)
class _Training:
    """The :func:`fit_neural` settings shared by the base and the augmented run."""

    validation: SparseTensor
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    patience: int
    generator: torch.Generator | None

    def fit(
        self,
        model: NeuralCompletionModel,
        train: SparseTensor,
        stage: str,
        callback: CompletionCallback | None,
    ) -> CompletionResult[NeuralCompletionModel]:
        return fit_neural(
            model,
            train,
            validation=self.validation,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            patience=self.patience,
            generator=self.generator,
            callback=callback,
            stage=stage,
        )


def dain(
    make_model: Callable[[], NeuralCompletionModel],
    train: SparseTensor | torch.Tensor,
    validation: SparseTensor,
    *,
    aug_ratio: float = 0.5,
    use_abs: bool = True,
    epochs: int = 50,
    batch_size: int = 1024,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    patience: int = 10,
    generator: torch.Generator | None = None,
    callback: CompletionCallback | None = None,
) -> DAINResult:
    """Influence-guided data augmentation for a neural completion model (DAIN).

    Args:
        make_model: returns a fresh, untrained :class:`NeuralCompletionModel` of the data's
            shape (called twice: base and augmented run; seed its generator inside for
            reproducibility).
        train: observed training cells: a :class:`~factorch.tensors.SparseTensor` (or torch
            sparse tensor), or a dense tensor / numpy array whose every entry is a cell.
        validation: held-out cells (influence target, early stopping, model selection).
        aug_ratio: number of augmented cells drawn, as a fraction of ``train.nnz``
            (before dropping already-known cells and repeats).
        use_abs: use ``|I|`` (reference behaviour); False keeps positive influences only.
        epochs, batch_size, lr, weight_decay, patience: :func:`fit_neural` settings, the same
            for both runs.
        generator: random source of mini-batch orders and of the augmentation draws.
        callback: called after each epoch of both runs; ``state.stage`` is ``"base"`` or
            ``"augmented"``. Returning True stops that run.

    Returns:
        :class:`DAINResult`.

    Raises:
        TypeError: wrong types (``make_model`` not callable or not returning a completion
            model, half-precision parameters, ...). ValueError: no validation set, shapes
            that disagree, bad options, values whose squares overflow the model's dtype.

    Not differentiable (data that require grad are detached). Training honours an active
    autocast region as :func:`fit_neural` does; influences are computed in float64.

    Example:
        >>> import torch
        >>> from factorch.completion import EmbeddingMLP, dain
        >>> from factorch.tensors import SparseTensor
        >>> x = SparseTensor.from_dense(torch.rand(6, 5, 4), torch.rand(6, 5, 4) < 0.8)
        >>> train, val = x.split((0.8, 0.2), generator=torch.Generator().manual_seed(0))
        >>> def make():
        ...     return EmbeddingMLP((6, 5, 4), 4, (8,), generator=torch.Generator().manual_seed(0))
        >>> res = dain(make, train, val, epochs=2, generator=torch.Generator().manual_seed(1))
        >>> res.augmentation.shape
        (6, 5, 4)
    """
    fn = "dain"
    if not callable(make_model):
        raise TypeError(f"{fn}: make_model must be a callable returning a fresh model.")
    if validation is None:
        raise ValueError(f"{fn}: validation is required (it defines the influence).")
    data = observe(train, None, fn, scale=False, name="train").train
    aug_ratio = check_nonneg(aug_ratio, fn, "aug_ratio")
    if aug_ratio == 0:
        raise ValueError(f"{fn}: aug_ratio must be positive; got 0.")
    epochs = check_positive_int(epochs, fn, "epochs")
    check_generator(generator, fn)
    base_model = _fresh(make_model, data, fn)
    obs, val = neural_data(base_model, data, None, validation, fn)
    data = obs.train
    if val is None:  # pragma: no cover - validation was checked above
        raise ValueError(f"{fn}: validation is required (it defines the influence).")
    settings = _Training(val, epochs, batch_size, lr, weight_decay, patience, generator)
    tracker = _Influence(data, val, callback)
    base = settings.fit(base_model, data, "base", tracker.on_epoch)
    influence = tracker.best
    scale = float(influence.abs().max())
    if scale > 0:
        influence = influence / scale
    influence = influence.abs() if use_abs else influence.clamp(min=0)
    importance = []
    for k, size in enumerate(data.shape):
        e_k = torch.bincount(data.indices[k].long(), weights=influence, minlength=size)
        total = float(e_k.sum())
        uniform = torch.full((size,), 1.0 / size, dtype=e_k.dtype, device=e_k.device)
        importance.append(e_k / total if total > 0 else uniform)
    augmentation = _augment(base.model, data, val, importance, aug_ratio, generator)
    merged = SparseTensor.from_coo(
        torch.cat([data.indices, augmentation.indices.to(data.indices.dtype)], 1),
        torch.cat([data.values, augmentation.values]),
        data.shape,
    )
    augmented = settings.fit(_fresh(make_model, data, fn), merged, "augmented", callback)
    return DAINResult(
        base=base,
        augmented=augmented,
        influence=influence.to(data.dtype),
        importance=tuple(i.to(data.dtype) for i in importance),
        augmentation=augmentation,
    )


def _fresh(
    make_model: Callable[[], NeuralCompletionModel], train: SparseTensor, fn: str
) -> NeuralCompletionModel:
    model = make_model()
    if not isinstance(model, NeuralCompletionModel):
        raise TypeError(
            f"{fn}: make_model must return a NeuralCompletionModel (with penultimate() and "
            f"output); got {type(model).__name__}."
        )
    if model.shape != train.shape:
        raise ValueError(
            f"{fn}: make_model built a model of shape {model.shape}; need {train.shape}."
        )
    return model


def _augment(
    model: NeuralCompletionModel,
    train: SparseTensor,
    val: SparseTensor,
    importance: list[torch.Tensor],
    aug_ratio: float,
    generator: torch.Generator | None,
) -> SparseTensor:
    n_draw = max(1, round(aug_ratio * train.nnz))
    cols = [
        torch.multinomial(p.double().cpu(), n_draw, replacement=True, generator=generator)
        for p in importance
    ]
    cells = torch.stack(cols, 1).to(train.device)  # (n_draw, N)
    cells = torch.unique(cells, dim=0)
    known = train.contains(cells) | val.contains(cells)
    cells = cells[~known]
    model.eval()
    with torch.no_grad(), autocast_disabled():
        values = (
            torch.cat([model(cells[s : s + _BATCH]) for s in range(0, cells.shape[0], _BATCH)])
            if cells.shape[0]
            else torch.zeros(0, dtype=train.dtype, device=train.device)
        )
    return SparseTensor.from_coo(cells.mT, values.to(train.dtype), train.shape)
