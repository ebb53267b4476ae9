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

Precision. :func:`fit_neural` trains the model in its parameters' dtype, float32 or float64
(half-precision parameters are refused: Adam's moments and an ``eps`` of ``1e-8`` do not fit
float16). An active ``torch.autocast`` region *is honoured* for the training passes: mixed
precision is what autocast exists for, and the parameters and optimiser state stay in their
dtype. Everything that is reported or selects a model -- the training and validation RMSE of each
epoch, the best epoch, :func:`~factorch.completion.predict` -- runs with autocast off in the
parameters' dtype, so the reported RMSEs are those of the returned model.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from .._checks import as_index, check_generator, check_positive_int
from .._numerics import HALF_DTYPES, autocast_disabled, check_memory
from .._timing import Stopwatch
from ..tensors import SparseTensor
from ._common import Monitor, check_loop, check_nonneg, rmse_of
from ._observed import Observed, observe, observe_validation
from ._result import CompletionCallback, CompletionResult

__all__ = ["CoSTCo", "EmbeddingMLP", "NeuralCompletionModel", "fit_neural"]


def _check_shape(shape: object, fn: str) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) < 2:
        raise TypeError(f"{fn}: shape must be a tuple of at least 2 positive ints; got {shape!r}.")
    try:
        out = tuple(as_index(s, fn, "shape") for s in shape)
    except TypeError as err:
        raise ValueError(f"{fn}: shape must hold positive ints; got {tuple(shape)}.") from err
    if any(s < 1 for s in out):
        raise ValueError(f"{fn}: shape must hold positive ints; got {out}.")
    return out


def _check_size(n_params: int, dtype: torch.dtype | None, device: object, fn: str) -> None:
    """Refuse a model whose parameters (and Adam's two moments) cannot fit the device."""
    check_memory(
        4 * n_params,
        dtype or torch.get_default_dtype(),
        torch.device(device) if isinstance(device, (str, torch.device)) else torch.device("cpu"),
        fn,
        f"a model of {n_params} parameters",
        hint="use a smaller rank or width",
    )


def _uniform_(t: torch.Tensor, bound: float, generator: torch.Generator | None) -> None:
    with torch.no_grad():
        draw = torch.rand(t.shape, generator=generator, dtype=torch.float64) * 2 - 1
        t.copy_(draw * bound)


class NeuralCompletionModel(nn.Module):
    """Base class: per-mode embeddings, a body giving the last hidden layer, a linear output.

    Subclasses set ``self.shape``, ``self.embeddings`` (an ``nn.ModuleList`` of
    ``nn.Embedding``), ``self.output`` (``nn.Linear(H, 1)``) and implement :meth:`penultimate`.
    Differentiable in every parameter.

    Example:
        >>> model = EmbeddingMLP((4, 5, 6), embedding_dim=3, hidden=(8,),
        ...                      generator=torch.Generator().manual_seed(0))
        >>> isinstance(model, NeuralCompletionModel)
        True
        >>> model(torch.tensor([[0, 1, 2], [3, 4, 5]])).shape
        torch.Size([2])
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
            weight = emb.weight
            if not isinstance(weight, torch.Tensor):  # pragma: no cover - nn.Embedding invariant
                raise TypeError("embedding without a weight tensor")
            with torch.no_grad():
                w = torch.randn(tuple(weight.shape), generator=generator, dtype=torch.float64)
                weight.copy_(0.1 * w)
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

    Raises:
        TypeError: a shape, rank or channel count that is not made of ints, a bad generator.
        ValueError: non-positive sizes, rank or channels, or parameters too large for the
            device's memory.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> model = CoSTCo((4, 5, 6), rank=3, channels=4, generator=g)
        >>> model(torch.tensor([[0, 1, 2], [3, 4, 5]])).shape
        torch.Size([2])
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
        check_generator(generator, fn)
        rank = check_positive_int(rank, fn, "rank")
        channels = check_positive_int(channels, fn, "channels")
        n = len(self.shape)
        _check_size(
            sum(self.shape) * rank + channels * (n + rank * channels + channels + 4),
            dtype,
            device,
            fn,
        )
        self.embeddings = nn.ModuleList(
            nn.Embedding(s, rank, dtype=dtype, device=device) for s in self.shape
        )
        self.conv_modes = nn.Conv2d(1, channels, (1, n), dtype=dtype, device=device)
        self.conv_rank = nn.Conv2d(channels, channels, (rank, 1), dtype=dtype, device=device)
        self.hidden = nn.Linear(channels, channels, dtype=dtype, device=device)
        self.output = nn.Linear(channels, 1, dtype=dtype, device=device)
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

    Raises:
        TypeError: a shape or width that is not made of ints, ``hidden`` that is not a non-empty
            sequence, a bad generator.
        ValueError: non-positive sizes or widths, or parameters too large for the device's
            memory.

    Example:
        >>> model = EmbeddingMLP((4, 5), embedding_dim=2, hidden=(8, 4),
        ...                      generator=torch.Generator().manual_seed(0))
        >>> model.penultimate(torch.tensor([[0, 1]])).shape
        torch.Size([1, 4])
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
        embedding_dim = check_positive_int(embedding_dim, fn, "embedding_dim")
        if not isinstance(hidden, Sequence) or isinstance(hidden, str) or not hidden:
            raise TypeError(f"{fn}: hidden must be a non-empty sequence of ints; got {hidden!r}.")
        widths = [embedding_dim * len(self.shape)]
        widths += [check_positive_int(h, fn, "hidden widths") for h in hidden]
        check_generator(generator, fn)
        layers = sum((a + 1) * b for a, b in itertools.pairwise([*widths, 1]))
        _check_size(sum(self.shape) * embedding_dim + layers, dtype, device, fn)
        self.embeddings = nn.ModuleList(
            nn.Embedding(s, embedding_dim, dtype=dtype, device=device) for s in self.shape
        )
        self.layers = nn.ModuleList(
            nn.Linear(a, b, dtype=dtype, device=device) for a, b in itertools.pairwise(widths)
        )
        self.output = nn.Linear(widths[-1], 1, dtype=dtype, device=device)
        self._init(generator)

    def penultimate(self, indices: torch.Tensor) -> torch.Tensor:
        h = torch.cat(self._embed(indices), dim=1)
        for layer in self.layers:
            h = torch.relu(layer(h))
        return h


def _module_snapshot(model: NeuralCompletionModel) -> NeuralCompletionModel:
    return copy.deepcopy(model)


def _check_model(model: object, fn: str) -> torch.Tensor:
    """The model's first parameter (its dtype and device); refuses half precision."""
    if not isinstance(model, NeuralCompletionModel):
        raise TypeError(
            f"{fn}: model must be a NeuralCompletionModel (CoSTCo, EmbeddingMLP or a subclass); "
            f"got {type(model).__name__}."
        )
    param = next(model.parameters())
    if param.dtype in HALF_DTYPES or not param.is_floating_point():
        raise TypeError(
            f"{fn}: model parameters must be float32 or float64; got {param.dtype}. Build the "
            "model in float32 and train under torch.autocast for mixed precision."
        )
    return param


def neural_data(
    model: NeuralCompletionModel, train: object, mask: object, validation: object, fn: str
) -> tuple[Observed, SparseTensor | None]:
    """Training (and validation) entries in the model's dtype and device, checked."""
    param = _check_model(model, fn)
    obs = observe(train, mask, fn, scale=False, name="train")
    if obs.train.shape != model.shape:
        raise ValueError(f"{fn}: train has shape {obs.train.shape} but the model {model.shape}.")
    peak = float(obs.train.values.abs().max())
    if peak * peak > torch.finfo(param.dtype).max / 2**20:
        raise ValueError(
            f"{fn}: train values reach {peak:.3g}; their squared errors overflow the model's "
            f"{param.dtype}. Standardise them first (subtract the mean, divide by the standard "
            "deviation) and undo that on the predictions."
        )
    obs = Observed(obs.train.to(device=param.device, dtype=param.dtype), 1.0, param.dtype)
    return obs, observe_validation(validation, obs, fn)


def fit_neural(
    model: NeuralCompletionModel,
    train: SparseTensor | torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
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
    ``weight_decay``. After each epoch the training and validation RMSEs of the model are
    computed; the parameters of the best epoch are restored at the end (the model is trained in
    place and returned in the result).

    Args:
        model: a :class:`NeuralCompletionModel` (e.g. :class:`CoSTCo`, :class:`EmbeddingMLP`)
            whose ``shape`` equals the data's, with float32 or float64 parameters.
        train: observed training entries: a :class:`~factorch.tensors.SparseTensor` or torch
            sparse tensor, or a dense tensor / numpy array (with ``mask``; every entry without
            one). Cast to the model's dtype and device.
        mask: bool tensor or array, True where a dense ``train`` is observed.
        validation: held-out entries for early stopping (``patience`` epochs) and selection.
        epochs: maximum number of passes over ``train``.
        batch_size, lr, weight_decay: optimisation settings.
        tol: stop when the epoch's mean training loss changes by less than ``tol`` relatively
            (0: never).
        generator: random source of the mini-batch order.
        callback: called after each epoch with a :class:`CompletionState`; True stops.
        stage: label passed to the callback (DAIN uses ``"base"`` and ``"augmented"``).

    Returns:
        :class:`CompletionResult`: ``train_rmse`` and ``val_rmse`` are the RMSEs of the model
        at the end of each epoch (autocast off, parameters' dtype); ``extras["loss"]`` holds
        the mean mini-batch loss of each epoch (under autocast when active).

    Raises:
        TypeError: not a completion model, half-precision parameters, wrong types.
        ValueError: shapes that disagree, no observed entry, values whose squares overflow the
            model's dtype (standardise them), bad options.
        FloatingPointError: the training loss became NaN or Inf (lower ``lr``).

    Differentiable only in the sense that it trains the model's parameters (in place); data
    that require grad are detached. An active autocast region is honoured for the training
    passes (module docstring).

    Example:
        >>> import torch
        >>> from factorch.completion import EmbeddingMLP, fit_neural
        >>> x = torch.rand(6, 5, 4)
        >>> model = EmbeddingMLP((6, 5, 4), 4, (8,), generator=torch.Generator().manual_seed(0))
        >>> res = fit_neural(model, x, epochs=2, generator=torch.Generator().manual_seed(0))
        >>> res.epochs
        2
    """
    fn = "fit_neural"
    obs, val = neural_data(model, train, mask, validation, fn)
    loop = check_loop(epochs, tol, patience, fn)
    batch = check_positive_int(batch_size, fn, "batch_size")
    lr = check_nonneg(lr, fn, "lr")
    weight_decay = check_nonneg(weight_decay, fn, "weight_decay")
    check_generator(generator, fn)
    data = obs.train
    clock = Stopwatch()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    monitor: Monitor[NeuralCompletionModel] = Monitor(
        fn,
        loop,
        has_validation=val is not None,
        callback=callback,
        snapshot=_module_snapshot,
        stage=stage,
    )
    losses: list[float] = []
    for epoch in range(1, loop.max_iter + 1):
        mse = _train_epoch(model, opt, data, batch, generator)
        losses.append(mse)
        train_rmse = rmse_of(_predict_all(model, data), data.values)
        val_rmse = rmse_of(_predict_all(model, val), val.values) if val is not None else math.nan
        if monitor.step(epoch, train_rmse, val_rmse, model, mse):
            break
    if val is not None and monitor.best_model is not None:
        model.load_state_dict(monitor.best_model.state_dict())
    model.eval()
    result = monitor.result(model, clock.elapsed, extras={"loss": tuple(losses)})
    return dataclasses.replace(result, model=model)


def _train_epoch(
    model: NeuralCompletionModel,
    opt: torch.optim.Optimizer,
    data: SparseTensor,
    batch_size: int,
    generator: torch.Generator | None,
) -> float:
    """One pass of Adam over shuffled mini-batches; returns the mean mini-batch loss."""
    model.train()
    idx_all = data.indices.long()
    x = data.values
    order = torch.randperm(data.nnz, generator=generator).to(x.device)
    total = 0.0
    for s in range(0, data.nnz, batch_size):
        pos = order[s : s + batch_size]
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((model(idx_all[:, pos].mT).to(x.dtype) - x[pos]) ** 2)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * pos.shape[0]
    return total / data.nnz


def _predict_all(model: nn.Module, data: SparseTensor, batch: int = 65536) -> torch.Tensor:
    """Model values at every listed entry of ``data`` (eval mode, no grad, autocast off)."""
    was = model.training
    model.eval()
    idx = data.indices.long()
    with torch.no_grad(), autocast_disabled():
        out = torch.cat([model(idx[:, s : s + batch].mT) for s in range(0, data.nnz, batch)])
    model.train(was)
    return out
