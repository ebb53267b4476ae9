"""Random factorized tensors: shapes, ranks, scales, determinism, errors; planted data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorch.random import (
    Planted,
    add_noise,
    planted,
    random_cp,
    random_tr,
    random_tt,
    random_tt_matrix,
    random_tucker,
)
from factorch.tensors import CPTensor, TRTensor, TTMatrix, TTTensor, TuckerTensor
from factorch.testing import assert_close_tensors

F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_structures() -> None:
    cp = random_cp((3, 4, 5), 2, generator=_gen())
    assert isinstance(cp, CPTensor) and cp.shape == (3, 4, 5) and cp.rank == 2
    assert cp.dtype == torch.get_default_dtype()
    tk = random_tucker((3, 4, 5), (2, 3, 1), generator=_gen())
    assert isinstance(tk, TuckerTensor) and tk.rank == (2, 3, 1)
    assert random_tucker((3, 4, 5), 2, generator=_gen()).rank == (2, 2, 2)
    tt = random_tt((3, 4, 5), (1, 2, 3, 1), generator=_gen())
    assert isinstance(tt, TTTensor) and tt.rank == (1, 2, 3, 1)
    tr = random_tr((3, 4, 5), (2, 3, 4, 2), generator=_gen())
    assert isinstance(tr, TRTensor) and tr.rank == (2, 3, 4, 2)
    assert random_tr((3, 4), 5, generator=_gen()).rank == (5, 5, 5)
    m = random_tt_matrix((2, 3), (4, 5), 3, generator=_gen())
    assert isinstance(m, TTMatrix) and m.shape == (6, 20) and m.rank == (1, 3, 1)


def test_int_tt_rank_is_capped_at_the_largest_possible() -> None:
    assert random_tt((2, 3, 4), 50, generator=_gen()).rank == (1, 2, 4, 1)
    assert random_tt((2, 2, 2, 2), 3, generator=_gen()).rank == (1, 2, 3, 2, 1)
    assert random_tt_matrix((2, 2), (1, 3), 50, generator=_gen()).rank == (1, 2, 1)


@pytest.mark.parametrize(
    "make",
    [
        lambda g, dt: random_cp((6, 7, 8), 4, generator=g, dtype=dt),
        lambda g, dt: random_cp((6, 7, 8), 4, generator=g, dtype=dt, normalize=True),
        lambda g, dt: random_tucker((6, 7, 8), (2, 3, 4), generator=g, dtype=dt),
        lambda g, dt: random_tucker((6, 7, 8), (2, 3, 4), generator=g, dtype=dt, orthogonal=True),
        lambda g, dt: random_tt((6, 7, 8), 4, generator=g, dtype=dt),
        lambda g, dt: random_tr((6, 7, 8), 3, generator=g, dtype=dt),
        lambda g, dt: random_tt_matrix((4, 5), (3, 6), 4, generator=g, dtype=dt),
    ],
    ids=["cp", "cp-normalized", "tucker", "tucker-orthogonal", "tt", "tr", "tt-matrix"],
)
def test_entries_are_order_one(make) -> None:
    """Mean square of the dense entries, averaged over 40 draws, is within [0.5, 2]."""
    g = _gen(1)
    ms = torch.stack([make(g, F64).to_dense().square().mean() for _ in range(40)])
    assert 0.5 < float(ms.mean()) < 2.0


def test_normalize_gives_unit_columns_and_same_tensor() -> None:
    plain = random_cp((4, 5), 3, generator=_gen(2), dtype=F64)
    unit = random_cp((4, 5), 3, generator=_gen(2), dtype=F64, normalize=True)
    assert_close_tensors(unit.to_dense(), plain.to_dense())
    for f in unit.factors:
        assert_close_tensors(torch.linalg.vector_norm(f, dim=0), torch.ones(3, dtype=F64))


def test_orthogonal_tucker_factors() -> None:
    tk = random_tucker((5, 6, 7), (2, 3, 4), orthogonal=True, generator=_gen(3), dtype=F64)
    for f in tk.factors:
        assert_close_tensors(f.T @ f, torch.eye(f.shape[1], dtype=F64))


def test_seed_determinism_and_dtype_parity() -> None:
    a = random_tt((3, 4, 5), 3, generator=_gen(4), dtype=F64)
    b = random_tt((3, 4, 5), 3, generator=_gen(4), dtype=F64)
    c = random_tt((3, 4, 5), 3, generator=_gen(4), dtype=torch.float32)
    d = random_tt((3, 4, 5), 3, generator=_gen(5), dtype=F64)
    assert all(torch.equal(x, y) for x, y in zip(a.cores, b.cores))
    # float32 draws are the float64 draws rounded
    assert all(torch.equal(x.float(), y) for x, y in zip(a.cores, c.cores))
    assert not torch.equal(a.cores[1], d.cores[1])


def test_complex_dtype() -> None:
    cp = random_cp((3, 4), 2, generator=_gen(6), dtype=torch.complex128)
    assert cp.dtype == torch.complex128 and bool((cp.factors[0].imag != 0).any())


def test_add_noise_has_exact_relative_norm() -> None:
    x = random_tt((5, 6, 7), 3, generator=_gen(7), dtype=F64).to_dense()
    for rel in (0.0, 0.01, 0.5, 2.0):
        y = add_noise(x, relative=rel, generator=_gen(8))
        assert y.dtype == x.dtype and y.shape == x.shape
        assert float((y - x).norm() / x.norm()) == pytest.approx(rel, rel=1e-12, abs=1e-15)
    x32 = x.float()
    y32 = add_noise(x32, relative=0.1, generator=_gen(8))
    assert y32.dtype == torch.float32
    assert float((y32.double() - x32.double()).norm() / x32.double().norm()) == pytest.approx(
        0.1, rel=1e-6
    )
    xc = torch.randn(4, 5, generator=_gen(9), dtype=torch.complex128)
    yc = add_noise(xc, relative=0.3, generator=_gen(10))
    assert float((yc - xc).norm() / xc.norm()) == pytest.approx(0.3, rel=1e-12)
    assert bool(((yc - xc).imag != 0).any())


def test_add_noise_is_deterministic() -> None:
    x = torch.ones(3, 4, dtype=F64)
    assert torch.equal(
        add_noise(x, relative=0.1, generator=_gen(11)),
        add_noise(x, relative=0.1, generator=_gen(11)),
    )


@pytest.mark.parametrize(
    ("kind", "rank", "cls"),
    [
        ("cp", 3, CPTensor),
        ("tucker", (2, 3, 2), TuckerTensor),
        ("tt", 3, TTTensor),
        ("tr", 2, TRTensor),
    ],
)
def test_planted(kind: str, rank, cls: type) -> None:
    p = planted(kind, (4, 5, 6), rank, noise=0.05, generator=_gen(12), dtype=F64)
    assert isinstance(p, Planted) and isinstance(p.truth, cls)
    assert p.noise == 0.05 and p.tensor.shape == (4, 5, 6) and p.tensor.dtype == F64
    assert float((p.tensor - p.clean).norm() / p.clean.norm()) == pytest.approx(0.05, rel=1e-10)
    q = planted(kind, (4, 5, 6), rank, generator=_gen(12), dtype=F64)
    assert q.noise == 0.0 and torch.equal(q.tensor, q.clean)


# --- errors ---------------------------------------------------------------------------------


RANK_ERRORS_CASES = [
    pytest.param(
        lambda: random_cp((3, 4), -1),
        ValueError,
        r"random_cp: rank must be a positive int; got -1\.",
    ),
    pytest.param(
        lambda: random_cp((3, 4), 0), ValueError, r"random_cp: rank must be a positive int; got 0\."
    ),
    pytest.param(
        lambda: random_cp((3, 4), (2, 2)),
        TypeError,
        r"random_cp: rank must be a positive int; got tuple\.",
    ),
    pytest.param(
        lambda: random_tucker((3, 4), (2, -2)),
        ValueError,
        r"random_tucker: rank\[1\] must be a positive int; got -2\.",
    ),
    pytest.param(
        lambda: random_tucker((3, 4), (2, 2, 2)),
        ValueError,
        r"random_tucker: rank needs 2 entries \(one per mode of a 2-way tensor\); got \(2, 2, "
        r"2\)\.",
    ),
    pytest.param(
        lambda: random_tucker((3, 4), (4, 2), orthogonal=True),
        ValueError,
        r"random_tucker: orthogonal factors need rank\[0\] <= shape\[0\]; got rank 4 > size 3",
    ),
    pytest.param(
        lambda: random_tt((3, 4), -3),
        ValueError,
        r"random_tt: rank must be a positive int; got -3\.",
    ),
    pytest.param(
        lambda: random_tt((3, 4, 5), (1, 2, 1)),
        ValueError,
        r"random_tt: rank needs 4 entries \(r_0..r_3 for a 3-way tensor, r_0 = r_3 = 1\); got "
        r"\(1, 2, 1\)\.",
    ),
    pytest.param(
        lambda: random_tt((3, 4), (2, 2, 1)),
        ValueError,
        r"random_tt: boundary ranks must be r_0 = r_2 = 1; got \(2, 2, 1\)\.",
    ),
    pytest.param(
        lambda: random_tt((3, 4), (1, 4, 1)),
        ValueError,
        r"random_tt: rank\[1\] = 4 exceeds the largest possible TT rank min\(prod sizes\[:1\], "
        r"prod sizes\[1:\]\) = 3",
    ),
    pytest.param(
        lambda: random_tr((3, 4), (2, 3, 1)),
        ValueError,
        r"random_tr: the ring must close, r_2 = r_0; got \(2, 3, 1\)\.",
    ),
    pytest.param(
        lambda: random_tr((3, 4), (2, 0, 2)),
        ValueError,
        r"random_tr: rank\[1\] must be a positive int; got 0\.",
    ),
    pytest.param(
        lambda: random_tr((3, 4), 2.0),
        TypeError,
        r"random_tr: rank must be an int or a sequence of ints; got float\.",
    ),
    pytest.param(
        lambda: random_tt_matrix((2, 3), (4,), 2),
        ValueError,
        r"random_tt_matrix: row_shape and col_shape need the same number of factors",
    ),
    pytest.param(
        lambda: random_tt_matrix((2, 3), (4, 2), -1),
        ValueError,
        r"random_tt_matrix: rank must be a positive int; got -1\.",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), RANK_ERRORS_CASES)
def test_rank_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


SHAPE_DTYPE_GENERATOR_ERRORS_CASES = [
    pytest.param(
        lambda: random_cp(5, 2),
        TypeError,
        r"random_cp: shape must be a sequence of positive ints such as \(4, 5, 6\); got int\.",
    ),
    pytest.param(
        lambda: random_tt((), 2),
        ValueError,
        r"random_tt: shape must have at least one mode; got \(\)\.",
    ),
    pytest.param(
        lambda: random_tr((3, 0), 2),
        ValueError,
        r"random_tr: shape\[1\] must be a positive int; got 0\.",
    ),
    pytest.param(
        lambda: random_tucker((3.0, 4), 2),
        TypeError,
        r"random_tucker: shape\[0\] must be an int; got float\.",
    ),
    pytest.param(
        lambda: random_tt_matrix((2,), (-1,), 2),
        ValueError,
        r"random_tt_matrix: col_shape\[0\] must be a positive int; got -1\.",
    ),
    pytest.param(
        lambda: random_cp((3, 4), 2, dtype=torch.int64),
        TypeError,
        r"random_cp: dtype must be a floating-point or complex dtype; got torch.int64\.",
    ),
    pytest.param(
        lambda: random_cp((3, 4), 2, dtype="float32"),
        TypeError,
        r"random_cp: dtype must be a torch.dtype; got str\.",
    ),
    pytest.param(
        lambda: random_tt((3, 4), 2, generator=0),
        TypeError,
        r"random_tt: generator must be a torch.Generator or None; got int\.",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), SHAPE_DTYPE_GENERATOR_ERRORS_CASES)
def test_shape_dtype_generator_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def _add_noise_and_planted_errors_inputs():
    x = torch.ones(3, 4, dtype=F64)
    bad = x.clone()
    bad[0, 0] = float("nan")
    return x, bad


ADD_NOISE_AND_PLANTED_ERRORS_CASES = [
    pytest.param(
        lambda x, bad: add_noise(x, relative=-0.1),
        ValueError,
        r"add_noise: relative must be a finite float >= 0; got -0.1\.",
    ),
    pytest.param(
        lambda x, bad: add_noise(x, relative=float("nan")),
        ValueError,
        r"add_noise: relative must be a finite float >= 0; got nan\.",
    ),
    pytest.param(
        lambda x, bad: add_noise(x, relative="0.1"),
        TypeError,
        r"add_noise: relative must be a float; got str\.",
    ),
    pytest.param(
        lambda x, bad: add_noise(bad, relative=0.1),
        ValueError,
        r"add_noise: x contains 1 NaN or Inf entries",
    ),
    pytest.param(
        lambda x, bad: add_noise(torch.ones(3, dtype=torch.int64), relative=0.1),
        TypeError,
        r"add_noise: x must have a floating-point or complex dtype; got torch.int64",
    ),
    pytest.param(
        lambda x, bad: planted("parafac", (3, 4), 2),
        ValueError,
        r"planted: kind must be one of \('cp', 'tucker', 'tt', 'tr'\); got 'parafac'\.",
    ),
    pytest.param(
        lambda x, bad: planted("cp", (3, 4), (2, 2)),
        TypeError,
        r"planted: a CP rank must be an int; got tuple\.",
    ),
    pytest.param(
        lambda x, bad: planted("tt", (3, 4), 2, noise=-1.0),
        ValueError,
        r"add_noise: relative must be a finite float >= 0; got -1",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), ADD_NOISE_AND_PLANTED_ERRORS_CASES)
def test_add_noise_and_planted_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(*_add_noise_and_planted_errors_inputs())


def test_numpy_integers_are_accepted_for_shapes_and_ranks() -> None:
    import numpy as np

    cp = random_cp((np.int64(3), 4), np.int32(2), generator=_gen())
    assert cp.shape == (3, 4) and cp.rank == 2
    assert random_tucker((3, 4), (np.int64(2), 2), generator=_gen()).rank == (2, 2)
    assert random_tt((3, 4, 5), np.int64(2), generator=_gen()).rank == (1, 2, 2, 1)
    p = planted("cp", (3, 4), np.int64(2), generator=_gen())
    assert p.truth.rank == 2
    x = add_noise(np.ones((3, 4)), relative=0.1, generator=_gen())
    assert isinstance(x, torch.Tensor) and x.dtype == F64


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        pytest.param(
            lambda: random_cp((1000, 1000, 1000), 10**9),
            ValueError,
            r"random_cp: 3 factors of rank 1000000000 needs about .* of memory",
            id="absurd cp rank",
        ),
        pytest.param(
            lambda: random_tucker((10, 10, 10), 10**4),
            ValueError,
            r"random_tucker: a rank-\(10000, 10000, 10000\) core needs about",
            id="absurd tucker core",
        ),
        pytest.param(
            lambda: random_tr((10**6, 10**6), 10**5),
            ValueError,
            r"random_tr: cores of ranks .* needs about",
            id="absurd tr ranks",
        ),
        pytest.param(
            lambda: planted("cp", (10**5, 10**5, 10**5), 2),
            ValueError,
            r"planted: the dense \(100000, 100000, 100000\) tensor and its noise needs about",
            id="absurd planted shape",
        ),
        pytest.param(
            lambda: random_cp((3, 4), 2, generator=0),
            TypeError,
            r"random_cp: generator must be a torch.Generator or None; got int",
            id="int seed",
        ),
        pytest.param(
            lambda: random_cp((3, 4), 2, device="nowhere"),
            ValueError,
            r"random_cp: device must name a torch device; got 'nowhere'",
            id="bad device",
        ),
        pytest.param(
            lambda: random_cp((3, 4), np.bool_(True)),
            TypeError,
            r"random_cp: rank must be a positive int; got bool",
            id="numpy bool rank",
        ),
    ],
)
def test_sizes_generators_and_devices_are_checked(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()
