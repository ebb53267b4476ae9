"""Fuzz every public entry point of ``factorch.nn.attention`` through the shared harness: each
input class ends in a clear error or a true (finite, right-dtype) result.

Covered: the functions (``tensor_attention``, ``tensor_attention_weights``,
``tensor_attention_approx``, ``tensor_attention_plan``, ``metric_tensor_attention``, ``match3``,
``match3_labels``), each module's constructor (its size argument drawn as the harness's rank) and
each module's ``forward`` (``TensorAttention``, ``MetricTensorAttention`` and its
``compute_metric``, ``PowerLawMetric``, ``MixtureOfHiddenDims``; the module is built in the
input's dtype). The result classes (``ApproximationPlan``, ``MetricCache``, ``MoHDCost``,
``RoutingStats``) and ``TensorAttentionRegimeWarning`` are only returned or raised, never called.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

import numpy as np
import pytest
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
    MetricTensorAttention,
    MixtureOfHiddenDims,
    PowerLawMetric,
    TensorAttention,
    match3,
    match3_labels,
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
# the plan allocates nothing: an absurd degree gets a true answer (in_regime=False, the cost of
# its features stated), pinned below in test_plan_of_an_absurd_degree_is_out_of_regime
PLAN_KINDS = tuple(k for k in DEGREE_OPTION if k != "absurd_rank")


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


def _match3(t: Any, r: Any) -> Any:
    return match3(r, 4, 11, balance=False, generator=torch.Generator().manual_seed(0))


def _match3_check(case: Case, result: Any) -> None:
    x, y = result
    assert x.dtype == torch.int64 and y.dtype == torch.bool and x.shape == y.shape
    assert int(x.min()) >= 0 and int(x.max()) < 11
    assert torch.equal(y, match3_labels(x, 11))


def _tokens(t: Any) -> Any:
    """Floating data become integer tokens (so every class reaches the labelling); the
    integer-only refusals are drawn through ``bool_dtype``, ``complex_dtype``, ``not_a_tensor``."""
    if isinstance(t, np.ndarray) and t.dtype.kind == "f":
        return (t * 10).astype(np.int64)
    if isinstance(t, torch.Tensor) and t.is_floating_point():
        return (t.detach() * 10).long()
    return t


def _labels(t: Any, r: Any) -> Any:
    return match3_labels(_tokens(t), r)


def _labels_check(case: Case, result: Any) -> None:
    x = torch.as_tensor(_tokens(case.tensor))
    m = int(case.rank)
    assert result.dtype == torch.bool and result.shape == x.shape
    for row, lab in zip(x.reshape(-1, x.shape[-1]).tolist(), result.reshape(-1, x.shape[-1])):
        sums = {(a + b) % m for a, b in itertools.product(row, repeat=2)}
        assert lab.tolist() == [(-a) % m in sums for a in row], case


def _width(t: Any) -> int:
    """The module width the input fits (4 where it fits none: the forward must refuse it)."""
    return int(t.shape[-1]) if hasattr(t, "shape") and len(t.shape) and t.shape[-1] else 4


def _module_dtype(t: Any) -> torch.dtype:
    ok = isinstance(t, torch.Tensor) and t.is_floating_point()
    return t.dtype if ok else torch.float32


def _seq(t: Any) -> Any:
    """Inputs of the attention modules are ``(L, E)`` or ``(N, L, E)``: 4-D cases are refused."""
    return t


def _ta_ctor(t: Any, r: Any) -> Any:
    return TensorAttention(r, 1)


def _ta_forward(t: Any, r: Any) -> Any:
    torch.manual_seed(0)
    attn = TensorAttention(_width(t), 1, batch_first=True, dtype=_module_dtype(t))
    return attn(t)[0]


def _mta_ctor(t: Any, r: Any) -> Any:
    return MetricTensorAttention(r, 1)


def _mta_forward(t: Any, r: Any) -> Any:
    torch.manual_seed(0)
    attn = MetricTensorAttention(_width(t), 1, batch_first=True, dtype=_module_dtype(t))
    return attn(t, is_causal=True)[0]


def _mta_metric(t: Any, r: Any) -> Any:
    torch.manual_seed(0)
    attn = MetricTensorAttention(_width(t), 1, batch_first=True, dtype=_module_dtype(t))
    return attn.compute_metric(t)


def _plm_ctor(t: Any, r: Any) -> Any:
    return PowerLawMetric(r, 1)


def _plm_forward(t: Any, r: Any) -> Any:
    torch.manual_seed(0)
    net = PowerLawMetric(_width(t), 1, context="prefix", dtype=_module_dtype(t))
    return net(t)


def _mohd_ctor(t: Any, r: Any) -> Any:
    return MixtureOfHiddenDims(4, r, num_groups=2, num_shared=1, top_k=1)


def _mohd_forward(t: Any, r: Any) -> Any:
    torch.manual_seed(0)
    e = _width(t)
    ffn = MixtureOfHiddenDims(e, 2 * e, num_groups=e, num_shared=1, top_k=1, dtype=_module_dtype(t))
    return ffn(t)


def _module_check(case: Case, result: Any) -> None:
    assert_finite_result(case, result)


def _ctor_check(case: Case, result: Any) -> None:
    assert_finite_result(case, result, dtype=torch.float32)


# constructors: the size argument is the fuzzed integer, the tensor is unused
CTOR = ("bad_rank_value", "bad_rank_type", "absurd_rank", "numpy_rank", "plain")
# match3_labels: integer tokens are its valid data, so the harness's integer, empty-sequence
# and huge-scale (10·1e30 overflows int64) classes do not apply
# the modulus allocates nothing (labels cost O(n²) per sequence whatever M is), so an absurd
# modulus is a valid input: test_labels_with_a_huge_modulus_match_brute_force checks it
LABEL_SKIP = ("integer_dtype", "empty_dim", "huge_scale", "absurd_rank")
LABEL_KINDS = tuple(k for k in ALL if k not in LABEL_SKIP)
# modules take torch tensors only (as torch.nn modules do); numpy inputs are refused clearly
MODULE_KINDS = tuple(k for k in TENSOR_ONLY if k != "numpy")

ENTRIES = [
    Entry("tensor_attention", _exact, _check, kinds=INT_OPTION),
    Entry("tensor_attention_weights", _weights, _check, kinds=TENSOR_ONLY),
    Entry("tensor_attention_approx", _approx, _check, kinds=DEGREE_OPTION),
    Entry("tensor_attention_plan", _plan, _plan_check, kinds=PLAN_KINDS),
    Entry("metric_tensor_attention", _metric, _check, kinds=TENSOR_ONLY),
]
MORE = [
    Entry("match3", _match3, _match3_check, kinds=CTOR),
    Entry("match3_labels", _labels, _labels_check, min_ndim=1, max_ndim=3, kinds=LABEL_KINDS),
    Entry("TensorAttention", _ta_ctor, _ctor_check, kinds=CTOR),
    Entry("TensorAttention.forward", _ta_forward, _module_check, max_ndim=3, kinds=MODULE_KINDS),
    Entry("MetricTensorAttention", _mta_ctor, _ctor_check, kinds=CTOR),
    Entry(
        "MetricTensorAttention.forward", _mta_forward, _module_check, max_ndim=3, kinds=MODULE_KINDS
    ),
    Entry(
        "MetricTensorAttention.compute_metric",
        _mta_metric,
        _module_check,
        max_ndim=3,
        kinds=MODULE_KINDS,
    ),
    Entry("PowerLawMetric", _plm_ctor, _ctor_check, kinds=CTOR),
    Entry("PowerLawMetric.forward", _plm_forward, _module_check, min_ndim=4, kinds=MODULE_KINDS),
    Entry("MixtureOfHiddenDims", _mohd_ctor, _ctor_check, kinds=CTOR),
    Entry("MixtureOfHiddenDims.forward", _mohd_forward, _module_check, kinds=MODULE_KINDS),
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


@pytest.mark.parametrize("entry", MORE, ids=[e.name for e in MORE])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_fuzz_match3_and_modules(entry, data):
    _run(entry, data.draw(fuzz_cases(entry)))


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


def test_plan_of_an_absurd_degree_is_out_of_regime():
    t = torch.rand(3, 2, generator=torch.Generator().manual_seed(0))
    plan = tensor_attention_plan(t, t, t, t, t, degree=10**9)
    assert not plan.in_regime and plan.feature_dim > 10**17
    assert "features, which costs" in plan.reason
