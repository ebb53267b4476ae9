"""The small-tensor CP-ALS path (``decomp/_cp_small.py``) against the reference dimension-tree path.

Both paths compute the same iterates up to rounding, so every decomposition must report the same
errors (to 1e-10 in float64), the same number of sweeps and the same convergence flag.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from factorch.algebra.internal import mttkrp
from factorch.decomp import _cp, cp
from factorch.decomp._cp_small import SMALL_ENTRIES, SmallSweep
from factorch.random import add_noise, random_cp
from factorch.tensors import CPTensor


def _data(
    shape: tuple[int, ...], rank: int, seed: int, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = random_cp(shape, rank, generator=gen, dtype=torch.float64).to_dense()
    x = add_noise(x, relative=0.05, generator=gen)
    if dtype.is_complex:
        x = x + 0.5j * torch.randn(shape, generator=gen, dtype=torch.float64)
    return x.to(dtype)


def _fit(path: str, monkeypatch: pytest.MonkeyPatch, *args: Any, **kwargs: Any) -> Any:
    with monkeypatch.context() as m:
        m.setattr(_cp, "_PATH", path)
        return cp(*args, **kwargs)


def _start(shape: tuple[int, ...], rank: int, seed: int, dtype: torch.dtype) -> CPTensor:
    gen = torch.Generator().manual_seed(seed)
    factors = tuple(torch.rand(s, rank, generator=gen, dtype=torch.float64) for s in shape)
    return CPTensor(torch.ones(rank, dtype=torch.float64), factors).to(dtype=dtype)


CASES = [
    ((10, 10, 10), 3, {}),
    ((438, 6, 11), 3, {}),
    ((8, 9, 10, 7), 4, {}),
    ((20, 30), 3, {}),
    ((5, 6, 7), 8, {}),  # rank above every mode size (R x R algebra in torch)
    ((12, 10, 9), 5, {}),  # the host's Gauss-Jordan loops (rank 3 is unrolled)
    ((10, 10, 10), 5, {"l2": 0.1, "linesearch": True}),
    ((10, 10, 10), 3, {"linesearch": True}),
    ((10, 10, 10), 3, {"l2": 0.1}),
    ((12, 11, 10), 3, {"orthogonalize_iters": 3}),
    ((10, 10, 10), 3, {"fixed_modes": (1,)}),
    ((10, 10, 10), 3, {"fixed_modes": (2,)}),
    ((10, 10, 10), 3, {"mask": 0.2}),
    ((6, 7, 5, 4), 3, {"mask": 0.3, "linesearch": True}),
    ((10, 10, 10), 3, {"complex": True}),
    ((9, 8, 7), 2, {"complex": True, "mask": 0.2, "l2": 0.01}),
    ((10, 10, 10), 3, {"tol": 1e-9, "max_iter": 200}),
    ((10, 10, 10), 3, {"init": "svd", "tol": 1e-7}),
    ((6, 5, 4, 3), 2, {"init": "svd", "tol": 1e-8}),  # strided start factors, 4 modes
]


@pytest.mark.parametrize(("shape", "rank", "options"), CASES)
def test_small_path_matches_reference(
    shape: tuple[int, ...], rank: int, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = dict(options)
    dtype = torch.complex128 if opts.pop("complex", False) else torch.float64
    x = _data(shape, rank, seed=len(shape) + rank, dtype=dtype)
    if "mask" in opts:
        gen = torch.Generator().manual_seed(5)
        opts["mask"] = torch.rand(shape, generator=gen) > opts["mask"]
    if opts.get("init") != "svd":
        opts["init"] = _start(shape, rank, seed=3, dtype=dtype)
    opts.setdefault("tol", 0.0)
    opts.setdefault("max_iter", 25)
    small = _fit("small", monkeypatch, x, rank, generator=torch.Generator().manual_seed(1), **opts)
    ref = _fit(
        "reference", monkeypatch, x, rank, generator=torch.Generator().manual_seed(1), **opts
    )
    assert small.iterations == ref.iterations
    assert small.converged == ref.converged
    assert max(abs(a - b) for a, b in zip(small.errors, ref.errors)) < 1e-10
    torch.testing.assert_close(
        small.model.to_dense(), ref.model.to_dense(), rtol=1e-8, atol=1e-8 * float(x.abs().max())
    )
    if "fixed_modes" in opts:
        for m in opts["fixed_modes"]:
            torch.testing.assert_close(small.model.factors[m], ref.model.factors[m])


def test_small_path_float32_matches_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    x = _data((10, 12, 9), 3, seed=2, dtype=torch.float32)
    init = _start((10, 12, 9), 3, seed=4, dtype=torch.float32)
    small = _fit("small", monkeypatch, x, 3, init=init, max_iter=15, tol=0)
    ref = _fit("reference", monkeypatch, x, 3, init=init, max_iter=15, tol=0)
    assert small.model.dtype == torch.float32
    assert max(abs(a - b) for a, b in zip(small.errors, ref.errors)) < 1e-4


@pytest.mark.parametrize("rank", [3, 4, 8])  # host route unrolled, host loops, torch
def test_small_path_singular_gram_falls_back_like_reference(
    rank: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Identical components: every Gram is singular, so both paths take the pseudo-inverse.
    x = _data((8, 9, 10), 2, seed=7)
    gen = torch.Generator().manual_seed(0)
    cols = [torch.rand(s, 1, generator=gen, dtype=torch.float64) for s in x.shape]
    init = CPTensor(torch.ones(rank, dtype=torch.float64), tuple(c.repeat(1, rank) for c in cols))
    small = _fit("small", monkeypatch, x, rank, init=init, max_iter=5, tol=0)
    ref = _fit("reference", monkeypatch, x, rank, init=init, max_iter=5, tol=0)
    assert all(torch.isfinite(f).all() for f in small.model.factors)
    assert max(abs(a - b) for a, b in zip(small.errors, ref.errors)) < 1e-10


def test_small_path_callback_stop_matches_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    x = _data((10, 10, 10), 3, seed=8)
    init = _start((10, 10, 10), 3, seed=1, dtype=torch.float64)

    def stop_at_4(state: Any) -> bool:
        return state.iteration == 4

    small = _fit("small", monkeypatch, x, 3, init=init, tol=0, max_iter=20, callback=stop_at_4)
    ref = _fit("reference", monkeypatch, x, 3, init=init, tol=0, max_iter=20, callback=stop_at_4)
    assert small.iterations == ref.iterations == 4
    assert max(abs(a - b) for a, b in zip(small.errors, ref.errors)) < 1e-10


def test_auto_path_is_a_rule_on_the_size() -> None:
    assert _cp._small_path(torch.empty(10, 10, 10))
    assert _cp._small_path(torch.empty(SMALL_ENTRIES))
    assert not _cp._small_path(torch.empty(SMALL_ENTRIES + 1))
    assert not _cp._small_path(torch.empty(10, 10, 10, device="meta"))  # CPU only


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 6), (3, 4, 5, 2)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_small_mttkrp_matches_algebra(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen, dtype=dtype)
    factors = [torch.randn(s, 3, generator=gen, dtype=dtype) for s in shape]
    sweep = SmallSweep(torch.zeros_like(x), 3)
    sweep.load(x)  # reloading replaces the data (as EM does every sweep)
    for mode in range(len(shape)):
        # The sweep's MTTKRPs take conjugated factors (the complex normal equations).
        want = mttkrp(x, [f.conj() for f in factors], mode)
        torch.testing.assert_close(sweep.mttkrp(mode, factors), want)
        torch.testing.assert_close(sweep.mttkrp(mode, factors, fresh=True), want)


def test_small_dense_matches_cptensor() -> None:
    gen = torch.Generator().manual_seed(1)
    model = random_cp((4, 5, 6, 3), 2, generator=gen, dtype=torch.float64)
    sweep = SmallSweep(model.to_dense(), 2)
    from factorch.decomp._cp_sweep import CPState

    state = CPState.start(model.weights, model.factors)
    torch.testing.assert_close(sweep.dense(state), model.to_dense())
    assert sweep.dense(state) is sweep.dense(state)  # kept while the state is unchanged


NN_CASES = [
    ((10, 10, 10), 3, {}),
    ((438, 6, 11), 3, {"method": "mu"}),
    ((8, 9, 10, 7), 4, {"l1": 0.01}),
    ((12, 10, 9), 5, {"nonneg_modes": (0, 2)}),
    ((10, 10, 10), 3, {"mask": 0.2}),
    ((10, 10, 10), 3, {"tol": 1e-9, "max_iter": 200}),
]


@pytest.mark.parametrize(("shape", "rank", "options"), NN_CASES)
def test_nn_cp_small_path_matches_reference(
    shape: tuple[int, ...], rank: int, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from factorch.decomp import non_negative_cp

    opts = dict(options)
    x = _data(shape, rank, seed=len(shape) + rank).abs()
    if "mask" in opts:
        opts["mask"] = torch.rand(shape, generator=torch.Generator().manual_seed(5)) > opts["mask"]
    opts.setdefault("tol", 0.0)
    opts.setdefault("max_iter", 25)
    fits = {}
    for path in ("small", "reference"):
        with monkeypatch.context() as m:
            m.setattr(_cp, "_PATH", path)
            gen = torch.Generator().manual_seed(1)
            fits[path] = non_negative_cp(x, rank, init="random", generator=gen, **opts)
    small, ref = fits["small"], fits["reference"]
    assert small.iterations == ref.iterations and small.converged == ref.converged
    assert max(abs(a - b) for a, b in zip(small.errors, ref.errors)) < 1e-10


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128, torch.float32])
@pytest.mark.parametrize(
    ("shape", "rank"), [((10, 10, 10), 3), ((40, 50, 60), 5), ((6, 5, 4, 3), 2)]
)
def test_small_exact_error_matches_reference(
    shape: tuple[int, ...], rank: int, dtype: torch.dtype
) -> None:
    from factorch.decomp._cp_sweep import CPState, exact_error

    x = _data(shape, rank, seed=4, dtype=dtype)
    start = _start(shape, rank, seed=6, dtype=dtype)
    weights = torch.linspace(0.5, 2.0, rank, dtype=torch.float64).to(dtype)
    state = CPState.start(weights, list(start.factors))
    norm_x2 = float(torch.vdot(x.reshape(-1), x.reshape(-1)).real)
    got = SmallSweep(x, rank).exact_error(x, state, norm_x2)
    ref = exact_error(x, state, norm_x2)
    tol = 1e-13 if dtype != torch.float32 else 1e-5
    assert abs(got[0] - ref[0]) <= tol * ref[0] and got[1] == pytest.approx(ref[1])
