"""HOOI's subspace update (``decomp/_truncate.py`` ``leading_subspace``): the small-matrix routes
give the subspace of the general ones to rounding."""

from __future__ import annotations

import pytest
import torch

from factorch.decomp import _truncate, tucker
from factorch.random import add_noise, random_cp


def _projector(u: torch.Tensor) -> torch.Tensor:
    return u @ u.mT


@pytest.mark.parametrize("shape", [(10, 9), (438, 9), (60, 25), (7, 3)])
@pytest.mark.parametrize("k", [1, 3])
def test_direct_svd_gives_the_qr_route_subspace(
    shape: tuple[int, int], k: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(*shape, generator=gen, dtype=torch.float64)
    y = y * torch.logspace(0, -3, shape[1], dtype=torch.float64)  # a clear gap after k
    assert shape[0] * shape[1] <= _truncate._DIRECT_SVD
    direct = _truncate.leading_subspace(y, k)
    monkeypatch.setattr(_truncate, "_DIRECT_SVD", 0)
    via_qr = _truncate.leading_subspace(y, k)
    assert direct.shape == via_qr.shape == (shape[0], k)
    torch.testing.assert_close(direct.mT @ direct, torch.eye(k, dtype=y.dtype), rtol=0, atol=1e-13)
    torch.testing.assert_close(_projector(direct), _projector(via_qr), rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 5, 6])
def test_wide_route_matches_the_svd_subspace(k: int) -> None:
    gen = torch.Generator().manual_seed(1)
    y = torch.randn(6, 40, generator=gen, dtype=torch.float64)
    y = torch.logspace(0, -2, 6, dtype=torch.float64)[:, None] * y
    u = _truncate.leading_subspace(y, k)
    ref = torch.linalg.svd(y, full_matrices=False)[0][:, :k]
    assert u.shape == (6, k)
    torch.testing.assert_close(_projector(u), _projector(ref), rtol=0, atol=1e-10)


def test_refinement_rule_reads_the_eigenvalues_once() -> None:
    # A wide spectrum with a tiny tail: the squared condition number matters, refine.
    evals = torch.tensor([1.0, 1e-6, 1e-20], dtype=torch.float64)
    assert _truncate._needs_refinement(evals, 2, 1e-20, torch.float64)
    assert not _truncate._needs_refinement(evals, 1, float(evals[1:].sum()), torch.float64)
    f64 = torch.float64
    assert not _truncate._needs_refinement(torch.zeros(3, dtype=f64), 1, 0.0, f64)
    assert _truncate._needs_refinement(torch.ones(3, dtype=f64), 1, 2.0, f64)  # no gap


def test_tucker_errors_unchanged_by_the_small_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = torch.Generator().manual_seed(2)
    x = random_cp((438, 6, 11), 3, generator=gen, dtype=torch.float64).to_dense()
    x = add_noise(x, relative=0.05, generator=gen)
    fast = tucker(x, 3, max_iter=10, tol=0)
    monkeypatch.setattr(_truncate, "_DIRECT_SVD", 0)
    general = tucker(x, 3, max_iter=10, tol=0)
    assert max(abs(a - b) for a, b in zip(fast.errors, general.errors)) < 1e-10
