"""LFS-GAN's cluster-wise mode-seeking loss, as a reusable loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["assign_clusters", "mode_seeking_loss"]


def _pair_l1(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between every two rows of ``x`` flattened: ``(n, n)``."""
    flat = x.reshape(x.shape[0], -1)
    return (flat.unsqueeze(0) - flat.unsqueeze(1)).abs().mean(-1)


def assign_clusters(fakes: torch.Tensor, reals: torch.Tensor) -> torch.Tensor:
    """Index of the nearest real sample (Euclidean, on flattened tensors or features) of each
    fake: LFS-GAN groups generated images by their nearest training image (with LPIPS; pass
    LPIPS or other features to use that distance). Not differentiable.

    Args:
        fakes: generated samples (or their features), ``(n, ...)``.
        reals: training samples (or their features), ``(m, ...)``, the same sample shape.

    Returns:
        ``(n,)`` int64 indices into ``reals``.

    Raises:
        ValueError: an empty or non-tensor batch, or sample shapes that differ.

    Example:
        >>> assign_clusters(torch.tensor([[0.0], [0.9], [0.2]]), torch.tensor([[0.0], [1.0]]))
        tensor([0, 1, 0])
    """
    fn = "assign_clusters"
    for name, t in (("fakes", fakes), ("reals", reals)):
        if not isinstance(t, torch.Tensor) or t.ndim < 1 or t.shape[0] == 0:
            raise ValueError(f"{fn}: {name} must be a non-empty batch tensor; got {t!r:.60}.")
    a = fakes.detach().reshape(fakes.shape[0], -1)
    b = reals.detach().reshape(reals.shape[0], -1).to(a.dtype)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{fn}: fakes and reals must have the same sample shape.")
    return torch.cdist(a, b).argmin(1)


def mode_seeking_loss(
    latents: torch.Tensor,
    styles: torch.Tensor,
    outputs: torch.Tensor,
    *,
    features: Sequence[torch.Tensor] = (),
    clusters: torch.Tensor | None = None,
    weight: float = 1.0,
    eps: float = 1e-5,
) -> torch.Tensor:
    """LFS-GAN's cluster-wise mode-seeking loss (Seo et al., ICCV 2023).

    Within each cluster of two or more samples, every pair ``(a, b)`` contributes::

        d(w_a, w_b) / d(z_a, z_b) + mean_l d(f_l[a], f_l[b]) / d(w_a, w_b)
                                  + d(x_a, x_b) / d(w_a, w_b)

    with ``d`` the mean absolute difference, ``z`` the latents, ``w`` the styles (the mapped
    latents; pass ``styles=latents`` for a generator without a mapping network), ``f_l`` the
    intermediate ``features`` and ``x`` the outputs. The sum over pairs is divided by the
    number of clusters with two or more members, ``S``, and the loss is ``weight / (S + eps)``:
    small when distinct latents give distinct outputs, large under mode collapse. Pairs are
    indexed by cluster *members* (the official code indexes them by position, a quirk not
    reproduced). Differentiable; 0 when no cluster has two members.

    Args:
        latents: ``z`` (n, ...).
        styles: ``w`` (n, ...).
        outputs: generated samples (n, ...).
        features: intermediate activations, each (n, ...).
        clusters: int cluster label of each sample (:func:`assign_clusters`); None: one
            cluster.
        weight: ``lambda`` (LFS-GAN: 1).
        eps: added to the final denominator; also the smallest distance a ratio divides by
            (so identical latents or styles give large but finite ratios).

    Returns:
        A scalar tensor in the outputs' dtype (0 when no cluster has two members).

    Raises:
        TypeError: a non-tensor or non-floating ``latents``, ``styles``, ``outputs`` or feature.
        ValueError: batches of different sizes, or ``clusters`` not ``n`` labels.

    Example:
        >>> z = torch.randn(4, 8)
        >>> collapsed = mode_seeking_loss(z, z, torch.zeros(4, 3, 8, 8))
        >>> diverse = mode_seeking_loss(z, z, torch.randn(4, 3, 8, 8))
        >>> bool(collapsed > diverse)
        True
    """
    fn = "mode_seeking_loss"
    tensors = {"latents": latents, "styles": styles, "outputs": outputs}
    tensors.update({f"features[{k}]": f for k, f in enumerate(features)})
    n = latents.shape[0] if isinstance(latents, torch.Tensor) and latents.ndim else -1
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{fn}: {name} must be a floating-point tensor; got {t!r:.60}.")
        if t.ndim == 0 or t.shape[0] != n:
            raise ValueError(
                f"{fn}: {name} must be a batch of {n} samples; got shape {tuple(t.shape)}."
            )
    if clusters is None:
        clusters = torch.zeros(n, dtype=torch.long, device=latents.device)
    if not isinstance(clusters, torch.Tensor) or tuple(clusters.shape) != (n,):
        raise ValueError(f"{fn}: clusters must be a tensor of {n} labels.")
    d_z = _pair_l1(latents).clamp_min(eps)
    d_w = _pair_l1(styles)
    ratio = d_w / d_z
    d_w = d_w.clamp_min(eps)
    if len(features):
        ratio = ratio + torch.stack([_pair_l1(f) for f in features]).mean(0) / d_w
    ratio = ratio + _pair_l1(outputs) / d_w
    same = clusters.unsqueeze(0) == clusters.unsqueeze(1)
    upper = torch.ones(n, n, dtype=torch.bool, device=latents.device).triu(1)
    pairs = same & upper
    sizes = torch.bincount(clusters - clusters.min()) if n else clusters
    groups = int((sizes >= 2).sum())
    if groups == 0:
        return (outputs.sum() * 0.0).to(outputs.dtype)
    total = torch.where(pairs, ratio, torch.zeros_like(ratio)).sum() / groups
    return weight / (total + eps)
