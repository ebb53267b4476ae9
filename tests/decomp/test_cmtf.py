"""cmtf (coupled matrix-tensor factorization): planted recovery, the coupling's benefit,
TensorLy's accuracy, block weights, missing entries in every block, policies, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from factorch.decomp import CMTFModel, cmtf, cp
from factorch.tensors import CPTensor

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _planted(shape=(10, 11, 12), cols=(9,), modes=(0,), rank=3, seed=0):
    g = _gen(seed)
    factors = [torch.randn(n, rank, generator=g, dtype=F64) for n in shape]
    x = CPTensor.from_factors(factors).to_dense()
    vs = [torch.randn(c, rank, generator=g, dtype=F64) for c in cols]
    ys = [factors[n] @ v.T for n, v in zip(modes, vs)]
    return x, ys, factors


def _noisy(t, level, seed):
    e = torch.randn(t.shape, generator=_gen(seed), dtype=F64)
    return t + level * t.norm() / e.norm() * e


def _congruence(u, v):
    un, vn = u / u.norm(dim=0), v / v.norm(dim=0)
    return float((un.T @ vn).abs().max(0).values.min())


def _weighted_error(model: CMTFModel, x, ys, weights=None, mask=None, masks=None):
    weights = weights or [1.0] * (len(ys) + 1)
    masks = masks or [None] * len(ys)
    blocks = [(x, model.tensor.to_dense(), mask)] + [
        (y, m.to_dense(), k) for y, m, k in zip(ys, model.matrices, masks)
    ]
    num = den = 0.0
    for w, (data, fit, k) in zip(weights, blocks):
        keep = torch.ones_like(data, dtype=torch.bool) if k is None else k
        num += w * float(torch.where(keep, data - fit, 0).square().sum())
        den += w * float(torch.where(keep, data, 0).square().sum())
    return math.sqrt(num / den)


def test_planted_recovery_and_shared_factor():
    x, ys, factors = _planted(cols=(9, 7), modes=(0, 2), seed=1)
    res = cmtf(x, ys, 3, modes=[0, 2], max_iter=1000, tol=1e-14)
    assert res.converged and res.error < 1e-8
    model = res.model
    assert model.matrices[0].factors[0] is model.tensor.factors[0]
    assert model.matrices[1].factors[0] is model.tensor.factors[2]
    assert _congruence(model.tensor.factors[0], factors[0]) > 0.999
    assert res.error == pytest.approx(_weighted_error(model, x, ys), abs=1e-12)
    assert max(res.extras["block_errors"]) < 1e-8


def test_coupling_recovers_the_shared_mode_better_than_cp_alone():
    """The paper-level property: a third of the tensor's mode-0 slices are missing entirely, so
    CP on the tensor alone cannot place those rows of A; an informative matrix on mode 0 lets
    CMTF recover all of A."""
    for seed in (2, 3):
        x, ys, factors = _planted(shape=(15, 8, 9), cols=(20,), seed=seed)
        noisy = _noisy(x, 0.05, seed)
        mask = torch.ones(x.shape, dtype=torch.bool)
        mask[:5] = False
        coupled = cmtf(noisy, ys, 3, mask=mask, max_iter=500)
        alone = cp(noisy, 3, mask=mask, max_iter=500)
        c_coupled = _congruence(coupled.model.tensor.factors[0], factors[0])
        c_alone = _congruence(alone.model.factors[0], factors[0])
        assert c_coupled > 0.999 and c_alone < 0.9, (c_coupled, c_alone)


def test_at_least_tensorlys_accuracy(tensorly_backend):
    tl = tensorly_backend("numpy")
    from tensorly.decomposition import coupled_matrix_tensor_3d_factorization as tl_cmtf

    x, ys, _ = _planted(seed=4)
    noisy, y = _noisy(x, 0.1, 5), _noisy(ys[0], 0.1, 6)
    tt, tm, _ = tl_cmtf(noisy.numpy(), y.numpy(), 3, n_iter_max=200)
    theirs = math.sqrt(
        (float((noisy - torch.from_numpy(tl.cp_to_tensor(tt))).square().sum())
         + float((y - torch.from_numpy(tl.cp_to_tensor(tm))).square().sum()))
        / (float(noisy.square().sum()) + float(y.square().sum()))
    )  # fmt: skip
    ours = cmtf(noisy, y, 3, max_iter=200)
    assert ours.error <= theirs * (1 + 1e-6), (ours.error, theirs)


def test_block_weights_trade_accuracy_between_blocks():
    x, ys, _ = _planted(seed=6)
    x, y = _noisy(x, 0.2, 7), _noisy(ys[0], 0.2, 8)
    light = cmtf(x, y, 2, weights=[1.0, 0.01], max_iter=300)
    heavy = cmtf(x, y, 2, weights=[1.0, 100.0], max_iter=300)
    assert heavy.extras["block_errors"][1] < light.extras["block_errors"][1]
    assert heavy.extras["block_errors"][0] > light.extras["block_errors"][0]
    assert heavy.error == pytest.approx(
        _weighted_error(heavy.model, x, [y], [1.0, 100.0]), rel=1e-9
    )


def test_missing_entries_in_every_block():
    x, ys, _ = _planted(seed=9)
    mask = torch.rand(x.shape, generator=_gen(10)) > 0.3
    ymask = torch.rand(ys[0].shape, generator=_gen(11)) > 0.3
    hidden = torch.where(mask, x, torch.nan)
    yh = torch.where(ymask, ys[0], torch.nan)
    res = cmtf(hidden, yh, 3, mask=mask, matrix_masks=[ymask], max_iter=2000, tol=1e-14)
    gap_x = (res.model.tensor.to_dense() - x)[~mask].norm() / x[~mask].norm()
    gap_y = (res.model.matrices[0].to_dense() - ys[0])[~ymask].norm() / ys[0][~ymask].norm()
    assert float(gap_x) < 1e-6 and float(gap_y) < 1e-6
    assert res.error == pytest.approx(
        _weighted_error(res.model, x, ys, mask=mask, masks=[ymask]), abs=1e-10
    )


def test_policies_numpy_autocast_half_and_scale():
    x, ys, _ = _planted(seed=12)
    x, y = _noisy(x, 0.05, 13), _noisy(ys[0], 0.05, 14)
    ref = cmtf(x, y, 3, max_iter=30)
    assert cmtf(x.numpy(), y.numpy(), np.int64(3), max_iter=30).errors == ref.errors
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = cmtf(x.float(), y.float(), 3, max_iter=30)
    assert auto.model.tensor.dtype == torch.float32
    assert auto.error == pytest.approx(ref.error, rel=1e-4)
    half = cmtf(x.half(), y.half(), 3, max_iter=30)
    assert half.model.tensor.dtype == torch.float16
    true = _weighted_error(half.model.to(dtype=F64), x.half().double(), [y.half().double()])
    assert half.error == pytest.approx(true, rel=1e-3)
    for factor in (1e-200, 1e200):
        big = cmtf(x * factor, y * factor, 3, max_iter=30)
        assert big.error == pytest.approx(ref.error, rel=1e-6)
        assert float(big.model.tensor.norm()) == pytest.approx(
            float(ref.model.tensor.norm()) * factor, rel=1e-6
        )


def test_callback_and_absurd_rank():
    x, ys, _ = _planted(seed=15)
    seen = []
    res = cmtf(x, ys, 2, callback=lambda s: seen.append(s.iteration) or s.iteration == 3)
    assert seen == [1, 2, 3] and res.iterations == 3 and isinstance(res.model, CMTFModel)
    with pytest.raises(ValueError, match=r"cmtf: .*rank-1000000000 coupled fit"):
        cmtf(x, ys, 10**9)


BAD = [
    ({"matrices": "y"}, TypeError, r"cmtf: matrices must be a matrix or a non-empty sequence"),
    ({"matrices": ["y"]}, TypeError, r"cmtf: matrices\[0\] must be a torch.Tensor or a numpy"),
    ({"matrices": []}, TypeError, r"cmtf: matrices must be a matrix or a non-empty sequence"),
    ({"matrices": torch.ones(4, 3, dtype=F64)}, ValueError,
     r"cmtf: matrices\[0\] has 4 rows but mode 0 of the tensor has size 5"),
    ({"matrices": torch.ones(5, 3, dtype=torch.float32)}, ValueError,
     r"cmtf: matrices\[0\] is torch.float32 on cpu; the tensor is torch.float64"),
    ({"matrices": torch.ones(5)}, ValueError, r"cmtf: matrices\[0\] must have 2 dimensions"),
    ({"modes": [0, 1]}, ValueError, r"cmtf: modes needs one entry per matrix \(1\); got 2"),
    ({"modes": 3}, IndexError, r"cmtf: modes\[0\] must be a mode in \[0, 2\]; got 3"),
    ({"modes": 1.5}, TypeError, r"cmtf: modes\[0\] must be an int"),
    ({"weights": [1.0]}, ValueError, r"cmtf: weights needs one entry per block"),
    ({"weights": [1.0, 0.0]}, ValueError, r"cmtf: weights\[1\] must be positive; got 0.0"),
    ({"weights": [1.0, -2.0]}, ValueError, r"cmtf: weights\[1\] must be a finite non-negative"),
    ({"matrix_masks": [None, None]}, ValueError, r"cmtf: matrix_masks needs one mask"),
    ({"matrix_masks": [torch.ones(5, 3)]}, TypeError, r"cmtf: mask must have dtype torch.bool"),
    ({"matrices": torch.full((5, 3), math.nan, dtype=F64)}, ValueError,
     r"cmtf: matrices\[0\] has NaN or Inf on observed entries"),
    ({"init": "hosvd"}, ValueError, r"cmtf: init must be one of \('svd', 'random'\)"),
    ({"l2": -1.0}, ValueError, r"cmtf: l2 must be a finite non-negative"),
    ({"generator": 3}, TypeError, r"cmtf: generator must be a torch.Generator"),
    ({"rank": 0}, ValueError, r"cmtf: rank must be a positive int"),
    ({"tensor": torch.ones(5)}, ValueError, r"cmtf: tensor must have at least 2"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "exc", "match"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_input(change, exc, match):
    args = {"tensor": torch.rand(5, 6, 7, dtype=F64), "matrices": torch.rand(5, 3, dtype=F64),
            "rank": 2} | change  # fmt: skip
    tensor, matrices, rank = args.pop("tensor"), args.pop("matrices"), args.pop("rank")
    with pytest.raises(exc, match=match):
        cmtf(tensor, matrices, rank, **args)


def test_all_zero_blocks_are_refused():
    with pytest.raises(ValueError, match=r"cmtf: every block is all zeros"):
        cmtf(torch.zeros(3, 4, 5), torch.zeros(3, 2), 1)
