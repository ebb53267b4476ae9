"""Metric-tensor (power-law graph) attention: G = I is SDPA, the metric network's equations,
the G-cache, and the look-ahead of the paper's sequence-wide metric."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from _attention_reference import naive_metric_attention

from factorch.nn.attention import (
    MetricCache,
    MetricTensorAttention,
    PowerLawMetric,
    metric_tensor_attention,
)


def _qkv(seed=0, dtype=torch.float32, shape=(2, 3, 6, 4)):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g, dtype=dtype) for _ in range(3)]


@pytest.mark.parametrize("mask", ["none", "causal", "bool", "float"])
def test_identity_metric_equals_sdpa(mask):
    q, k, v = _qkv()
    g = torch.Generator().manual_seed(1)
    kw: dict = {}
    if mask == "causal":
        kw["is_causal"] = True
    elif mask == "bool":
        m = torch.rand(6, 6, generator=g) > 0.3
        m[:, 0] = True
        kw["attn_mask"] = m
    elif mask == "float":
        kw["attn_mask"] = torch.randn(6, 6, generator=g)
    ref = F.scaled_dot_product_attention(q, k, v, **kw)
    eye = torch.eye(4).expand(2, 3, 4, 4)
    torch.testing.assert_close(metric_tensor_attention(q, k, v, **kw), ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(metric_tensor_attention(q, k, v, eye, **kw), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("per_query", [False, True])
def test_random_metric_equals_bilinear_reference(per_query):
    q, k, v = _qkv(dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    shape = (2, 3, 6, 4, 4) if per_query else (2, 3, 4, 4)
    metric = torch.randn(*shape, generator=g, dtype=torch.float64)
    pad = torch.zeros(2, 1, 6, dtype=torch.bool)
    pad[1, 0, 4:] = True
    out = metric_tensor_attention(q, k, v, metric, key_padding_mask=pad)
    bias = torch.where(pad, -math.inf, 0.0).unsqueeze(-2).double()
    ref = naive_metric_attention(q, k, v, metric, bias=bias)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_gradcheck_metric_attention():
    q, k, v = (t.requires_grad_(True) for t in _qkv(dtype=torch.float64, shape=(1, 1, 4, 3)))
    metric = torch.randn(1, 1, 3, 3, dtype=torch.float64, requires_grad=True)

    def f(q, k, v, metric):
        return metric_tensor_attention(q, k, v, metric, is_causal=True)

    assert torch.autograd.gradcheck(f, (q, k, v, metric))


def _reference_metric(net: PowerLawMetric, q: torch.Tensor) -> torch.Tensor:
    """The PLDR equations written out with the network's parameters (sequence context)."""
    a = F.layer_norm(q.mT @ q, (q.shape[-1],), net.norm.weight, net.norm.bias, 1e-6)
    for unit in net.residual:
        h = a
        for glu in unit.dense:
            h = glu.w3(F.silu(glu.w1(h)) * glu.w2(h))
        a = F.layer_norm(h + a, (q.shape[-1],), unit.norm.weight, unit.norm.bias, 1e-6)
    x = net.weight @ a + net.bias
    a_lm = x * x * torch.sigmoid(x) + 1e-9  # iSwiGLU(x) = x silu(x) = x² σ(x)
    return net.coupling @ a_lm**net.power + net.coupling_bias


def test_power_law_metric_follows_the_equations():
    torch.manual_seed(0)
    net = PowerLawMetric(4, 3, num_residual=2, num_dense=2, dtype=torch.float64)
    q = torch.randn(2, 3, 7, 4, dtype=torch.float64)
    cache = net(q)
    assert isinstance(cache, MetricCache)
    assert bool((cache.a_lm > 0).all())
    torch.testing.assert_close(cache.metric, _reference_metric(net, q), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("context", ["sequence", "prefix"])
def test_power_law_metric_of_huge_queries_is_finite_and_true(context):
    # float32 queries near 1e30 have a Gram near 1e60 (beyond float32); the metric is computed
    # from q / 2^k with the LayerNorm's eps rescaled, so it equals the float64 computation
    torch.manual_seed(0)
    net64 = PowerLawMetric(4, 2, context=context, dtype=torch.float64)
    net32 = PowerLawMetric(4, 2, context=context, dtype=torch.float32)
    net32.load_state_dict(net64.state_dict())
    q = 1e30 * torch.randn(2, 2, 5, 4, dtype=torch.float64)
    got = net32(q.float()).metric
    want = net64(q.float().double()).metric
    assert bool(torch.isfinite(got).all())
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4)


def test_prefix_metric_is_the_sequence_metric_of_each_prefix():
    torch.manual_seed(0)
    seq = PowerLawMetric(4, 2, context="sequence", dtype=torch.float64)
    pre = PowerLawMetric(4, 2, context="prefix", dtype=torch.float64)
    pre.load_state_dict(seq.state_dict())
    q = torch.randn(1, 2, 5, 4, dtype=torch.float64)
    per_pos = pre(q).metric
    assert per_pos.shape == (1, 2, 5, 4, 4)
    for i in range(5):
        torch.testing.assert_close(per_pos[:, :, i], seq(q[:, :, : i + 1]).metric)


@pytest.mark.parametrize("context", ["sequence", "prefix"])
def test_g_cache_path_equals_full_path(context):
    torch.manual_seed(0)
    attn = MetricTensorAttention(16, 2, batch_first=True, context=context).eval()
    x = torch.randn(3, 9, 16)
    pad = torch.zeros(3, 9, dtype=torch.bool)
    pad[2, 6:] = True
    full, _ = attn(x, is_causal=True, key_padding_mask=pad)
    cache = attn.compute_metric(x, key_padding_mask=pad)
    cached, _ = attn(x, is_causal=True, key_padding_mask=pad, metric_cache=cache)
    assert torch.equal(full, cached)
    # the cache is exact for the input it came from, not for another one
    other = torch.randn(3, 9, 16)
    assert not torch.allclose(
        attn(other, is_causal=True)[0], attn(other, is_causal=True, metric_cache=cache)[0]
    )


def test_sequence_metric_looks_ahead_prefix_metric_does_not():
    """With a causal mask, output i must not depend on tokens after i. The paper's
    sequence-wide metric breaks that (G sees every query); context='prefix' keeps it."""
    torch.manual_seed(0)
    x = torch.randn(1, 8, 16, dtype=torch.float64)
    y = x.clone()
    y[0, 6:] = torch.randn(2, 16, dtype=torch.float64)  # change the future
    for context, leaks in (("sequence", True), ("prefix", False)):
        torch.manual_seed(1)
        attn = MetricTensorAttention(16, 2, batch_first=True, context=context, dtype=torch.float64)
        a, _ = attn(x, is_causal=True)
        b, _ = attn(y, is_causal=True)
        diff = float((a[0, :6] - b[0, :6]).detach().abs().max())
        assert (diff > 1e-6) == leaks, (context, diff)


def test_identity_module_equals_multihead_attention():
    torch.manual_seed(0)
    ours = MetricTensorAttention(12, 3, metric="identity", batch_first=True, dtype=torch.float64)
    mha = torch.nn.MultiheadAttention(12, 3, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        mha.in_proj_weight.copy_(
            torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight])
        )
        mha.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        mha.out_proj.weight.copy_(ours.out_proj.weight)
        mha.out_proj.bias.copy_(ours.out_proj.bias)
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    pad = torch.tensor([[False] * 5, [False, False, False, True, True]])
    blocked = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)
    ref, ref_w = mha(x, x, x, key_padding_mask=pad, attn_mask=blocked)
    out, w = ours(x, key_padding_mask=pad, attn_mask=blocked, need_weights=True)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(w, ref_w, rtol=0, atol=1e-12)


def test_power_law_module_trains_and_is_finite():
    torch.manual_seed(0)
    attn = MetricTensorAttention(16, 2, batch_first=True)
    x = torch.randn(4, 10, 16)
    out, w = attn(x, is_causal=True, need_weights=True)
    assert bool(torch.isfinite(out).all()) and w.shape == (4, 10, 10)
    out.pow(2).mean().backward()
    net = attn.metric_net
    assert net is not None
    for p in (net.power, net.weight, net.coupling):
        assert p.grad is not None and bool(torch.isfinite(p.grad).all())


def test_compute_metric_identity_raises():
    attn = MetricTensorAttention(8, 2, metric="identity")
    with pytest.raises(ValueError, match="compute_metric: metric='identity' has no metric"):
        attn.compute_metric(torch.randn(3, 1, 8))


@pytest.mark.parametrize("context", ["sequence", "prefix"])
def test_gradcheck_power_law_metric(context):
    torch.manual_seed(0)
    net = PowerLawMetric(3, 1, context=context, dtype=torch.float64)
    q = torch.randn(1, 1, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q: net(q).metric, (q,))
