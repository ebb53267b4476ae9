"""The distributed entry points on a one-rank group inside the test process: the single-process
result, the dtype and scale policies, callbacks, checkpoints and every pinned argument error.

(Multi-rank runs: ``test_distributed_solvers.py``; faults: ``test_distributed_faults.py``.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _distributed_cases import dense, observed, sparse, start

import factorch.distributed as fd
from factorch.completion import cp_als as completion_cp_als
from factorch.decomp import cp as decomp_cp
from factorch.decomp import hosvd as decomp_hosvd
from factorch.tensors import CPTensor, SparseTensor

pytestmark = pytest.mark.usefixtures("one_rank")

SHAPE = (9, 7, 5)


def _dense_shard(x) -> fd.DenseShard:
    return fd.DenseShard.from_full(x, fd.ShardLayout.even(tuple(x.shape), (1,) * x.ndim), 0)


def _sparse_shard(sp: SparseTensor) -> fd.SparseShard:
    return fd.SparseShard.from_full(sp, fd.ShardLayout.even(sp.shape, (1,) * sp.ndim), 0)


def _close(a: CPTensor, b: CPTensor, tol: float) -> None:
    torch.testing.assert_close(a.weights, b.weights, rtol=tol, atol=tol)
    for fa, fb in zip(a.factors, b.factors):
        torch.testing.assert_close(fa, fb, rtol=tol, atol=tol)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-10), (torch.float32, 2e-4)])
def test_cp_dense_matches_decomp_cp(dtype: torch.dtype, tol: float) -> None:
    x = dense(SHAPE).to(dtype)
    init = start(SHAPE).to(dtype=dtype)
    res = fd.cp(_dense_shard(x), 3, init=init, max_iter=30, tol=1e-7)
    ref = decomp_cp(x, 3, init=init, max_iter=30, tol=1e-7)
    assert res.model.dtype == dtype
    assert (res.iterations, res.converged) == (ref.iterations, ref.converged)
    _close(res.model, ref.model, tol)
    assert max(abs(a - b) for a, b in zip(res.errors, ref.errors)) < tol


def test_cp_sparse_matches_decomp_cp_and_sparse_cp() -> None:
    from factorch.completion import sparse_cp

    sp = sparse(SHAPE)
    g = torch.Generator
    res = fd.cp(_sparse_shard(sp), 3, generator=g().manual_seed(3), max_iter=12, tol=0.0)
    ref = decomp_cp(
        sp.to_dense(), 3, init="random", generator=g().manual_seed(3), max_iter=12, tol=0.0
    )
    _close(res.model, ref.model, 1e-10)
    assert max(abs(a - b) for a, b in zip(res.errors, ref.errors)) < 1e-10
    other = sparse_cp(sp, 3, init=CPTensor(torch.ones(3, dtype=torch.float64), ref.model.factors))
    assert other.model.rank == 3  # the same problem through completion's sparse CP-ALS
    res2 = fd.cp(_sparse_shard(sp), 3, init=start(SHAPE), max_iter=6, tol=0.0)
    ref2 = sparse_cp(sp, 3, init=start(SHAPE), max_iter=6, tol=0.0)
    torch.testing.assert_close(res2.model.to_dense(), ref2.model.to_dense(), rtol=1e-10, atol=1e-10)


def test_cp_half_precision_reports_the_true_error() -> None:
    x = dense(SHAPE).to(torch.float16)
    res = fd.cp(_dense_shard(x), 3, init=start(SHAPE).to(dtype=torch.float16), max_iter=10)
    assert res.model.dtype == torch.float16
    m = res.model.to(dtype=torch.float64).to_dense()
    x64 = x.double()
    true = float(torch.linalg.vector_norm(x64 - m) / torch.linalg.vector_norm(x64))
    assert abs(res.error - true) < 1e-5


@pytest.mark.parametrize("factor", [1e-200, 1e200])
def test_cp_extreme_scale_is_exact(factor: float) -> None:
    x = dense(SHAPE)
    base = fd.cp(_dense_shard(x), 3, init=start(SHAPE), max_iter=10)
    init = CPTensor(start(SHAPE).weights * factor, start(SHAPE).factors)
    res = fd.cp(_dense_shard(x * factor), 3, init=init, max_iter=10)
    assert res.errors == pytest.approx(base.errors, rel=1e-12)
    torch.testing.assert_close(res.model.weights / factor, base.model.weights, rtol=1e-12, atol=0)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_cp_nonnegative_matches_non_negative_cp_mu(kind: str) -> None:
    from factorch.decomp import non_negative_cp

    x = dense(SHAPE) if kind == "dense" else sparse(SHAPE)
    shard = _dense_shard(x) if kind == "dense" else _sparse_shard(x)
    full = x if kind == "dense" else x.to_dense()
    res = fd.cp(shard, 3, nonnegative=True, init=start(SHAPE), max_iter=20, tol=1e-9)
    ref = non_negative_cp(full, 3, method="mu", init=start(SHAPE), max_iter=20, tol=1e-9)
    assert (res.iterations, res.converged) == (ref.iterations, ref.converged)
    _close(res.model, ref.model, 1e-10)
    assert max(abs(a - b) for a, b in zip(res.errors, ref.errors)) < 1e-10
    assert all(float(f.min()) >= 0 for f in res.model.factors)
    # The unconstrained fit from the same start differs (the constraint is active).
    free = fd.cp(shard, 3, init=start(SHAPE), max_iter=20, tol=1e-9)
    assert not torch.allclose(free.model.to_dense(), res.model.to_dense(), atol=1e-6)


def test_cp_numpy_input_requires_grad_and_autocast() -> None:
    x = dense(SHAPE)
    res = fd.cp(_dense_shard(x.numpy()), 3, init=start(SHAPE), max_iter=5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        res2 = fd.cp(_dense_shard(x.clone().requires_grad_(True)), 3, init=start(SHAPE), max_iter=5)
    assert res2.model.dtype == torch.float64 and not res2.model.weights.requires_grad
    assert res.errors == pytest.approx(res2.errors, rel=1e-12)


def test_cp_callback_on_rank_zero_stops_the_run() -> None:
    seen: list[int] = []

    def stop_at_3(state) -> bool:
        seen.append(state.iteration)
        assert isinstance(state.model, CPTensor)
        return state.iteration == 3

    res = fd.cp(_dense_shard(dense(SHAPE)), 3, init=start(SHAPE), callback=stop_at_3)
    assert seen == [1, 2, 3] and res.iterations == 3 and not res.converged


def test_cp_checkpoint_resume_equals_uninterrupted(tmp_path: Path) -> None:
    x = dense(SHAPE)
    shard = _dense_shard(x)
    full = fd.cp(shard, 3, init=start(SHAPE), max_iter=9, tol=0.0)
    ckpt = fd.Checkpoint(tmp_path / "cp.safetensors", every=2)
    first = fd.cp(
        shard,
        3,
        init=start(SHAPE),
        max_iter=9,
        tol=0.0,
        checkpoint=ckpt,
        callback=lambda s: s.iteration == 5,
    )
    assert first.iterations == 5 and first.extras["resumed_from"] is None
    again = fd.cp(shard, 3, init=start(SHAPE), max_iter=9, tol=0.0, checkpoint=ckpt)
    assert again.extras["resumed_from"] == 4
    assert again.errors == full.errors  # bit-identical: the state is restored exactly
    assert torch.equal(again.model.to_dense(), full.model.to_dense())
    with pytest.raises(ValueError, match=r"checkpoint .* is for another problem \(rank 3"):
        fd.cp(shard, 2, init="random", checkpoint=ckpt)


def test_cp_als_matches_completion() -> None:
    train, val = observed(SHAPE)
    opts = {"init": start(SHAPE, 9), "max_iter": 15, "tol": 1e-10, "l2": 1e-2}
    res = fd.cp_als(_sparse_shard(train), 3, validation=_sparse_shard(val), **opts)
    ref = completion_cp_als(train, 3, validation=val, **opts)
    torch.testing.assert_close(res.model.to_dense(), ref.model.to_dense(), rtol=1e-10, atol=1e-10)
    assert (res.best_epoch, res.epochs, res.converged) == (
        ref.best_epoch,
        ref.epochs,
        ref.converged,
    )
    assert res.val_rmse == pytest.approx(ref.val_rmse, abs=1e-10)
    g = torch.Generator
    res = fd.cp_als(_sparse_shard(train), 3, generator=g().manual_seed(1), l2=1e-3, max_iter=5)
    ref = completion_cp_als(
        train, 3, init="random", generator=g().manual_seed(1), l2=1e-3, max_iter=5
    )
    assert res.train_rmse == pytest.approx(ref.train_rmse, abs=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cp_als_ridge_that_dwarfs_tiny_data_gives_the_zero_optimum(dtype: torch.dtype) -> None:
    # Values near 1e-35 with an absolute l2 = 1e-3: the ridge in scaled units is far beyond
    # float32's range; the optimum is the zero model and its RMSE the data's RMS.
    train, _ = observed((6, 5, 4))
    train = SparseTensor(train.indices, (train.values * 1e-35).to(dtype), train.shape)
    res = fd.cp_als(_sparse_shard(train), 2, l2=1e-3, max_iter=3, generator=torch.Generator())
    ref = completion_cp_als(
        SparseTensor(train.indices, train.values.double(), train.shape),
        2,
        init="random",
        generator=torch.Generator(),
        l2=1e-3,
        max_iter=3,
    )
    rms = float(train.values.double().pow(2).mean().sqrt())
    assert res.model.dtype == dtype
    assert res.train_rmse[-1] == pytest.approx(rms, rel=1e-5)
    assert ref.train_rmse[-1] == pytest.approx(rms, rel=1e-5)
    assert float(res.model.to_dense().double().abs().max()) <= 1e-30 * rms


def test_cp_als_checkpoint_resume(tmp_path: Path) -> None:
    train, val = observed(SHAPE)
    opts = {"init": start(SHAPE, 9), "max_iter": 8, "tol": 0.0, "l2": 1e-2, "patience": 50}
    shards = {"shard": _sparse_shard(train), "validation": _sparse_shard(val)}
    full = fd.cp_als(shards["shard"], 3, validation=shards["validation"], **opts)
    ckpt = fd.Checkpoint(tmp_path / "als.safetensors", every=3)
    fd.cp_als(
        shards["shard"],
        3,
        validation=shards["validation"],
        checkpoint=ckpt,
        callback=lambda s: s.epoch == 4,
        **opts,
    )
    again = fd.cp_als(shards["shard"], 3, validation=shards["validation"], checkpoint=ckpt, **opts)
    assert again.extras["resumed_from"] == 3
    assert again.val_rmse == full.val_rmse and again.best_epoch == full.best_epoch
    assert torch.equal(again.model.to_dense(), full.model.to_dense())


@pytest.mark.parametrize(
    "kwargs", [{"rank": (4, 3, 2)}, {"eps": 0.1}, {"eps": 0.1, "sequential": False}]
)
def test_hosvd_matches_decomp_hosvd(kwargs) -> None:
    x = dense(SHAPE)
    res = fd.hosvd(_dense_shard(x), **kwargs)
    ref = decomp_hosvd(x, **kwargs)
    torch.testing.assert_close(res.model.core, ref.model.core, rtol=1e-10, atol=1e-10)
    for a, b in zip(res.model.factors, ref.model.factors):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert res.error == pytest.approx(ref.error, abs=1e-12)


# --- pinned argument errors (each raised identically on every rank: see the agreement tests) ---
X = dense(SHAPE)
SHARD = _dense_shard(X)
SP = _sparse_shard(sparse(SHAPE))
TWO_RANKS = fd.DenseShard.from_full(X, fd.ShardLayout.even(SHAPE, (2, 1, 1)), 0)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: fd.cp(SHARD, 0), ValueError, "distributed.cp: rank must be a positive int"),
        (lambda: fd.cp(SHARD, 2.5), TypeError, "distributed.cp: rank must be"),
        (lambda: fd.cp(X, 2), TypeError, "distributed.cp: shard must be a DenseShard or"),
        (lambda: fd.cp(TWO_RANKS, 2), ValueError, r"layout has 2 ranks \(grid \(2, 1, 1\)\)"),
        (lambda: fd.cp(SHARD, 2, tol=-1.0), ValueError, "tol must be a finite number >= 0"),
        (lambda: fd.cp(SHARD, 2, l2="1"), TypeError, "l2 must be a number"),
        (lambda: fd.cp(SHARD, 2, max_iter=0), ValueError, "max_iter must be a positive int"),
        (lambda: fd.cp(SHARD, 2, init="svd"), ValueError, "init must be 'random' or a CPTensor"),
        (
            lambda: fd.cp(SHARD, 2, init=start((9, 7, 4), rank=2)),
            ValueError,
            r"init CPTensor has shape \(9, 7, 4\)",
        ),
        (lambda: fd.cp(SHARD, 2, generator=0), TypeError, "generator"),
        (lambda: fd.cp(SHARD, 2, callback=3), TypeError, "callback must be callable"),
        (lambda: fd.cp(SHARD, 2, checkpoint="c.st"), TypeError, "checkpoint must be a factorch"),
        (lambda: fd.cp(SHARD, 2, timeout=0), ValueError, "timeout must be a positive number"),
        (lambda: fd.cp(SHARD, 2, nonnegative=1), TypeError, "nonnegative must be a bool; got int"),
        (
            lambda: fd.cp(SHARD, 2, nonnegative=True, l2=0.1),
            ValueError,
            "l2 must be 0 with nonnegative=True; got 0.1",
        ),
        (
            lambda: fd.cp(_dense_shard(-dense(SHAPE)), 2, nonnegative=True),
            ValueError,
            "nonnegative=True needs data without negative entries",
        ),
        (lambda: fd.cp(SHARD, 10**9), ValueError, "distributed.cp: a rank-1000000000 .* needs"),
        (lambda: fd.cp_als(SHARD, 2), TypeError, "distributed.cp_als: shard must be a SparseShard"),
        (lambda: fd.cp_als(SP, 2, validation=X), TypeError, "validation must be a SparseShard"),
        (lambda: fd.cp_als(SP, 2, patience=0), ValueError, "patience must be a positive int"),
        (lambda: fd.cp_als(SP, 2, init="svd"), ValueError, "init must be 'random' or a CPTensor"),
        (lambda: fd.hosvd(SHARD, 2, eps=0.1), ValueError, "give exactly one of rank .* and eps"),
        (lambda: fd.hosvd(SHARD), ValueError, "got neither"),
        (lambda: fd.hosvd(SP, 2), TypeError, "distributed.hosvd: shard must be a DenseShard"),
        (lambda: fd.hosvd(SHARD, (10, 2, 2)), ValueError, "rank 10 for mode 0 exceeds"),
        (lambda: fd.hosvd(SHARD, 2, sequential=1), TypeError, "sequential must be a bool"),
    ],
)
def test_argument_errors(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


def test_redistribute_on_one_rank_is_the_tensor() -> None:
    sp = sparse(SHAPE)
    shard = fd.redistribute(sp.indices, sp.values, SHAPE)
    assert shard.nnz == sp.nnz and torch.equal(shard.values, sp.values)
    with pytest.raises(IndexError, match=r"distributed.redistribute: indices in mode 1"):
        fd.redistribute(torch.tensor([[0], [7], [0]]), torch.ones(1), SHAPE)


def test_read_dense_shard_of_a_shared_npy(tmp_path: Path) -> None:
    x = dense(SHAPE)
    np.save(tmp_path / "x.npy", x.numpy())
    shard = fd.read_dense_shard(tmp_path / "x.npy")
    assert torch.equal(shard.local, x)
    with pytest.raises(
        FileNotFoundError, match=r"distributed.read_dense_shard: no such file: .*y\.npy"
    ):
        fd.read_dense_shard(tmp_path / "y.npy")


@pytest.mark.cuda
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_cp_on_cuda_matches_decomp_cp_and_stays_on_the_device(kind: str) -> None:
    # A gloo group with CUDA data: collectives go through host copies, results stay on the GPU.
    x = dense(SHAPE) if kind == "dense" else sparse(SHAPE)
    x = x.to("cuda")
    shard = _dense_shard(x) if kind == "dense" else _sparse_shard(x)
    init = start(SHAPE).to(device="cuda")
    res = fd.cp(shard, 3, init=init, max_iter=10, tol=0.0)
    full = x if kind == "dense" else x.to_dense()
    ref = decomp_cp(full, 3, init=init, max_iter=10, tol=0.0)
    assert res.model.weights.device.type == "cuda"
    _close(res.model, ref.model, 1e-8)
