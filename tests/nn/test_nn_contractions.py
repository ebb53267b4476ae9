"""The formats' contraction orders (issue 14.7): each fast path against a slow, obviously correct
float64 reference (values and gradients), and each cost model against the matrix-multiply FLOPs
torch actually runs (``torch.utils.flop_counter``)."""

from __future__ import annotations

import math
import string

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import factorch.nn as fnn
from factorch.nn import TensorizedShape, TensorLayout
from factorch.nn.formats import chain_contract
from factorch.nn.formats._cp import cp_sequential

F64 = torch.float64


def _factors(p, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(s, generator=g, dtype=F64).requires_grad_() for s in p.factor_shapes)


def _ring_reference(cores) -> torch.Tensor:
    """Trace of the full chain product (``r_0 x prod I x r_0``): the textbook definition."""
    return torch.diagonal(chain_contract(cores), dim1=0, dim2=2).sum(-1)


def _cp_reference(weights, mats) -> torch.Tensor:
    letters = string.ascii_lowercase[: len(mats)]
    spec = "z," + ",".join(f"{c}z" for c in letters) + "->" + letters
    return torch.einsum(spec, weights, *mats)


def _mm_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@pytest.mark.parametrize(
    ("shape", "rank"),
    [
        ((4, 5, 6), (3, 2, 4, 3)),
        ((2, 3, 4, 5), (2, 3, 1, 2, 2)),
        ((6, 7), (3, 2, 3)),
        ((3, 4), (1, 1, 1)),
    ],
)
def test_ring_rebuild_equals_trace_of_chain(shape, rank):
    p = fnn.TRWeight(TensorLayout.identity(shape), rank)
    cores = _factors(p)
    got, want = p.to_tensor(*cores), _ring_reference(cores).reshape(shape)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    g_got = torch.autograd.grad(got.square().sum(), cores)
    g_want = torch.autograd.grad(want.square().sum(), cores)
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4), (4, 3, 5, 2), (2, 3, 2, 3, 2)])
def test_cp_rebuild_equals_einsum(shape):
    p = fnn.CPWeight(TensorLayout.identity(shape), 4)
    weights, *mats = _factors(p)
    got, want = p.to_tensor(weights, *mats), _cp_reference(weights, mats)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    inputs = (weights, *mats)
    g_got = torch.autograd.grad(got.square().sum(), inputs)
    g_want = torch.autograd.grad(want.square().sum(), inputs)
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize(
    ("spec", "rank"),
    [
        (TensorizedShape((4, 3), (5, 4)), (3, 2, 4, 3)),
        (TensorizedShape((2, 3, 2), (3, 2, 4)), (2, 3, 2, 2, 2, 3)),  # middle modes: batched GEMM
        (TensorizedShape((3, 2, 2, 2), (2, 5)), (2, 2, 1, 2, 2, 3)),
    ],
)
def test_tucker_linear_equals_rebuilt_weight(spec, rank):
    layer = fnn.FactorizedLinear(
        spec.in_features, spec.out_features, format="tucker", rank=rank, shape=spec, dtype=F64
    )
    x = torch.randn(7, spec.in_features, dtype=F64, generator=torch.Generator().manual_seed(1))
    outs = {}
    for impl in ("factorized", "reconstructed"):
        layer.implementation = impl
        y = layer(x)
        grads = torch.autograd.grad(y.sin().sum(), list(layer.parameters()))
        outs[impl] = (y, grads)
    (y_f, g_f), (y_r, g_r) = outs["factorized"], outs["reconstructed"]
    torch.testing.assert_close(y_f, y_r, rtol=1e-12, atol=1e-12)
    for a, b in zip(g_f, g_r):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize(
    "make",
    [
        lambda: fnn.TRWeight(TensorLayout.identity((4, 5, 6)), (3, 2, 4, 3)),
        lambda: fnn.TRWeight(TensorLayout.matrix_chain(TensorizedShape((4, 3), (5, 4))), 3),
        lambda: fnn.TTWeight(TensorLayout.identity((4, 5, 6, 3)), (1, 3, 4, 2, 1)),
    ],
)
def test_chain_reconstruction_flops_are_the_gemm_flops(make):
    p = make()
    cores = tuple(c.detach() for c in _factors(p))
    assert p.reconstruction_flops() == _mm_flops(lambda: p.to_tensor(*cores))


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4), (4, 3, 5, 2), (32, 32, 32, 32)])
def test_cp_reconstruction_flops_cover_the_gemm(shape):
    rank = 3
    p = fnn.CPWeight(TensorLayout.identity(shape), rank)
    factors = tuple(f.detach() for f in _factors(p))
    gemm = 2 * math.prod(shape) * rank
    assert _mm_flops(lambda: p.to_tensor(*factors)) == gemm
    # plus the Khatri--Rao rows of two balanced halves, never those of all modes but the first
    kr_rows = (p.reconstruction_flops() - gemm) // rank
    assert 0 <= kr_rows < math.prod(shape[1:]) or len(shape) == 2


def test_auto_rebuilds_the_ring_for_sixteen_rows_and_contracts_one():
    """bench_layers.py (floor section): a 1024 x 1024 tensor-ring matrix at 10 % (rank 7)
    rebuilt-then-GEMM takes 6.4 ms fwd+bwd at 16 rows against 12.8 ms contracted; at one row the
    contraction wins (1.6 ms against 7.6)."""
    spec = TensorizedShape((32, 32), (32, 32))
    layer = fnn.FactorizedLinear(1024, 1024, format="tr", ratio=0.1, shape=spec)
    assert layer.rank == (7, 7, 7)
    fact, recon = layer.costs(16)
    assert recon < fact
    fact, recon = layer.costs(1)
    assert fact < recon


def test_cp_contracts_mode_by_mode_up_to_twelve_rows_of_the_benchmark_layer():
    """The measured crossover (``SEQUENTIAL_SHARE``): mode by mode up to 12 rows, Khatri--Rao
    products from 14 rows on."""
    spec = TensorizedShape((32, 32), (32, 32))
    assert [cp_sequential(spec, b) for b in (1, 12, 13, 14, 16)] == [True, True, False] + [
        False
    ] * 2
