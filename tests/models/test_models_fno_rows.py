"""FNO's channel-major path (``FourierBlocks.rows``: every 1x1 convolution one GEMM, spectral
transforms on the rows) against the batched path it replaces: same values and gradients in
float64 for dense and factorized weights, odd and even grids, 1-D and 2-D."""

from __future__ import annotations

import pytest
import torch

from factorch.models import FNO
from factorch.models._blocks import FourierBlocks

CASES = [
    ((6,), (16,), {}),
    ((7,), (9,), {"format": "tucker", "ratio": 0.5}),
    ((6,), (12,), {"format": "cp", "ratio": 0.5}),
    ((5,), (11,), {"separable": True}),
    ((4, 4), (8, 7), {}),
    ((4, 3), (7, 6), {"format": "tucker", "ratio": 0.5, "implementation": "factorized"}),
    # FFT grids (transforms too large for one GEMM): the rows path runs the FFTs on (C, B, *grid)
    ((64,), (256,), {}),
    ((12, 12), (32, 32), {}),
    ((12, 12), (32, 32), {"format": "cp", "ratio": 0.1}),
    ((8, 7), (33, 31), {"format": "tucker", "ratio": 0.5}),
    ((8, 8), (33, 32), {"separable": True}),
    ((7, 6), (41, 32), {"format": "cp", "ratio": 0.3, "implementation": "reconstructed"}),
    # the FFT along the first dimension (its DFT matrix too large for a GEMM), and 3-D
    ((65, 4), (70, 8), {}),
    ((4, 4, 4), (10, 10, 10), {"format": "cp", "ratio": 0.2}),
]


def _grads(model: FNO, x: torch.Tensor, gy: torch.Tensor) -> list[torch.Tensor]:
    model.zero_grad()
    y = model(x)
    y.backward(gy)
    return [y.detach()] + [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize(("modes", "grid", "options"), CASES)
def test_rows_path_matches_the_batched_path(monkeypatch, modes, grid, options) -> None:
    g = torch.Generator().manual_seed(0)
    model = FNO(2, 3, modes, hidden_channels=6, generator=g, dtype=torch.float64, **options)
    x = torch.randn(3, 2, *grid, generator=g, dtype=torch.float64)
    gy = torch.randn(3, 3, *grid, generator=g, dtype=torch.float64)
    calls = []
    rows = FourierBlocks.rows

    def counted(self, *args):  # the rows path must actually run
        calls.append(1)
        return rows(self, *args)

    monkeypatch.setattr(FourierBlocks, "rows", counted)
    new = _grads(model, x, gy)
    assert calls
    monkeypatch.setattr(FourierBlocks, "rows_ready", lambda self, grid: False)
    old = _grads(model, x, gy)
    assert len(calls) == 1
    for a, b in zip(new, old, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12 * float(b.abs().max()))
    assert new[0].is_contiguous() and new[0].shape == (3, 3, *grid)


def test_padded_grids_take_the_batched_path(monkeypatch) -> None:
    g = torch.Generator().manual_seed(0)
    monkeypatch.setattr(FourierBlocks, "rows", lambda *args: pytest.fail("rows path taken"))
    padded = FNO(1, 1, (6,), hidden_channels=4, domain_padding=0.25, generator=g)
    assert padded(torch.randn(2, 1, 16)).shape == (2, 1, 16)


@pytest.mark.parametrize(("modes", "grid"), [((6,), (12,)), ((6, 6), (48, 48))])
def test_rows_path_double_backward_matches_the_batched_path(monkeypatch, modes, grid) -> None:
    g = torch.Generator().manual_seed(1)
    model = FNO(1, 1, modes, hidden_channels=4, generator=g, dtype=torch.float64)
    x = torch.randn(2, 1, *grid, generator=g, dtype=torch.float64)

    def second() -> torch.Tensor:
        xr = x.clone().requires_grad_()
        (gx,) = torch.autograd.grad(model(xr).pow(2).sum(), xr, create_graph=True)
        model.zero_grad()
        gx.pow(2).sum().backward()
        return model.lifting.first.weight.grad.clone()

    new = second()
    monkeypatch.setattr(FourierBlocks, "rows_ready", lambda self, grid: False)
    torch.testing.assert_close(new, second(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("modes", "grid"), [((6, 6), (12, 12)), ((12, 12), (32, 32)), ((8, 64), (16, 256))]
)
def test_inverse_modes_bias_is_added_on_every_branch(modes, grid) -> None:
    # grid-matrix GEMM, separable with a DFT-matrix last dimension, separable with an irfft
    from factorch.nn.spectral._modes import inverse_modes, mode_sizes

    g = torch.Generator().manual_seed(2)
    kept = torch.randn(3, 2, *mode_sizes(modes), generator=g, dtype=torch.complex128)
    bias = torch.randn(3, 1, 1, 1, generator=g, dtype=torch.float64)
    want = inverse_modes(kept, modes, grid) + bias
    torch.testing.assert_close(inverse_modes(kept, modes, grid, bias), want, rtol=1e-12, atol=1e-14)


def test_add_gated_passes_gradcheck_and_gradgradcheck() -> None:
    from factorch.models._blocks import _AddGated

    g = torch.Generator().manual_seed(3)
    v, x = (torch.randn(3, 5, generator=g, dtype=torch.float64) for _ in range(2))
    gate = torch.randn(3, 1, generator=g, dtype=torch.float64)
    inputs = tuple(t.requires_grad_() for t in (v, x, gate))

    def gated(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return _AddGated.apply(a.clone(), b, c)  # in place: on a copy

    torch.testing.assert_close(gated(*inputs), v + x * gate, rtol=1e-15, atol=1e-15)
    assert torch.autograd.gradcheck(gated, inputs)
    assert torch.autograd.gradgradcheck(gated, inputs)
