"""``collect_covariances``: the input covariance of each targeted layer over context batches."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast

import torch
from torch import nn

from ..._numerics import check_memory
from .._config import AdapterConfig
from .._layer import AdaptedLayer
from .._model import find_targets

__all__ = ["collect_covariances"]


@torch.no_grad()
def collect_covariances(
    model: nn.Module,
    config: AdapterConfig,
    batches: Iterable[Any],
    *,
    forward: Callable[[nn.Module, Any], object] | None = None,
) -> dict[str, torch.Tensor]:
    """Input covariance ``C = mean over calls of X^T X / max|X|^2`` of every layer ``config``
    targets, over ``batches`` (CorDA's context; PEFT's normalisation: each call's activations
    ``X`` (tokens x in) divided by their largest magnitude).

    The model runs in eval mode without gradients (its mode is restored). Accumulation is in
    float32 (float64 for float64 layers); one ``in x in`` matrix per layer.

    Args:
        model: the model to be adapted.
        config: the config that will be injected (its ``target_modules``).
        batches: an iterable of inputs; each is passed as ``model(batch)`` (a tuple as
            ``model(*batch)``) unless ``forward(model, batch)`` is given.
        forward: how to run one batch.

    Returns:
        ``{module name: covariance}``, for ``inject(model, config, context=...)``.

    Raises:
        ValueError: no module matches; no batch reached a targeted layer; non-finite
            activations.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 8))
        >>> cfg = CordaConfig(target_modules=["0"], rank=2)
        >>> covs = collect_covariances(model, cfg, [torch.randn(16, 8)])
        >>> covs["0"].shape
        torch.Size([8, 8])
    """
    fn = "collect_covariances"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{fn}: model must be an nn.Module; got {type(model).__name__}.")
    targets = find_targets(model, config, fn)
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = dict.fromkeys(targets, 0)
    handles = []
    for name, module in targets.items():
        base = module.base_layer if isinstance(module, AdaptedLayer) else module
        weight = cast(torch.Tensor, base.weight)
        n = weight.shape[-1] if isinstance(base, nn.Linear) else weight[0].numel()
        dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
        check_memory(n * n, dtype, weight.device, fn, f"the covariance of {name!r}")
        sums[name] = torch.zeros(n, n, dtype=dtype, device=weight.device)

        def hook(mod: nn.Module, inputs: tuple[Any, ...], _out: object, name: str = name) -> None:
            x = inputs[0].detach()
            x = x.reshape(-1, x.shape[-1]).to(sums[name].dtype)
            if not bool(torch.isfinite(x).all()):
                raise ValueError(f"{fn}: non-finite activations reach {name!r}.")
            peak = x.abs().max()
            if float(peak) > 0:
                x = x / peak
            sums[name] += x.T @ x
            counts[name] += 1

        handles.append(base.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            if forward is not None:
                forward(model, batch)
            elif isinstance(batch, tuple):
                model(*batch)
            else:
                model(batch)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    empty = [n for n, c in counts.items() if c == 0]
    if empty:
        raise ValueError(f"{fn}: no batch reached the layers {empty[:5]}; give context batches.")
    return {n: sums[n] / counts[n] for n in sums}
