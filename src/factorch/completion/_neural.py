"""Neural tensor completion: CoSTCo and an embedding MLP, and their training loop.

Both models map integer indices ``(B, N)`` to values ``(B,)`` through one embedding table per
mode and a small network, and expose the interface DAIN needs (:mod:`._dain`):
``penultimate(indices) -> (B, H)`` (last hidden layer) and ``output`` (an ``nn.Linear(H, 1)``),
with ``forward(indices) = output(penultimate(indices)).squeeze(-1)``. Any
:class:`NeuralCompletionModel` subclass that implements ``penultimate`` works with
:func:`fit_neural` and :func:`~factorch.completion.dain`.

* :class:`CoSTCo` (Liu, Li, Tsang and Liu, "CoSTCo: a neural tensor completion model for sparse
  tensors", KDD 2019): the ``N`` embeddings of rank ``R`` are stacked into an ``R x N`` one-channel
  "image"; a ``1 x N`` convolution mixes the modes for each latent dimension, an ``R x 1``
  convolution mixes the latent dimensions, then a fully connected layer (all ReLU). The embeddings
  are stacked (``torch.stack``), not reshaped from a concatenation as in a popular port.
* :class:`EmbeddingMLP`: concatenated embeddings through a ReLU MLP (neural collaborative
  filtering, He et al., WWW 2017; the base model of DAIN's reference code; NTF/NeuralCP style).

Parameters are initialised from ``generator`` (embeddings ``N(0, 0.1^2)``, linear layers
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` as PyTorch's defaults), never from the global RNG.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from .._checks import check_positive_int
from .._timing import Stopwatch
from ..tensors import SparseTensor
from ._common import Monitor, check_generator, check_loop, check_nonneg, rmse_of, validation_set
from ._result import CompletionCallback, CompletionResult

__all__ = ["CoSTCo", "EmbeddingMLP", "NeuralCompletionModel", "fit_neural"]


def _check_shape(shape: object, fn: str) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list)) or len(shape) < 2:
        raise TypeError(f"{fn}: shape must be a tuple of at least 2 positive ints; got {shape!r}.")
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"{fn}: shape must hold positive ints; got {tuple(shape)}.")
    return tuple(shape)


def _uniform_(t: torch.Tensor, bound: float, generator: torch.Generator | None) -> None:
    with torch.no_grad():
        draw = torch.rand(t.shape, generator=generator, dtype=torch.float64) * 2 - 1
        t.copy_(draw * bound)


class NeuralCompletionModel(nn.Module):
    """Base class: per-mode embeddings, a body giving the last hidden layer, a linear output.

    Subclasses set ``self.shape``, ``self.embeddings`` (an ``nn.ModuleList`` of
    ``nn.Embedding``), ``self.output`` (``nn.Linear(H, 1)``) and implement :meth:`penultimate`.
    Differentiable in every parameter.
    """

    shape: tuple[int, ...]
    embeddings: nn.ModuleList
    output: nn.Linear

    def penultimate(self, indices: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        """Values at integer ``(B, N)`` indices (no range check: use :func:`predict` for that)."""
        return self.output(self.penultimate(indices)).squeeze(-1)

    def _embed(self, indices: torch.Tensor) -> list[torch.Tensor]:
        return [emb(indices[:, n]) for n, emb in enumerate(self.embeddings)]

    def _init(self, generator: torch.Generator | None) -> None:
        for emb in self.embeddings:
            with torch.no_grad():
                w = torch.randn(emb.weight.shape, generator=generator, dtype=torch.float64)
                emb.weight.copy_(0.1 * w)
        for mod in self.modules():
            if isinstance(mod, (nn.Linear, nn.Conv2d)):
                fan_in = mod.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                _uniform_(mod.weight, bound, generator)
                if mod.bias is not None:
                    _uniform_(mod.bias, bound, generator)


class CoSTCo(NeuralCompletionModel):
    """CoSTCo: embeddings stacked as an ``R x N`` image, two convolutions, a dense layer.

    Args:
        shape: the tensor shape (one embedding table per mode).
        rank: embedding size ``R`` per mode.
        channels: number of convolution channels ``C`` (also the hidden width).
        generator, dtype, device: initialisation source and parameter placement.
    """

    def __init__(
        self,
        shape: Sequence[int],
        rank: int = 16,
        channels: int = 32,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        fn = "CoSTCo"
        self.shape = _check_shape(shape, fn)
        check_positive_int(rank, fn, "rank")
        check_positive_int(channels, fn, "channels")
        check_generator(generator, fn)
        kw = {"dtype": dtype, "device": device}
        n = len(self.shape)
        self.embeddings = nn.ModuleList(nn.Embedding(s, rank, **kw) for s in self.shape)
        self.conv_modes = nn.Conv2d(1, channels, kernel_size=(1, n), **kw)
        self.conv_rank = nn.Conv2d(channels, channels, kernel_size=(rank, 1), **kw)
        self.hidden = nn.Linear(channels, channels, **kw)
        self.output = nn.Linear(channels, 1, **kw)
        self._init(generator)

    def penultimate(self, indices: torch.Tensor) -> torch.Tensor:
        image = torch.stack(self._embed(indices), dim=-1).unsqueeze(1)  # (B, 1, R, N)
        h = torch.relu(self.conv_modes(image))  # (B, C, R, 1)
        h = torch.relu(self.conv_rank(h)).flatten(1)  # (B, C)
        return torch.relu(self.hidden(h))


class EmbeddingMLP(NeuralCompletionModel):
    """Concatenated per-mode embeddings through a ReLU MLP (NCF-style; DAIN's base model).

    Args:
        shape: the tensor shape.
        embedding_dim: embedding size per mode.
        hidden: widths of the hidden layers (the last one is the penultimate layer).
        generator, dtype, device: initialisation source and parameter placement.
    """

    def __init__(
        self,
        shape: Sequence[int],
        embedding_dim: int = 16,
        hidden: Sequence[int] = (64, 32),
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        fn = "EmbeddingMLP"
        self.shape = _check_shape(shape, fn)
        check_positive_int(embedding_dim, fn, "embedding_dim")
        if isinstance(hidden, int) or not hidden:
            raise TypeError(f"{fn}: hidden must be a non-empty sequence of ints; got {hidden!r}.")
        for h in hidden:
            check_positive_int(h, fn, "hidden widths")
        check_generator(generator, fn)
        kw = {"dtype": dtype, "device": device}
        self.embeddings = nn.ModuleList(nn.Embedding(s, embedding_dim, **kw) for s in self.shape)
        widths = [embedding_dim * len(self.shape), *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b, **kw) for a, b in itertools.pairwise(widths))
        self.output = nn.Linear(widths[-1], 1, **kw)
        self._init(generator)

    def penultimate(self, indices: torch.Tensor) -> torch.Tensor:
        h = torch.cat(self._embed(indices), dim=1)
        for layer in self.layers:
            h = torch.relu(layer(h))
        return h


def _module_snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def fit_neural(
    model: NeuralCompletionModel,
    train: SparseTensor,
    *,
    validation: SparseTensor | None = None,
    epochs: int = 50,
    batch_size: int = 1024,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    patience: int = 10,
    tol: float = 0.0,
    generator: torch.Generator | None = None,
    callback: CompletionCallback | None = None,
    stage: str = "fit",
) -> CompletionResult[NeuralCompletionModel]:
    """Train a neural completion model on observed entries by Adam on the squared error.

    Shuffled mini-batches (order from ``generator``), mean squared error, Adam with ``lr`` and
    ``weight_decay``. After each epoch the validation RMSE is computed; the parameters of the
    best epoch are restored at the end (the model is trained in place and returned in the result).

    Args:
        model: a :class:`NeuralCompletionModel` (e.g. :class:`CoSTCo`, :class:`EmbeddingMLP`)
            whose ``shape`` equals ``train.shape``.
        train: observed training entries.
        validation: held-out entries for early stopping (``patience`` epochs) and selection.
        epochs: maximum number of passes over ``train``.
        batch_size, lr, weight_decay: optimisation settings.
        tol: stop when the epoch's mean training loss changes by less than ``tol`` relatively
            (0: never).
        generator: random source of the mini-batch order.
        callback: called after each epoch with a :class:`CompletionState`; True stops.
        stage: label passed to the callback (DAIN uses ``"base"`` and ``"augmented"``).

    Returns:
        :class:`CompletionResult` whose ``train_rmse`` is the root of the mean loss over each
        epoch's mini-batches.
    """
    fn = "fit_neural"
    if not isinstance(model, NeuralCompletionModel):
        raise TypeError(
            f"{fn}: model must be a NeuralCompletionModel (CoSTCo, EmbeddingMLP or a subclass); "
            f"got {type(model).__name__}."
        )
    if not isinstance(train, SparseTensor):
        raise TypeError(f"{fn}: train must be a SparseTensor; got {type(train).__name__}.")
    if train.shape != model.shape:
        raise ValueError(f"{fn}: train has shape {train.shape} but the model {model.shape}.")
    if train.nnz == 0:
        raise ValueError(f"{fn}: train has no observed entries.")
    epochs, tol, patience = check_loop(epochs, tol, patience, fn)
    check_positive_int(batch_size, fn, "batch_size")
    lr = check_nonneg(lr, fn, "lr")
    weight_decay = check_nonneg(weight_decay, fn, "weight_decay")
    check_generator(generator, fn)
    param = next(model.parameters())
    train = train.to(device=param.device, dtype=param.dtype)
    val = validation_set(validation, train, fn)
    clock = Stopwatch()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    monitor: Monitor[NeuralCompletionModel] = Monitor(
        has_validation=val is not None,
        patience=patience,
        tol=tol,
        callback=callback,
        snapshot=lambda m: _module_snapshot(m),  # type: ignore[arg-type,return-value]
        stage=stage,
    )
    idx_all = train.indices.long()
    x = train.values
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(train.nnz, generator=generator).to(param.device)
        total = 0.0
        for s in range(0, train.nnz, batch_size):
            pos = order[s : s + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = torch.mean((model(idx_all[:, pos].mT) - x[pos]) ** 2)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * pos.shape[0]
        mse = total / train.nnz
        val_rmse = math.nan
        if val is not None:
            val_rmse = rmse_of(_predict_all(model, val), val.values)
        if monitor.step(epoch, math.sqrt(mse), val_rmse, model, mse):
            break
    if val is not None and monitor.best_model is not None:
        model.load_state_dict(monitor.best_model)  # type: ignore[arg-type]
    model.eval()
    # the monitor keeps a state dict as the best model; the result holds the module itself
    return dataclasses.replace(monitor.result(model, clock.elapsed), model=model)


def _predict_all(model: nn.Module, data: SparseTensor, batch: int = 65536) -> torch.Tensor:
    was = model.training
    model.eval()
    idx = data.indices.long()
    with torch.no_grad():
        out = torch.cat([model(idx[:, s : s + batch].mT) for s in range(0, data.nnz, batch)])
    model.train(was)
    return out
