"""``TuckerConfig``: the Tucker adapter (``dW`` a Tucker tensor, factorch's format)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from .._format_adapter import FormatAdapterConfig

__all__ = ["TuckerConfig"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TuckerConfig(FormatAdapterConfig):
    """Tucker adapter: ``dW`` is a Tucker tensor (:class:`~factorch.nn.TuckerWeight`, Tucker
    1966) over the tensorized weight ``(o_1..o_p, i_1..i_q)`` of a Linear layer, or over the
    kernel ``(out, in, k..)`` of a convolution (an int rank keeps the spatial modes full:
    Tucker-2); the core starts at zero (``dW = 0``), the factors orthonormal. Storage
    ``prod(R) + sum_n I_n R_n``. Fields as :class:`FormatAdapterConfig` (``rank``: an int,
    capped at each mode size, or one per mode).

    Attributes:
        target_modules, exclude_modules: see :class:`~factorch.adapters.AdapterConfig`.
        rank, alpha, n_factors, implementation: see :class:`FormatAdapterConfig`.

    Raises:
        TypeError: bad ``target_modules`` / ``exclude_modules`` (see
            :class:`~factorch.adapters.AdapterConfig`), or a ``rank`` (or rank entry) that is
            not an int.
        ValueError: a non-positive or empty ``rank``, a non-finite ``alpha``, a non-positive
            ``n_factors``, an unknown ``implementation``, or bad module patterns.

    Example:
        >>> TuckerConfig(target_modules=["query"], rank=4).rank
        4
    """

    method: ClassVar[str] = "tucker"
    format: ClassVar[str] = "tucker"
