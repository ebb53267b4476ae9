"""Fuzz every public entry point of ``factorch.nn.attention`` through the shared harness: each
input class ends in a clear error or a true (finite, right-dtype) result."""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from _harness import (
    BAD_KINDS,
    EXTREME_KINDS,
    Case,
    Entry,
    assert_clear_or_true,
    assert_finite_result,
    fuzz_cases,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from factorch.nn.attention import (
    metric_tensor_attention,
    tensor_attention,
    tensor_attention_approx,
    tensor_attention_plan,
    tensor_attention_weights,
)

# ``rank`` drives an integral option where one exists; None is a valid value of the options used
# here, so the bad-type class (which includes None) is left out where it would be a false alarm,
# and so is the absurd class where a huge value is harmless (block sizes are clamped). Entry
# points without an integral option are fuzzed on the tensor classes only.
# The harness's "nan" / "inf" classes write through ``x.view(-1)``, which fails on the
# non-contiguous tensors its generator sometimes returns; those classes are drawn by
# ``test_fuzz_non_finite_entries`` below instead.
RANK_KINDS = ("bad_rank_value", "bad_rank_type", "absurd_rank", "numpy_rank")
ALL = tuple(k for k in BAD_KINDS + EXTREME_KINDS if k not in ("nan", "inf"))
INT_OPTION = tuple(k for k in ALL if k not in ("bad_rank_type", "absurd_rank"))
DEGREE_OPTION = tuple(k for k in ALL if k != "bad_rank_type")
TENSOR_ONLY = tuple(k for k in ALL if k not in RANK_KINDS)


def _check(case: Case, result: Any) -> None:
    assert_finite_result(case, result)


def _plan_check(case: Case, result: Any) -> None:
    assert result.degree >= 1 and result.feature_dim >= 1
    assert result.logit_bound >= 0 and result.weight_error >= 0


def _exact(t: Any, r: Any) -> Any:
    return tensor_attention(t, t, t, t, t, block_size=r, is_causal=True)


def _weights(t: Any, r: Any) -> Any:
    return tensor_attention_weights(t, t, t, is_causal=True)


def _approx(t: Any, r: Any) -> Any:
    # fallback="raise": outside the regime is a clear ValueError, never a silent exact path
    return tensor_attention_approx(t, t, t, t, t, degree=r, fallback="raise", is_causal=True)


def _plan(t: Any, r: Any) -> Any:
    return tensor_attention_plan(t, t, t, t, t, degree=r)


def _metric(t: Any, r: Any) -> Any:
    return metric_tensor_attention(t, t, t, is_causal=True)


ENTRIES = [
    Entry("tensor_attention", _exact, _check, kinds=INT_OPTION),
    Entry("tensor_attention_weights", _weights, _check, kinds=TENSOR_ONLY),
    Entry("tensor_attention_approx", _approx, _check, kinds=DEGREE_OPTION),
    Entry("tensor_attention_plan", _plan, _plan_check, kinds=DEGREE_OPTION),
    Entry("metric_tensor_attention", _metric, _check, kinds=TENSOR_ONLY),
]


def _run(entry: Entry, case: Case) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_clear_or_true(entry, case)


@settings(max_examples=60, deadline=None)
@given(case=fuzz_cases(ENTRIES[0]))
def test_fuzz_tensor_attention(case):
    _run(ENTRIES[0], case)


@settings(max_examples=40, deadline=None)
@given(case=fuzz_cases(ENTRIES[1]))
def test_fuzz_tensor_attention_weights(case):
    _run(ENTRIES[1], case)


@settings(max_examples=40, deadline=None)
@given(case=fuzz_cases(ENTRIES[2]))
def test_fuzz_tensor_attention_approx(case):
    _run(ENTRIES[2], case)


@settings(max_examples=30, deadline=None)
@given(case=fuzz_cases(ENTRIES[3]))
def test_fuzz_tensor_attention_plan(case):
    _run(ENTRIES[3], case)


@settings(max_examples=40, deadline=None)
@given(case=fuzz_cases(ENTRIES[4]))
def test_fuzz_metric_tensor_attention(case):
    _run(ENTRIES[4], case)


@settings(max_examples=30, deadline=None)
@given(
    index=st.integers(0, 5),
    entry=st.integers(0, len(ENTRIES) - 1),
    value=st.sampled_from([math.nan, math.inf, -math.inf]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_fuzz_non_finite_entries(index, entry, value, dtype):
    x = torch.rand(2, 3, 2, dtype=dtype) + 0.1
    x.view(-1)[index] = value
    case = Case(kind="nan", tensor=x, rank=1, shape=(2, 3, 2), dtype=dtype)
    _run(ENTRIES[entry], case)
