"""``TLoraConfig``: transformed low-rank adaptation (Tao et al., ICCV 2025; paper 41)."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Literal

from .._config import AdapterConfig, check_choice, check_number, check_rank

__all__ = ["TLoraConfig", "TLoraResidual"]

TLoraResidual = Literal["tr", "lora", "none"]
_RESIDUALS = ("tr", "lora", "none")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TLoraConfig(AdapterConfig):
    """TLoRA: ``W' = W_0 T + s Delta`` (Tao, Takida, Murata, Zhao, Mitsufuji, ICCV 2025,
    arXiv 2501.08727).

    ``T`` (``fan_in x fan_in``) is a dense, generally full-rank transform stored as a
    tensor-ring matrix (TRM): with ``fan_in = I_1 ... I_D`` and cores
    ``A_d (R, I_d I_d, R)``, ``T[(i), (j)] = tr(A_1[i_1 j_1] ... A_D[i_D j_D])``, initialised
    to the identity exactly (every ``A_d[:, (i, j), :] = delta_ij / R``, the paper's
    Proposition 1). ``Delta`` (``out x fan_in``) is a tensor ring over the modes
    ``(o_1..o_D, i_1..i_D)`` with rank ``rank`` whose first core is zero (so ``W' = W_0`` at
    init), the other cores Gaussian (the official code's scales: ``sqrt(O_d) / R^2`` for the
    out-cores, ``1 / sqrt(I_d)`` for the in-cores); ``s = alpha / sqrt(rank)`` (rsLoRA
    scaling, the official default). Both are factorch tensor-ring formats
    (:class:`~factorch.nn.TRWeight`). Storage ``O(D I^(2/D) R^2)`` for ``T`` and
    ``O(D I^(1/D) R^2)`` for ``Delta``.

    Attributes:
        target_modules, exclude_modules: see :class:`~factorch.adapters.AdapterConfig`.
        rank: ring rank of the residual (its LoRA rank with ``residual="lora"``).
        transform_rank: ring rank ``R`` of the transform (``R = 1``: a Kronecker product of
            ``D`` small matrices).
        n_factors: ``D``, how many factors ``fan_in`` and ``out`` are split into (balanced,
            :func:`~factorch.nn.balanced_factorization`).
        alpha: residual scale numerator.
        residual: ``"tr"`` (the paper's), ``"lora"`` (``B A`` with ``B = 0``, the official
            code's option) or ``"none"`` (transform only).

    When it helps: when the wanted weight is (close to) ``W_0`` times a transform, which a
    low-rank update cannot express; for a genuinely low-rank update LoRA of equal size wins
    (see the tests).

    Raises:
        TypeError: bad ``target_modules`` / ``exclude_modules`` (see
            :class:`~factorch.adapters.AdapterConfig`), or a non-int ``rank``,
            ``transform_rank`` or ``n_factors``.
        ValueError: a non-positive ``rank``, ``transform_rank`` or ``n_factors``, a non-finite
            ``alpha``, an unknown ``residual``, or bad module patterns.

    Example:
        >>> TLoraConfig(target_modules=["query"], rank=2, transform_rank=2).scaling
        0.7071067811865475
    """

    method: ClassVar[str] = "tlora"

    rank: int = 2
    transform_rank: int = 2
    n_factors: int = 3
    alpha: float = 1.0
    residual: TLoraResidual = "tr"

    def validate(self) -> None:
        fn = type(self).__name__
        self._set("rank", check_rank(self.rank, fn))
        self._set("transform_rank", check_rank(self.transform_rank, fn, "transform_rank"))
        self._set("n_factors", check_rank(self.n_factors, fn, "n_factors"))
        self._set("alpha", check_number(self.alpha, fn, "alpha"))
        check_choice(self.residual, _RESIDUALS, fn, "residual")

    @property
    def scaling(self) -> float:
        """``alpha / sqrt(rank)``."""
        return self.alpha / math.sqrt(self.rank)
