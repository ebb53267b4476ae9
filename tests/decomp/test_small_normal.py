"""The host-side R x R algebra of the small CP-ALS sweep (``decomp/_small_normal.py``)."""

from __future__ import annotations

import pytest
import torch

from factorch.decomp import _small_normal as sn

EPS = torch.finfo(torch.float64).eps


def _spd(rank: int, seed: int, spread: float = 1.0) -> list[list[float]]:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(rank + 2, rank, generator=gen, dtype=torch.float64)
    a = a * torch.logspace(0, -spread, rank, dtype=torch.float64)
    return (a.mT @ a).tolist()


@pytest.mark.parametrize("rank", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("spread", [0.0, 3.0])
def test_spd_inverse_matches_torch(rank: int, spread: float) -> None:
    for seed in range(5):
        v = _spd(rank, seed, spread)
        inv = sn.spd_inverse(v, rank, EPS)
        assert inv is not None
        ref = torch.linalg.inv(torch.tensor(v, dtype=torch.float64))
        got = torch.tensor(inv, dtype=torch.float64).view(rank, rank)
        cond = torch.linalg.cond(ref).item()
        torch.testing.assert_close(got, ref, rtol=0, atol=50 * cond * EPS * ref.abs().max().item())


def test_unrolled_rank3_is_bit_identical_to_the_loops() -> None:
    for seed in range(50):
        v = _spd(3, seed, spread=seed % 5)
        assert sn._spd_inverse3(v, EPS) == sn._spd_inverse_loops(v, 3, EPS)


@pytest.mark.parametrize("rank", [2, 3, 4])
def test_spd_inverse_refuses_what_cholesky_refuses(rank: int) -> None:
    # Singular (a repeated column), indefinite, NaN and a near-singular pivot below eps.
    a = torch.randn(6, rank, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a[:, -1] = a[:, 0]
    singular = (a.mT @ a).tolist()
    indefinite = [[1.0 if i == j else 0.0 for j in range(rank)] for i in range(rank)]
    indefinite[-1][-1] = -1.0
    nan = [row[:] for row in indefinite]
    nan[-1][-1] = float("nan")
    tiny = [row[:] for row in indefinite]
    tiny[-1][-1] = EPS / 2
    for v in (singular, indefinite, nan, tiny):
        assert sn.spd_inverse(v, rank, EPS) is None
        chol, info = torch.linalg.cholesky_ex(torch.tensor(v, dtype=torch.float64))
        diag = chol.diagonal().abs()
        refused = int(info) != 0 or not float(diag.min()) > float(diag.max()) * EPS**0.5
        assert refused


def test_hadamard_and_l2_shift() -> None:
    g1, g2, g3 = _spd(3, 1), _spd(3, 2), _spd(3, 3)
    plain, shifted = sn.hadamard([g1, g2, g3], 3, 0.5)
    f64 = torch.float64
    ref = torch.tensor(g1, dtype=f64) * torch.tensor(g2, dtype=f64) * torch.tensor(g3, dtype=f64)
    assert torch.equal(torch.tensor(plain, dtype=f64), ref)
    assert torch.equal(torch.tensor(shifted, dtype=f64), ref + 0.5 * torch.eye(3, dtype=f64))
    alone, same = sn.hadamard([g1], 3)
    assert alone == g1 and alone is not g1 and same is alone


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_host_matrix_shares_memory_with_its_tensor(dtype: torch.dtype) -> None:
    host = sn.HostMatrix(2, dtype)
    t = host.set([1.0, 2.0, 3.0, 4.0])
    assert t.dtype == dtype and t.shape == (2, 2)
    product = torch.ones(1, 2, dtype=dtype) @ t
    host.set([0.0, 0.0, 0.0, 0.0])
    assert product.tolist() == [[4.0, 6.0]]  # a product taken before is not changed
    assert torch.equal(host.tensor, torch.zeros(2, 2, dtype=dtype))
