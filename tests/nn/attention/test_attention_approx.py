"""Fast tensor attention: the stated error bound holds (and is nearly attained), the regime
check warns / falls back outside it, features and masks are right."""

from __future__ import annotations

import math

import pytest
import torch
from _attention_reference import naive_tensor_attention, pair_bias

from factorch.nn.attention import (
    TensorAttentionRegimeWarning,
    tensor_attention,
    tensor_attention_approx,
    tensor_attention_plan,
)
from factorch.nn.attention._features import (
    feature_dimension,
    monomial_features,
    taylor_relative_error,
)


def _uniform(n: int, d: int, bound: float, seed: int, *, batch=(2,), dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [(2 * torch.rand(*batch, n, d, generator=g, dtype=dtype) - 1) * bound for _ in range(5)]


@pytest.mark.parametrize("kind", ["symmetric", "full"])
@pytest.mark.parametrize("degree", range(7))
def test_features_reproduce_the_taylor_polynomial(kind, degree):
    g = torch.Generator().manual_seed(degree)
    q, k1, k2 = (torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(3))
    phi = monomial_features(q, degree, kind=kind, coefficients=True)
    psi1 = monomial_features(k1, degree, kind=kind, coefficients=False)
    psi2 = monomial_features(k2, degree, kind=kind, coefficients=False)
    assert phi.shape[-1] == feature_dimension(3, degree, kind)
    s = (q * k1 * k2).sum(-1)
    taylor = sum(s**j / math.factorial(j) for j in range(degree + 1))
    torch.testing.assert_close((phi * psi1 * psi2).sum(-1), taylor, rtol=1e-12, atol=1e-12)


def test_feature_dimensions_state_the_constants():
    assert [feature_dimension(64, g, "symmetric") for g in (2, 3, 4)] == [2145, 47905, 814385]
    assert [feature_dimension(8, g, "symmetric") for g in range(2, 7)] == [45, 165, 495, 1287, 3003]
    assert feature_dimension(4, 3, "full") == 1 + 4 + 16 + 64


def test_taylor_bound_is_the_exact_worst_case():
    for r in (0.1, 0.5, 1.0, 2.0):
        for g in range(1, 7):
            s = torch.linspace(-r, r, 4001, dtype=torch.float64)
            p = sum(s**j / math.factorial(j) for j in range(g + 1))
            worst = float((p * torch.exp(-s) - 1).abs().max())
            assert taylor_relative_error(r, g) == pytest.approx(worst, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("degree", [2, 3, 4, 5, 6])
def test_error_within_stated_bound_inside_the_regime(degree, causal):
    """Random inputs with entries in [-0.6, 0.6], d = 4 (logit bound R = 0.43): for each degree
    the plan is inside the regime, the bound is not vacuous, and the true error is below it."""
    q, k1, k2, v1, v2 = _uniform(48, 4, 0.6, seed=degree)
    pad = torch.zeros(2, 48, dtype=torch.bool)
    pad[1, -5:] = True
    kw = dict(degree=degree, eps=0.5, key_padding_mask=pad, is_causal=causal)
    plan = tensor_attention_plan(q, k1, k2, v1, v2, **kw)
    assert plan.in_regime, plan.reason
    assert plan.output_error_bound < 0.02
    approx = tensor_attention_approx(q, k1, k2, v1, v2, **kw)  # no warning inside the regime
    bias = pair_bias(48, 48, key_padding_mask=pad, is_causal=causal)
    exact = naive_tensor_attention(q, k1, k2, v1, v2, bias=bias)
    err = float((approx - exact).abs().max())
    assert err <= plan.output_error_bound
    assert err > 0  # an approximation, not a hidden exact path


@pytest.mark.parametrize("degree", [2, 3, 4, 5, 6])
def test_bound_is_nearly_attained_by_extreme_logits(degree):
    """Pair logits exactly ±R (half the pairs each) with values ±1: the error reaches at least
    5% of the bound, so the bound is not loose by orders of magnitude."""
    n, d, b = 32, 4, 0.5
    sign = torch.tensor([1.0, -1.0] * (n // 2), dtype=torch.float64)
    q = torch.full((1, n, d), b, dtype=torch.float64)
    k1 = q.clone()
    k2 = (b * sign[:, None].expand(n, d)).unsqueeze(0).clone()
    v1 = torch.ones(1, n, 1, dtype=torch.float64)
    v2 = sign.view(1, n, 1).clone()
    plan = tensor_attention_plan(q, k1, k2, v1, v2, degree=degree, eps=0.5)
    assert plan.logit_bound == pytest.approx(d * b**3 / math.sqrt(d))
    err = float(
        (
            tensor_attention_approx(q, k1, k2, v1, v2, degree=degree, eps=0.5)
            - tensor_attention(q, k1, k2, v1, v2)
        )
        .abs()
        .max()
    )
    assert 0.05 * plan.output_error_bound <= err <= plan.output_error_bound


def test_degree_chosen_from_eps_and_bound():
    q, k1, k2, v1, v2 = _uniform(32, 4, 0.6, seed=0)
    degrees = [tensor_attention_plan(q, k1, k2, v1, v2, eps=e).degree for e in (1e-1, 1e-3, 1e-6)]
    assert degrees == sorted(degrees) and degrees[0] < degrees[-1]
    for e in (1e-1, 1e-3, 1e-6):
        plan = tensor_attention_plan(q, k1, k2, v1, v2, eps=e)
        d = plan.weight_error
        assert d / (1 - d) <= e  # the chosen degree meets eps
        if plan.degree > 1:
            lower = taylor_relative_error(plan.logit_bound, plan.degree - 1)
            # ... and is the smallest: one degree less misses eps (a bound >= 1 misses any eps)
            assert lower >= 1 or lower / (1 - lower) > e


def test_symmetric_and_full_features_agree():
    q, k1, k2, v1, v2 = _uniform(20, 3, 0.5, seed=3)
    a = tensor_attention_approx(q, k1, k2, v1, v2, degree=4, eps=0.5, features="symmetric")
    b = tensor_attention_approx(q, k1, k2, v1, v2, degree=4, eps=0.5, features="full")
    torch.testing.assert_close(a, b, rtol=0, atol=1e-13)


def test_outside_the_regime_warns_and_falls_back_to_exact():
    g = torch.Generator().manual_seed(0)
    q, k1, k2, v1, v2 = (
        3 * torch.randn(1, 32, 8, generator=g, dtype=torch.float64) for _ in range(5)
    )
    with pytest.warns(TensorAttentionRegimeWarning, match="outside the fast regime.*exact"):
        out = tensor_attention_approx(q, k1, k2, v1, v2, eps=1e-3)
    torch.testing.assert_close(out, tensor_attention(q, k1, k2, v1, v2), rtol=0, atol=0)


def test_outside_the_regime_approximate_anyway_warns():
    q, k1, k2, v1, v2 = _uniform(16, 4, 1.5, seed=1)
    with pytest.warns(TensorAttentionRegimeWarning, match="approximating"):
        out = tensor_attention_approx(q, k1, k2, v1, v2, max_degree=3, fallback="approximate")
    assert not torch.equal(out, tensor_attention(q, k1, k2, v1, v2))


def test_outside_the_regime_raise():
    q, k1, k2, v1, v2 = _uniform(16, 4, 1.5, seed=1)
    with pytest.raises(ValueError, match="tensor_attention_approx: outside the fast regime"):
        tensor_attention_approx(q, k1, k2, v1, v2, max_degree=3, fallback="raise")


def test_cost_rule_refuses_wide_heads_on_short_sequences():
    """d = 64 and small entries meet eps at a low degree, but its r = C(64 + g, g) features cost
    more than the exact path for 16 tokens: the plan says so and the call falls back."""
    q, k1, k2, v1, v2 = _uniform(16, 64, 0.3, seed=2, batch=(1,))
    plan = tensor_attention_plan(q, k1, k2, v1, v2, eps=1e-4)
    assert not plan.in_regime and "costs" in plan.reason
    assert plan.approx_flops >= plan.exact_flops
    with pytest.warns(TensorAttentionRegimeWarning, match="costs"):
        tensor_attention_approx(q, k1, k2, v1, v2, eps=1e-4)


def test_long_sequences_enter_the_regime():
    q, k1, k2, v1, v2 = _uniform(1024, 4, 0.4, seed=4, batch=(1,), dtype=torch.float32)
    plan = tensor_attention_plan(q, k1, k2, v1, v2, eps=1e-4, is_causal=True)
    assert plan.in_regime and plan.approx_flops * 20 < plan.exact_flops
    assert plan.paper_threshold == pytest.approx(math.log(1024) ** (1 / 3))


def test_gradcheck_approx():
    q, k1, k2, v1, v2 = (t.requires_grad_(True) for t in _uniform(24, 2, 0.5, seed=5, batch=(1,)))
    pad = torch.zeros(1, 24, dtype=torch.bool)
    pad[0, 3] = True

    def f(*args):
        return tensor_attention_approx(
            *args, degree=2, eps=0.5, is_causal=True, key_padding_mask=pad
        )

    assert torch.autograd.gradcheck(f, (q, k1, k2, v1, v2))


def test_float32_and_autocast():
    q, k1, k2, v1, v2 = _uniform(64, 4, 0.5, seed=6, dtype=torch.float32)
    out = tensor_attention_approx(q, k1, k2, v1, v2, eps=1e-5, is_causal=True)
    ref = tensor_attention(*(t.double() for t in (q, k1, k2, v1, v2)), is_causal=True)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = tensor_attention_approx(q, k1, k2, v1, v2, eps=1e-5, is_causal=True)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.double(), ref, rtol=0, atol=1e-2)
