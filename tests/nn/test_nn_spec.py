"""Tensorized shapes and layouts (``factorch.nn._spec``)."""

from __future__ import annotations

import math

import pytest
import torch

import factorch.nn as fnn
from factorch.nn import TensorizedShape, TensorLayout

SPEC = TensorizedShape((4, 3), (5, 4))


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


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: TensorizedShape((4, 0), (2,)), ValueError, "out_factors must contain positive"),
        (lambda: TensorizedShape((4,), ()), TypeError, "in_factors must be a non-empty tuple"),
        (
            lambda: TensorizedShape((4, 4), (3, 5)).check(16, 16, "f"),
            ValueError,
            "folds a 16 x 15 matrix but the layer is 16 x 16",
        ),
        (lambda: fnn.balanced_factorization(0, 2), ValueError, "n must be a positive int"),
        (lambda: TensorLayout((4, 3), (4, 3), (0, 0), (4, 3)), ValueError, "order must permute"),
        (lambda: TensorLayout((4, 3), (4, 3), (0, 1), (5, 3)), ValueError, "must hold prod"),
    ],
    ids=["zero-factor", "empty-factors", "mismatch", "balanced-zero", "order", "numel"],
)
def test_spec_and_layout_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
