"""``CordaConfig``: context-oriented decomposition adaptation (Yang et al., NeurIPS 2024)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from .._config import check_choice, check_number
from ..lora import LowRankConfig

__all__ = ["CordaConfig", "CordaMode"]

CordaMode = Literal["kpm", "ipm"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CordaConfig(LowRankConfig):
    """CorDA (Yang et al., NeurIPS 2024, arXiv 2406.05223; paper 30): a LoRA whose factors come
    from the SVD of ``W C``, ``C`` the covariance of the layer's input on a few context batches.

    With ``C' = C + lambda mean(diag C) I`` (``lambda`` starts at ``damping`` and doubles until
    ``||C' C'^-1 - I||_F < 0.05``, as PEFT's implementation), ``W C' = U S V^T`` and
    ``V_hat^T = V^T C'^-1`` give ``W = U S V_hat^T`` exactly; ``r`` of these components
    initialise ``B = U_r sqrt(S_r / s)``, ``A = sqrt(S_r / s) V_hat_r^T``.

    * ``mode="kpm"`` (knowledge-preserved): the ``r`` *smallest* components, with ``C`` from
      data whose behaviour must be kept (e.g. the first task); training them disturbs what
      that data uses least.
    * ``mode="ipm"`` (instruction-previewed): the ``r`` *largest*, with ``C`` from the new
      task's data: fast adaptation, more forgetting.

    PEFT overwrites ``W`` with the frozen residual ``W - s B A``; here ``W`` stays and the
    frozen initial factors are subtracted (``W' = W + s (B A - B_0 A_0)``): the same function
    and gradients, the base model exactly at init. Covariances come from
    :func:`~factorch.adapters.collect_covariances` and go to ``inject(..., context=...)``.
    ``nn.Linear`` layers only.

    Attributes:
        target_modules, exclude_modules: see :class:`~factorch.adapters.AdapterConfig`.
        rank, alpha, dropout, use_rslora: as :class:`~factorch.adapters.LoraConfig`.
        mode: ``"kpm"`` or ``"ipm"``.
        damping: initial ``lambda`` (PEFT: 0.01).

    Raises:
        TypeError: bad ``target_modules`` / ``exclude_modules`` (see
            :class:`~factorch.adapters.AdapterConfig`), a non-int ``rank`` or a non-bool
            ``use_rslora``.
        ValueError: a non-positive ``rank``, a non-finite ``alpha``, ``dropout`` outside
            ``[0, 1)``, ``mode`` not ``"kpm"`` or ``"ipm"``, a non-positive ``damping``, or
            bad module patterns.

    Example:
        >>> CordaConfig(target_modules=["0"], rank=4, mode="kpm").mode
        'kpm'
    """

    method: ClassVar[str] = "corda"

    mode: CordaMode = "kpm"
    damping: float = 0.01

    def validate(self) -> None:
        super().validate()
        fn = type(self).__name__
        check_choice(self.mode, ("kpm", "ipm"), fn, "mode")
        self._set("damping", check_number(self.damping, fn, "damping", low=0.0, low_open=True))
