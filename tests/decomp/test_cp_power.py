"""cp_power and symmetric_cp_power: TensorLy's accuracy on the same data, exact recovery of
orthogonally decomposable tensors, true errors, symmetry check, policies, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorch.decomp import cp_power, symmetric_cp_power
from factorch.random import random_cp
from factorch.tensors import CPTensor

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _odeco(shape, weights, seed, symmetric=False):
    g = _gen(seed)
    r = len(weights)
    q = [torch.linalg.qr(torch.randn(n, r, generator=g, dtype=F64)).Q for n in shape]
    if symmetric:
        q = [q[0]] * len(shape)
    return CPTensor(torch.tensor(weights, dtype=F64), tuple(q))


def _true(model, x):
    return float((model.to(dtype=F64).to_dense() - x.double()).norm() / x.double().norm())


def test_orthogonal_tensor_is_recovered_exactly():
    truth = _odeco((8, 9, 10), [5.0, 3.0, 2.0, 1.0], 0)
    res = cp_power(truth.to_dense(), 4, generator=_gen(1))
    assert res.converged and res.error < 1e-10
    torch.testing.assert_close(res.model.weights, truth.weights)
    assert truth.congruence(res.model) > 0.999999


def test_symmetric_orthogonal_tensor_is_recovered_exactly():
    truth = _odeco((7, 7, 7), [4.0, -2.5, 1.0], 2, symmetric=True)
    res = symmetric_cp_power(truth.to_dense(), 3, generator=_gen(3))
    assert res.error < 1e-10 and truth.congruence(res.model) > 0.999999
    assert all(f is res.model.factors[0] for f in res.model.factors)
    assert sorted(res.model.weights.abs().tolist()) == pytest.approx([1.0, 2.5, 4.0])


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_at_least_tensorlys_accuracy(seed, tensorly_backend):
    """Same components as TensorLy (up to sign); the total error agrees to 1e-6. (Greedy
    deflation does not minimise the total error: two converged runs can differ by ~1e-8 in it,
    either way, through the last digits of earlier components' vectors.)"""
    tl = tensorly_backend("numpy")
    from tensorly.decomposition import parafac_power_iteration

    x = random_cp((10, 11, 12), 3, generator=_gen(seed), dtype=F64).to_dense()
    np.random.seed(seed)  # noqa: NPY002 (TensorLy draws its starts from numpy's global state)
    w, f = parafac_power_iteration(x.numpy(), 3)
    theirs = float(np.linalg.norm(tl.cp_to_tensor((w, f)) - x.numpy()) / np.linalg.norm(x))
    res = cp_power(x, 3, generator=_gen(seed))
    assert res.error <= theirs * (1 + 1e-6), (res.error, theirs)
    torch.testing.assert_close(res.model.weights, torch.from_numpy(w), rtol=1e-6, atol=0)
    assert res.error == pytest.approx(_true(res.model, x), rel=1e-9)


def test_symmetric_at_least_tensorlys_accuracy(tensorly_backend):
    tl = tensorly_backend("numpy")
    from tensorly.decomposition import symmetric_parafac_power_iteration

    a = torch.randn(9, 3, generator=_gen(7), dtype=F64)
    x = CPTensor(torch.tensor([3.0, 2.0, 1.0], dtype=F64), (a, a, a)).to_dense()
    np.random.seed(7)  # noqa: NPY002 (TensorLy draws from numpy's global state)
    w, f = symmetric_parafac_power_iteration(x.numpy(), 3)
    theirs = float(np.linalg.norm(tl.cp_to_tensor((w, [f] * 3)) - x.numpy()) / np.linalg.norm(x))
    res = symmetric_cp_power(x, 3, generator=_gen(7))
    assert res.error <= theirs * (1 + 1e-6)


def test_errors_per_component_are_true():
    x = random_cp((6, 7, 8), 3, generator=_gen(8), dtype=F64).to_dense()
    res = cp_power(x, 3, generator=_gen(9))
    for k in range(1, 3):
        partial = CPTensor(res.model.weights[:k], tuple(f[:, :k] for f in res.model.factors))
        assert res.errors[k - 1] == pytest.approx(_true(partial, x), rel=1e-8)
    assert res.error == pytest.approx(_true(res.model, x), rel=1e-12)
    assert len(res.extras["sweeps"]) == 3


def test_policies_numpy_half_scale_autocast():
    truth = _odeco((6, 7, 8), [3.0, 1.0], 10)
    x = truth.to_dense()
    ref = cp_power(x, 2, generator=_gen(11))
    assert cp_power(x.numpy(), np.int64(2), generator=_gen(11)).errors == ref.errors
    big = cp_power(x * 1e200, 2, generator=_gen(11))
    assert big.error < 1e-10 and float(big.model.weights[0]) == pytest.approx(3e200)
    half = cp_power(x.half(), 2, generator=_gen(11))
    assert half.model.dtype == torch.float16
    assert half.error == pytest.approx(_true(half.model, x.half()), rel=1e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = cp_power(x.float(), 2, generator=_gen(11))
    assert auto.model.dtype == torch.float32 and auto.error < 1e-5


BAD = [
    (cp_power, "x", 2, {}, TypeError, r"cp_power: tensor must be a torch.Tensor or a numpy"),
    (cp_power, torch.ones(4), 1, {}, ValueError, r"cp_power: tensor must have at least 2"),
    (cp_power, None, 0, {}, ValueError, r"cp_power: rank must be a positive int"),
    (cp_power, None, 2, {"n_repeat": 0}, ValueError, r"cp_power: n_repeat must be a positive"),
    (cp_power, None, 2, {"max_iter": 0}, ValueError, r"cp_power: max_iter must be a positive"),
    (cp_power, None, 2, {"generator": 1}, TypeError, r"cp_power: generator must be a torch"),
    (cp_power, torch.zeros(3, 4, 5), 1, {}, ValueError, r"cp_power: tensor is all zeros"),
    (cp_power, None, 2, {"n_repeat": 10**12}, ValueError, r"cp_power: .*10\d+-start power"),
    (cp_power, torch.rand(2, 3), 10**9, {}, ValueError,
     r"cp_power: rank must be at most the number of entries \(6\) .*; got 1000000000"),
    (symmetric_cp_power, torch.ones(2, 2, 2), 9, {}, ValueError,
     r"symmetric_cp_power: rank must be at most the number of entries \(8\)"),
    (symmetric_cp_power, None, 2, {}, ValueError,
     r"symmetric_cp_power: a symmetric tensor has modes of one size; got shape \(3, 4, 5\)"),
    (symmetric_cp_power, torch.rand(4, 4, 4, generator=_gen(0)), 2, {}, ValueError,
     r"symmetric_cp_power: tensor must be symmetric .* swapping modes 0 and 1"),
]  # fmt: skip


@pytest.mark.parametrize(("fn", "tensor", "rank", "kwargs", "exc", "match"), BAD,
                         ids=[f"bad{i}" for i in range(len(BAD))])  # fmt: skip
def test_bad_input(fn, tensor, rank, kwargs, exc, match):
    if tensor is None:
        tensor = torch.rand(3, 4, 5)
    with pytest.raises(exc, match=match):
        fn(tensor, rank, **kwargs)
