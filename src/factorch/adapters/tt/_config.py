"""``TTConfig``: the tensor-train adapter (``dW`` a TT-matrix, factorch's format)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from .._format_adapter import FormatAdapterConfig

__all__ = ["TTConfig"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TTConfig(FormatAdapterConfig):
    """Tensor-train adapter: ``dW`` is a TT-matrix (:class:`~factorch.nn.TTWeight`, Oseledets
    2011; Novikov et al. 2015) with cores ``(r_k, o_k i_k, r_(k+1))`` for a Linear layer
    (``n_factors`` cores, default 3), or the chain ``(in, k_1..k_d, out)`` of a convolution;
    the first core starts at zero (``dW = 0``). On a Linear layer its forward either contracts
    the input core by core, never forming ``dW``, or rebuilds ``dW`` and runs one GEMM with
    ``W + alpha dW``, whichever a training step costs less (``implementation``; at rank 9 on a
    384 x 384 weight the middle core alone costs more per row than ``W``, so from 12 rows on
    the GEMM wins). The LoRETTA-style adapter PEFT does not have (its request was closed
    as stale). Fields as :class:`FormatAdapterConfig` (``rank``: the bond rank, an int, or
    ``n + 1`` ints starting and ending with 1).

    Attributes:
        target_modules, exclude_modules: see :class:`~factorch.adapters.AdapterConfig`.
        rank, alpha, n_factors, implementation: see :class:`FormatAdapterConfig` (``n_factors``
            defaults to 3 here).

    Raises:
        TypeError: bad ``target_modules`` / ``exclude_modules`` (see
            :class:`~factorch.adapters.AdapterConfig`), or a ``rank`` (or rank entry) that is
            not an int.
        ValueError: a non-positive or empty ``rank``, a non-finite ``alpha``, a non-positive
            ``n_factors``, an unknown ``implementation``, or bad module patterns.

    Example:
        >>> TTConfig(target_modules=["query"], rank=8).n_factors
        3
    """

    method: ClassVar[str] = "tt"
    format: ClassVar[str] = "tt"

    n_factors: int = 3
