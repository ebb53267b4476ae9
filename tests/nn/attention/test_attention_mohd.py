"""Mixture of hidden dimensions: dense equivalence, the two implementations, measured FLOPs
and active parameters against the configured ratio, routing and load balancing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from factorch.nn.attention import MixtureOfHiddenDims


def _x(shape=(3, 7, 32), seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("num_shared", [0, 2, 8])
def test_all_groups_active_unit_scaling_equals_dense_block(num_shared):
    torch.manual_seed(0)
    ffn = MixtureOfHiddenDims(
        32,
        64,
        num_groups=8,
        num_shared=num_shared,
        top_k=8 - num_shared,
        gate=False,
        activation_scale=1.0,
        dtype=torch.float64,
    )
    x = _x()
    dense = ffn.w_out(F.gelu(ffn.w_in(x)))
    torch.testing.assert_close(ffn(x), dense, rtol=0, atol=1e-12)


@pytest.mark.parametrize("gate", [True, False])
def test_dispatch_equals_masked_reference(gate):
    torch.manual_seed(0)
    kw = dict(num_groups=8, num_shared=2, top_k=3, gate=gate, dtype=torch.float64)
    fast = MixtureOfHiddenDims(32, 48, implementation="dispatch", **kw)
    ref = MixtureOfHiddenDims(32, 48, implementation="masked", **kw)
    ref.load_state_dict(fast.state_dict())
    with torch.no_grad():  # a non-trivial fusion matrix
        fast.fusion.add_(0.1 * torch.randn(8, 8, dtype=torch.float64))
        ref.fusion.copy_(fast.fusion)
    x = _x().requires_grad_(True)
    a, b = fast(x), ref(x)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    wrt_a = [x, fast.router.weight, fast.w_in.weight]
    wrt_b = [x, ref.router.weight, ref.w_in.weight]
    ga = torch.autograd.grad(a.pow(2).sum(), wrt_a, allow_unused=True)
    gb = torch.autograd.grad(b.pow(2).sum(), wrt_b, allow_unused=True)
    assert (ga[1] is None) == (not gate)  # the router learns through the gates only
    for u, v in zip(ga, gb):
        if u is not None:
            torch.testing.assert_close(u, v, rtol=0, atol=1e-10)


def test_inactive_groups_receive_nothing_without_fusion():
    torch.manual_seed(0)
    ffn = MixtureOfHiddenDims(
        16, 32, num_groups=4, num_shared=1, top_k=1, fusion=False, dtype=torch.float64
    )
    x = _x((10, 16))
    y = ffn(x).view(10, 4, 4)
    active = (y.abs().sum(-1) > 0).sum(-1)
    assert torch.equal(active, torch.full((10,), 2))  # the shared group and the routed one


@pytest.mark.parametrize(("groups", "shared", "k"), [(8, 2, 2), (8, 0, 1), (4, 1, 3), (16, 4, 4)])
def test_counted_flops_and_active_params_match_configured_ratio(groups, shared, k):
    torch.manual_seed(0)
    e, h = 32, 96
    ffn = MixtureOfHiddenDims(e, h, num_groups=groups, num_shared=shared, top_k=k)
    cost = ffn.cost()
    ratio = (shared + k) / groups
    assert cost.active_fraction == ratio
    tokens = 21
    with FlopCounterMode(display=False) as counter:
        ffn(torch.randn(3, 7, e))
    measured = counter.get_total_flops()
    assert measured == cost.flops_per_token * tokens
    router = 2 * e * (groups - shared)
    fusion = 2 * groups * e
    assert (measured / tokens - router - fusion) / cost.dense_flops_per_token == ratio
    # active parameters: the used slices of W_in / W_out are the same fraction
    biases = h + ratio * e
    weights = cost.active_params - biases - e * (groups - shared) - groups * groups
    assert weights / (2 * e * h) == ratio
    assert cost.total_params == sum(p.numel() for p in ffn.parameters())


def test_three_times_wider_at_constant_active_cost():
    """The paper's scaling regime: 3x the hidden groups at the dense block's active cost."""
    dense_like = MixtureOfHiddenDims(32, 64, num_groups=4, num_shared=4, top_k=0)
    wide = MixtureOfHiddenDims(96, 64, num_groups=12, num_shared=2, top_k=2)
    assert wide.cost().total_params > 2.5 * dense_like.cost().total_params
    matmul = wide.cost().flops_per_token - 2 * 96 * 10 - 2 * 12 * 96
    assert matmul == 4 * 64 * 32  # the same active FLOPs as a 32-wide dense block


def test_load_balancing_loss_and_router_gradients():
    torch.manual_seed(0)
    ffn = MixtureOfHiddenDims(32, 64, num_groups=8, num_shared=2, top_k=2)
    x = torch.randn(64, 32)
    ffn(x)
    stats = ffn.last_routing
    assert stats is not None
    torch.testing.assert_close(stats.group_load.sum(), torch.tensor(1.0))
    # a near-uniform router at initialisation: the loss is close to its balanced value 1
    assert abs(float(stats.load_balancing_loss.detach()) - 1.0) < 0.1
    (ffn(x).pow(2).mean() + stats.load_balancing_loss).backward()
    assert ffn.router.weight.grad is not None and float(ffn.router.weight.grad.abs().sum()) > 0


def test_balancing_loss_drives_routing_to_uniform():
    torch.manual_seed(0)
    ffn = MixtureOfHiddenDims(16, 16, num_groups=4, num_shared=0, top_k=1)
    with torch.no_grad():
        ffn.router.weight.copy_(torch.randn(4, 16))  # an unbalanced router
    x = torch.randn(256, 16)
    opt = torch.optim.SGD(ffn.router.parameters(), lr=0.5)
    ffn(x)
    start_loss = float(ffn.last_routing.load_balancing_loss.detach())
    start_load = float(ffn.last_routing.group_load.max())
    for _ in range(100):
        ffn(x)
        opt.zero_grad()
        ffn.last_routing.load_balancing_loss.backward()
        opt.step()
    ffn(x)
    assert float(ffn.last_routing.load_balancing_loss.detach()) < start_loss
    assert start_load > 0.3 and float(ffn.last_routing.group_load.max()) < 0.27


def test_activation_scale_default_preserves_energy():
    ffn = MixtureOfHiddenDims(32, 64, num_groups=8, num_shared=1, top_k=1)
    assert ffn.alpha == pytest.approx((8 / 2) ** 0.5)


def test_gradcheck_dispatch():
    torch.manual_seed(0)
    ffn = MixtureOfHiddenDims(8, 6, num_groups=4, num_shared=1, top_k=2, dtype=torch.float64)
    x = torch.randn(5, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ffn, (x,))
