"""Rank regularisers for factorized layers: tensor dropout and the tensor lasso.

* :func:`tensor_dropout` (Kolbeinsson et al., IEEE JSTSP 2021): in training mode each forward
  keeps every rank component (CP and low-rank components, Tucker core slices per mode, TT/TR bond
  indices) with probability ``1 - p``, rescaling by ``1 / (1 - p)`` so the expected weight is
  unchanged. At least one component per mode is always kept, so small ranks never fail (unlike
  TensorLy-Torch 0.5's CP dropout, which raises for ``rank <= min_dim``).
* :func:`tensor_lasso`: the L1 norm of the CP weights plus a ridge on the factors,
  ``sum_r |w_r| + (gamma / 2) sum_n ||A_n||^2``. L1 on ``w`` alone can be evaded by shrinking
  ``w`` and growing the factors; with the ridge, the best split of a component of magnitude
  ``m_r = |w_r| prod_n ||A_n[:, r]||`` costs ``c m_r^(2 / (N + 2))`` (AM--GM), a concave penalty
  that, unlike ``sum_r m_r`` (indifferent to splitting one component into parallel pieces),
  prefers few large components and drives the others to zero. For a low-rank layer the penalty
  is ``(||U||^2 + ||V||^2) / 2``, the variational form of the nuclear norm. Then
  :func:`prune_components_` removes components whose magnitude fell below a threshold.
"""

from __future__ import annotations

import torch
from torch import nn

from ._layer import FactorizedLayer, check_probability

__all__ = ["component_magnitudes", "prune_components_", "tensor_dropout", "tensor_lasso"]


def tensor_dropout(module: nn.Module, p: float) -> nn.Module:
    """Set rank dropout probability ``p`` on every factorized layer in ``module``, in place.
    ``p = 0`` turns it off. Uses the global RNG, like ``nn.Dropout``.

    Args:
        module: a module with at least one factorized layer.
        p: the probability of dropping a rank component in training mode, in ``[0, 1)``.

    Returns:
        ``module``.

    Raises:
        TypeError: ``module`` is not an ``nn.Module``, or ``p`` is not a number.
        ValueError: ``p`` outside ``[0, 1)``, or no factorized layer.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> model = torch.nn.Sequential(FactorizedLinear(6, 4, rank=2, generator=gen))
        >>> tensor_dropout(model, 0.1)[0].rank_dropout
        0.1
    """
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"tensor_dropout: module must be a torch.nn.Module; got {type(module).__name__}."
        )
    p = check_probability(p, "tensor_dropout", "p")
    layers = [m for m in module.modules() if isinstance(m, FactorizedLayer)]
    if not layers:
        raise ValueError("tensor_dropout: the module contains no factorized layer.")
    for m in layers:
        m.rank_dropout = p
    return module


def component_magnitudes(layer: FactorizedLayer) -> torch.Tensor:
    """Magnitude of each rank component of a layer whose format has rank-one components (CP:
    ``|w_r| prod_n ||A_n[:, r]||``; low rank: ``||U[:, r]|| ||V[:, r]||``). Differentiable.

    Args:
        layer: a factorized layer of a format with rank-one components (CP, low rank).

    Returns:
        ``(rank,)`` non-negative magnitudes, in the factors' dtype.

    Raises:
        ValueError: the layer's format has no rank-one components (Tucker, TT, TR).

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> layer = FactorizedLinear(6, 4, format="cp", rank=3, generator=gen)
        >>> component_magnitudes(layer).shape
        torch.Size([3])
    """
    return layer.parametrization.component_magnitudes(tuple(layer.factors))


def _lasso_layers(module: nn.Module) -> list[tuple[str, FactorizedLayer]]:
    return [
        (n, m)
        for n, m in module.named_modules()
        if isinstance(m, FactorizedLayer) and m.parametrization.has_components
    ]


def tensor_lasso(module: nn.Module, *, factor_decay: float = 1.0) -> torch.Tensor:
    """Rank-sparsifying penalty summed over the CP and low-rank layers of ``module``.

    CP: ``sum_r |w_r| + (factor_decay / 2) sum_n ||A_n||^2``; low rank:
    ``(||U||^2 + ||V||^2) / 2`` (see the module docstring). Add ``lam * tensor_lasso(model)``
    to the loss, then call :func:`prune_components_`. Differentiable.

    Args:
        module: a module with at least one CP or low-rank factorized layer.
        factor_decay: weight of the factors' squared norms in the CP term (positive).

    Returns:
        A scalar tensor, differentiable.

    Raises:
        ValueError: ``factor_decay`` not a positive number, or no CP or low-rank layer.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> layer = FactorizedLinear(6, 4, format="cp", rank=3, generator=gen)
        >>> penalty = tensor_lasso(torch.nn.Sequential(layer))
        >>> penalty.requires_grad, bool(penalty > 0)
        (True, True)
    """
    if (
        isinstance(factor_decay, bool)
        or not isinstance(factor_decay, (int, float))
        or (factor_decay <= 0)
    ):
        raise ValueError(
            f"tensor_lasso: factor_decay must be a positive number; got {factor_decay!r}."
        )
    layers = _lasso_layers(module)
    if not layers:
        raise ValueError("tensor_lasso: the module contains no CP or low-rank factorized layer.")
    terms = [m.parametrization.component_penalty(tuple(m.factors), factor_decay) for _, m in layers]
    return torch.stack(terms).sum()


def prune_components_(
    module: nn.Module, threshold: float, *, relative: bool = True
) -> dict[str, int]:
    """Remove CP / low-rank components whose magnitude is below ``threshold`` (times the layer's
    largest when ``relative``), in place; at least one component stays. Factor parameters are
    replaced: rebuild the optimizer.

    Args:
        module: a module with at least one CP or low-rank factorized layer.
        threshold: the cut (non-negative).
        relative: whether ``threshold`` is a fraction of each layer's largest magnitude.

    Returns:
        The new rank of every CP / low-rank layer, by module name.

    Raises:
        ValueError: a negative or non-numeric ``threshold``, or no CP or low-rank layer.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> layer = FactorizedLinear(6, 4, format="cp", rank=3, generator=gen)
        >>> prune_components_(torch.nn.Sequential(layer), 2.0)  # only the largest stays
        {'0': 1}
        >>> layer(torch.ones(2, 6)).shape
        torch.Size([2, 4])
    """
    fn = "prune_components_"
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold < 0:
        raise ValueError(f"{fn}: threshold must be a non-negative number; got {threshold!r}.")
    layers = _lasso_layers(module)
    if not layers:
        raise ValueError(f"{fn}: the module contains no CP or low-rank factorized layer.")
    out: dict[str, int] = {}
    for name, layer in layers:
        with torch.no_grad():
            mag = component_magnitudes(layer)
            cut = threshold * float(mag.max()) if relative else float(threshold)
            keep = torch.nonzero(mag >= cut).flatten()
            if keep.numel() == 0:
                keep = mag.argmax().reshape(1)
            if keep.numel() < mag.numel():
                rank, new = layer.parametrization.select_components(tuple(layer.factors), keep)
                layer.reparametrize_(rank, new)
        out[name] = int(min(keep.numel(), mag.numel()))  # components left
    return out
