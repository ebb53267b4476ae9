"""``lr_scale`` of spectral weights: the same function and init, parameters stored divided by
the scale, an Adam step that moves the weight like ``lr_scale`` times the learning rate, and the
explicit-DFT reference for every format."""

from __future__ import annotations

import pytest
import torch
from _spectral_reference import FORMATS, explicit_dft_conv

from factorch.nn.spectral import SpectralConv, SpectralWeight, count_real


def _pair(format: str, kw: dict, scale: float, **extra) -> tuple[SpectralConv, SpectralConv]:
    make = lambda s: SpectralConv(  # noqa: E731
        3, 4, (5, 4), format=format, lr_scale=s, bias=False, dtype=torch.float64,
        generator=torch.Generator().manual_seed(0), **kw, **extra,
    )  # fmt: skip
    return make(1.0), make(scale)


@pytest.mark.parametrize("implementation", ["factorized", "reconstructed"])
@pytest.mark.parametrize(("format", "kw"), FORMATS, ids=[f for f, _ in FORMATS])
def test_same_function_and_explicit_dft(format, kw, implementation) -> None:
    plain, scaled = _pair(format, kw, 3.0, implementation=implementation)
    x = torch.randn(2, 3, 7, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        y = scaled(x)
        ref = explicit_dft_conv(x, scaled.weight, (5, 4))
        torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(y, plain(x), rtol=1e-12, atol=1e-12)
    # Stored: the plain model's parameters divided by the scale; the same count.
    for p, q in zip(plain.parameters(), scaled.parameters()):
        torch.testing.assert_close(q * 3.0, p, rtol=1e-12, atol=1e-15)
    assert count_real(plain) == count_real(scaled)
    assert scaled.config()["lr_scale"] == 3.0 and plain.config()["lr_scale"] == 1.0


@pytest.mark.parametrize(
    ("format", "kw"), [("dense", {}), ("tucker", {"rank": 2}), ("cp", {"rank": 3})]
)
def test_adam_steps_move_the_weight_like_a_scaled_learning_rate(format, kw) -> None:
    plain, scaled = _pair(format, kw, 4.0)
    same_lr, _ = _pair(format, kw, 1.0)
    x = torch.randn(2, 3, 7, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    runs = [(plain, 4e-3), (scaled, 1e-3), (same_lr, 1e-3)]
    opts = [torch.optim.Adam(conv.parameters(), lr=lr, eps=1e-14) for conv, lr in runs]
    for _ in range(3):
        for (conv, _), opt in zip(runs, opts):
            opt.zero_grad()
            (conv(x) ** 2).mean().backward()
            opt.step()
    with torch.no_grad():
        # lr 1e-3 with lr_scale 4 is lr 4e-3 on the plain weight ...
        torch.testing.assert_close(scaled.weight, plain.weight, rtol=1e-9, atol=1e-12)
        # ... and not lr 1e-3 on it.
        assert float((scaled.weight - same_lr.weight).abs().max()) > 1e-4


def test_load_dense_sets_the_value_not_the_stored_parameters() -> None:
    w = SpectralWeight(2, 3, (4, 6), format="tucker", rank=(2, 3, 2, 3), lr_scale=5.0,
                       dtype=torch.float64, generator=torch.Generator().manual_seed(3))  # fmt: skip
    target = torch.randn(
        w.shape, dtype=torch.complex128, generator=torch.Generator().manual_seed(4)
    )
    exact = SpectralWeight(2, 3, (4, 6), format="tucker", rank=(2, 3, 4, 4), lr_scale=5.0,
                           dtype=torch.float64)  # fmt: skip
    exact.load_dense_(target)
    torch.testing.assert_close(exact.tensor(), target, rtol=1e-9, atol=1e-9)
    dense = SpectralWeight(2, 3, (4, 6), lr_scale=5.0, dtype=torch.float64)
    dense.load_dense_(target)
    torch.testing.assert_close(dense.tensor(), target)
    torch.testing.assert_close(dense.dense * 5.0, target)


@pytest.mark.parametrize("bad", [0, -1.0, 1e-4, 1e4, float("nan"), float("inf"), True, "3"])
def test_bad_lr_scale(bad) -> None:
    with pytest.raises(
        ValueError, match=r"SpectralConv: lr_scale must be a number in \[0.001, 1000\]"
    ):
        SpectralConv(2, 2, 4, lr_scale=bad)
    with pytest.raises(ValueError, match=r"SpectralWeight: lr_scale must be a number in"):
        SpectralWeight(2, 2, 4, lr_scale=bad)
