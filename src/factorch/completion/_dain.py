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
so memory is two floats per training cell whatever the number of epochs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .._checks import check_positive_int
from ..tensors import SparseTensor
from ._common import check_generator, check_nonneg, validation_set
from ._neural import NeuralCompletionModel, fit_neural
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
    idx = data.indices[:, s:e].long().mT
    h = model.penultimate(idx)
    resid = model.output(h).squeeze(-1) - data.values[s:e]
    return h, resid


def epoch_influence(
    model: NeuralCompletionModel, train: SparseTensor, val: SparseTensor
) -> torch.Tensor:
    """``<g(x), sum_v g(v)>`` for every training cell ``x`` at the model's current state."""
    was = model.training
    model.eval()
    with torch.no_grad():
        g_val = None
        for s in range(0, val.nnz, _BATCH):
            h, r = _gradient_parts(model, val, s, min(val.nnz, s + _BATCH))
            part = r @ h
            g_val = part if g_val is None else g_val + part
        out = torch.empty(train.nnz, dtype=train.dtype, device=train.device)
        for s in range(0, train.nnz, _BATCH):
            e = min(train.nnz, s + _BATCH)
            h, r = _gradient_parts(model, train, s, e)
            out[s:e] = r * (h @ g_val)
    model.train(was)
    return out


def dain(
    make_model: Callable[[], NeuralCompletionModel],
    train: SparseTensor,
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
        make_model: returns a fresh, untrained :class:`NeuralCompletionModel` of
            ``train.shape`` (called twice: base and augmented run; seed its generator inside
            for reproducibility).
        train: observed training cells.
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

    Not differentiable.
    """
    fn = "dain"
    if not callable(make_model):
        raise TypeError(f"{fn}: make_model must be a callable returning a fresh model.")
    if not isinstance(train, SparseTensor):
        raise TypeError(f"{fn}: train must be a SparseTensor; got {type(train).__name__}.")
    if train.nnz == 0:
        raise ValueError(f"{fn}: train has no observed entries.")
    if validation is None:
        raise ValueError(f"{fn}: validation is required (it defines the influence).")
    val = validation_set(validation, train, fn)
    aug_ratio = check_nonneg(aug_ratio, fn, "aug_ratio")
    if aug_ratio == 0:
        raise ValueError(f"{fn}: aug_ratio must be positive; got 0.")
    check_positive_int(epochs, fn, "epochs")
    check_generator(generator, fn)
    base_model = _fresh(make_model, train, fn)
    param = next(base_model.parameters())
    train = train.to(device=param.device, dtype=param.dtype)
    val = val.to(device=param.device, dtype=param.dtype)
    settings = {
        "validation": val,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "patience": patience,
        "generator": generator,
    }
    running = torch.zeros(train.nnz, dtype=train.dtype, device=train.device)
    best = {"val": float("inf"), "sum": torch.zeros_like(running)}

    def on_epoch(state: CompletionState) -> bool | None:
        running.add_(epoch_influence(state.model, train, val))
        if state.val_rmse < best["val"]:
            best["val"] = state.val_rmse
            best["sum"] = running.clone()
        return callback(state) if callback is not None else None

    base = fit_neural(base_model, train, callback=on_epoch, stage="base", **settings)
    influence = best["sum"]
    scale = float(influence.abs().max())
    if scale > 0:
        influence = influence / scale
    influence = influence.abs() if use_abs else influence.clamp(min=0)
    importance = []
    for k, size in enumerate(train.shape):
        e_k = torch.bincount(train.indices[k].long(), weights=influence.double(), minlength=size)
        total = float(e_k.sum())
        importance.append(e_k / total if total > 0 else torch.full((size,), 1.0 / size))
    augmentation = _augment(base.model, train, val, importance, aug_ratio, generator)
    merged = SparseTensor.from_coo(
        torch.cat([train.indices, augmentation.indices.to(train.indices.dtype)], 1),
        torch.cat([train.values, augmentation.values]),
        train.shape,
    )
    fresh = _fresh(make_model, train, fn)
    augmented = fit_neural(fresh, merged, callback=callback, stage="augmented", **settings)
    return DAINResult(
        base=base,
        augmented=augmented,
        influence=influence,
        importance=tuple(i.to(train.dtype) for i in importance),
        augmentation=augmentation,
    )


def _fresh(make_model, train: SparseTensor, fn: str) -> NeuralCompletionModel:
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


def _augment(model, train, val, importance, aug_ratio, generator) -> SparseTensor:
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
    with torch.no_grad():
        values = (
            torch.cat([model(cells[s : s + _BATCH]) for s in range(0, cells.shape[0], _BATCH)])
            if cells.shape[0]
            else torch.zeros(0, dtype=train.dtype, device=train.device)
        )
    return SparseTensor.from_coo(cells.mT, values.to(train.dtype), train.shape)
