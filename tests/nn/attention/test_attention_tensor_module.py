"""``TensorAttention``: the ``MultiheadAttention`` interface, masks, methods, projections."""

from __future__ import annotations

import math

import torch
from _attention_reference import naive_tensor_attention, pair_bias

import factorch.nn as fnn
from factorch.nn.attention import TensorAttention


def _module(**kw) -> TensorAttention:
    torch.manual_seed(0)
    return TensorAttention(8, 2, dtype=torch.float64, **kw)


def _manual(attn: TensorAttention, x: torch.Tensor, bias=None) -> torch.Tensor:
    """The module's function written out with the naive reference, batch-first ``x``."""
    n, length, _ = x.shape

    def heads(lin):
        return lin(x).view(n, length, attn.num_heads, attn.head_dim).transpose(1, 2)

    q, k1, k2 = heads(attn.q_proj), heads(attn.k1_proj), heads(attn.k2_proj)
    v1, v2 = heads(attn.v1_proj), heads(attn.v2_proj)
    out = naive_tensor_attention(q, k1, k2, v1, v2, bias=bias)
    return attn.out_proj(out.transpose(1, 2).reshape(n, length, -1))


def test_equals_written_out_definition_with_masks():
    attn = _module(batch_first=True)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 6, 8, generator=g, dtype=torch.float64)
    pad = torch.zeros(3, 6, dtype=torch.bool)
    pad[1, 4:] = True
    blocked = torch.zeros(6, 6, dtype=torch.bool)
    blocked[2, 5] = True  # MultiheadAttention convention: True = not allowed
    out, w = attn(x, x, x, key_padding_mask=pad, attn_mask=blocked, is_causal=True)
    bias = pair_bias(6, 6, attn_mask=~blocked, key_padding_mask=pad, is_causal=True)
    torch.testing.assert_close(out, _manual(attn, x, bias.unsqueeze(1)), rtol=0, atol=1e-10)
    assert w is None


def test_layouts_agree_batch_first_seq_first_unbatched():
    a_bf = _module(batch_first=True)
    a_sf = _module(batch_first=False)
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    out_bf, _ = a_bf(x, is_causal=True)
    out_sf, _ = a_sf(x.transpose(0, 1), is_causal=True)
    out_un, _ = a_bf(x[1], is_causal=True)
    torch.testing.assert_close(out_sf.transpose(0, 1), out_bf)
    torch.testing.assert_close(out_un, out_bf[1])


def test_float_attn_mask_per_head_and_need_weights():
    attn = _module(batch_first=True)
    x = torch.randn(2, 4, 8, dtype=torch.float64)
    m = torch.randn(2 * 2, 4, 4, dtype=torch.float64)
    out, w = attn(x, attn_mask=m, need_weights=True, average_attn_weights=False)
    bias = m.view(2, 2, 4, 4)
    pair = bias.unsqueeze(-1) + bias.unsqueeze(-2)
    torch.testing.assert_close(out, _manual(attn, x, pair), rtol=0, atol=1e-10)
    assert w.shape == (2, 2, 4, 4, 4)
    torch.testing.assert_close(w.sum((-1, -2)), torch.ones(2, 2, 4, dtype=torch.float64))
    _, w_avg = attn(x, attn_mask=m, need_weights=True)
    torch.testing.assert_close(w_avg, w.mean(1))


def test_cross_attention_with_kdim_vdim():
    attn = TensorAttention(8, 2, kdim=5, vdim=3, batch_first=True)
    q, k, v = torch.randn(2, 4, 8), torch.randn(2, 7, 5), torch.randn(2, 7, 3)
    out, _ = attn(q, k, v)
    assert out.shape == (2, 4, 8)


def test_dropout_only_in_training():
    attn = TensorAttention(8, 2, dropout=0.5, batch_first=True)
    x = torch.randn(2, 5, 8)
    attn.eval()
    a, _ = attn(x)
    b, _ = attn(x)
    assert torch.equal(a, b)
    attn.train()
    c, _ = attn(x)
    assert not torch.equal(a, c)


def test_approximate_and_auto_methods_close_to_exact():
    torch.manual_seed(0)
    exact = TensorAttention(8, 2, batch_first=True, method="exact")
    kw = dict(batch_first=True, eps=1e-6, max_degree=6)
    approx = TensorAttention(8, 2, method="approximate", **kw)
    auto = TensorAttention(8, 2, method="auto", **kw)
    approx.load_state_dict(exact.state_dict())
    auto.load_state_dict(exact.state_dict())
    x = 0.2 * torch.randn(2, 64, 8)
    ref, _ = exact(x, is_causal=True)
    for m in (approx, auto):
        out, _ = m(x, is_causal=True)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
        assert not torch.equal(out, ref)


def test_auto_falls_back_silently_for_large_entries():
    torch.manual_seed(0)
    auto = TensorAttention(8, 2, batch_first=True, method="auto")
    exact = TensorAttention(8, 2, batch_first=True)
    exact.load_state_dict(auto.state_dict())
    x = 5 * torch.randn(2, 12, 8)
    torch.testing.assert_close(auto(x)[0], exact(x)[0], rtol=0, atol=0)


def test_factorized_projections():
    dense = TensorAttention(32, 4, batch_first=True)
    fact = TensorAttention(
        32, 4, batch_first=True, projection_format="lowrank", projection_ratio=0.25
    )
    assert isinstance(fact.q_proj, fnn.FactorizedLinear)
    n_dense = sum(p.numel() for p in dense.parameters())
    n_fact = sum(p.numel() for p in fact.parameters())
    assert n_fact < 0.5 * n_dense
    out, _ = fact(torch.randn(2, 6, 32), is_causal=True)
    out.sum().backward()
    assert all(p.grad is not None for p in fact.parameters())


def test_state_dict_round_trip_and_gradients():
    a = _module(batch_first=True)
    b = TensorAttention(8, 2, batch_first=True, dtype=torch.float64)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 5, 8, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(a(x)[0], b(x)[0], rtol=0, atol=0)
    a(x, is_causal=True)[0].pow(2).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())


def test_autocast_module_output_in_autocast_dtype():
    attn = TensorAttention(8, 2, batch_first=True)
    x = torch.randn(2, 5, 8)
    ref, _ = attn(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = attn(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=0, atol=0.1)


def test_initial_logit_scale_is_sdpa_like():
    """Default scale 1/sqrt(head_dim): with unit inputs the pair logits have unit-order spread."""
    torch.manual_seed(0)
    attn = TensorAttention(64, 1, batch_first=True)
    x = torch.randn(1, 32, 64)
    with torch.no_grad():
        q = attn.q_proj(x)
        s = torch.einsum("il,jl,kl->ijk", q[0], attn.k1_proj(x)[0], attn.k2_proj(x)[0])
    assert 0.1 < float((s / math.sqrt(64)).std()) < 10
