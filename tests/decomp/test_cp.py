"""CP-ALS: planted recovery, agreement with TensorLy and pyttb, options, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorch.decomp import DecompositionResult, IterationState, cp
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
    ],
)
def test_bad_options(kwargs, exc, match):
    x = torch.ones(3, 4, 5, dtype=torch.float64)
    args = {"rank": 2, **kwargs}
    rank = args.pop("rank")
    with pytest.raises(exc, match=match):
        cp(x, rank, **args)


def test_bad_tensors():
    with pytest.raises(TypeError, match="cp: tensor must be a torch.Tensor"):
        cp(np.ones((3, 4, 5)), 2)
    with pytest.raises(TypeError, match="floating-point"):
        cp(torch.ones(3, 4, 5, dtype=torch.int64), 2)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        cp(torch.ones(5), 2)
    with pytest.raises(ValueError, match="empty dimension"):
        cp(torch.ones(3, 0, 5), 2)
    x = torch.ones(3, 4, 5)
    x[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        cp(x, 2)
    with pytest.raises(TypeError, match="complex tensors are not supported"):
        cp(torch.ones(3, 4, 5, dtype=torch.complex64), 2)


def test_bad_init_and_mask():
    x = torch.ones(3, 4, 5, dtype=torch.float64)
    wrong = random_cp((3, 4, 6), 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="init CPTensor has shape"):
        cp(x, 2, init=wrong)
    with pytest.raises(ValueError, match="init CPTensor is torch.float32"):
        cp(x, 2, init=random_cp((3, 4, 5), 2, dtype=torch.float32))
    with pytest.raises(TypeError, match="mask must have dtype torch.bool"):
        cp(x, 2, mask=torch.ones(3, 4, 5))
    with pytest.raises(ValueError, match="mask shape"):
        cp(x, 2, mask=torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask observes no entry"):
        cp(x, 2, mask=torch.zeros(3, 4, 5, dtype=torch.bool))
    y = x.clone()
    y[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="observed entries"):
        cp(y, 2, mask=torch.ones(3, 4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="linesearch cannot be combined"):
        cp(
            x,
            2,
            init=random_cp((3, 4, 5), 2, dtype=torch.float64),
            fixed_modes=[0],
            linesearch=True,
        )


@pytest.mark.cuda
def test_cuda_matches_cpu():
    g = _gen(19)
    x = random_cp((10, 11, 12), 3, generator=g, dtype=torch.float64).to_dense()
    init = random_cp((10, 11, 12), 3, generator=g, dtype=torch.float64)
    a = cp(x, 3, init=init, max_iter=20, tol=0)
    b = cp(x.cuda(), 3, init=init.to(device="cuda"), max_iter=20, tol=0)
    assert b.tensor.device.type == "cuda"
    np.testing.assert_allclose(a.errors, b.errors, atol=1e-8)
