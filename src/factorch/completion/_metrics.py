"""Prediction at arbitrary index batches and error metrics (RMSE, MAE, relative error).

All metrics are on the original scale of the data: RMSE ``sqrt(mean((y_hat - y)^2))`` (with the
square root; DAIN's reference code prints the MSE under that name), MAE ``mean(|y_hat - y|)`` and
the relative error ``||y_hat - y|| / ||y||`` over the given entries.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import as_tensor, check_positive_int
from .._numerics import autocast_disabled, stable_norm
from ..tensors import FactorizedTensor, SparseTensor
from ._result import Link

__all__ = ["evaluate", "mae", "predict", "relative_error", "rmse", "root_mean_square"]


def apply_link(values: torch.Tensor, link: Link) -> torch.Tensor:
    if link == "exp":
        return torch.exp(values)
    if link == "sigmoid":
        return torch.sigmoid(values)
    return values


def _check_indices(indices: object, ndim: int, fn: str) -> torch.Tensor:
    if not isinstance(indices, torch.Tensor):
        if indices is None or isinstance(indices, (str, bytes, int, float)):
            raise TypeError(
                f"{fn}: indices must be an integer torch.Tensor of shape (B, {ndim}); got "
                f"{type(indices).__name__}."
            )
        indices = as_tensor(indices, fn, "indices")
    if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
        raise TypeError(f"{fn}: indices must have an integer dtype; got {indices.dtype}.")
    if indices.ndim != 2 or indices.shape[1] != ndim:
        raise ValueError(
            f"{fn}: indices must have shape (B, {ndim}), one row per entry; got "
            f"{tuple(indices.shape)}."
        )
    return indices


def _model_shape(model: object, fn: str) -> tuple[int, ...]:
    shape = getattr(model, "shape", None)
    if isinstance(model, (FactorizedTensor, nn.Module)) and isinstance(shape, tuple):
        return shape
    raise TypeError(
        f"{fn}: model must be a factorized tensor (CPTensor, TuckerTensor, TTTensor, ...) or a "
        f"completion nn.Module with a .shape; got {type(model).__name__}."
    )


def predict(
    model: FactorizedTensor | nn.Module,
    indices: torch.Tensor,
    *,
    batch_size: int = 65536,
    link: Link = "identity",
) -> torch.Tensor:
    """Model values at integer ``(B, N)`` indices, in batches, with ``link`` applied.

    Args:
        model: a factorized tensor (``.entries``) or a completion ``nn.Module`` (called in eval
            mode under ``torch.no_grad`` with autocast off; its training mode is restored).
        indices: integer ``(B, N)`` tensor or numpy array.
        batch_size: entries per batch.
        link: ``"identity"``, ``"exp"`` or ``"sigmoid"`` applied to the values.

    Returns:
        ``(B,)`` values in the model's dtype.

    Raises:
        TypeError: not a model, or non-integer indices.
        ValueError: indices of the wrong shape, or an unknown link.
        IndexError: an index out of range.

    Not differentiable (use ``model.entries`` or ``model(indices)`` for that).

    Example:
        >>> import torch
        >>> from factorch.completion import predict
        >>> from factorch.tensors import CPTensor
        >>> cp = CPTensor.from_factors([torch.ones(3, 1), torch.ones(2, 1)])
        >>> predict(cp, torch.tensor([[0, 1], [2, 0]]))
        tensor([1., 1.])
    """
    fn = "predict"
    shape = _model_shape(model, fn)
    indices = _check_indices(indices, len(shape), fn)
    check_positive_int(batch_size, fn, "batch_size")
    if link not in ("identity", "exp", "sigmoid"):
        raise ValueError(f"{fn}: link must be 'identity', 'exp' or 'sigmoid'; got {link!r}.")
    sizes = torch.tensor(shape, device=indices.device)
    bad = (indices < 0) | (indices >= sizes)
    if indices.numel() and bool(bad.any()):
        b, n = (int(v) for v in bad.nonzero()[0])
        raise IndexError(
            f"{fn}: indices[{b}, {n}] = {int(indices[b, n])} is out of range for mode {n} of "
            f"size {shape[n]}."
        )
    with torch.no_grad(), autocast_disabled():
        if isinstance(model, nn.Module):
            was_training = model.training
            model.eval()
            try:
                device = next(model.parameters()).device
                parts = [
                    model(indices[s : s + batch_size].to(device=device, dtype=torch.long))
                    for s in range(0, indices.shape[0], batch_size)
                ]
            finally:
                model.train(was_training)
        else:
            entries = getattr(model, "entries", None)
            if not callable(entries):
                raise TypeError(f"{fn}: model must have an entries() method.")
            idx = indices.to(model.device)
            parts = [entries(idx[s : s + batch_size]) for s in range(0, idx.shape[0], batch_size)]
        if not parts:
            dtype = next(model.parameters()).dtype if isinstance(model, nn.Module) else model.dtype
            return torch.zeros(0, dtype=dtype)
        return apply_link(torch.cat(parts), link)


def _floating(t: object, fn: str, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) and not isinstance(t, (str, bytes)) and t is not None:
        t = as_tensor(t, fn, name)
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        got = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
        raise TypeError(f"{fn}: {name} must be a floating torch.Tensor; got {got}.")
    return t


def _pair(prediction: object, target: object, fn: str) -> tuple[torch.Tensor, torch.Tensor]:
    pred = _floating(prediction, fn, "prediction")
    true = _floating(target, fn, "target")
    if pred.shape != true.shape:
        raise ValueError(
            f"{fn}: prediction and target must have one shape; got "
            f"{tuple(pred.shape)} and {tuple(true.shape)}."
        )
    if pred.numel() == 0:
        raise ValueError(f"{fn}: needs at least one entry; got empty tensors.")
    return pred.detach(), true.detach().to(pred.device)


def root_mean_square(values: torch.Tensor) -> float:
    """``sqrt(mean(v^2))`` in float64, divided by the largest magnitude first so that squares
    neither under- nor overflow (residuals of ``1e200`` or ``1e-200``)."""
    v = values.detach().double()
    peak = float(v.abs().max()) if v.numel() else 0.0
    if peak == 0.0 or not math.isfinite(peak):
        return peak
    return peak * math.sqrt(float(torch.mean((v / peak) ** 2)))


def rmse(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Root-mean-square error ``sqrt(mean((prediction - target)^2))``.

    Args:
        prediction: floating tensor or numpy array (detached; any float dtype and device).
        target: floating tensor or numpy array of the same shape (moved to ``prediction``'s
            device).

    Returns:
        A Python float, computed in float64 (half-precision inputs included), divided by the
        largest residual first so that neither ``1e-200`` nor ``1e200`` residuals under- or
        overflow. NaN or infinite entries give a NaN or infinite result: the metric of
        non-finite values.

    Raises:
        TypeError: a non-floating or non-array argument.
        ValueError: shapes that differ, or no entries.

    Not differentiable (use ``torch`` operations on the tensors for a training loss).

    Example:
        >>> import torch
        >>> from factorch.completion import rmse
        >>> rmse(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0]))
        1.4142135623730951
    """
    p, t = _pair(prediction, target, "rmse")
    return root_mean_square(p.double() - t.double())


def mae(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Mean absolute error ``mean(|prediction - target|)``.

    Args:
        prediction: floating tensor or numpy array (detached; any float dtype and device).
        target: floating tensor or numpy array of the same shape (moved to ``prediction``'s
            device).

    Returns:
        A Python float, computed in float64 (half-precision inputs included). NaN or
        infinite entries give a NaN or infinite result: the metric of non-finite values.

    Raises:
        TypeError: a non-floating or non-array argument.
        ValueError: shapes that differ, or no entries.

    Not differentiable (use ``torch`` operations on the tensors for a training loss).

    Example:
        >>> import torch
        >>> from factorch.completion import mae
        >>> mae(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0]))
        1.0
    """
    p, t = _pair(prediction, target, "mae")
    return float(torch.mean(torch.abs(p.double() - t.double())))


def relative_error(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """``||prediction - target|| / ||target||`` (``inf`` when the target is all zeros and the
    prediction is not; 0 when both are).

    Args:
        prediction: floating tensor or numpy array (detached; any float dtype and device).
        target: floating tensor or numpy array of the same shape (moved to ``prediction``'s
            device).

    Returns:
        A Python float, computed in float64 (half-precision inputs included), with norms free
        of under- and overflow. NaN or infinite entries give a NaN or infinite result: the
        metric of non-finite values.

    Raises:
        TypeError: a non-floating or non-array argument.
        ValueError: shapes that differ, or no entries.

    Not differentiable (use ``torch`` operations on the tensors for a training loss).

    Example:
        >>> import torch
        >>> from factorch.completion import relative_error
        >>> relative_error(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0]))
        1.414213562373095
    """
    p, t = _pair(prediction, target, "relative_error")
    num = stable_norm(p.double() - t.double())
    den = stable_norm(t.double())
    return num / den if den > 0 else (0.0 if num == 0 else math.inf)


def evaluate(
    model: FactorizedTensor | nn.Module, data: SparseTensor, *, link: Link = "identity"
) -> dict[str, float]:
    """``{"rmse", "mae", "relative_error"}`` of ``model`` on the entries listed in ``data``.

    Args:
        model: a factorized tensor or a completion ``nn.Module`` (see :func:`predict`).
        data: the entries to score, a :class:`~factorch.tensors.SparseTensor` or a torch sparse
            COO tensor (its listed entries).
        link: applied to the model values before comparing (see :func:`predict`).

    Returns:
        The three metrics as Python floats (see :func:`rmse`, :func:`mae`,
        :func:`relative_error`).

    Raises:
        TypeError: ``data`` not sparse, or a model :func:`predict` refuses.
        ValueError: ``data`` with no entries, or an unknown ``link``.
        IndexError: a model whose shape does not cover ``data``'s indices.

    Not differentiable.

    Example:
        >>> import torch
        >>> from factorch.completion import evaluate
        >>> from factorch.tensors import CPTensor, SparseTensor
        >>> model = CPTensor.from_factors([torch.ones(2, 1), torch.ones(2, 1)])
        >>> evaluate(model, SparseTensor.from_dense(torch.eye(2)))["rmse"]
        0.0
    """
    if isinstance(data, torch.Tensor) and data.layout == torch.sparse_coo:
        data = SparseTensor.from_torch(data)
    if not isinstance(data, SparseTensor):
        raise TypeError(
            f"evaluate: data must be a SparseTensor or a torch sparse COO tensor; got "
            f"{type(data).__name__} (SparseTensor.from_dense(x, mask) lists a dense tensor's "
            f"observed entries)."
        )
    pred = predict(model, data.indices.mT.long(), link=link)
    return {
        "rmse": rmse(pred, data.values),
        "mae": mae(pred, data.values),
        "relative_error": relative_error(pred, data.values),
    }
