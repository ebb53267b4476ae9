"""Rank selection: core consistency, rank scans, and real data against TensorLy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorch.decomp import CPDegeneracy, RankScan, corcondia, cp, rank_scan
from factorch.random import add_noise, random_cp
from factorch.tensors import CPTensor


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _slow_corcondia(x: torch.Tensor, model: CPTensor) -> float:
    """Reference: least-squares core by solving with the Kronecker product of the factors."""
    factors = [f.clone() for f in model.factors]
    factors[0] = factors[0] * model.weights
    kron = factors[0]
    for f in factors[1:]:
        kron = torch.kron(kron, f)
    core = torch.linalg.lstsq(kron, x.reshape(-1, 1)).solution.reshape((model.rank,) * x.ndim)
    ideal = torch.zeros_like(core)
    for r in range(model.rank):
        ideal[(r,) * x.ndim] = 1
    return float(100 * (1 - ((core - ideal) ** 2).sum() / model.rank))


def test_corcondia_matches_reference_and_is_100_for_true_model():
    g = _gen(0)
    truth = random_cp((6, 7, 8), 3, generator=g, dtype=torch.float64)
    x = truth.to_dense()
    assert corcondia(x, truth) == pytest.approx(100.0, abs=1e-6)
    noisy = add_noise(x, relative=0.2, generator=g)
    model = cp(noisy, 4, generator=g, max_iter=50).model
    assert corcondia(noisy, model) == pytest.approx(_slow_corcondia(noisy, model), abs=1e-6)


def test_rank_scan_recommends_planted_rank():
    g = _gen(1)
    x = add_noise(
        random_cp((12, 13, 14), 3, generator=g, dtype=torch.float64).to_dense(),
        relative=0.02,
        generator=g,
    )
    scan = rank_scan(x, [1, 2, 3, 4, 5], starts=3, max_iter=200, generator=g)
    assert isinstance(scan, RankScan)
    assert scan.ranks == (1, 2, 3, 4, 5)
    assert all(len(e) == 3 for e in scan.errors)
    assert scan.best_errors == tuple(min(e) for e in scan.errors)
    assert scan.recommended == 3
    assert "rank 3" in scan.reason
    assert scan.corcondia[2] > 90 and scan.corcondia[3] < 80
    assert [m.rank for m in scan.models] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_masked_rank_scan_fits_the_observed_entries(dtype):
    g = _gen(1)
    truth = random_cp((12, 13, 14), 3, generator=g, dtype=dtype)
    x = add_noise(truth.to_dense(), relative=0.02, generator=g)
    mask = torch.rand(x.shape, generator=g) >= 0.3
    x = torch.where(mask, x, torch.nan)  # missing entries are NaN: only the mask reads them
    scan = rank_scan(x, [1, 2, 3, 4], mask=mask, starts=2, max_iter=200, generator=_gen(4))
    # Each fit is cp with the mask (EM imputation), the same draws as a direct call.
    gen = _gen(4)
    for rank, errs in zip(scan.ranks, scan.errors):
        for start, err in enumerate(errs):
            init = "svd" if start == 0 else "random"
            ref = cp(x, rank, init=init, mask=mask, max_iter=200, linesearch=True, generator=gen)
            assert err == pytest.approx(ref.error, rel=1e-4 if dtype == torch.float32 else 1e-10)
    # CORCONDIA on the tensor completed by the best model.
    for model, cc in zip(scan.models, scan.corcondia):
        full = torch.where(mask, x, model.to_dense())
        assert cc == pytest.approx(corcondia(full, model), rel=1e-6)
    # The planted rank fits to the noise level with a consistent core; rank 2 does not fit.
    assert scan.best_errors[2] < 0.025 < 0.2 < scan.best_errors[1]
    assert min(scan.corcondia[:3]) > 95
    # Never below the planted rank; above it is common with missing data (4 on this tensor:
    # the rank-4 model keeps core consistency 100, see the rank_scan docstring).
    assert scan.recommended >= 3


def _with_nan() -> torch.Tensor:
    x = torch.ones(3, 4, 5)
    x[0, 0, 0] = torch.nan
    return x


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (
            lambda: rank_scan(_with_nan(), [1]),
            ValueError,
            r"rank_scan: tensor contains 1 NaN or Inf entries; .*\(use a mask",
        ),
        (
            lambda: rank_scan(_with_nan(), [1], mask=(~torch.isnan(_with_nan())).double()),
            TypeError,
            r"rank_scan: mask must have dtype torch.bool \(True = observed\)",
        ),
    ],
)
def test_masked_rank_scan_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_rank_scan_callback_stops_early():
    x = random_cp((5, 6, 7), 2, generator=_gen(2), dtype=torch.float64).to_dense()
    calls = []

    def cb(rank, start, result):
        calls.append((rank, start))
        return rank == 2

    scan = rank_scan(x, [1, 2, 3], starts=2, max_iter=20, generator=_gen(3), callback=cb)
    assert scan.ranks == (1, 2)
    assert calls == [(1, 0), (1, 1), (2, 0)]


_X345 = torch.ones(3, 4, 5)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: rank_scan(_X345, 3), TypeError, "rank_scan: ranks must be a non-empty sequence"),
        (lambda: rank_scan(_X345, []), TypeError, "rank_scan: ranks must be a non-empty sequence"),
        (
            lambda: rank_scan(_X345, [0, 1]),
            ValueError,
            "rank_scan: each rank must be a positive int; got 0",
        ),
        (lambda: rank_scan(_X345, [1], starts=0), ValueError, "rank_scan: starts must be a pos"),
        (lambda: rank_scan(_X345, [1], max_iter=0), ValueError, "rank_scan: max_iter must be"),
        (lambda: rank_scan(_X345, [1], tol=-1.0), ValueError, "rank_scan: tol must be a non-neg"),
        (
            lambda: rank_scan(_X345, [1], generator=0),
            TypeError,
            "rank_scan: generator must be a torch.Generator or None; got int",
        ),
        (
            lambda: rank_scan(_X345, [1, 10**9]),
            ValueError,
            r"rank_scan: a rank-1000000000 CP fit .* needs about",
        ),
        (lambda: rank_scan(None, [1]), TypeError, "rank_scan: tensor must be a torch.Tensor or"),
        (lambda: corcondia(_X345, "model"), TypeError, "corcondia: model must be a CPTensor"),
        (
            lambda: corcondia(_X345, random_cp((3, 4, 6), 2)),
            ValueError,
            "corcondia: model shape",
        ),
        (lambda: corcondia("x", random_cp((3, 4, 5), 2)), TypeError, "corcondia: tensor must be"),
    ],
)
def test_rank_scan_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --- numerics, inputs and degeneracy (issues 9.1, 9.2, 9.4, 9.7, 9.8, 9.17) ---------------------


def _planted(dtype=torch.float64, factor=1.0):
    g = _gen(20)
    x = random_cp((7, 8, 9), 2, generator=g, dtype=torch.float64).to_dense()
    return (add_noise(x, relative=0.02, generator=g) * factor).to(dtype)


@pytest.mark.parametrize(
    ("dtype", "factor"),
    [
        (torch.float32, 1e-30),
        (torch.float32, 1e30),
        (torch.float64, 1e-200),
        (torch.float64, 1e200),
        (torch.float16, 1.0),
        (torch.bfloat16, 1.0),
    ],
)
def test_rank_scan_and_corcondia_at_every_scale_and_dtype(dtype, factor):
    ref = rank_scan(_planted(), [1, 2, 3], starts=1, max_iter=50)
    x = _planted(dtype, factor)
    scan = rank_scan(x, [1, 2, 3], starts=1, max_iter=50)
    assert all(m.dtype == dtype for m in scan.models)
    tol = 1e-3 if dtype in (torch.float32, torch.float64) else 2e-2
    assert scan.best_errors == pytest.approx(ref.best_errors, rel=tol, abs=tol * 1e-2)
    assert scan.corcondia[:2] == pytest.approx(ref.corcondia[:2], abs=1.0)
    assert scan.recommended == ref.recommended


def test_rank_scan_ignores_autocast_and_accepts_numpy():
    x = _planted(torch.float32)
    ref = rank_scan(x, [1, 2], starts=1, max_iter=30)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        res = rank_scan(x, [1, 2], starts=1, max_iter=30)
        cc = corcondia(x, ref.models[1])
    assert res.best_errors == ref.best_errors and res.models[1].dtype == torch.float32
    assert cc == pytest.approx(ref.corcondia[1], abs=1e-3)
    np_res = rank_scan(x.numpy(), [np.int64(1), 2], starts=1, max_iter=30)
    assert np_res.best_errors == ref.best_errors
    assert corcondia(x.numpy(), ref.models[1]) == pytest.approx(ref.corcondia[1], abs=1e-3)


def test_rank_scan_reports_degeneracy_per_rank():
    scan = rank_scan(_planted(), [1, 2], starts=1, max_iter=30)
    assert len(scan.degeneracy) == 2
    assert all(isinstance(d, CPDegeneracy) and not d.degenerate for d in scan.degeneracy)


def test_covid19_serology_explained_variance_vs_tensorly():
    """Real data: per rank, factorch's best of k starts (line search on, as rank_scan does)
    explains no less variance than TensorLy's best of k starts with its default options."""
    tl = pytest.importorskip("tensorly")
    from tensorly.decomposition import parafac

    from factorch.datasets import load

    data = load("covid19_serology")
    x = data.tensor.to(torch.float64)
    if data.mask is not None:
        pytest.skip("serology tensor has missing values in this build")
    x = x / torch.linalg.vector_norm(x)
    starts = 8
    previous = tl.get_backend()
    tl.set_backend("numpy")
    try:
        for rank in range(1, 7):
            ours = min(
                cp(
                    x,
                    rank,
                    init="svd" if s == 0 else "random",
                    generator=_gen(10 + s),
                    max_iter=200,
                    tol=1e-9,
                    linesearch=True,
                ).error
                for s in range(starts)
            )
            theirs = []
            for s in range(starts):
                init = "svd" if s == 0 else "random"
                cpt = parafac(x.numpy(), rank, init=init, n_iter_max=200, tol=1e-9, random_state=s)
                rec = tl.cp_to_tensor(cpt)
                theirs.append(float(((x.numpy() - rec) ** 2).sum() ** 0.5))
            # explained variance 1 - err^2: ours no worse than TensorLy's best (small slack)
            assert 1 - ours**2 >= 1 - min(theirs) ** 2 - 1e-4, rank
    finally:
        tl.set_backend(previous)


def test_rank_for_error_targets_meet_their_guarantee():
    from factorch.decomp import hosvd, tt_rank_for_error, tt_svd, tucker_rank_for_error
    from factorch.random import random_tt, random_tucker

    g = _gen(20)
    x = add_noise(
        random_tucker((10, 11, 12), (2, 3, 4), generator=g, dtype=torch.float64).to_dense(),
        relative=1e-4,
        generator=g,
    )
    ranks = tucker_rank_for_error(x, 1e-2)
    assert ranks == (2, 3, 4)
    assert hosvd(x, ranks).error <= 1e-2
    y = random_tt((6, 7, 8, 9), 3, generator=g, dtype=torch.float64).to_dense()
    tt_ranks = tt_rank_for_error(y, 1e-8)
    assert tt_ranks == (1, 3, 3, 3, 1)
    assert tt_svd(y, tt_ranks).error < 1e-8


def test_tucker_rank_for_error_old_keyword_warns():
    from factorch.decomp import tucker_rank_for_error

    x = torch.ones(4, 5, 6, dtype=torch.float64)
    with pytest.warns(DeprecationWarning, match=r"tucker_rank_for_error: error= is deprecated"):
        assert tucker_rank_for_error(x, error=1e-8) == (1, 1, 1)
    with pytest.raises(TypeError, match="tucker_rank_for_error: error is the deprecated name"):
        tucker_rank_for_error(x, 1e-8, error=1e-8)
