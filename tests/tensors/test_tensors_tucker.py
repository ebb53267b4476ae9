"""Tucker tensors: norms and inner products at the ends of the dtype's range (issue 9.2)."""

from __future__ import annotations

import pytest
import torch

from factorch.random import random_tucker
from factorch.tensors import TuckerTensor

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("scale", [1e200, 1e-200])
def test_norm_and_inner_with_a_core_near_the_ends_of_float64(scale: float) -> None:
    t = random_tucker((3, 4, 5), (2, 3, 2), generator=_gen(0), dtype=F64)
    big = TuckerTensor(t.core * scale, t.factors)
    assert float(big.norm()) == pytest.approx(float(t.norm()) * scale, rel=1e-12)
    dense = t.to_dense()
    assert float(big.inner(dense / scale)) == pytest.approx(float((dense * dense).sum()), rel=1e-12)
    # factors of 1e160 and a core of 1e-300: intermediate products overflow, the tensor does not
    spread = TuckerTensor(t.core * 1e-300, tuple(f * 1e100 for f in t.factors))
    assert float(spread.norm()) == pytest.approx(float(t.norm()), rel=1e-12)
    assert float(spread.inner(spread)) == pytest.approx(float(t.norm()) ** 2, rel=1e-12)


def test_scaled_norm_and_inner_are_differentiable() -> None:
    t = random_tucker((3, 4, 2), (2, 2, 2), generator=_gen(1), dtype=F64)
    leaves = (t.core.clone().requires_grad_(), *(f.clone().requires_grad_() for f in t.factors))
    dense = torch.randn(3, 4, 2, dtype=F64, generator=_gen(2))

    def norm_and_inner(core: torch.Tensor, *factors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = TuckerTensor(core, factors)
        return m.norm(), m.inner(dense)

    assert torch.autograd.gradcheck(norm_and_inner, leaves)
