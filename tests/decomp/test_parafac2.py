"""parafac2: planted recovery with slices of different lengths (the evolving factors), TensorLy's
iterates and accuracy from the same start, non-negative and constrained modes, policies, bad
input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from factorch.decomp import constraints as C
from factorch.decomp import parafac2
from factorch.tensors import Parafac2Tensor

F64 = torch.float64
LENGTHS = (9, 14, 11, 20, 16, 12, 13, 18)


def _planted(lengths=LENGTHS, k=15, rank=3, seed=0, noise=0.0, dtype=F64, signed_b=True):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(len(lengths), rank, generator=g, dtype=F64) + 0.2
    b = torch.randn(rank, rank, generator=g, dtype=F64) if signed_b else torch.eye(rank, dtype=F64)
    c = torch.rand(k, rank, generator=g, dtype=F64)
    p = [torch.linalg.qr(torch.randn(n, rank, generator=g, dtype=F64)).Q for n in lengths]
    truth = Parafac2Tensor.from_factors(a, b, c, p)
    x = truth.slices()
    if noise:
        e = [torch.randn(s.shape, generator=g, dtype=F64) for s in x]
        total = math.sqrt(sum(float(s.square().sum()) for s in x))
        enorm = math.sqrt(sum(float(t.square().sum()) for t in e))
        x = [s + noise * total / enorm * t for s, t in zip(x, e)]
    return [s.to(dtype) for s in x], truth


def _err(model: Parafac2Tensor, x) -> float:
    """Relative error in float64, scaled so that 1e200 data does not overflow."""
    peak = max(float(t.double().abs().max()) for t in x) or 1.0
    num = sum(float(((s.double() - t.double()) / peak).square().sum())
              for s, t in zip(model.slices(), x))  # fmt: skip
    return math.sqrt(num / sum(float((t.double() / peak).square().sum()) for t in x))


def _congruence(u: torch.Tensor, v: torch.Tensor) -> float:
    """Best permutation-free match: the smallest over ``v``'s columns of the largest |cos|."""
    un = u / u.norm(dim=0)
    vn = v / v.norm(dim=0)
    return float((un.T @ vn).abs().max(0).values.min())


def test_recovers_evolving_factors_with_different_slice_lengths():
    """The paper's property: slices of different lengths, each with its own B_i = P_i B, are
    fitted exactly and A, C and every B_i are recovered (congruence > 0.99)."""
    x, truth = _planted(seed=1)
    res = parafac2(x, 3, max_iter=3000, tol=1e-14)
    assert res.converged and res.error < 1e-8
    assert res.error == pytest.approx(_err(res.model, x), rel=1e-6, abs=1e-12)
    assert [tuple(s.shape) for s in res.model.slices()] == [(n, 15) for n in LENGTHS]
    assert _congruence(res.model.factors[0], truth.factors[0]) > 0.99
    assert _congruence(res.model.factors[2], truth.factors[2]) > 0.99
    for got, want in zip(res.model.evolving_factors(), truth.evolving_factors()):
        assert _congruence(got, want) > 0.99
    for p in res.model.projections:  # orthonormal projections
        torch.testing.assert_close(p.T @ p, torch.eye(3, dtype=F64))


def test_noisy_fit_reaches_the_noise_level_and_errors_are_true():
    x, _ = _planted(seed=2, noise=0.05)
    res = parafac2(x, 3)
    # P_i and B_i adapt to the noise a little: at, not above, its level.
    assert res.converged and 0.04 < res.error <= 0.0501
    assert res.error == pytest.approx(_err(res.model, x), rel=1e-9)
    assert all(e2 <= e1 + 1e-12 for e1, e2 in zip(res.errors, res.errors[1:]))


def _tl_start(tl, x, seed):
    from tensorly.decomposition._parafac2 import initialize_decomposition

    return initialize_decomposition([s.numpy() for s in x], 3, init="random", random_state=seed)


def _ours(start) -> Parafac2Tensor:
    _, f, p = start
    return Parafac2Tensor.from_factors(*(torch.from_numpy(np.asarray(t)) for t in f),
                                       [torch.from_numpy(q) for q in p])  # fmt: skip


def test_same_iterates_as_tensorly_from_the_same_start(tensorly_backend):
    """Same start, same algorithm (Procrustes, 5 CP sweeps, no line search): the same errors."""
    tl = tensorly_backend("numpy")
    from tensorly.decomposition import parafac2 as tl_parafac2

    x, _ = _planted(seed=3, noise=0.01)
    start = _tl_start(tl, x, 3)
    _, errs = tl_parafac2([s.numpy() for s in x], 3, init=start, n_iter_max=6, tol=1e-300,
                          linesearch=False, return_errors=True)  # fmt: skip
    res = parafac2(x, 3, init=_ours(start), max_iter=6, tol=0, linesearch=False)
    np.testing.assert_allclose(res.errors[:-1], [float(e) for e in errs[:-1]], rtol=1e-9)
    # The returned model gets projections for its final factors: a lower error than TensorLy's.
    assert res.errors[-1] < float(errs[-1])


@pytest.mark.parametrize("seed", [4, 6])
def test_at_least_tensorlys_accuracy_from_the_same_start(seed, tensorly_backend):
    tl = tensorly_backend("numpy")
    from tensorly.decomposition import parafac2 as tl_parafac2

    x, _ = _planted(seed=seed, noise=0.01)
    start = _tl_start(tl, x, seed)
    ref = tl_parafac2([s.numpy() for s in x], 3, init=start)
    theirs = Parafac2Tensor(torch.from_numpy(np.asarray(ref.weights)), tuple(
        torch.from_numpy(np.asarray(f)) for f in ref.factors), [torch.from_numpy(p) for p in
        ref.projections])  # fmt: skip
    res = parafac2(x, 3, init=_ours(start))
    assert res.error <= _err(theirs, x) * (1 + 1e-7)


def test_non_negative_modes_hold_and_fit():
    x, truth = _planted(seed=10, noise=0.01)
    res = parafac2(x, 3, nonneg_modes=[0, 2], max_iter=150)
    assert bool((res.model.factors[0] >= 0).all()) and bool((res.model.factors[2] >= 0).all())
    free = parafac2(x, 3, max_iter=150)
    assert res.error <= free.error * 1.01  # the truth is non-negative: nothing lost
    assert _congruence(res.model.factors[2], truth.factors[2]) > 0.99


def test_constraints_on_the_non_evolving_modes_hold():
    x, _ = _planted(seed=8, noise=0.01)
    res = parafac2(x, 3, constraints={0: C.NonNegative(), 2: C.Simplex()}, max_iter=60)
    a, _, c = res.model.factors
    assert bool((a >= 0).all()) and bool((c >= 0).all())
    torch.testing.assert_close(c.sum(0), torch.ones(3, dtype=F64))
    assert torch.equal(res.model.weights, torch.ones(3, dtype=F64))
    assert res.error < 0.05 and res.error == pytest.approx(_err(res.model, x), rel=1e-9)


def test_stack_input_numpy_and_callback():
    x, _ = _planted(lengths=(7,) * 5, seed=9, noise=0.01)
    stack = torch.stack(x)
    a = parafac2(stack, 3, max_iter=20)
    b = parafac2([s.numpy() for s in x], np.int64(3), max_iter=20)
    assert a.errors == b.errors
    torch.testing.assert_close(a.model.to_dense(), b.model.to_dense())
    seen = []
    parafac2(stack, 3, max_iter=20, callback=lambda s: seen.append(s.model.rank) or True)
    assert seen == [3]


def test_autocast_half_precision_and_extreme_scales():
    x, _ = _planted(seed=10, noise=0.01)
    ref = parafac2([s.float() for s in x], 3, max_iter=50)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = parafac2([s.float() for s in x], 3, max_iter=50)
    assert auto.errors == ref.errors and auto.model.dtype == torch.float32
    half = parafac2([s.half() for s in x], 3, max_iter=50)
    assert half.model.dtype == torch.float16
    assert half.error == pytest.approx(_err(half.model, [s.half() for s in x]), rel=1e-3)
    for factor, dtype in ((1e-30, torch.float32), (1e30, torch.float32), (1e200, F64)):
        big = parafac2([(s * factor).to(dtype) for s in x], 3, max_iter=50)
        assert big.error == pytest.approx(ref.error, rel=1e-3)
        assert big.error == pytest.approx(_err(big.model, [s * factor for s in x]), rel=1e-4)


def test_memory_guard_before_padding():
    big = torch.zeros(1, 1).expand(10**9, 1)
    with pytest.raises(ValueError, match=r"parafac2: .*the 3000 slices padded to a common"):
        parafac2([big] + [torch.ones(2, 1)] * 2999, 1)


BAD = [
    ([], 1, {}, ValueError, r"parafac2: tensor must hold at least one slice"),
    ([torch.ones(3)], 1, {}, ValueError, r"parafac2: tensor\[0\] must have 2 dimensions"),
    ([torch.ones(3, 2), torch.ones(3, 4)], 1, {}, ValueError,
     r"parafac2: every slice must have the columns, dtype and device of tensor\[0\]"),
    (torch.ones(3, 4), 1, {}, ValueError, r"parafac2: tensor must be an \(I, J, K\) stack"),
    ("x", 1, {}, TypeError, r"parafac2: tensor must be a torch.Tensor or a numpy array"),
    (torch.ones(3, 4, 5, dtype=torch.int64), 1, {}, TypeError, r"parafac2: tensor must have a"),
    (torch.zeros(3, 4, 5), 1, {}, ValueError, r"parafac2: the slices are all zeros"),
    ([torch.ones(2, 3), torch.ones(5, 3)], 3, {}, ValueError,
     r"parafac2: rank must be at most the smallest slice's row count \(2\)"),
    (None, 0, {}, ValueError, r"parafac2: rank must be a positive int"),
    (None, 2, {"nonneg_modes": [1]}, ValueError, r"parafac2: mode 1 \(the evolving factors"),
    (None, 2, {"constraints": {1: C.NonNegative()}}, ValueError, r"parafac2: mode 1 \(the"),
    (None, 2, {"nonneg_modes": [0], "constraints": {0: C.NonNegative()}}, ValueError,
     r"parafac2: mode 0 is in nonneg_modes and has a constraint"),
    (None, 2, {"nonneg_modes": [3]}, IndexError, r"parafac2: nonneg_modes"),
    (None, 2, {"nonneg_modes": 0}, TypeError, r"parafac2: nonneg_modes must be a sequence"),
    (None, 2, {"init": "hosvd"}, ValueError, r"parafac2: init must be one of \('svd', 'random'\)"),
    (None, 2, {"init": Parafac2Tensor.from_factors(torch.ones(3, 2), torch.eye(2),
                                                   torch.ones(6, 2), [torch.ones(4, 2)] * 3
                                                   ).to(dtype=F64)},
     ValueError, r"parafac2: init must be a Parafac2Tensor of rank 2 with slices of shapes"),
    (None, 2, {"cp_sweeps": 0}, ValueError, r"parafac2: cp_sweeps must be a positive int"),
    (None, 2, {"generator": 1}, TypeError, r"parafac2: generator must be a torch.Generator"),
    (None, 2, {"tol": -1.0}, ValueError, r"parafac2: tol must be a finite non-negative"),
]  # fmt: skip


@pytest.mark.parametrize(("tensor", "rank", "kwargs", "exc", "match"), BAD,
                         ids=[f"bad{i}" for i in range(len(BAD))])  # fmt: skip
def test_bad_input(tensor, rank, kwargs, exc, match):
    if tensor is None:
        tensor = torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(0), dtype=F64)
    with pytest.raises(exc, match=match):
        parafac2(tensor, rank, **kwargs)


def test_nan_slice_is_refused():
    bad = torch.ones(3, 4, dtype=F64)
    bad[1, 1] = math.nan
    with pytest.raises(ValueError, match=r"parafac2: tensor\[1\] contains 1 NaN"):
        parafac2([torch.ones(3, 4, dtype=F64), bad], 1)


@pytest.mark.cuda
def test_cuda_matches_cpu():
    x, _ = _planted(seed=11, noise=0.01)
    a = parafac2(x, 3, max_iter=10, tol=0)
    b = parafac2([s.cuda() for s in x], 3, max_iter=10, tol=0)
    assert b.model.device.type == "cuda"
    np.testing.assert_allclose(a.errors, b.errors, rtol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_line_search_error_from_the_projected_tensor_is_the_exact_error(dtype):
    """The line search scores a candidate by ``||X||^2 - ||T||^2 + ||T - M||^2`` (one read of
    the data fewer); it must agree with the residual summed entry by entry, within its floor."""
    from factorch.decomp._parafac2 import _exact_error, _project, _projected_error

    xs, _ = _planted(noise=0.05, seed=3)
    x = torch.zeros(len(xs), max(LENGTHS), 15, dtype=F64)
    for i, s in enumerate(xs):
        x[i, : s.shape[0]] = s
    x = x.to(dtype)
    g = torch.Generator().manual_seed(1)
    factors = [torch.rand(n, 3, generator=g, dtype=F64).to(dtype) for n in (len(xs), 3, 15)]
    norm_x2 = float(x.double().square().sum())
    proj = _project(x, factors)
    fast, floor = _projected_error(proj, factors, norm_x2, dtype)
    exact, _ = _exact_error(x, proj[0], factors, norm_x2)
    assert 0 < floor < 1e-3 * fast
    assert abs(fast - exact) <= floor + 8 * torch.finfo(dtype).eps * exact
