"""Exact tensor attention: equals the naive ``L x S²`` reference, masks, gradients, dtypes."""

from __future__ import annotations

import math

import pytest
import torch
from _attention_reference import naive_tensor_attention, pair_bias

from factorch.nn.attention import tensor_attention, tensor_attention_weights


def _inputs(*shape_lsd: int, dv: int | None = None, seed: int = 0, dtype=torch.float64, batch=(2,)):
    n_query, n_key, d = shape_lsd
    g = torch.Generator().manual_seed(seed)
    dv = d if dv is None else dv
    q = torch.randn(*batch, n_query, d, generator=g, dtype=dtype)
    k1, k2 = (torch.randn(*batch, n_key, d, generator=g, dtype=dtype) for _ in range(2))
    v1, v2 = (torch.randn(*batch, n_key, dv, generator=g, dtype=dtype) for _ in range(2))
    return q, k1, k2, v1, v2


MASKS = ["none", "causal", "padding", "bool", "float", "causal+padding+bool"]


def _masks(kind: str, n_query: int, n_key: int, batch: int, g: torch.Generator):
    attn = pad = None
    causal = "causal" in kind
    if "padding" in kind:
        pad = torch.zeros(batch, n_key, dtype=torch.bool)
        pad[0, 1] = True
        pad[-1, -2:] = True
    if "bool" in kind:
        attn = torch.rand(n_query, n_key, generator=g) > 0.3
        attn[:, 0] = True
    if kind == "float":
        attn = torch.randn(batch, n_query, n_key, generator=g, dtype=torch.float64)
    return attn, pad, causal


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("block_size", [None, 1, 3])
@pytest.mark.parametrize(("n_query", "n_key"), [(7, 7), (5, 9), (9, 4)])
def test_equals_naive_reference_float64(mask, block_size, n_query, n_key):
    q, k1, k2, v1, v2 = _inputs(n_query, n_key, 4, dv=3)
    g = torch.Generator().manual_seed(1)
    attn, pad, causal = _masks(mask, n_query, n_key, 2, g)
    out = tensor_attention(
        q,
        k1,
        k2,
        v1,
        v2,
        attn_mask=attn,
        key_padding_mask=pad,
        is_causal=causal,
        block_size=block_size,
    )
    bias = pair_bias(n_query, n_key, attn_mask=attn, key_padding_mask=pad, is_causal=causal)
    ref = naive_tensor_attention(q, k1, k2, v1, v2, bias=bias)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)


def test_multiple_batch_dims_and_scale():
    q, k1, k2, v1, v2 = _inputs(6, 6, 3, batch=(2, 3))
    out = tensor_attention(q, k1, k2, v1, v2, scale=0.7, is_causal=True, block_size=2)
    bias = pair_bias(6, 6, is_causal=True)
    ref = naive_tensor_attention(q, k1, k2, v1, v2, scale=0.7, bias=bias)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)


def test_causal_pair_definition_and_weights():
    """Query i puts weight only on pairs (j, k) with j <= i and k <= i."""
    q, k1, k2, _, _ = _inputs(5, 5, 3)
    w = tensor_attention_weights(q, k1, k2, is_causal=True)
    for i in range(5):
        visible = torch.zeros(5, 5, dtype=torch.bool)
        visible[: i + 1, : i + 1] = True
        assert float(w[:, i][:, ~visible].abs().max() if (~visible).any() else 0.0) == 0.0
        torch.testing.assert_close(w[:, i].sum((-1, -2)), torch.ones(2, dtype=torch.float64))


def test_weights_reproduce_output():
    q, k1, k2, v1, v2 = _inputs(4, 6, 3, dv=2)
    pad = torch.tensor([[False, False, True, False, False, False]] * 2)
    w = tensor_attention_weights(q, k1, k2, key_padding_mask=pad)
    out = torch.einsum("...ijk,...jc,...kc->...ic", w, v1, v2)
    torch.testing.assert_close(out, tensor_attention(q, k1, k2, v1, v2, key_padding_mask=pad))


def test_fully_masked_query_gives_zero_and_finite_gradients():
    q, k1, k2, v1, v2 = (t.requires_grad_(True) for t in _inputs(3, 3, 2))
    attn = torch.ones(3, 3, dtype=torch.bool)
    attn[1] = False  # query 1 sees nothing
    out = tensor_attention(q, k1, k2, v1, v2, attn_mask=attn)
    assert torch.equal(out[:, 1], torch.zeros_like(out[:, 1]))
    out.sum().backward()
    for t in (q, k1, k2, v1, v2):
        assert t.grad is not None and bool(torch.isfinite(t.grad).all())
    assert float(q.grad[:, 1].abs().max()) == 0.0


@pytest.mark.parametrize("mask", ["none", "causal+padding+bool"])
def test_gradcheck(mask):
    q, k1, k2, v1, v2 = (t.requires_grad_(True) for t in _inputs(4, 4, 3, batch=(1,)))
    attn, pad, causal = _masks(mask, 4, 4, 1, torch.Generator().manual_seed(2))

    def f(*args):
        return tensor_attention(
            *args, attn_mask=attn, key_padding_mask=pad, is_causal=causal, block_size=2
        )

    assert torch.autograd.gradcheck(f, (q, k1, k2, v1, v2))


def test_gradcheck_float_mask():
    q, k1, k2, v1, v2 = (t.requires_grad_(True) for t in _inputs(3, 4, 2, batch=(1,)))
    m = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)

    def f(*args):
        return tensor_attention(*args[:5], attn_mask=args[5], block_size=2)

    assert torch.autograd.gradcheck(f, (q, k1, k2, v1, v2, m))


def test_gradcheck_with_dropout_replays_the_same_drops():
    q, k1, k2, v1, v2 = (t.requires_grad_(True) for t in _inputs(3, 3, 2, batch=(1,)))

    def f(*args):
        gen = torch.Generator().manual_seed(5)
        return tensor_attention(*args, dropout_p=0.4, generator=gen, block_size=2)

    assert torch.autograd.gradcheck(f, (q, k1, k2, v1, v2))


def test_dropout_is_unbiased_and_changes_output():
    q, k1, k2, v1, v2 = _inputs(4, 4, 3, batch=(1,))
    clean = tensor_attention(q, k1, k2, v1, v2)
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack(
        [tensor_attention(q, k1, k2, v1, v2, dropout_p=0.5, generator=gen) for _ in range(2000)]
    )
    assert float((draws[0] - clean).abs().max()) > 1e-3
    # mean of 2000 draws: standard error about 0.02 of the value scale here
    torch.testing.assert_close(draws.mean(0), clean, rtol=0, atol=0.1)


def test_large_logits_stay_finite_and_exact():
    """Entries of 30 give pair logits in the thousands: the running max keeps exp in range."""
    q, k1, k2, v1, v2 = _inputs(6, 6, 4, batch=(1,))
    q, k1, k2 = 30 * q, 30 * k1, 30 * k2
    out = tensor_attention(q, k1, k2, v1, v2, block_size=2)
    ref = naive_tensor_attention(q, k1, k2, v1, v2)
    assert bool(torch.isfinite(out).all())
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-9)


def test_float32_close_to_float64():
    q, k1, k2, v1, v2 = _inputs(16, 16, 8)
    ref = tensor_attention(q, k1, k2, v1, v2, is_causal=True)
    out = tensor_attention(*(t.float() for t in (q, k1, k2, v1, v2)), is_causal=True)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_computed_in_float32(dtype):
    q, k1, k2, v1, v2 = (t.to(dtype) for t in _inputs(8, 8, 4))
    out = tensor_attention(q, k1, k2, v1, v2)
    ref = tensor_attention(*(t.double() for t in (q, k1, k2, v1, v2)))
    assert out.dtype == dtype
    tol = 1e-2 if dtype == torch.bfloat16 else 2e-3
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=tol)


def test_autocast_like_scaled_dot_product_attention():
    q, k1, k2, v1, v2 = (t.float() for t in _inputs(8, 8, 4))
    ref = tensor_attention(q, k1, k2, v1, v2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = tensor_attention(q, k1, k2, v1, v2)
        sdpa = torch.nn.functional.scaled_dot_product_attention(q, k1, v1)
    assert out.dtype == sdpa.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=0, atol=2e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out64 = tensor_attention(*(t.double() for t in (q, k1, k2, v1, v2)))
    assert out64.dtype == torch.float64  # autocast leaves float64 alone


def test_long_sequence_rows_match_reference():
    """L = S = 192, d = 32 (the S² = 36,864 pairs of a query are never formed together);
    three query rows are checked against a per-row float64 reference."""
    q, k1, k2, v1, v2 = _inputs(192, 192, 32, dtype=torch.float32, batch=(1,))
    out = tensor_attention(q, k1, k2, v1, v2, is_causal=True)
    for i in (0, 97, 191):
        s = torch.einsum("l,jl,kl->jk", q[0, i].double(), k1[0].double(), k2[0].double())
        s = s / math.sqrt(32)
        s[i + 1 :, :] = -math.inf
        s[:, i + 1 :] = -math.inf
        p = torch.softmax(s.flatten(), 0).view(192, 192)
        ref = torch.einsum("jk,jc,kc->c", p, v1[0].double(), v2[0].double())
        torch.testing.assert_close(out[0, i].double(), ref, rtol=0, atol=1e-5)


def test_requires_grad_inputs_keep_the_graph():
    q, k1, k2, v1, v2 = _inputs(3, 3, 2)
    q.requires_grad_(True)
    out = tensor_attention(q, k1, k2, v1, v2)
    assert out.requires_grad and out.grad_fn is not None


def test_numpy_inputs_accepted():
    q, k1, k2, v1, v2 = _inputs(3, 3, 2)
    out = tensor_attention(q.numpy(), k1.numpy(), k2.numpy(), v1.numpy(), v2.numpy())
    torch.testing.assert_close(out, tensor_attention(q, k1, k2, v1, v2))


@pytest.mark.cuda
def test_cuda_matches_cpu():
    q, k1, k2, v1, v2 = _inputs(9, 9, 4)
    cpu = tensor_attention(q, k1, k2, v1, v2, is_causal=True, block_size=4)
    gpu = tensor_attention(*(t.cuda() for t in (q, k1, k2, v1, v2)), is_causal=True, block_size=4)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-10)


def test_extreme_scales():
    """Logits beyond float32 are computed in float64; unrepresentable results are refused."""
    q, k1, k2, v1, v2 = _inputs(5, 5, 3, dtype=torch.float32)
    big = [t * 1e15 for t in (q, k1, k2)]  # logits ~1e45: beyond float32, fine in float64
    out = tensor_attention(*big, v1, v2)
    ref = naive_tensor_attention(*big, v1, v2)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="cannot be represented in torch.float32"):
        tensor_attention(q, k1, k2, v1 * 1e30, v2 * 1e30)  # pair values 1e60
    with pytest.raises(ValueError, match="logits can reach .* beyond the range of float64"):
        tensor_attention(*(t.double() * 1e200 for t in (q, k1, k2)), v1.double(), v2.double())
    tiny = tensor_attention(*(t * 1e-30 for t in (q, k1, k2, v1)), v2)
    ref = naive_tensor_attention(*(t * 1e-30 for t in (q, k1, k2, v1)), v2)
    assert bool(torch.isfinite(tiny).all())
    torch.testing.assert_close(tiny.double(), ref, rtol=1e-5, atol=0)
