"""Every bad input of every public entry point of ``factorch.nn.attention`` gets a clear error
(one case per message)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

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

Q = torch.randn(2, 5, 3)
V = torch.randn(2, 5, 4)
FIVE = (Q, Q, Q, V, V)


def _ta(*args, **kw):
    return lambda: tensor_attention(*args, **kw)


INPUT_CASES = [
    # (name, call, error, match)
    ("none", _ta(None, Q, Q, V, V), TypeError, r"tensor_attention: q must be a torch.Tensor"),
    (
        "int",
        _ta(Q.long(), Q, Q, V, V),
        TypeError,
        r"q must have a real floating dtype; got torch.int64",
    ),
    ("complex", _ta(Q, Q.to(torch.complex64), Q, V, V), TypeError, r"k1 must have a real floating"),
    ("1d", _ta(torch.randn(3), Q, Q, V, V), ValueError, r"q must have at least 2 dimensions"),
    ("empty", _ta(torch.randn(2, 0, 3), Q, Q, V, V), ValueError, r"q has an empty dimension"),
    ("nan", _ta(Q, Q, torch.full_like(Q, math.nan), V, V), ValueError, r"k2 contains NaN or Inf"),
    ("dtype", _ta(Q, Q.double(), Q, V, V), TypeError, r"k1 has dtype torch.float64 but q has"),
    ("batch", _ta(Q, Q[:1], Q[:1], V[:1], V[:1]), ValueError, r"k1 must have the batch dimensions"),
    ("width", _ta(Q, torch.randn(2, 5, 2), Q, V, V), ValueError, r"k1 must have 3 features"),
    ("length", _ta(Q, Q, torch.randn(2, 4, 3), V, V), ValueError, r"k2 must have length 5"),
    ("vwidth", _ta(Q, Q, Q, V, torch.randn(2, 5, 2)), ValueError, r"v2 must have 4 features"),
    ("scale_type", _ta(*FIVE, scale="a"), TypeError, r"scale must be a float or None; got str"),
    ("scale_zero", _ta(*FIVE, scale=0.0), ValueError, r"scale must be a finite non-zero number"),
    ("causal", _ta(*FIVE, is_causal=1), TypeError, r"is_causal must be a bool; got int"),
    (
        "dropout_type",
        _ta(*FIVE, dropout_p="x"),
        TypeError,
        r"dropout_p must be a float in \[0, 1\)",
    ),
    (
        "dropout_value",
        _ta(*FIVE, dropout_p=1.0),
        ValueError,
        r"dropout_p must be a float in \[0, 1\); got 1.0",
    ),
    ("block", _ta(*FIVE, block_size=0), ValueError, r"block_size must be a positive int; got 0"),
    (
        "generator",
        _ta(*FIVE, dropout_p=0.1, generator=3),
        TypeError,
        r"generator must be a torch.Generator",
    ),
    (
        "mask_type",
        _ta(*FIVE, attn_mask=[[True]]),
        TypeError,
        r"attn_mask must be a torch.Tensor or None",
    ),
    (
        "mask_shape",
        _ta(*FIVE, attn_mask=torch.ones(4, 5, dtype=torch.bool)),
        ValueError,
        r"attn_mask must broadcast to \(2, 5, 5\)",
    ),
    (
        "mask_dtype",
        _ta(*FIVE, attn_mask=torch.ones(5, 5, dtype=torch.int64)),
        TypeError,
        r"attn_mask must be a bool or floating tensor",
    ),
    (
        "mask_nan",
        _ta(*FIVE, attn_mask=torch.full((5, 5), math.nan)),
        ValueError,
        r"floating attn_mask must not contain NaN or \+Inf",
    ),
    (
        "pad_type",
        _ta(*FIVE, key_padding_mask=torch.zeros(2, 5)),
        TypeError,
        r"key_padding_mask must be a bool tensor \(True = padding\)",
    ),
    (
        "pad_shape",
        _ta(*FIVE, key_padding_mask=torch.zeros(3, 5, dtype=torch.bool)),
        ValueError,
        r"key_padding_mask must broadcast to \(2, 5\)",
    ),
    (
        "weights_memory",
        lambda: tensor_attention_weights(
            torch.randn(1, 20000, 1), torch.randn(1, 20000, 1), torch.randn(1, 20000, 1)
        ),
        ValueError,
        r"tensor_attention_weights: the pair attention weights needs about .* use shorter",
    ),
    (
        "weights_q",
        lambda: tensor_attention_weights(Q.long(), Q, Q),
        TypeError,
        r"tensor_attention_weights: q must have a real",
    ),
    (
        "approx_eps_type",
        lambda: tensor_attention_approx(*FIVE, eps="1"),
        TypeError,
        r"tensor_attention_approx: eps must be a float in \(0, 1\); got str",
    ),
    (
        "approx_eps",
        lambda: tensor_attention_approx(*FIVE, eps=0.0),
        ValueError,
        r"eps must be a float in \(0, 1\); got 0.0",
    ),
    (
        "approx_degree",
        lambda: tensor_attention_approx(*FIVE, degree=0),
        ValueError,
        r"degree must be a positive int; got 0",
    ),
    (
        "approx_max_degree",
        lambda: tensor_attention_approx(*FIVE, max_degree=1.5),
        TypeError,
        r"max_degree must be a positive int; got float",
    ),
    (
        "approx_features",
        lambda: tensor_attention_approx(*FIVE, features="dense"),
        ValueError,
        r"features must be one of \('symmetric', 'full'\); got 'dense'",
    ),
    (
        "approx_fallback",
        lambda: tensor_attention_approx(*FIVE, fallback="ignore"),
        ValueError,
        r"fallback must be one of \('exact', 'approximate', 'raise'\)",
    ),
    (
        "approx_pad",
        lambda: tensor_attention_approx(*FIVE, key_padding_mask=torch.ones(2, 5)),
        TypeError,
        r"tensor_attention_approx: key_padding_mask must be a bool tensor",
    ),
    (
        "plan_q",
        lambda: tensor_attention_plan(None, Q, Q, V, V),
        TypeError,
        r"tensor_attention_plan: q must be a torch.Tensor",
    ),
    (
        "plan_eps",
        lambda: tensor_attention_plan(*FIVE, eps=2.0),
        ValueError,
        r"tensor_attention_plan: eps must be a float in \(0, 1\)",
    ),
    (
        "metric_q",
        lambda: metric_tensor_attention(Q.int(), Q, V),
        TypeError,
        r"metric_tensor_attention: q must have a real floating dtype",
    ),
    (
        "metric_type",
        lambda: metric_tensor_attention(Q, Q, V, np.eye(3)),
        TypeError,
        r"metric must be a torch.Tensor or None; got ndarray",
    ),
    (
        "metric_dtype",
        lambda: metric_tensor_attention(Q, Q, V, torch.eye(3).double()),
        TypeError,
        r"metric must have the dtype and device of q",
    ),
    (
        "metric_shape",
        lambda: metric_tensor_attention(Q, Q, V, torch.eye(4)),
        ValueError,
        r"metric must have shape \(\.\.\., 3, 3\)",
    ),
    (
        "metric_per_query",
        lambda: metric_tensor_attention(Q, Q, V, torch.randn(2, 4, 3, 3)),
        ValueError,
        r"a per-query metric must have L = 5 matrices",
    ),
    (
        "metric_mask",
        lambda: metric_tensor_attention(Q, Q, V, attn_mask=torch.ones(3, 3)),
        ValueError,
        r"metric_tensor_attention: attn_mask must broadcast to \(2, 5, 5\)",
    ),
    (
        "match3_modulus",
        lambda: match3(10, 5, 0),
        ValueError,
        r"match3: modulus must be a positive int; got 0",
    ),
    (
        "match3_balance",
        lambda: match3(10, 5, 2),
        ValueError,
        r"match3: could not balance the labels .* modulus near",
    ),
    (
        "match3_balance_type",
        lambda: match3(10, 5, 20, balance=1),
        TypeError,
        r"match3: balance must be a bool",
    ),
    (
        "match3_generator",
        lambda: match3(10, 5, 20, generator=0),
        TypeError,
        r"match3: generator must be a torch.Generator",
    ),
    (
        "labels_float",
        lambda: match3_labels(torch.rand(3, 4), 5),
        TypeError,
        r"match3_labels: x must be an integer tensor",
    ),
    (
        "labels_bool",
        lambda: match3_labels(torch.tensor([True, False]), 5),
        TypeError,
        r"match3_labels: x must be an integer tensor .* dtype torch.bool",
    ),
    (
        "labels_huge",
        lambda: match3_labels(torch.zeros(1, 1, dtype=torch.long).expand(10**5, 10**4), 7),
        ValueError,
        r"match3_labels: labelling 100000 sequences of length 10000 needs about .* shorter",
    ),
    (
        "match3_huge",
        lambda: match3(10**10, 4, 11),
        ValueError,
        r"match3: 10000000000 sequences of length 4 needs about",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "match"), [c[1:] for c in INPUT_CASES], ids=[c[0] for c in INPUT_CASES]
)
def test_functional_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


MODULE_CASES = [
    (
        "ta_embed",
        lambda: TensorAttention(0, 1),
        ValueError,
        r"TensorAttention: embed_dim must be a positive int; got 0",
    ),
    (
        "ta_heads",
        lambda: TensorAttention(8, 3),
        ValueError,
        r"TensorAttention: embed_dim must be divisible by num_heads; got 8 and 3",
    ),
    (
        "ta_heads_type",
        lambda: TensorAttention(8, 2.0),
        TypeError,
        r"TensorAttention: num_heads must be a positive int; got float",
    ),
    (
        "ta_method",
        lambda: TensorAttention(8, 2, method="fast"),
        ValueError,
        r"method must be one of \('exact', 'approximate', 'auto'\); got 'fast'",
    ),
    (
        "ta_dropout",
        lambda: TensorAttention(8, 2, dropout=1.5),
        ValueError,
        r"TensorAttention: dropout must be a float in \[0, 1\)",
    ),
    (
        "ta_dropout_approx",
        lambda: TensorAttention(8, 2, dropout=0.1, method="auto"),
        ValueError,
        r"dropout needs method='exact'",
    ),
    (
        "ta_projection",
        lambda: TensorAttention(8, 2, projection_format="svd"),
        ValueError,
        r"projection_format must be None or one of",
    ),
    (
        "ta_eps",
        lambda: TensorAttention(8, 2, eps=0),
        ValueError,
        r"TensorAttention: eps must be a float in \(0, 1\)",
    ),
    (
        "ta_fallback",
        lambda: TensorAttention(8, 2, fallback="warn"),
        ValueError,
        r"TensorAttention: fallback must be one of",
    ),
    (
        "ta_batch_first",
        lambda: TensorAttention(8, 2, batch_first=None),
        TypeError,
        r"TensorAttention: batch_first must be a bool",
    ),
    (
        "ta_kdim",
        lambda: TensorAttention(8, 2, kdim=-1),
        ValueError,
        r"TensorAttention: kdim must be a positive int; got -1",
    ),
    (
        "pl_head",
        lambda: PowerLawMetric(0, 1),
        ValueError,
        r"PowerLawMetric: head_dim must be a positive int",
    ),
    (
        "pl_residual",
        lambda: PowerLawMetric(4, 1, num_residual=-1),
        ValueError,
        r"PowerLawMetric: num_residual must be a non-negative int",
    ),
    (
        "pl_context",
        lambda: PowerLawMetric(4, 1, context="causal"),
        ValueError,
        r"context must be one of \('sequence', 'prefix'\); got 'causal'",
    ),
    (
        "pl_q",
        lambda: PowerLawMetric(4, 2)(torch.randn(2, 3, 5, 4)),
        ValueError,
        r"PowerLawMetric.forward: q must have shape \(N, 2, L, 4\)",
    ),
    (
        "plm_int",
        lambda: PowerLawMetric(4, 2)(torch.ones(1, 2, 3, 4, dtype=torch.long)),
        TypeError,
        r"PowerLawMetric.forward: q must have a real floating dtype; got torch.int64",
    ),
    (
        "plm_not_tensor",
        lambda: PowerLawMetric(4, 2)([1.0]),
        TypeError,
        r"PowerLawMetric.forward: q must be a torch.Tensor; got list",
    ),
    (
        "plm_nan",
        lambda: PowerLawMetric(4, 2)(torch.full((1, 2, 3, 4), math.nan)),
        ValueError,
        r"PowerLawMetric.forward: q contains NaN or Inf entries",
    ),
    (
        "plm_padding",
        lambda: PowerLawMetric(4, 2)(torch.ones(1, 2, 3, 4), key_padding_mask=torch.ones(1, 4)),
        ValueError,
        r"PowerLawMetric.forward: key_padding_mask must be a bool tensor of shape \(1, 3\)",
    ),
    (
        "mta_logits_beyond_float64",
        lambda: MetricTensorAttention(4, 1, metric="identity", dtype=torch.float64)(
            torch.full((3, 4), 1e200, dtype=torch.float64)
        ),
        ValueError,
        r"MetricTensorAttention.forward: the logits can reach inf, beyond the range of float64",
    ),
    (
        "mta_metric",
        lambda: MetricTensorAttention(8, 2, metric="learned"),
        ValueError,
        r"MetricTensorAttention: metric must be one of \('power_law', 'identity'\)",
    ),
    (
        "mta_heads",
        lambda: MetricTensorAttention(8, 3),
        ValueError,
        r"MetricTensorAttention: embed_dim must be divisible by num_heads",
    ),
    (
        "mohd_groups",
        lambda: MixtureOfHiddenDims(10, 8, num_groups=4, num_shared=1, top_k=1),
        ValueError,
        r"MixtureOfHiddenDims: num_groups must divide embed_dim=10; got 4",
    ),
    (
        "mohd_shared",
        lambda: MixtureOfHiddenDims(8, 8, num_groups=4, num_shared=5, top_k=0),
        ValueError,
        r"num_shared must be at most num_groups=4; got 5",
    ),
    (
        "mohd_topk",
        lambda: MixtureOfHiddenDims(8, 8, num_groups=4, num_shared=1, top_k=4),
        ValueError,
        r"top_k must be at most the 3 routed groups",
    ),
    (
        "mohd_none",
        lambda: MixtureOfHiddenDims(8, 8, num_groups=4, num_shared=0, top_k=0),
        ValueError,
        r"num_shared \+ top_k must be at least 1",
    ),
    (
        "mohd_negative",
        lambda: MixtureOfHiddenDims(8, 8, num_groups=4, num_shared=-1, top_k=1),
        ValueError,
        r"num_shared must be a non-negative int; got -1",
    ),
    (
        "mohd_act",
        lambda: MixtureOfHiddenDims(8, 8, num_groups=4, num_shared=1, top_k=1, activation="tanh"),
        ValueError,
        r"activation must be one of \('gelu', 'relu', 'silu'\)",
    ),
    (
        "mohd_impl",
        lambda: MixtureOfHiddenDims(
            8, 8, num_groups=4, num_shared=1, top_k=1, implementation="sparse"
        ),
        ValueError,
        r"implementation must be one of \('dispatch', 'masked'\)",
    ),
    (
        "mohd_scale",
        lambda: MixtureOfHiddenDims(
            8, 8, num_groups=4, num_shared=1, top_k=1, activation_scale=0.0
        ),
        ValueError,
        r"activation_scale must be a positive number or None",
    ),
    (
        "mohd_gate",
        lambda: MixtureOfHiddenDims(8, 8, num_groups=4, num_shared=1, top_k=1, gate="yes"),
        TypeError,
        r"MixtureOfHiddenDims: gate must be a bool",
    ),
    (
        "ta_memory",
        lambda: TensorAttention(10**9, 1),
        ValueError,
        r"TensorAttention: 6000000006000000000 parameters needs about .* smaller dimensions",
    ),
    (
        "mta_memory",
        lambda: MetricTensorAttention(10**9, 1),
        ValueError,
        r"MetricTensorAttention: 4000000004000000000 parameters needs about",
    ),
    (
        "plm_memory",
        lambda: PowerLawMetric(8, 2, hidden_dim=10**12),
        ValueError,
        r"PowerLawMetric: \d+ parameters needs about",
    ),
    (
        "mohd_memory",
        lambda: MixtureOfHiddenDims(8, 10**12, num_groups=2, num_shared=1, top_k=1),
        ValueError,
        r"MixtureOfHiddenDims: \d+ parameters needs about",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "match"), [c[1:] for c in MODULE_CASES], ids=[c[0] for c in MODULE_CASES]
)
def test_module_construction_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


ATTN = TensorAttention(8, 2)
METRIC = MetricTensorAttention(8, 2)
MOHD = MixtureOfHiddenDims(8, 8, num_groups=4, num_shared=1, top_k=1)
X = torch.randn(5, 2, 8)

FORWARD_CASES = [
    (
        "query_type",
        lambda: ATTN("x"),
        TypeError,
        r"TensorAttention.forward: query must be a torch.Tensor; got str",
    ),
    (
        "query_shape",
        lambda: ATTN(torch.randn(5, 2, 7)),
        ValueError,
        r"TensorAttention.forward: query must have shape \(L, N, 8\)",
    ),
    (
        "query_int",
        lambda: ATTN(X.long()),
        TypeError,
        r"TensorAttention.forward: query must have a real floating dtype",
    ),
    (
        "mixed",
        lambda: ATTN(X, X[:, 0], X[:, 0]),
        ValueError,
        r"query, key and value must all be batched or all unbatched",
    ),
    ("kv", lambda: ATTN(X, X, X[:4]), ValueError, r"key and value must have one length and batch"),
    (
        "pad_type",
        lambda: ATTN(X, key_padding_mask=torch.zeros(2, 5)),
        TypeError,
        r"TensorAttention.forward: key_padding_mask must be a bool tensor",
    ),
    (
        "pad_shape",
        lambda: ATTN(X, key_padding_mask=torch.zeros(5, 2, dtype=torch.bool)),
        ValueError,
        r"key_padding_mask must have shape \(2, 5\)",
    ),
    (
        "mask_type",
        lambda: ATTN(X, attn_mask=1.0),
        TypeError,
        r"TensorAttention.forward: attn_mask must be a tensor or None; got float",
    ),
    (
        "mask_shape",
        lambda: ATTN(X, attn_mask=torch.zeros(2, 5, 5)),
        ValueError,
        r"attn_mask must have shape \(5, 5\) or \(4, 5, 5\)",
    ),
    (
        "need_weights",
        lambda: ATTN(X, need_weights="yes"),
        TypeError,
        r"TensorAttention.forward: need_weights must be a bool",
    ),
    (
        "causal",
        lambda: ATTN(X, is_causal=None),
        TypeError,
        r"TensorAttention.forward: is_causal must be a bool",
    ),
    (
        "approx_mask",
        lambda: TensorAttention(8, 2, method="approximate")(X, attn_mask=torch.zeros(5, 5)),
        ValueError,
        r"attn_mask has no factorized form for method='approximate'",
    ),
    (
        "metric_query",
        lambda: METRIC(torch.randn(5, 2, 6)),
        ValueError,
        r"MetricTensorAttention.forward: query must have shape",
    ),
    (
        "metric_cache",
        lambda: METRIC(X, metric_cache=torch.eye(4)),
        TypeError,
        r"metric_cache must be a MetricCache or None; got Tensor",
    ),
    (
        "metric_weights",
        lambda: METRIC(X, need_weights=1),
        TypeError,
        r"MetricTensorAttention.forward: need_weights must be a bool",
    ),
    (
        "compute_metric",
        lambda: METRIC.compute_metric([1.0]),
        TypeError,
        r"MetricTensorAttention.compute_metric: query must be a torch.Tensor",
    ),
    (
        "compute_identity",
        lambda: MetricTensorAttention(8, 2, metric="identity").compute_metric(X),
        ValueError,
        r"compute_metric: metric='identity' has no metric network",
    ),
    (
        "mohd_type",
        lambda: MOHD([1.0] * 8),
        TypeError,
        r"MixtureOfHiddenDims.forward: x must be a torch.Tensor; got list",
    ),
    (
        "mohd_shape",
        lambda: MOHD(torch.randn(3, 7)),
        ValueError,
        r"MixtureOfHiddenDims.forward: x must have shape \(\.\.\., 8\); got \(3, 7\)",
    ),
    (
        "mohd_dtype",
        lambda: MOHD(torch.ones(3, 8, dtype=torch.int64)),
        TypeError,
        r"MixtureOfHiddenDims.forward: x must have a real floating dtype",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "match"), [c[1:] for c in FORWARD_CASES], ids=[c[0] for c in FORWARD_CASES]
)
def test_forward_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
