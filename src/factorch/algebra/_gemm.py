"""Entry points of the tensor-reading GEMM: pick a plan (fixed rule or opt-in autotuner), run it.

:func:`contract` serves MTTKRP and the CP-ALS dimension tree, :func:`mode_product` Tucker's mode
products. The formulations and the default rule are in :mod:`factorch.algebra._plans`, the
opt-in timing in :mod:`factorch.algebra._autotune`. With autotuning off (the default) the plan is
a pure function of the problem, so every call -- in any thread, in any process -- computes the
same thing bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._autotune import choose
from ._plans import (
    RANK,
    RULE_MIN_ENTRIES,
    ContractionPlan,
    ContractionProblem,
    default_plan,
    natural,
    plain_plan,
    run,
)

__all__ = ["RANK", "contract", "mode_product", "rule_plan"]


def rule_plan(tensor: torch.Tensor, modes: Sequence[int], rank: int) -> ContractionPlan:
    """The default rule's plan for contracting one of ``modes`` of ``tensor`` at rank ``rank``
    (small tensors skip building the problem key: the rule gives them the plain form)."""
    if tensor.numel() < RULE_MIN_ENTRIES:
        return plain_plan(tensor.shape, modes, rank)
    return default_plan(ContractionProblem.of("labels", tensor, modes, rank))


def contract(
    tensor: torch.Tensor, factors: Sequence[torch.Tensor | None], modes: Sequence[int]
) -> tuple[torch.Tensor, list[int]]:
    """Contract one of ``modes`` of ``tensor`` with its factor (``factors[m]``, ``I_m x R``).

    Returns the result and its axis labels (mode numbers, :data:`RANK` for the rank axis); the
    caller contracts the other modes. The mode and formulation come from the default rule, or
    from the autotuner when it is on and applies. Differentiable.
    """
    first = next(f for m, f in enumerate(factors) if m in modes and f is not None)
    rank = first.shape[1]
    plan, outcome = choose("labels", tensor, factors, modes, rank)
    if outcome is not None:
        return outcome
    if plan is None:
        plan = rule_plan(tensor, modes, rank)
    factor = factors[plan.mode]
    if factor is None:  # pragma: no cover - callers give a factor for every mode in ``modes``
        raise ValueError(f"contract: no factor for mode {plan.mode}.")
    return run(plan, tensor, factor)


def mode_product(tensor: torch.Tensor, matrix: torch.Tensor, mode: int) -> torch.Tensor | None:
    """``tensor x_mode matrix`` (``matrix``: ``J x I_mode``), contiguous, by the tuned plan when
    the autotuner is on and applies; None otherwise (the caller then uses its own fixed form)."""
    factors: list[torch.Tensor | None] = [None] * tensor.ndim
    factors[mode] = matrix.mT
    plan, outcome = choose("natural", tensor, factors, [mode], matrix.shape[0])
    if outcome is not None:
        return outcome[0]
    if plan is None:
        return None
    return natural(*run(plan, tensor, matrix.mT), mode)
