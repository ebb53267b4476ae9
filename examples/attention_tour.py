"""Structured attention in factorch.nn.attention: tensor attention (exact and linear-time),
metric-tensor attention with its G-cache, and a mixture-of-hidden-dimensions feed-forward block.

Run:  python examples/attention_tour.py   (a few seconds on a CPU)
"""

import time
import warnings

import torch

from factorch.nn.attention import (
    MetricTensorAttention,
    MixtureOfHiddenDims,
    TensorAttentionRegimeWarning,
    tensor_attention,
    tensor_attention_approx,
    tensor_attention_plan,
)


def tensor_attention_demo() -> None:
    g = torch.Generator().manual_seed(0)
    n, d = 256, 4
    # entries bounded by 0.3: inside the regime where the polynomial method is provably accurate
    q, k1, k2, v1, v2 = ((2 * torch.rand(1, n, d, generator=g) - 1) * 0.3 for _ in range(5))
    plan = tensor_attention_plan(q, k1, k2, v1, v2, eps=1e-4, is_causal=True)
    print(
        f"plan: degree {plan.degree}, {plan.feature_dim} features, bound "
        f"{plan.output_error_bound:.1e}, in regime: {plan.in_regime}"
    )
    t0 = time.perf_counter()
    exact = tensor_attention(q, k1, k2, v1, v2, is_causal=True)
    t1 = time.perf_counter()
    approx = tensor_attention_approx(q, k1, k2, v1, v2, eps=1e-4, is_causal=True)
    t2 = time.perf_counter()
    err = float((approx - exact).abs().max())
    print(
        f"n={n}: exact {1e3 * (t1 - t0):.0f} ms (n x n² pairs, blockwise), approximate "
        f"{1e3 * (t2 - t1):.0f} ms (linear in n); max error {err:.1e} <= bound "
        f"{plan.output_error_bound:.1e}"
    )
    # large entries: no sub-cubic algorithm exists there; the approximation says so and falls back
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = tensor_attention_approx(
            5 * q[:, :128], 5 * k1[:, :128], 5 * k2[:, :128], v1[:, :128], v2[:, :128]
        )
    regime = [w for w in caught if issubclass(w.category, TensorAttentionRegimeWarning)]
    print(f"entries x5: {len(regime)} regime warning, exact result returned {tuple(out.shape)}")


def metric_attention_demo() -> None:
    torch.manual_seed(0)
    attn = MetricTensorAttention(32, 4, batch_first=True).eval()
    x = torch.randn(2, 16, 32)
    with torch.no_grad():
        full, _ = attn(x)
        cache = attn.compute_metric(x)  # the G-cache: reuse the inferred metric
        cached, _ = attn(x, metric_cache=cache)
    print(
        f"metric-tensor attention: metric {tuple(cache.metric.shape)}, cached path equals full "
        f"path: {torch.allclose(full, cached)}"
    )


def mohd_demo() -> None:
    ffn = MixtureOfHiddenDims(64, 256, num_groups=8, num_shared=2, top_k=2)
    y = ffn(torch.randn(4, 10, 64))
    cost = ffn.cost()
    stats = ffn.last_routing
    assert stats is not None
    print(
        f"MoHD: output {tuple(y.shape)}, active params {cost.active_params} of "
        f"{cost.total_params}, balancing loss {float(stats.load_balancing_loss.detach()):.3f}"
    )


if __name__ == "__main__":
    tensor_attention_demo()
    metric_attention_demo()
    mohd_demo()
