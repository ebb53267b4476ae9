"""Parameter counts and ``rank_for_ratio``: checked against brute force and the layers' own
parameter counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from factorch.decomp import param_count, rank_for_ratio

SHAPES = [(12, 20), (4, 3, 5, 4), (6, 4, 3, 3), (8, 2, 7)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ratio", [0.05, 0.1, 0.3, 0.7])
def test_lowrank_and_cp_match_brute_force(shape, ratio):
    dense = math.prod(shape)
    for fmt, top in (("lowrank", min(shape[0], dense // shape[0])), ("cp", dense // max(shape))):
        counts = {r: param_count(shape, r, format=fmt) for r in range(1, top + 1)}
        ok = [r for r, c in counts.items() if c <= ratio * dense]
        if not ok:
            with pytest.raises(ValueError, match="is below the smallest"):
                rank_for_ratio(shape, ratio, format=fmt)
            continue
        assert rank_for_ratio(shape, ratio, format=fmt) == max(ok)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.7])
@pytest.mark.parametrize("fmt", ["tt", "tr"])
def test_chain_ranks_match_brute_force_over_the_uniform_family(shape, ratio, fmt):
    dense = math.prod(shape)
    bounds = [min(math.prod(shape[:k]), math.prod(shape[k:])) for k in range(1, len(shape))]
    if fmt == "tt":
        family = [(1, *(min(r, b) for b in bounds), 1) for r in range(1, max(bounds) + 1)]
    else:
        family = [(r,) * (len(shape) + 1) for r in range(1, max(bounds) + 1)]
    within = [t for t in family if param_count(shape, t, format=fmt) <= ratio * dense]
    if not within:
        with pytest.raises(ValueError, match="is below the smallest"):
            rank_for_ratio(shape, ratio, format=fmt)
        return
    best = max(within, key=lambda t: param_count(shape, t, format=fmt))
    assert rank_for_ratio(shape, ratio, format=fmt) == best


@pytest.mark.parametrize("shape", SHAPES[1:])
@pytest.mark.parametrize("ratio", [0.2, 0.3, 0.7])
def test_tucker_within_budget_and_valid(shape, ratio):
    rank = rank_for_ratio(shape, ratio, format="tucker")
    assert param_count(shape, rank, format="tucker") <= ratio * math.prod(shape)
    for n, (r, s) in enumerate(zip(rank, shape)):
        assert 1 <= r <= s
        assert r <= math.prod(rank[:n] + rank[n + 1 :])


def test_tucker_fixed_modes_keep_full_rank():
    rank = rank_for_ratio((64, 64, 3, 3), 0.1, format="tucker", fixed_modes=(2, 3))
    assert rank[2:] == (3, 3)
    assert param_count((64, 64, 3, 3), rank, format="tucker") <= 0.1 * 64 * 64 * 9
    # the fill step gets close to the budget: one more unit on either channel rank overshoots
    for n in (0, 1):
        up = list(rank)
        up[n] += 1
        assert param_count((64, 64, 3, 3), tuple(up), format="tucker") > 0.1 * 64 * 64 * 9


def test_tt_matrix_counts_merged_cores():
    rows, cols = (4, 8), (8, 4)
    rank = rank_for_ratio((rows, cols), 0.1, format="tt_matrix")
    assert rank[0] == rank[-1] == 1
    count = param_count((rows, cols), rank, format="tt_matrix")
    assert count == sum(rank[k] * rows[k] * cols[k] * rank[k + 1] for k in range(2))
    assert count <= 0.1 * 32 * 32


def test_tr_ring_rank_and_count():
    rank = rank_for_ratio((8, 8, 8), 0.2, format="tr")
    assert len(rank) == 4 and len(set(rank)) == 1
    assert param_count((8, 8, 8), rank, format="tr") == 3 * rank[0] ** 2 * 8
    assert param_count((8, 8, 8), (rank[0] + 1,) * 4, format="tr") > 0.2 * 512


def test_full_ratio_gives_exact_rank():
    assert rank_for_ratio((12, 20), 5.0, format="lowrank") == 12
    assert rank_for_ratio((4, 3, 5), 5.0, format="tucker") == (4, 3, 5)
    assert rank_for_ratio((4, 3, 5), 5.0, format="tt") == (1, 4, 5, 1)


def test_counts_equal_the_layers_parameters():
    import factorch.nn as fnn

    spec = fnn.TensorizedShape((4, 3), (5, 4))
    for fmt, budget_fmt, shape in (
        ("lowrank", "lowrank", (12, 20)),
        ("cp", "cp", (4, 3, 5, 4)),
        ("tucker", "tucker", (4, 3, 5, 4)),
        ("tt", "tt_matrix", ((4, 3), (5, 4))),
        ("tr", "tr", (20, 12)),
    ):
        rank = rank_for_ratio(shape, 0.3, format=budget_fmt)
        layer = fnn.FactorizedLinear(20, 12, bias=False, format=fmt, rank=rank, shape=spec)
        assert layer.n_params == param_count(shape, rank, format=budget_fmt), fmt
        via_ratio = fnn.FactorizedLinear(20, 12, bias=False, format=fmt, ratio=0.3, shape=spec)
        assert via_ratio.n_params <= 0.3 * 240


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: rank_for_ratio((4, 4), 0.5, format="svd"), ValueError, "format must be one of"),
        (
            lambda: rank_for_ratio((4, 4), 0.0, format="lowrank"),
            ValueError,
            "ratio must be a positive finite number",
        ),
        (
            lambda: rank_for_ratio((4, 4), math.nan, format="lowrank"),
            ValueError,
            "ratio must be a positive finite number",
        ),
        (
            lambda: rank_for_ratio((4, 4), "0.5", format="lowrank"),
            TypeError,
            "ratio must be a number",
        ),
        (
            lambda: rank_for_ratio((100, 100), 0.001, format="lowrank"),
            ValueError,
            "is below the smallest lowrank",
        ),
        (
            lambda: rank_for_ratio((4, 0), 0.5, format="cp"),
            ValueError,
            "shape must contain positive ints",
        ),
        (
            lambda: rank_for_ratio(5, 0.5, format="cp"),
            TypeError,
            "shape must be a non-empty sequence",
        ),
        (
            lambda: rank_for_ratio((4, 4), 0.5, format="tt_matrix"),
            TypeError,
            "shape must be a pair",
        ),
        (
            lambda: rank_for_ratio(((4, 4), (2,)), 0.5, format="tt_matrix"),
            ValueError,
            "the same number of factors",
        ),
        (
            lambda: rank_for_ratio((4, 4), 0.5, format="cp", fixed_modes=(0,)),
            ValueError,
            "fixed_modes only applies",
        ),
        (
            lambda: rank_for_ratio((4, 4), 0.5, format="tucker", fixed_modes=(2,)),
            IndexError,
            "fixed_modes entries must be modes",
        ),
        (
            lambda: param_count((4, 4), 0, format="cp"),
            ValueError,
            "rank for format='cp' must be a positive int",
        ),
        (lambda: param_count((4, 4), (1, 2), format="tt"), ValueError, "needs 3 entries"),
        (lambda: param_count((4, 4), (2, 2, 2), format="tt"), ValueError, "start and end with 1"),
        (lambda: param_count((4, 4), (2, 2, 3), format="tr"), ValueError, "close the ring"),
        (lambda: param_count((4, 4), True, format="tt"), TypeError, "rank must be an int or"),
    ],
    ids=[
        "format",
        "ratio-zero",
        "ratio-nan",
        "ratio-str",
        "ratio-small",
        "shape-zero",
        "shape-int",
        "tt-matrix-pair",
        "tt-matrix-factors",
        "fixed-cp",
        "fixed-range",
        "cp-rank-0",
        "tt-length",
        "tt-ends",
        "tr-ring",
        "bool-rank",
    ],
)
def test_bad_arguments_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_numpy_integers_and_floats_are_accepted():
    assert param_count((12, 20), np.int64(3), format="lowrank") == 96
    assert param_count((4, 4), (1, np.int32(2), 1), format="tt") == 16
    assert rank_for_ratio((12, 20), np.float32(0.5), format="lowrank") == 3
    assert rank_for_ratio((6, 6, 3), 0.5, format="tucker", fixed_modes=(np.int64(2),))[2] == 3


def test_param_count_uses_no_tensors():
    # pure Python: works for shapes far too large to allocate
    assert param_count((10**6, 10**6), 10, format="lowrank") == 10 * 2 * 10**6
    assert isinstance(rank_for_ratio((10**5, 10**5), 0.01, format="lowrank"), int)
    assert torch.get_default_dtype() == torch.float32
