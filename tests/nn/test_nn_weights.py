"""Tensorized shapes, layouts and the factorized-weight parametrizations."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import factorch.nn as fnn
from factorch.nn import TensorizedShape, TensorLayout

SPEC = TensorizedShape((4, 3), (5, 4))
WEIGHTS = {
    "lowrank": lambda: fnn.LowRankWeight(TensorLayout.identity((12, 20)), 5),
    "cp": lambda: fnn.CPWeight(TensorLayout.tensorized(SPEC), 7),
    "tucker": lambda: fnn.TuckerWeight(TensorLayout.tensorized(SPEC), (3, 2, 4, 3)),
    "tt": lambda: fnn.TTWeight(TensorLayout.matrix_chain(SPEC), 5),
    "tr": lambda: fnn.TRWeight(TensorLayout.matrix_chain(SPEC), 2),
    "tt-conv": lambda: fnn.TTWeight(TensorLayout.conv_chain((6, 4, 3, 3)), 4),
}


# --- shapes and layouts -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "k", "expected"),
    [
        (1024, 3, (16, 8, 8)),
        (1024, 2, (32, 32)),
        (12, 2, (4, 3)),
        (7, 3, (7, 1, 1)),
        (1, 2, (1, 1)),
        (1000, 3, (10, 10, 10)),
        (96, 3, (6, 4, 4)),
    ],
)
def test_balanced_factorization(n, k, expected):
    out = fnn.balanced_factorization(n, k)
    assert out == expected
    assert math.prod(out) == n


def test_balanced_factorization_minimises_the_largest_factor():
    for n in range(1, 200):
        for k in (2, 3):
            out = fnn.balanced_factorization(n, k)
            brute = min(
                max(a, b, n // (a * b))
                for a in range(1, n + 1)
                if n % a == 0
                for b in range(1, n // a + 1)
                if (n // a) % b == 0 and (k == 3 or b == n // a)
            )
            assert max(out) == brute, (n, k)


def test_tensorized_shape_auto_and_pairs():
    spec = TensorizedShape.auto(1024, 512, n_factors=2)
    assert spec == TensorizedShape((32, 32), (32, 16))
    assert (spec.out_features, spec.in_features) == (1024, 512)
    assert TensorizedShape((5,), (3, 4)).pairs() == ((5, 3), (1, 4))
    assert TensorizedShape.auto(10, 64, n_factors=(1, 3)).out_factors == (10,)
    assert TensorizedShape([4, 4], [2]).out_factors == (4, 4)  # lists become tuples
    with pytest.raises(Exception, match="cannot assign|FrozenInstanceError"):
        spec.out_factors = (1,)  # type: ignore[misc]


@pytest.mark.parametrize(
    "layout",
    [
        TensorLayout.identity((6, 4, 3)),
        TensorLayout.tensorized(SPEC),
        TensorLayout.matrix_chain(SPEC),
        TensorLayout.conv_chain((6, 4, 3, 2)),
    ],
    ids=["identity", "tensorized", "matrix_chain", "conv_chain"],
)
def test_layout_round_trip_and_index_map(layout):
    w = torch.arange(math.prod(layout.weight_shape), dtype=torch.float64).reshape(
        layout.weight_shape
    )
    t = layout.to_tensor(w)
    assert tuple(t.shape) == layout.tensor_shape
    assert torch.equal(layout.to_weight(t), w)


def test_matrix_chain_layout_pairs_out_and_in_indices():
    layout = TensorLayout.matrix_chain(SPEC)  # W[(o1,o2),(i1,i2)] -> T[(o1,i1),(o2,i2)]
    w = torch.randn(12, 20, dtype=torch.float64)
    t = layout.to_tensor(w)
    o1, o2, i1, i2 = 2, 1, 3, 2
    assert t[o1 * 5 + i1, o2 * 4 + i2] == w[o1 * 3 + o2, i1 * 4 + i2]


def test_spec_and_layout_errors():
    with pytest.raises(ValueError, match="out_factors must contain positive ints"):
        TensorizedShape((4, 0), (2,))
    with pytest.raises(TypeError, match="in_factors must be a non-empty tuple"):
        TensorizedShape((4,), ())
    with pytest.raises(ValueError, match="folds a 16 x 15 matrix but the layer is 16 x 16"):
        TensorizedShape((4, 4), (3, 5)).check(16, 16, "f")
    with pytest.raises(ValueError, match="n must be a positive int"):
        fnn.balanced_factorization(0, 2)
    with pytest.raises(ValueError, match="order must permute"):
        TensorLayout((4, 3), (4, 3), (0, 0), (4, 3))
    with pytest.raises(ValueError, match="must hold prod"):
        TensorLayout((4, 3), (4, 3), (0, 1), (5, 3))


# --- parametrizations -------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(WEIGHTS))
def test_right_inverse_then_forward_is_exact_on_the_format(name):
    """A weight in the format (rebuilt from random factors) is recovered by decomposition."""
    g = torch.Generator().manual_seed(0)
    p = WEIGHTS[name]()
    p.decomposition.update({"max_iter": 3000, "tol": 1e-15} if p.format in ("cp", "tr") else {})
    w = p(*p.init_factors(std=1.0, generator=g, dtype=torch.float64))
    factors = p.right_inverse(w)
    assert [tuple(f.shape) for f in factors] == list(p.factor_shapes)
    assert float((p(*factors) - w).norm() / w.norm()) < 1e-9


@pytest.mark.parametrize("name", list(WEIGHTS))
def test_usable_with_torch_parametrize(name):
    g = torch.Generator().manual_seed(1)
    p = WEIGHTS[name]()
    p.decomposition.update({"max_iter": 3000, "tol": 1e-15} if p.format in ("cp", "tr") else {})
    shape = p.weight_shape
    host = (
        nn.Linear(20, 12, dtype=torch.float64)
        if len(shape) == 2
        else nn.Conv2d(shape[1], shape[0], shape[2:], dtype=torch.float64)
    )
    planted = p(*p.init_factors(std=1.0, generator=g, dtype=torch.float64)).detach()
    with torch.no_grad():
        host.weight.copy_(planted)
    parametrize.register_parametrization(host, "weight", p)
    originals = host.parametrizations.weight
    n = len(p.factor_shapes)
    assert [tuple(getattr(originals, f"original{i}").shape) for i in range(n)] == list(
        p.factor_shapes
    )
    assert float((host.weight.detach() - planted).norm() / planted.norm()) < 1e-9
    host.weight.sum().backward()
    assert all(getattr(originals, f"original{i}").grad is not None for i in range(n))


def test_right_inverse_checks_shape_and_dtype():
    p = WEIGHTS["lowrank"]()
    with pytest.raises(ValueError, match=r"weight must have shape \(12, 20\)"):
        p.right_inverse(torch.randn(20, 12))
    with pytest.raises(TypeError, match="weight must be floating point"):
        p.right_inverse(torch.ones(12, 20, dtype=torch.int64))
    with pytest.raises(TypeError, match="weight must be a torch.Tensor"):
        p.right_inverse([[1.0]])  # type: ignore[arg-type]


def test_right_inverse_keeps_half_precision_dtype():
    p = WEIGHTS["tucker"]()
    w = torch.randn(12, 20, dtype=torch.float32).to(torch.bfloat16)
    factors = p.right_inverse(w)
    assert all(f.dtype == torch.bfloat16 for f in factors)


@pytest.mark.parametrize("name", list(WEIGHTS))
def test_random_init_preserves_the_dense_weight_variance(name):
    """E[W^2] = std^2 (averaged over draws), and the output variance matches nn.Linear's."""
    g = torch.Generator().manual_seed(2)
    p = WEIGHTS[name]()
    std = 0.3
    draws = [
        float(p(*p.init_factors(std=std, generator=g, dtype=torch.float64)).pow(2).mean())
        for _ in range(300)
    ]
    assert statistics.mean(draws) == pytest.approx(std**2, rel=0.1)


def test_layer_output_variance_matches_dense_default():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4096, 256, generator=g)
    dense_var = []
    fac_var = {f: [] for f in ("lowrank", "cp", "tucker", "tt", "tr")}
    for _ in range(6):
        with torch.no_grad():
            dense_var.append(float(nn.Linear(256, 128, bias=False)(x).var()))
        for f in fac_var:
            layer = fnn.FactorizedLinear(256, 128, bias=False, format=f, ratio=0.2, generator=g)
            fac_var[f].append(float(layer(x).detach().var()))
    ref = statistics.mean(dense_var)
    assert ref == pytest.approx(1 / 3, rel=0.1)  # nn.Linear: Var = fan_in * 1/(3 fan_in)
    for f, v in fac_var.items():
        assert statistics.mean(v) == pytest.approx(ref, rel=0.25), f


@pytest.mark.parametrize("name", list(WEIGHTS))
def test_dropout_is_unbiased_and_never_empty(name):
    torch.manual_seed(4)
    p = WEIGHTS[name]()
    factors = p.init_factors(
        std=1.0, generator=torch.Generator().manual_seed(5), dtype=torch.float64
    )
    full = p(*factors)
    mean = sum(p(*p.dropout(factors, 0.3)) for _ in range(3000)) / 3000
    assert float((mean - full).norm() / full.norm()) < 0.1
    # p close to 1: at least one component survives, so the weight is never all zero
    for _ in range(50):
        assert float(p(*p.dropout(factors, 0.99)).abs().max()) > 0


def test_cp_dropout_with_rank_below_the_number_of_modes():
    """TensorLy-Torch 0.5's CP dropout fails with UnboundLocalError when rank <= min_dim."""
    p = fnn.CPWeight(TensorLayout.tensorized(SPEC), 2)
    factors = p.init_factors(std=1.0, dtype=torch.float64)
    out = p(*p.dropout(factors, 0.5))
    assert out.shape == (12, 20)


def test_rank_errors():
    with pytest.raises(ValueError, match=r"rank must be in \[1, 12\]"):
        fnn.LowRankWeight(TensorLayout.identity((12, 20)), 0)
    with pytest.raises(ValueError, match=r"rank must be in \[1, 12\]"):
        fnn.LowRankWeight(TensorLayout.identity((12, 20)), 13)
    with pytest.raises(TypeError, match="rank must be a positive int; got float"):
        fnn.CPWeight(TensorLayout.tensorized(SPEC), 2.5)
    with pytest.raises(ValueError, match="rank must be a positive int; got 0"):
        fnn.CPWeight(TensorLayout.tensorized(SPEC), 0)
    with pytest.raises(ValueError, match=r"rank\[0\] = 5 exceeds the mode size 4"):
        fnn.TuckerWeight(TensorLayout.tensorized(SPEC), (5, 3, 5, 4))
    with pytest.raises(ValueError, match="exceeds the product 1 of the other ranks"):
        fnn.TuckerWeight(TensorLayout.identity((4, 3)), (2, 1))
    with pytest.raises(ValueError, match="needs 4 entries"):
        fnn.TuckerWeight(TensorLayout.tensorized(SPEC), (2, 2))
    with pytest.raises(
        ValueError, match=r"rank\[1\] = 30 exceeds 12, the largest useful rank of bond 1"
    ):
        fnn.TTWeight(TensorLayout.matrix_chain(SPEC), (1, 30, 1))
    with pytest.raises(ValueError, match="must start and end with 1"):
        fnn.TTWeight(TensorLayout.matrix_chain(SPEC), (2, 3, 2))
    with pytest.raises(ValueError, match="close the ring"):
        fnn.TRWeight(TensorLayout.matrix_chain(SPEC), (2, 3, 4))
    with pytest.raises(TypeError, match="layout must be a TensorLayout"):
        fnn.CPWeight((12, 20), 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="method must be 'hooi' or 'hosvd'"):
        fnn.TuckerWeight(
            TensorLayout.tensorized(SPEC), 2, decomposition={"method": "x"}
        ).right_inverse(torch.randn(12, 20))


def test_tucker_hosvd_option_and_reconstruction_flops():
    p = fnn.TuckerWeight(
        TensorLayout.tensorized(SPEC), (4, 3, 5, 4), decomposition={"method": "hosvd"}
    )
    w = torch.randn(12, 20, dtype=torch.float64)
    assert float((p(*p.right_inverse(w)) - w).norm() / w.norm()) < 1e-12
    for name in WEIGHTS:
        assert WEIGHTS[name]().reconstruction_flops() > 0
