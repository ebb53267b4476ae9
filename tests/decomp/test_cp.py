"""CP-ALS: planted recovery, agreement with TensorLy and pyttb, options, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorch.decomp import CPDegeneracy, DecompositionResult, IterationState, cp
from factorch.random import add_noise, random_cp
from factorch.tensors import CPTensor


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape", [(8, 9), (10, 12, 14), (6, 7, 5, 4), (4, 5, 3, 4, 3)])
def test_planted_recovery_float64(shape):
    g = _gen(1)
    truth = random_cp(shape, 3, generator=g, dtype=torch.float64)
    res = cp(truth.to_dense(), 3, generator=g, max_iter=1000, tol=1e-14)
    assert isinstance(res, DecompositionResult)
    assert res.error < 1e-8
    if len(shape) >= 3:  # CP of a matrix is not unique
        assert res.model.congruence(truth) > 0.99


def test_planted_recovery_float32():
    g = _gen(2)
    truth = random_cp((15, 16, 17), 3, generator=g, dtype=torch.float32)
    res = cp(truth.to_dense(), 3, generator=g, max_iter=500, tol=1e-10)
    assert res.model.dtype == torch.float32
    assert res.error < 1e-4


def test_noise_level_and_congruence():
    g = _gen(3)
    truth = random_cp((30, 25, 20), 4, generator=g, dtype=torch.float64)
    x = add_noise(truth.to_dense(), relative=0.05, generator=g)
    res = cp(x, 4, generator=g, max_iter=500, tol=1e-12)
    # The best rank-4 fit can only remove noise: error at, not above, the noise level.
    assert 0.04 < res.error <= 0.0501
    assert res.model.congruence(truth) > 0.99


def test_errors_monotone_and_tol_zero_runs_all():
    g = _gen(4)
    x = add_noise(
        random_cp((12, 13, 14), 3, generator=g, dtype=torch.float64).to_dense(),
        relative=0.1,
        generator=g,
    )
    res = cp(x, 4, init="random", generator=g, max_iter=40, tol=0)
    assert res.iterations == 40 and len(res.errors) == 40 and not res.converged
    diffs = np.diff(res.errors)
    assert np.all(diffs <= 1e-10)


def test_matches_tensorly_from_same_init():
    tl = pytest.importorskip("tensorly")
    from tensorly.cp_tensor import CPTensor as TLCPTensor
    from tensorly.decomposition import parafac

    g = _gen(5)
    x = add_noise(
        random_cp((10, 11, 12), 3, generator=g, dtype=torch.float64).to_dense(),
        relative=0.05,
        generator=g,
    )
    init = random_cp((10, 11, 12), 4, generator=g, dtype=torch.float64)
    res = cp(x, 4, init=init, max_iter=25, tol=0)
    previous = tl.get_backend()
    tl.set_backend("numpy")
    try:
        tl_init = TLCPTensor(
            (init.weights.numpy().copy(), [f.numpy().copy() for f in init.factors])
        )
        _, tl_errors = parafac(x.numpy(), 4, init=tl_init, n_iter_max=25, tol=0, return_errors=True)
    finally:
        tl.set_backend(previous)
    assert len(tl_errors) == len(res.errors)
    np.testing.assert_allclose(res.errors, np.array(tl_errors, dtype=float), rtol=0, atol=1e-10)


def test_matches_pyttb_fit_from_same_init():
    ttb = pytest.importorskip("pyttb")
    g = _gen(6)
    x = add_noise(
        random_cp((9, 10, 11), 3, generator=g, dtype=torch.float64).to_dense(),
        relative=0.05,
        generator=g,
    )
    init = random_cp((9, 10, 11), 3, generator=g, dtype=torch.float64)
    res = cp(x, 3, init=init, max_iter=15, tol=0)
    kt = ttb.ktensor([f.numpy().copy() for f in init.factors], init.weights.numpy().copy())
    _model, _, info = ttb.cp_als(
        ttb.tensor(x.numpy()), 3, init=kt, maxiters=15, stoptol=0, printitn=0
    )
    assert abs((1 - info["fit"]) - res.error) < 1e-6


def test_init_not_mutated_and_given_init_used():
    g = _gen(7)
    x = random_cp((6, 7, 8), 2, generator=g, dtype=torch.float64).to_dense()
    init = random_cp((6, 7, 8), 2, generator=g, dtype=torch.float64)
    before = [f.clone() for f in init.factors]
    cp(x, 2, init=init, max_iter=5)
    assert all(torch.equal(a, b) for a, b in zip(before, init.factors))


def test_deterministic_given_generator():
    x = random_cp((7, 8, 9), 3, generator=_gen(8), dtype=torch.float64).to_dense()
    a = cp(x, 3, init="random", generator=_gen(9), max_iter=10, tol=0)
    b = cp(x, 3, init="random", generator=_gen(9), max_iter=10, tol=0)
    assert a.errors == b.errors
    assert all(torch.equal(p, q) for p, q in zip(a.model.factors, b.model.factors))


def test_svd_init_close_to_optimum_for_low_rank_data():
    g = _gen(10)
    x = random_cp((40, 50, 60), 3, generator=g, dtype=torch.float64).to_dense()
    res = cp(x, 3, init="svd", generator=g, max_iter=1)
    rnd = cp(x, 3, init="random", generator=g, max_iter=1)
    assert res.error < rnd.error


def test_svd_init_rank_above_mode_size():
    g = _gen(11)
    x = torch.randn(3, 20, 20, generator=g, dtype=torch.float64)
    res = cp(x, 5, generator=g, max_iter=5)
    assert res.model.factors[0].shape == (3, 5)
    assert all(torch.isfinite(f).all() for f in res.model.factors)


def test_fixed_modes_stay_fixed():
    g = _gen(12)
    truth = random_cp((8, 9, 10), 2, generator=g, dtype=torch.float64)
    init = random_cp((8, 9, 10), 2, generator=g, dtype=torch.float64)
    init = CPTensor(init.weights, (truth.factors[0].clone(), init.factors[1], init.factors[2]))
    res = cp(truth.to_dense(), 2, init=init, fixed_modes=[0], max_iter=200, tol=1e-14)
    assert torch.equal(res.model.factors[0], truth.factors[0])
    assert res.error < 1e-8


def test_l2_shrinks_weights():
    g = _gen(13)
    x = random_cp((8, 9, 10), 3, generator=g, dtype=torch.float64).to_dense()
    init = random_cp((8, 9, 10), 3, generator=g, dtype=torch.float64)
    plain = cp(x, 3, init=init, max_iter=20, tol=0)
    ridge = cp(x, 3, init=init, max_iter=20, tol=0, l2=5.0)
    assert ridge.model.norm() < plain.model.norm()


def test_linesearch_and_orthogonalize_reach_optimum():
    g = _gen(14)
    x = random_cp((10, 11, 12), 3, generator=g, dtype=torch.float64).to_dense()
    for kwargs in ({"linesearch": True}, {"orthogonalize_iters": 3}):
        res = cp(x, 3, init="random", generator=_gen(15), max_iter=2000, tol=1e-15, **kwargs)
        assert res.error < 1e-6, kwargs


def test_masked_em_recovers_hidden_entries():
    g = _gen(16)
    truth = random_cp((12, 13, 14), 3, generator=g, dtype=torch.float64)
    x = truth.to_dense()
    mask = torch.rand(x.shape, generator=g) > 0.4
    x_missing = torch.where(mask, x, torch.full_like(x, float("nan")))
    res = cp(x_missing, 3, mask=mask, generator=g, max_iter=1000, tol=1e-14)
    hidden = ~mask
    rel = torch.linalg.vector_norm((res.model.to_dense() - x)[hidden]) / torch.linalg.vector_norm(
        x[hidden]
    )
    assert rel < 1e-6


def test_callback_stops_and_sees_state():
    g = _gen(17)
    x = random_cp((6, 7, 8), 2, generator=g, dtype=torch.float64).to_dense()
    seen: list[IterationState] = []

    def cb(state: IterationState) -> bool:
        seen.append(state)
        return state.iteration == 3

    res = cp(x, 2, init="random", generator=g, max_iter=50, tol=0, callback=cb)
    assert res.iterations == 3 and len(seen) == 3 and not res.converged
    # The last entry is recomputed exactly (the callback saw the Gram estimate).
    assert isinstance(seen[-1].model, CPTensor)
    assert seen[-1].error == pytest.approx(res.errors[-1], rel=1e-12)


def test_converged_flag_and_time():
    g = _gen(18)
    x = random_cp((6, 7, 8), 2, generator=g, dtype=torch.float64).to_dense()
    res = cp(x, 2, generator=g, max_iter=500, tol=1e-10)
    assert res.converged and res.iterations < 500
    assert res.time_s >= res.init_time_s >= 0


def test_rank_deficient_gram_does_not_produce_nan():
    # A rank-1 tensor decomposed at rank 3 with identical initial columns: singular Grams.
    a = torch.ones(5, 1, dtype=torch.float64)
    init = CPTensor(
        torch.ones(3, dtype=torch.float64), (a.repeat(1, 3), a.repeat(1, 3), a.repeat(1, 3))
    )
    x = torch.ones(5, 5, 5, dtype=torch.float64)
    res = cp(x, 3, init=init, max_iter=5)
    assert all(torch.isfinite(f).all() for f in res.model.factors)
    assert res.error < 1e-10


# --- the one convergence rule: float32 with default options (issues 9.5, 10.2) --------------


def _planted(shape, rank, seed, noise, dtype=torch.float64):
    g = _gen(seed)
    x = random_cp(shape, rank, generator=g, dtype=torch.float64).to_dense()
    if noise:
        x = add_noise(x, relative=noise, generator=g)
    return x.to(dtype), g


def _true_error(x, model) -> float:
    """``||X - M|| / ||X||`` in float64 on data divided by its largest magnitude (no overflow)."""
    x64 = x.detach().to(torch.float64)
    peak = float(x64.abs().max())
    m64 = model.to(dtype=torch.float64)
    m64 = CPTensor(m64.weights / peak, m64.factors)
    return float(torch.linalg.vector_norm(x64 / peak - m64.to_dense()) / (x64 / peak).norm())


@pytest.mark.parametrize("noise", [0.0, 0.01])
@pytest.mark.parametrize(
    ("shape", "rank", "seed"),
    [((10, 11, 12), 2, 0), ((30, 40, 50), 5, 1), ((20, 20, 20, 20), 4, 2), ((50, 50, 50), 12, 3)],
)
def test_float32_default_options_converge(shape, rank, seed, noise):
    x, g = _planted(shape, rank, seed, noise, torch.float32)
    res = cp(x, rank, generator=g)
    assert res.converged and res.iterations < 100
    errors, floors = res.errors, res.extras["error_floors"]
    assert len(floors) == len(errors)
    # ALS never increases the error; a reported rise stays within the estimates' rounding floors.
    for k in range(1, len(errors)):
        assert errors[k] - errors[k - 1] <= floors[k] + floors[k - 1], (k, errors, floors)
    assert abs(res.error - _true_error(x, res.model)) < 1e-6
    assert res.error < (2e-6 if noise == 0 else 1.001 * noise)


def test_float64_convergence_unchanged_and_last_error_exact():
    x, g = _planted((12, 13, 14), 3, 4, 0.01)
    res = cp(x, 3, generator=g, tol=1e-10)
    assert res.converged
    assert abs(res.errors[-1] - res.errors[-2]) <= 1e-10
    # The last error is the exact residual's, or the Gram formula's within its stated bound.
    bound = res.extras["error_floors"][-1]
    assert bound <= 1e-10
    assert res.error == pytest.approx(_true_error(x, res.model), abs=max(bound, 1e-14))


# --- numerics: autocast, scale, half precision (issues 9.1, 9.2, 9.7) -------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_autocast_is_ignored(dtype):
    x, _ = _planted((10, 11, 12), 3, 5, 0.01, dtype)
    ref = cp(x, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        res = cp(x, 3)
    assert res.model.dtype == dtype
    assert res.errors == ref.errors
    assert res.error == pytest.approx(_true_error(x, res.model), rel=1e-4)


@pytest.mark.parametrize(
    ("dtype", "factor"),
    [
        (torch.float32, 1e-30),
        (torch.float32, 1e30),
        (torch.float64, 1e-200),
        (torch.float64, 1e200),
    ],
)
def test_extreme_scales_fit_as_well_as_unit_scale(dtype, factor):
    x, _ = _planted((10, 11, 12), 3, 6, 0.01)
    ref = cp(x.to(dtype), 3)
    res = cp((x * factor).to(dtype), 3)
    assert res.model.dtype == dtype
    assert all(bool(torch.isfinite(t).all()) for t in (res.model.weights, *res.model.factors))
    assert res.converged
    assert res.error == pytest.approx(ref.error, rel=1e-3)
    assert res.error == pytest.approx(_true_error((x * factor).to(dtype), res.model), rel=1e-4)
    assert float(res.model.norm()) == pytest.approx(float(x.norm()) * factor, rel=1e-3)


def test_power_of_four_scaling_is_exact():
    x, _ = _planted((8, 9, 10), 2, 7, 0.01, torch.float32)
    a = cp(x * 2.0**-60, 2, max_iter=20)
    b = cp(x * 2.0**-80, 2, max_iter=20)
    assert a.errors == b.errors
    assert torch.equal(a.model.weights, b.model.weights * 2.0**20)
    assert all(torch.equal(p, q) for p, q in zip(a.model.factors, b.model.factors))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_fitted_in_float32(dtype):
    x, _ = _planted((10, 11, 12), 3, 8, 0.01, dtype)
    res = cp(x, 3)
    assert res.model.dtype == dtype
    assert all(bool(torch.isfinite(t).all()) for t in (res.model.weights, *res.model.factors))
    # The last error is that of the returned (rounded) model.
    assert res.error == pytest.approx(_true_error(x, res.model), rel=1e-4)
    assert res.error < 0.05


# --- inputs: array-likes, sparse, requires_grad, integral ranks (issues 9.11, 9.17) -----------


def test_numpy_sparse_and_requires_grad_inputs_give_the_same_fit():
    x, _ = _planted((7, 8, 9), 2, 9, 0.01)
    ref = cp(x, 2, generator=_gen(1))
    from_numpy = cp(x.numpy(), np.int64(2), generator=_gen(1))
    sparse = cp(x.to_sparse(), 2, generator=_gen(1))
    graph = cp(x.clone().requires_grad_(True), 2, generator=_gen(1))
    for res in (from_numpy, sparse, graph):
        assert isinstance(res.model.weights, torch.Tensor) and res.errors == ref.errors
        assert not res.model.weights.requires_grad
    init = random_cp((7, 8, 9), 2, generator=_gen(2), dtype=torch.float64)
    fixed = cp(x, 2, init=init, fixed_modes=[np.int64(0)], max_iter=3)
    assert torch.equal(fixed.model.factors[0], init.factors[0])


# --- degeneracy (issue 9.4) ---------------------------------------------------------------------


def test_result_reports_degeneracy():
    a = torch.tensor([1.0, 0.0], dtype=torch.float64)
    b = torch.tensor([0.0, 1.0], dtype=torch.float64)

    def outer(u, v, w):
        return torch.einsum("i,j,k->ijk", u, v, w)

    # Rank 3 with border rank 2: rank-2 ALS diverges with two cancelling components.
    x = outer(a, a, b) + outer(a, b, a) + outer(b, a, a)
    bad = cp(x, 2, init="random", generator=_gen(0), max_iter=300)
    report = bad.extras["degeneracy"]
    assert isinstance(report, CPDegeneracy) and report.degenerate
    clean, _ = _planted((8, 9, 10), 3, 10, 0.01)
    assert not cp(clean, 3).extras["degeneracy"].degenerate
    mask = torch.rand(clean.shape, generator=_gen(3)) > 0.2
    masked = cp(clean, 3, mask=mask, max_iter=50)
    assert isinstance(masked.extras["degeneracy"], CPDegeneracy)


# --- bad input ----------------------------------------------------------------------------------


_X345 = torch.ones(3, 4, 5, dtype=torch.float64)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"rank": 0}, ValueError, "cp: rank must be a positive int; got 0"),
        ({"rank": 2.5}, TypeError, "cp: rank must be a positive int; got float"),
        ({"max_iter": 0}, ValueError, "cp: max_iter must be a positive int"),
        ({"tol": -1.0}, ValueError, "cp: tol must be a non-negative number"),
        ({"l2": -0.1}, ValueError, "cp: l2 must be a non-negative number"),
        ({"init": "nvecs"}, ValueError, "cp: init must be one of"),
        ({"fixed_modes": [5]}, IndexError, "cp: fixed_modes entries must be modes"),
        ({"fixed_modes": [0, 1, 2]}, ValueError, "fixes every mode"),
        ({"fixed_modes": [0]}, ValueError, "fixed_modes needs init=CPTensor"),
        ({"orthogonalize_iters": 1.5}, TypeError, "orthogonalize_iters must be an int"),
        ({"generator": 0}, TypeError, "cp: generator must be a torch.Generator or None; got int"),
        ({"generator": "seed"}, TypeError, "cp: generator must be a torch.Generator or None"),
        (
            {"generator": "seed", "init": "random"},
            TypeError,
            "cp: generator must be a torch.Generator or None",
        ),
        ({"callback": 3}, TypeError, "cp: callback must be callable or None; got int"),
        (
            {"init": random_cp((3, 4, 6), 2, dtype=torch.float64)},
            ValueError,
            "cp: init CPTensor has shape",
        ),
        (
            {"init": random_cp((3, 4, 5), 2, dtype=torch.float32)},
            ValueError,
            "cp: init CPTensor is torch.float32",
        ),
        ({"mask": torch.ones(3, 4, 5)}, TypeError, "cp: mask must have dtype torch.bool"),
        ({"mask": torch.ones(3, 4, dtype=torch.bool)}, ValueError, "cp: mask shape"),
        ({"mask": torch.zeros(3, 4, 5, dtype=torch.bool)}, ValueError, "mask observes no entry"),
        (
            {
                "init": random_cp((3, 4, 5), 2, dtype=torch.float64),
                "fixed_modes": [0],
                "linesearch": True,
            },
            ValueError,
            "linesearch cannot be combined",
        ),
        ({"rank": 10**9}, ValueError, r"cp: a rank-1000000000 CP fit .* needs about .* memory"),
        ({"rank": 10**12}, ValueError, r"cp: a rank-1000000000000 CP fit .* needs about"),
    ],
)
def test_bad_options(kwargs, exc, match):
    args = {"rank": 2, **kwargs}
    rank = args.pop("rank")
    with pytest.raises(exc, match=match):
        cp(_X345, rank, **args)


def _with_nan() -> torch.Tensor:
    x = torch.ones(3, 4, 5)
    x[0, 0, 0] = float("nan")
    return x


@pytest.mark.parametrize(
    ("tensor", "exc", "match"),
    [
        (None, TypeError, "cp: tensor must be a torch.Tensor or a numpy array; got NoneType"),
        ("abc", TypeError, "cp: tensor must be a torch.Tensor or a numpy array; got str"),
        (torch.ones(3, 4, 5, dtype=torch.int64), TypeError, "cp: tensor must have a floating"),
        (torch.ones(5), ValueError, "cp: tensor must have at least 2 dimensions"),
        (torch.ones(3, 0, 5), ValueError, "cp: tensor has an empty dimension"),
        (_with_nan(), ValueError, "cp: tensor contains 1 NaN or Inf entries"),
        (
            torch.sparse_coo_tensor(
                torch.tensor([[0], [0], [0]]),
                torch.tensor([1.0]),
                (5000, 5000, 5000),
                check_invariants=True,
            ),
            ValueError,
            r"cp: tensor is a torch sparse tensor .* too large to densify.*completion.sparse_cp",
        ),
    ],
)
def test_bad_tensors(tensor, exc, match):
    with pytest.raises(exc, match=match):
        cp(tensor, 2)


def test_masked_observed_entries_must_be_finite():
    with pytest.raises(ValueError, match="cp: tensor \\(observed entries\\) contains 1 NaN"):
        cp(_with_nan(), 2, mask=torch.ones(3, 4, 5, dtype=torch.bool))


@pytest.mark.cuda
def test_cuda_matches_cpu():
    g = _gen(19)
    x = random_cp((10, 11, 12), 3, generator=g, dtype=torch.float64).to_dense()
    init = random_cp((10, 11, 12), 3, generator=g, dtype=torch.float64)
    a = cp(x, 3, init=init, max_iter=20, tol=0)
    b = cp(x.cuda(), 3, init=init.to(device="cuda"), max_iter=20, tol=0)
    assert b.model.device.type == "cuda"
    np.testing.assert_allclose(a.errors, b.errors, atol=1e-8)
