"""A format defined entirely in this test file (no library change) works in the layers and in
``compress``: the extension contract of :class:`factorch.nn.formats.WeightFormat`.

The toy format is a sum of Kronecker products (Van Loan & Pitsianis 1993):
``W = sum_r A_r (x) B_r`` for an ``(o_1 o_2, i_1 i_2)`` matrix with ``A_r (o_1, i_1)`` and
``B_r (o_2, i_2)``. Rearranged as the ``(o_1 i_1) x (o_2 i_2)`` matrix (exactly the library's
two-core :meth:`TensorLayout.matrix_chain` layout) it is a rank-``R`` matrix, so the truncated
SVD of that rearrangement is the optimal decomposition.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence

import pytest
import torch
from torch import nn

import factorch.nn as fnn
from factorch.nn import TensorizedShape, TensorLayout
from factorch.nn.formats import (
    WeightFormat,
    format_from_config,
    gaussian,
    get_format,
    register_format,
    unregister_format,
)


class KroneckerWeight(WeightFormat):
    """``W = sum_r A_r (x) B_r``; factors ``A (R, o_1 i_1)`` and ``B (R, o_2 i_2)``."""

    format = "kron"

    @classmethod
    def matrix_layout(cls, spec: TensorizedShape) -> TensorLayout:
        return TensorLayout.matrix_chain(spec)

    @classmethod
    def normalise_rank(
        cls, layout: TensorLayout, rank: object, *, fn: str, fixed_modes: Sequence[int] = ()
    ) -> int:
        shape = layout.tensor_shape
        if len(shape) != 2:
            raise ValueError(f"{fn}: kron needs two factors per side; got modes {shape}.")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= min(shape):
            raise ValueError(f"{fn}: rank must be an int in [1, {min(shape)}]; got {rank!r}.")
        return rank

    @classmethod
    def rank_family(cls, layout: TensorLayout, fixed_modes: Sequence[int] = ()) -> list[int]:
        return list(range(1, min(layout.tensor_shape) + 1))

    @property
    def factor_shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple((self.rank, s) for s in self.layout.tensor_shape)

    def to_tensor(self, *factors: torch.Tensor) -> torch.Tensor:
        a, b = factors
        return a.transpose(0, 1) @ b

    def decompose(self, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
        u, s, vh = torch.linalg.svd(tensor, full_matrices=False)
        root = s[: self.rank].sqrt()
        return (u[:, : self.rank] * root).transpose(0, 1), root[:, None] * vh[: self.rank]

    def random_factors(self, std, generator, dtype):
        c = (std**2 / self.rank) ** 0.25  # E[W^2] = R c^4
        return tuple(gaussian(s, generator, dtype) * c for s in self.factor_shapes)

    def linear(self, factors, x, bias, spec):
        a, b = factors
        (o1, i1), (o2, i2) = spec.pairs()
        a = a.reshape(-1, o1, i1)
        b = b.reshape(-1, o2, i2)
        y = torch.einsum("roi,bij,rpj->bop", a, x.reshape(-1, i1, i2), b).reshape(x.shape[0], -1)
        return y if bias is None else y + bias

    def linear_flops(self, spec, batch):
        (o1, i1), (o2, i2) = spec.pairs()
        return 2 * batch * self.rank * (i1 * i2 * o2 + o1 * i1 * o2)


@pytest.fixture
def kron() -> Iterator[type[KroneckerWeight]]:
    register_format(KroneckerWeight)
    yield KroneckerWeight
    unregister_format("kron")


def _kron_dense(a: torch.Tensor, b: torch.Tensor, spec: TensorizedShape) -> torch.Tensor:
    """The obviously correct reference: ``sum_r kron(A_r, B_r)``."""
    (o1, i1), (o2, i2) = spec.pairs()
    return sum(torch.kron(a[r].reshape(o1, i1), b[r].reshape(o2, i2)) for r in range(a.shape[0]))


SPEC = TensorizedShape((4, 3), (6, 4))


def test_toy_format_layer_matches_the_kronecker_reference(kron):
    g = torch.Generator().manual_seed(0)
    layer = fnn.FactorizedLinear(24, 12, format="kron", rank=3, shape=SPEC, generator=g)
    layer = layer.double()
    a, b = layer.factors
    assert torch.allclose(layer.weight, _kron_dense(a, b, SPEC), atol=1e-12)
    x = torch.randn(5, 24, generator=g, dtype=torch.float64)
    ref = x @ layer.weight.T + layer.bias
    for impl in ("factorized", "reconstructed", "auto"):
        layer.implementation = impl
        assert torch.allclose(layer(x), ref, atol=1e-12), impl
    assert layer.flops(5)[0] == 2 * 5 * 3 * (6 * 4 * 3 + 4 * 6 * 3)


def test_toy_format_from_dense_ratio_budget_and_config(kron):
    g = torch.Generator().manual_seed(1)
    dense = nn.Linear(24, 12, dtype=torch.float64)
    exact = fnn.FactorizedLinear.from_dense(dense, format="kron", rank=12, shape=SPEC)
    assert torch.allclose(exact.weight, dense.weight, atol=1e-12)  # full rank: exact
    small = fnn.FactorizedLinear.from_dense(dense, format="kron", ratio=0.3, shape=SPEC)
    per_rank = 12 + 24  # one A_r (4 x 3) and one B_r (6 x 4)
    assert small.rank == math.floor(0.3 * 288 / per_rank) and small.n_params - 12 <= 0.3 * 288
    # the truncated SVD of the rearrangement is optimal: its error is the tail energy
    s = torch.linalg.svdvals(TensorLayout.matrix_chain(SPEC).to_tensor(dense.weight.detach()))
    err = float((small.weight - dense.weight).detach().norm() / dense.weight.detach().norm())
    assert err == pytest.approx(float(s[small.rank :].norm() / s.norm()), rel=1e-9)
    config = json.loads(json.dumps(small.parametrization.config()))
    rebuilt = format_from_config(config)
    assert type(rebuilt) is KroneckerWeight and rebuilt.rank == small.rank
    with pytest.raises(ValueError, match="FactorizedLinear: rank must be an int in"):
        fnn.FactorizedLinear(24, 12, format="kron", rank=0, shape=SPEC, generator=g)


@pytest.mark.parametrize("allocation", ["energy", "uniform"])
def test_toy_format_in_compress(kron, allocation):
    g = torch.Generator().manual_seed(2)
    model = nn.Sequential(nn.Linear(24, 32), nn.ReLU(), nn.Linear(32, 16)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.randn(32, 24, generator=g, dtype=torch.float64))
    small, report = fnn.compress(model, ratio=0.4, format="kron", allocation=allocation)
    assert report.layer_params_after - 48 <= 0.4 * (24 * 32 + 32 * 16) + 1e-9  # 48 biases
    for r in report.layers:
        layer = small.get_submodule(r.name)
        if r.format == "dense":
            continue
        assert r.format == "kron" and isinstance(layer, fnn.FactorizedLinear)
        assert layer.format == "kron" and layer.rank == r.rank
        w = model.get_submodule(r.name).weight
        measured = float((layer.weight - w).detach().norm() / w.detach().norm())
        assert r.relative_error == pytest.approx(measured, rel=1e-9)
        if allocation == "energy":  # the default ladder measures the decomposition's error
            assert r.predicted_error == pytest.approx(measured, rel=1e-6)
    assert any(r.format == "kron" for r in report.layers)
    x = torch.randn(3, 24, generator=g, dtype=torch.float64)
    assert small(x).shape == (3, 16)


def test_unregistered_toy_format_is_unknown(kron):
    assert get_format("kron") is KroneckerWeight
    unregister_format("kron")
    with pytest.raises(ValueError, match="FactorizedLinear: format must be one of"):
        fnn.FactorizedLinear(24, 12, format="kron", rank=2, shape=SPEC)
