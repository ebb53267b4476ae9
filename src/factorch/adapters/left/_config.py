"""``LeftConfig``: the LeFT weight modulator of LFS-GAN (Seo, Kang, Park, ICCV 2023; paper 1)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from .._config import AdapterConfig, check_rank

__all__ = ["LeftConfig"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class LeftConfig(AdapterConfig):
    """LeFT, the Learnable Factorized Tensor modulator of LFS-GAN (Seo, Kang, Park, "Lifelong
    Few-Shot Image Generation", ICCV 2023, arXiv 2308.11917), as in the official code
    (``LeFTWeightModulatorConv`` / ``FC``).

    Convolution ``W (out, in, k..)``, ``S = prod(k)``, rank ``r``: factors ``a (out, r)``,
    core ``G (r, r, S)``, ``b (in, r)`` (all ``r^(-2/3)`` at init) and additive factors
    ``p1 (out, r)``, ``q1 (S, r)``, ``p2 (in, r)``, ``q2 (S, r)`` (zero at init)::

        M1[j, o, s] = relu(sum_l a[o, l] G[j, l, s] + (p1 q1^T)[o, s])
        M2[o, i, s] = sum_j b[i, j] M1[j, o, s]
        W'          = W * M2 + (p2 q2^T)[i, s]          (broadcast over o)

    Without the ReLU ``M2`` is a Tucker-2 tensor with core ``G``; the inner ReLU and the
    additive rank-``r`` terms are the "reconstruction" that makes a rank-constrained modulator
    expressive. At init ``M1 = r^(-1/3)``, ``M2 = 1``: ``W' = W`` exactly when ``r`` is a
    power of 8 and to rounding otherwise. Linear layers: ``W' = W * (a b^T) + p q^T``,
    ``a, b`` at ``r^(-1/2)``, ``p, q`` at zero. One modulator per task (one named adapter
    each; :func:`~factorch.adapters.set_adapter` switches task): earlier tasks' modulators
    are never touched, so there is no forgetting by construction, at ``O((out + in) r + r^2 S)``
    parameters per layer instead of a dense modulator's ``out in S``.

    Attributes:
        target_modules, exclude_modules: see :class:`~factorch.adapters.AdapterConfig`.
        rank: ``r`` (LFS-GAN's default 1).
        activation: the inner ReLU (``--left_use_act``).
        additive: the additive terms (``--left_use_add``).
        modulate_bias: also ``b' = b * m + c`` (``m = 1``, ``c = 0`` at init), as the
            official FC modulator.

    Raises:
        TypeError: bad ``target_modules`` / ``exclude_modules`` (see
            :class:`~factorch.adapters.AdapterConfig`), a non-int ``rank``, or a non-bool
            ``activation``, ``additive`` or ``modulate_bias``.
        ValueError: a non-positive ``rank``, or bad module patterns.

    Example:
        >>> LeftConfig(target_modules=["0"], rank=2).rank
        2
    """

    method: ClassVar[str] = "left"

    rank: int = 1
    activation: bool = True
    additive: bool = True
    modulate_bias: bool = False

    def validate(self) -> None:
        fn = type(self).__name__
        self._set("rank", check_rank(self.rank, fn))
        for name in ("activation", "additive", "modulate_bias"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{fn}: {name} must be a bool; got {getattr(self, name)!r}.")
