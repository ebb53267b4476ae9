"""``AtlasConfig``: task vectors composed with learned anisotropic scaling (Zhang et al.,
NeurIPS 2024; paper 34)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from .._config import AdapterConfig, check_choice

__all__ = ["AtlasConfig", "AtlasGranularity"]

AtlasGranularity = Literal["block", "task"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class AtlasConfig(AdapterConfig):
    """aTLAS (Zhang, Chen, Fernando, Hartley, NeurIPS 2024, "Knowledge Composition using Task
    Vectors with Learned Anisotropic Scaling"): ``theta = theta_0 + sum_t sum_b lambda_(t, b)
    tau_(t, b)``, ``tau_t = theta_t - theta_0`` the task vector of a fine-tune, ``b`` a
    parameter block (each targeted module's weight and bias are one block each); only the
    coefficients ``lambda`` train, from zero (``theta = theta_0`` at init). The task vectors are
    frozen buffers, given to ``inject(..., context=[tau_1, ..., tau_T])`` as mappings from
    parameter names (``"layer.weight"``) to tensors (:func:`~factorch.adapters.task_vector`).

    Attributes:
        target_modules, exclude_modules: see :class:`~factorch.adapters.AdapterConfig`.
        granularity: ``"block"`` (the paper's: one coefficient per block per task) or
            ``"task"`` (one per task shared by every block: learned isotropic task
            arithmetic, the baseline aTLAS improves on).

    Raises:
        TypeError: bad ``target_modules`` / ``exclude_modules`` (see
            :class:`~factorch.adapters.AdapterConfig`).
        ValueError: ``granularity`` not ``"block"`` or ``"task"``, or bad module patterns.

    Example:
        >>> AtlasConfig(target_modules="all-linear").granularity
        'block'
    """

    method: ClassVar[str] = "atlas"

    granularity: AtlasGranularity = "block"

    def validate(self) -> None:
        check_choice(self.granularity, ("block", "task"), type(self).__name__, "granularity")
