"""The proximal operators of ``factorch.decomp.constraints``: each output satisfies its constraint,
each prox is the minimiser it claims to be (optimality checked against references), and
TensorLy's operators agree where they are exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from factorch.decomp import ProximalOperator
from factorch.decomp import constraints as C
from factorch.decomp._prox import _isotonic, _pava

F64 = torch.float64


def _v(shape=(9, 4), seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=F64).to(dtype)


def _prox_objective(op: ProximalOperator, z: torch.Tensor, v: torch.Tensor, rho: float) -> float:
    return op.penalty(z) + 0.5 * rho * float((z - v).square().sum())


# --- constraints hold exactly ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_projections_satisfy_their_sets(dtype):
    v = _v((11, 5), 1, dtype) * 3
    eps = 8 * torch.finfo(dtype).eps
    assert bool((C.NonNegative().prox(v, 1.0) >= 0).all())
    box = C.Box(-0.5, 0.25).prox(v, 1.0)
    assert float(box.min()) >= -0.5 and float(box.max()) <= 0.25
    s = C.Simplex(2.0).prox(v, 1.0)
    assert bool((s >= 0).all()) and torch.allclose(s.sum(0), torch.full((5,), 2.0, dtype=dtype))
    b1 = C.L1Ball(1.5).prox(v, 1.0)
    assert bool((b1.abs().sum(0) <= 1.5 * (1 + eps)).all())
    b2 = C.L2Ball(0.5).prox(v, 1.0)
    assert bool((torch.linalg.vector_norm(b2, dim=0) <= 0.5 * (1 + eps)).all())
    unit = C.UnitNorm().prox(v, 1.0)
    torch.testing.assert_close(torch.linalg.vector_norm(unit, dim=0), torch.ones(5, dtype=dtype))
    inc = C.Monotone().prox(v, 1.0)
    assert bool((inc[1:] >= inc[:-1]).all())
    dec = C.Monotone(decreasing=True).prox(v, 1.0)
    assert bool((dec[1:] <= dec[:-1]).all())
    for nonneg in (False, True):
        uni = C.Unimodal(nonneg=nonneg).prox(v, 1.0)
        assert uni.dtype == dtype
        for col in uni.mT:
            peak = int(col.argmax())
            assert bool((col[1 : peak + 1] >= col[:peak]).all())
            assert bool((col[peak + 1 :] <= col[peak:-1]).all())
        assert not nonneg or bool((uni >= 0).all())
    hard = C.HardSparsity(7).prox(v, 1.0)
    assert int((hard != 0).sum()) == 7
    per_col = C.HardSparsity(2, per_column=True).prox(v, 1.0)
    assert ((per_col != 0).sum(0) == 2).all()
    unit_sparse = C.HardSparsity(7, unit_norm=True).prox(v, 1.0)
    assert float(unit_sparse.norm()) == pytest.approx(1.0, rel=1e-6)


def test_zero_column_edge_cases():
    z = torch.zeros(4, 2, dtype=F64)
    torch.testing.assert_close(C.UnitNorm().prox(z, 1.0), torch.full((4, 2), 0.5, dtype=F64))
    assert bool((C.L2Ball(1.0).prox(z, 1.0) == 0).all())
    assert bool((C.GroupLasso(1.0).prox(z, 1.0) == 0).all())
    assert bool((C.L1Ball(0.0).prox(_v(), 1.0) == 0).all())
    assert torch.equal(C.Smooth(1.0).prox(_v((2, 3)), 1.0), _v((2, 3)))


# --- each prox is the minimiser ------------------------------------------------------------------


@pytest.mark.parametrize(
    "op",
    [
        C.L1(0.7),
        C.L1(0.7, nonneg=True),
        C.L2(2.0),
        C.L2(50.0),
        C.Ridge(0.4),
        C.GroupLasso(0.8),
        C.Smooth(0.6),
        C.NonNegative(),
        C.Box(-0.3, 0.6),
        C.Simplex(),
        C.L1Ball(1.0),
        C.L2Ball(0.7),
        C.Monotone(),
        C.Unimodal(),
    ],
    ids=repr,
)
def test_prox_beats_random_feasible_perturbations(op):
    """Convex ``g``: the prox output has the lowest ``g(z) + rho/2 ||z - v||^2`` among many
    nearby points that the operator's own set allows (perturbations projected back)."""
    rho = 1.3
    v = _v((10, 3), 2) * 2
    z = op.prox(v, rho)
    best = _prox_objective(op, z, v, rho)
    g = torch.Generator().manual_seed(3)
    for scale in (1e-1, 1e-3):
        for _ in range(60):
            trial = z + scale * torch.randn(z.shape, generator=g, dtype=F64)
            if op.penalty(trial) == 0.0:  # a constraint: stay in the set
                trial = op.prox(trial, 1e12)
            elif isinstance(op, C.L1) and op.nonneg:  # the penalty plus A >= 0
                trial = trial.clamp_min(0.0)
            assert _prox_objective(op, trial, v, rho) >= best - 1e-10


def test_smooth_prox_solves_its_linear_system():
    op = C.Smooth(0.9)
    v, rho = _v((12, 3), 4), 2.0
    n = v.shape[0]
    d = torch.zeros(n - 2, n, dtype=F64)
    for i in range(n - 2):
        d[i, i], d[i, i + 1], d[i, i + 2] = 1.0, -2.0, 1.0
    ref = torch.linalg.solve(2 * 0.9 * d.mT @ d + rho * torch.eye(n, dtype=F64), rho * v)
    torch.testing.assert_close(op.prox(v, rho), ref)
    straight = torch.arange(12, dtype=F64).unsqueeze(1) * torch.ones(1, 2, dtype=F64)
    assert op.penalty(straight) == pytest.approx(0.0, abs=1e-20)  # lines cost nothing


def _cone_optimal(v: torch.Tensor, x: torch.Tensor) -> None:
    """Projection onto the non-decreasing cone: x monotone, <v - x, 1> = 0, <v - x, x> = 0 and
    <v - x, s_k> <= 0 for every step vector s_k = (0, .., 0, 1, .., 1)."""
    r = v - x
    assert bool((x[1:] >= x[:-1] - 1e-12).all())
    assert abs(float(r.sum())) < 1e-9 and abs(float(r @ x)) < 1e-9
    tails = r.flip(0).cumsum(0).flip(0)[1:]
    assert bool((tails <= 1e-9).all())


@pytest.mark.parametrize("n", [1, 2, 7, 40, 600])
def test_isotonic_paths_are_the_exact_projection(n):
    """Both paths (vectorised min-max formula for short columns, pool-adjacent-violators beyond
    512 rows) meet the optimality conditions of the projection."""
    v = _v((n, 3), n) + torch.linspace(0, 2, n, dtype=F64).unsqueeze(1)
    x = _isotonic(v)
    for j in range(3):
        _cone_optimal(v[:, j], x[:, j])
        ref = torch.tensor(_pava(v[:, j].tolist()), dtype=F64)
        torch.testing.assert_close(x[:, j], ref)


def test_unimodal_is_the_best_split_and_beats_tensorly():
    from tensorly.tenalg.proximal import unimodality_prox

    v = _v((15, 6), 5)
    ours = C.Unimodal().prox(v, 1.0)
    for j in range(6):
        col = v[:, j]
        # brute force over the peak position: increasing up to p, decreasing after
        best = min(
            float(
                (torch.cat([_isotonic(col[:p, None])[:, 0], -_isotonic(-col[p:, None])[:, 0]])
                 - col).square().sum()
            )
            for p in range(16)
        )  # fmt: skip
        assert float((ours[:, j] - col).square().sum()) == pytest.approx(best, rel=1e-12)
    theirs = torch.from_numpy(unimodality_prox(v.numpy()))
    assert float((ours - v).square().sum()) <= float((theirs - v).square().sum()) + 1e-12


def test_exact_projections_equal_tensorlys():
    from tensorly.tenalg import proximal as P

    v = _v((9, 4), 6)
    pairs = [
        (P.simplex_prox(v.numpy(), 1.5), C.Simplex(1.5)),
        (P.soft_sparsity_prox(v.numpy(), 2.0), C.L1Ball(2.0)),
        (P.hard_thresholding(v.numpy(), 6), C.HardSparsity(6)),
        (P.normalized_sparsity_prox(v.numpy(), 6), C.HardSparsity(6, unit_norm=True)),
        (P.group_lasso_prox(v.numpy(), 0.5), C.GroupLasso(0.5)),
        (P.l2_square_prox(v.numpy(), 0.5), C.Ridge(0.5)),
        (P.l2_prox(v.numpy(), 0.5), C.L2(0.5)),
        (P.soft_thresholding(v.numpy(), 0.5), C.L1(0.5)),
    ]
    for ref, op in pairs:  # TensorLy's prox is ours at rho = 1
        np.testing.assert_allclose(op.prox(v, 1.0).numpy(), np.asarray(ref), atol=1e-14)


def test_user_operator_through_the_protocol():
    class Positive(ProximalOperator):
        def prox(self, factor, rho):
            return factor.clamp_min(1e-3)

    op = Positive()
    assert op.penalty(_v()) == 0.0 and float(op.prox(_v(), 1.0).min()) == pytest.approx(1e-3)
    with pytest.raises(TypeError, match="abstract"):
        ProximalOperator()  # type: ignore[abstract]


def test_operators_are_frozen_values():
    import dataclasses

    op = C.L1(0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.weight = 1.0  # type: ignore[misc]
    assert C.L1(0.5) == C.L1(0.5) and C.Smooth(1.0) == C.Smooth(1.0)
    assert math.isclose(C.Simplex(np.float64(2.0)).total, 2.0)
    assert C.HardSparsity(np.int64(3)).count == 3


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda: C.L1(-1.0), ValueError, r"L1: weight must be a finite non-negative float; got -1"),
        (lambda: C.L1("a"), TypeError, r"L1: weight must be a float; got str"),
        (lambda: C.L1(1.0, nonneg=1), TypeError, r"L1: nonneg must be a bool; got int"),
        (lambda: C.L2(math.inf), ValueError, r"L2: weight must be a finite non-negative"),
        (lambda: C.Ridge(-2), ValueError, r"Ridge: weight must be a finite non-negative"),
        (lambda: C.GroupLasso(None), TypeError, r"GroupLasso: weight must be a float"),
        (lambda: C.Smooth(-0.1), ValueError, r"Smooth: weight must be a finite non-negative"),
        (lambda: C.Simplex(0.0), ValueError, r"Simplex: total must be a finite positive"),
        (lambda: C.L1Ball(-1), ValueError, r"L1Ball: radius must be a finite non-negative"),
        (lambda: C.L2Ball(True), TypeError, r"L2Ball: radius must be a float; got bool"),
        (lambda: C.Box(1.0, 0.0), ValueError, r"Box: low must be <= high; got low=1.0"),
        (lambda: C.Box("a", 1.0), TypeError, r"Box: low must be a float"),
        (lambda: C.Box(0.0, math.nan), TypeError, r"Box: high must be a float"),
        (lambda: C.Monotone(decreasing="yes"), TypeError, r"Monotone: decreasing must be a bool"),
        (lambda: C.Unimodal(nonneg=None), TypeError, r"Unimodal: nonneg must be a bool"),
        (lambda: C.HardSparsity(0), ValueError, r"HardSparsity: count must be a positive int"),
        (lambda: C.HardSparsity(2.5), TypeError, r"HardSparsity: count must be a positive int"),
        (lambda: C.HardSparsity(2, per_column=1), TypeError, r"HardSparsity: per_column must"),
    ],
)
def test_bad_operator_parameters(make, exc, match):
    with pytest.raises(exc, match=match):
        make()
