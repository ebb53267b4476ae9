"""Rank regularisers for factorized layers: tensor dropout and the tensor lasso.

* :func:`tensor_dropout` (Kolbeinsson et al., IEEE JSTSP 2021): in training mode each forward
  keeps every rank component (CP and low-rank components, Tucker core slices per mode, TT/TR bond
  indices) with probability ``1 - p``, rescaling by ``1 / (1 - p)`` so the expected weight is
  unchanged. At least one component per mode is always kept, so small ranks never fail (unlike
  TensorLy-Torch 0.5's CP dropout, which raises for ``rank <= min_dim``).
* :func:`tensor_lasso`: an L1 penalty on the magnitudes of CP (and low-rank) components,
  ``sum_r |w_r| prod_n ||A_n[:, r]||`` (``||u_r|| ||v_r||`` for low rank), i.e. the L1 norm of
  the CP weights after normalising the factor columns, so the penalty cannot be evaded by
  shrinking ``w`` and growing the factors. It drives unneeded components to zero;
  :func:`prune_components_` then removes them, shrinking the rank.
"""

from __future__ import annotations

import torch
from torch import nn

from ._layer import FactorizedLayer, check_probability

__all__ = ["component_magnitudes", "prune_components_", "tensor_dropout", "tensor_lasso"]


def tensor_dropout(module: nn.Module, p: float) -> nn.Module:
    """Set rank dropout probability ``p`` on every factorized layer in ``module`` (in place;
    returns ``module``). ``p = 0`` turns it off. Uses the global RNG, like ``nn.Dropout``."""
    p = check_probability(p, "tensor_dropout", "p")
    layers = [m for m in module.modules() if isinstance(m, FactorizedLayer)]
    if not layers:
        raise ValueError("tensor_dropout: the module contains no factorized layer.")
    for m in layers:
        m.rank_dropout = p
    return module


def component_magnitudes(layer: FactorizedLayer) -> torch.Tensor:
    """Magnitude of each rank component of a CP or low-rank layer (differentiable)."""
    if layer.format == "cp":
        weights, *mats = layer.factors
        mag = weights.abs()
        for a in mats:
            mag = mag * torch.linalg.vector_norm(a, dim=0)
        return mag
    if layer.format == "lowrank":
        u, v = layer.factors
        return torch.linalg.vector_norm(u, dim=0) * torch.linalg.vector_norm(v, dim=0)
    raise ValueError(
        f"component_magnitudes: only 'cp' and 'lowrank' layers have rank-one components; got "
        f"format={layer.format!r}."
    )


def _lasso_layers(module: nn.Module) -> list[tuple[str, FactorizedLayer]]:
    return [
        (n, m)
        for n, m in module.named_modules()
        if isinstance(m, FactorizedLayer) and m.format in ("cp", "lowrank")
    ]


def tensor_lasso(module: nn.Module) -> torch.Tensor:
    """``sum`` of :func:`component_magnitudes` over the CP and low-rank layers of ``module``:
    add ``penalty * tensor_lasso(model)`` to the loss. Differentiable."""
    layers = _lasso_layers(module)
    if not layers:
        raise ValueError("tensor_lasso: the module contains no CP or low-rank factorized layer.")
    return torch.stack([component_magnitudes(m).sum() for _, m in layers]).sum()


def prune_components_(
    module: nn.Module, threshold: float, *, relative: bool = True
) -> dict[str, int]:
    """Remove CP / low-rank components whose magnitude is below ``threshold`` (times the layer's
    largest when ``relative``), in place; at least one component stays. Returns the new rank of
    every CP / low-rank layer by name. Factor parameters are replaced: rebuild the optimizer."""
    fn = "prune_components_"
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold < 0:
        raise ValueError(f"{fn}: threshold must be a non-negative number; got {threshold!r}.")
    layers = _lasso_layers(module)
    if not layers:
        raise ValueError(f"{fn}: the module contains no CP or low-rank factorized layer.")
    out = {}
    for name, layer in layers:
        with torch.no_grad():
            mag = component_magnitudes(layer)
            cut = threshold * float(mag.max()) if relative else float(threshold)
            keep = torch.nonzero(mag >= cut).flatten()
            if keep.numel() == 0:
                keep = mag.argmax().reshape(1)
            if keep.numel() < mag.numel():
                if layer.format == "cp":
                    weights, *mats = layer.factors
                    new = (weights[keep], *(a[:, keep] for a in mats))
                else:
                    new = tuple(f[:, keep] for f in layer.factors)
                layer.reparametrize_(int(keep.numel()), new)
        out[name] = int(layer.rank)
    return out
