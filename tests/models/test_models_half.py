"""Half precision: FNO / TFNO / MG-TFNO converted with ``.half()`` / ``.bfloat16()`` compute in
float32 (their complex spectral weights stay complex64) and return output in their half dtype;
``torch.autocast`` around forward and backward works."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from factorch.models import FNO, MGTFNO, TFNO

HALF = [torch.float16, torch.bfloat16]
MODELS: list[tuple[type, dict[str, Any]]] = [
    (FNO, {}),
    (TFNO, {"ratio": 0.2}),
    (MGTFNO, {"ratio": 0.2}),
]


def _build(cls: type, options: dict[str, Any]) -> Any:
    return cls(
        1, 1, (4, 4), hidden_channels=6, generator=torch.Generator().manual_seed(0), **options
    )


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize(("cls", "options"), MODELS, ids=lambda v: getattr(v, "__name__", ""))
def test_half_model_computes_in_float32_and_returns_its_dtype(cls, options, dtype) -> None:
    model = _build(cls, options).to(dtype)
    assert {p.dtype for p in model.parameters()} == {dtype, torch.complex64}
    # the reference: a float32 model holding the same (rounded) weights
    ref = _build(cls, options)
    ref.load_state_dict(
        {k: v.float() if not v.is_complex() else v for k, v in model.state_dict().items()}
    )
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    for inp in (x, x.to(dtype)):
        out = model(inp)
        assert out.dtype == dtype and out.shape == (2, 1, 16, 16)
        torch.testing.assert_close(out, ref(inp.float()).to(dtype), rtol=0, atol=0)
    out.float().square().mean().backward()
    for p in model.parameters():
        assert p.grad is not None and p.grad.dtype == p.dtype
        assert bool(torch.isfinite(p.grad).all())


@pytest.mark.parametrize(("cls", "options"), MODELS, ids=lambda v: getattr(v, "__name__", ""))
def test_autocast_bfloat16_forward_and_backward(cls, options) -> None:
    model = _build(cls, options)
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        loss = out.float().square().mean()
    loss.backward()
    assert out.shape == (2, 1, 16, 16) and bool(torch.isfinite(out).all())
    torch.testing.assert_close(out.float(), model(x), rtol=0.05, atol=0.05)
    for p in model.parameters():
        assert p.grad is not None and p.grad.dtype == p.dtype
        assert bool(torch.isfinite(p.grad).all())
