"""RealViewAdamW: the trainer's AdamW (fused kernel, complex parameters through real views) makes
the same updates as ``torch.optim.AdamW``."""

from __future__ import annotations

import torch

from factorch.models import FNO
from factorch.train._optim import RealViewAdamW


def _models() -> tuple[FNO, FNO]:
    a = FNO(1, 1, (4, 4), hidden_channels=4, generator=torch.Generator().manual_seed(0))
    a = a.double()
    b = FNO(1, 1, (4, 4), hidden_channels=4, dtype=torch.float64)
    b.load_state_dict(a.state_dict())
    return a, b


def test_real_view_adamw_matches_torch_adamw_on_complex_and_real_parameters() -> None:
    ours_model, ref_model = _models()
    assert any(p.is_complex() for p in ours_model.parameters())
    ours = RealViewAdamW(ours_model.parameters(), lr=1e-2, weight_decay=1e-2)
    ref = torch.optim.AdamW(ref_model.parameters(), lr=1e-2, weight_decay=1e-2, foreach=False)
    assert ours.optimizer.defaults["fused"] is True
    g = torch.Generator().manual_seed(1)
    for _ in range(4):
        x = torch.randn(3, 1, 8, 8, generator=g, dtype=torch.float64)
        for model, opt in ((ours_model, ours), (ref_model, ref)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for p, q in zip(ours_model.parameters(), ref_model.parameters(), strict=True):
        assert p.dtype == q.dtype
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
    # the updates moved the complex weights (the test would pass trivially otherwise)
    start, _ = _models()
    moved = [not torch.allclose(p, s) for p, s in zip(ours_model.parameters(), start.parameters())]
    assert all(moved)


def test_real_view_adamw_zero_grad_clears_complex_gradients() -> None:
    model, _ = _models()
    opt = RealViewAdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    model(torch.randn(2, 1, 8, 8, dtype=torch.float64)).sum().backward()
    opt.step()
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_real_view_adamw_skips_frozen_parameters() -> None:
    model, _ = _models()
    frozen = model.lifting.first.weight
    frozen.requires_grad_(False)
    before = frozen.detach().clone()
    opt = RealViewAdamW(model.parameters(), lr=1e-2, weight_decay=1e-2)
    model(torch.randn(2, 1, 8, 8, dtype=torch.float64)).sum().backward()
    opt.step()
    assert torch.equal(frozen, before)
