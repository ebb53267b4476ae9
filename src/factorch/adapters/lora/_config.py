"""``LoraConfig``: low-rank adaptation (Hu et al. 2021), with rsLoRA scaling and PiSSA init."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Literal

from .._config import AdapterConfig, check_choice, check_number, check_rank

__all__ = ["LoraConfig", "LoraInit", "LowRankConfig"]

LoraInit = Literal["default", "gaussian", "pissa"]
_INITS = ("default", "gaussian", "pissa")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LowRankConfig(AdapterConfig):
    """The fields every ``W + s B A`` adapter has (LoRA, CorDA): ``rank``, ``alpha``,
    ``dropout``, ``use_rslora``; see :class:`LoraConfig`.

    Attributes:
        target_modules, exclude_modules: see :class:`~factorch.adapters.AdapterConfig`.
        rank, alpha, dropout, use_rslora: see :class:`LoraConfig`.

    Raises:
        TypeError: bad ``target_modules`` / ``exclude_modules`` (see
            :class:`~factorch.adapters.AdapterConfig`), a non-int ``rank`` or a non-bool
            ``use_rslora``.
        ValueError: a non-positive ``rank``, a non-finite ``alpha``, ``dropout`` outside
            ``[0, 1)``, or bad module patterns.

    Example:
        >>> config = LoraConfig(target_modules=["query"], rank=4, alpha=8)
        >>> isinstance(config, LowRankConfig), config.scaling  # alpha / rank
        (True, 2.0)
    """

    rank: int = 8
    alpha: float = 8.0
    dropout: float = 0.0
    use_rslora: bool = False

    def validate(self) -> None:
        fn = type(self).__name__
        self._set("rank", check_rank(self.rank, fn))
        self._set("alpha", check_number(self.alpha, fn, "alpha"))
        p = check_number(self.dropout, fn, "dropout", low=0.0)
        if p >= 1:
            raise ValueError(f"{fn}: dropout must be a probability in [0, 1); got {p!r}.")
        self._set("dropout", p)
        if not isinstance(self.use_rslora, bool):
            raise TypeError(f"{fn}: use_rslora must be a bool; got {self.use_rslora!r}.")

    @property
    def scaling(self) -> float:
        """``alpha / r`` or, with ``use_rslora``, ``alpha / sqrt(r)``."""
        return self.alpha / (math.sqrt(self.rank) if self.use_rslora else self.rank)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoraConfig(LowRankConfig):
    """LoRA: ``W' = W + s B A`` with ``A (r, fan_in)``, ``B (out, r)`` (Hu et al., ICLR 2022).

    Attributes:
        target_modules, exclude_modules: see :class:`~factorch.adapters.AdapterConfig`.
        rank: ``r`` (default 8, as PEFT).
        alpha: ``s = alpha / r`` (default 8, as PEFT: ``s = 1`` at the default rank).
        dropout: dropout on the adapter's input in training mode (PEFT's ``lora_dropout``).
        use_rslora: ``s = alpha / sqrt(r)`` (rank-stabilised LoRA, Kalajdzievski 2023), so
            that the update's scale does not shrink as the rank grows.
        init: ``"default"``: ``A`` Kaiming-uniform (``U(+-1/sqrt(fan_in))``, as ``nn.Linear``
            and PEFT), ``B = 0``; ``"gaussian"``: ``A ~ N(0, 1/r^2)``, ``B = 0``;
            ``"pissa"``: ``B A`` from the top-``r`` singular triplets of ``W`` (Meng et al.,
            NeurIPS 2024), ``A = sqrt(S_r / s) V_r^T``, ``B = U_r sqrt(S_r / s)``. PEFT then
            overwrites ``W`` with the residual ``W - s B A``; here ``W`` stays untouched and the
            frozen initial factors ``B_0 A_0`` are subtracted instead
            (``W' = W + s (B A - B_0 A_0)``): the same function and gradients, exactly the base
            model at init, and adapters of other names keep their base.

    Conv layers: ``A`` is a kernel of the base convolution's size to ``r`` channels, ``B`` a
    1x1 convolution (as PEFT).

    Raises:
        TypeError: bad ``target_modules`` / ``exclude_modules`` (see
            :class:`~factorch.adapters.AdapterConfig`), a non-int ``rank`` or a non-bool
            ``use_rslora``.
        ValueError: a non-positive ``rank``, a non-finite ``alpha``, ``dropout`` outside
            ``[0, 1)``, an unknown ``init``, or bad module patterns.

    Example:
        >>> LoraConfig(target_modules=["query", "value"], rank=4, use_rslora=True).scaling
        4.0
    """

    method: ClassVar[str] = "lora"

    init: LoraInit = "default"

    def validate(self) -> None:
        super().validate()
        check_choice(self.init, _INITS, type(self).__name__, "init")
