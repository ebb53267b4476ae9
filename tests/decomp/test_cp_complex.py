"""Complex CP-ALS (issue 12): Hermitian normal equations, checked against a planted complex tensor,
TensorLy's complex ``parafac`` and the float64 residual."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorch.decomp import cp, cp_degeneracy
from factorch.tensors import CPTensor

COMPLEX = [torch.complex64, torch.complex128]
TOL = {torch.complex64: 1e-4, torch.complex128: 1e-9}


def _planted(shape: tuple[int, ...], rank: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    factors = [torch.randn(s, rank, dtype=torch.complex128, generator=g) for s in shape]
    letters = "abcd"[: len(shape)]
    return torch.einsum(",".join(f"{c}r" for c in letters) + "->" + letters, *factors).to(dtype)


def _true_error(x: torch.Tensor, model: CPTensor) -> float:
    x64 = x.to(torch.complex128)
    approx = model.to(dtype=torch.complex128).to_dense()
    return float(torch.linalg.vector_norm(x64 - approx) / torch.linalg.vector_norm(x64))


@pytest.mark.parametrize("dtype", COMPLEX)
@pytest.mark.parametrize("shape", [(6, 7, 8), (5, 4, 3, 6)])
def test_planted_complex_tensor_is_recovered(dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    x = _planted(shape, 3, dtype)
    res = cp(x, 3, tol=1e-12, max_iter=500)
    assert res.model.weights.dtype == dtype
    assert all(f.dtype == dtype for f in res.model.factors)
    assert res.error < TOL[dtype] * 10
    assert abs(res.error - _true_error(x, res.model)) < TOL[dtype]


@pytest.mark.parametrize("dtype", COMPLEX)
def test_complex_fit_matches_tensorly(dtype: torch.dtype) -> None:
    tl = pytest.importorskip("tensorly")
    from tensorly.decomposition import parafac

    g = torch.Generator().manual_seed(3)
    clean = _planted((6, 7, 8), 3, torch.complex128, seed=3)
    noise = torch.randn(clean.shape, dtype=torch.complex128, generator=g)
    x = (clean + 0.05 * clean.abs().mean() * noise).to(dtype)
    ours = cp(x, 3, tol=1e-12, max_iter=300)
    # neuraloperator switches TensorLy's global backend to pytorch on import: pin numpy here.
    with tl.backend_context("numpy"):
        weights, factors = parafac(tl.tensor(x.numpy()), 3, init="svd", n_iter_max=300, tol=1e-12)
        theirs = np.asarray(tl.cp_to_tensor((weights, factors)))
    ref = float(np.linalg.norm(theirs - x.numpy()) / np.linalg.norm(x.numpy()))
    assert ours.error <= ref * (1 + 1e-3) + TOL[dtype]
    assert abs(ours.error - _true_error(x, ours.model)) < TOL[dtype]


def test_complex_options_mask_linesearch_random_init() -> None:
    x = _planted((6, 7, 8), 2, torch.complex128, seed=5)
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(x.shape, generator=g) > 0.3
    masked = cp(x, 2, mask=mask, max_iter=500, tol=1e-12)
    assert masked.error < 1e-6
    assert cp(x, 2, linesearch=True, tol=1e-12, max_iter=300).error < 1e-6
    res = cp(x, 2, init="random", generator=torch.Generator().manual_seed(1), max_iter=500)
    assert res.error < 1e-4


def test_complex_extreme_scale_reports_true_error() -> None:
    x = _planted((5, 6, 7), 2, torch.complex128) * 1e-200
    res = cp(x, 2, tol=1e-12, max_iter=300)
    assert res.error < 1e-6
    assert abs(res.error - _true_error(x / 1e-200, res.model.to(dtype=torch.complex128))) < 1.0
    assert bool(torch.isfinite(res.model.to_dense()).all())


def test_complex_degeneracy_report_uses_phases() -> None:
    g = torch.Generator().manual_seed(0)
    a = [torch.randn(5, 1, dtype=torch.complex128, generator=g) for _ in range(3)]
    phase = torch.tensor([1j], dtype=torch.complex128)
    # Component 2 = -(component 1) up to a tiny perturbation, written with a complex phase:
    # (i a0) o (i a1) o a2 = -(a0 o a1 o a2), so the two cancel.
    factors = tuple(
        torch.cat([f, f * (phase if n < 2 else 1) + 1e-3 * f.flip(0)], dim=1)
        for n, f in enumerate(a)
    )
    model = CPTensor(torch.tensor([1.0, 1.0], dtype=torch.complex128), factors)
    report = cp_degeneracy(model)
    assert report.degenerate and report.min_congruence < -0.99


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental:UserWarning")
def test_complex32_is_refused_with_a_clear_error() -> None:
    x = torch.zeros(3, 4, 5, dtype=torch.complex32)
    with pytest.raises(TypeError, match=r"cp: complex32 tensors are not supported"):
        cp(x, 2)
