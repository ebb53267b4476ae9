"""The modes-first spectral path (single-GEMM transforms, hand-written dense/Tucker/CP contractions)
against the FFT path it replaces on small grids: same values and gradients in float64, for every
weight format, odd and even grids, 1-3 spatial dims; exact first and second derivatives."""

from __future__ import annotations

import pytest
import torch

import factorch.nn.spectral._conv as conv_module
from factorch.models import FNO
from factorch.nn.spectral import SpectralConv
from factorch.nn.spectral._direct import (
    _DenseModes,
    _Outer,
    _TuckerModes,
    cp_weight_modes_first,
    dense_modes,
    modes_bmm,
    tucker_modes,
)
from factorch.nn.spectral._einsum import _ContiguousBmm
from factorch.nn.spectral._gemm_modes import _ModesIn, _ModesOut, gemm_matrices

FORMATS = [
    {},
    {"format": "tucker", "ratio": 0.7},
    {"format": "tucker", "ratio": 0.7, "implementation": "reconstructed"},
    {"format": "tucker", "ratio": 0.7, "implementation": "factorized"},
    {"format": "cp", "ratio": 0.7},
    {"format": "cp", "ratio": 0.7, "implementation": "reconstructed"},
    {"format": "tt", "ratio": 0.7},
    {"format": "lowrank", "ratio": 0.7},
    {"separable": True},
    {"format": "tucker", "ratio": 0.7, "separable": True},
]
GRIDS = [((6,), (16,)), ((7,), (9,)), ((4, 5), (6, 7)), ((3, 2, 4), (4, 5, 5))]


def _run(conv: SpectralConv, x: torch.Tensor, gy: torch.Tensor) -> list[torch.Tensor]:
    conv.zero_grad()
    x.grad = None
    y = conv(x)
    y.backward(gy)
    return [y.detach(), x.grad.clone()] + [p.grad.clone() for p in conv.parameters()]


@pytest.mark.parametrize(
    "options", FORMATS, ids=lambda o: "-".join(map(str, o.values())) or "dense"
)
@pytest.mark.parametrize(("modes", "grid"), GRIDS)
def test_modes_first_path_matches_the_fft_path(monkeypatch, options, modes, grid) -> None:
    g = torch.Generator().manual_seed(3)
    conv = SpectralConv(4, 4, modes, generator=g, dtype=torch.float64, **options)
    with torch.no_grad():
        conv.bias.normal_(generator=g)
    x = torch.randn(2, 4, *grid, generator=g, dtype=torch.float64, requires_grad=True)
    gy = torch.randn(2, 4, *grid, generator=g, dtype=torch.float64)
    assert gemm_matrices(modes, grid, torch.float64, x.device) is not None
    new = _run(conv, x, gy)
    monkeypatch.setattr(conv_module, "gemm_matrices", lambda *args: None)
    conv._plans.clear()
    old = _run(conv, x, gy)
    for a, b in zip(new, old, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12 * float(b.abs().max()))


def test_fno_tucker_float32_same_path_as_before_to_round_off(monkeypatch) -> None:
    g = torch.Generator().manual_seed(0)
    model = FNO(1, 1, (8,), hidden_channels=8, format="tucker", ratio=0.1, generator=g)
    x = torch.randn(4, 1, 32, generator=g)
    new = model(x)
    monkeypatch.setattr(conv_module, "gemm_matrices", lambda *args: None)
    for conv in model._convs():
        conv._plans.clear()
    torch.testing.assert_close(new, model(x), rtol=1e-5, atol=1e-6)


def _complex(*shape: int, g: torch.Generator) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.complex128).requires_grad_()


def test_dense_and_tucker_functions_pass_gradcheck_and_gradgradcheck() -> None:
    g = torch.Generator().manual_seed(0)
    x, w = _complex(2, 2, 3, g=g), _complex(3, 2, 2, g=g)
    assert torch.autograd.gradcheck(_DenseModes.apply, (x, w))
    assert torch.autograd.gradgradcheck(_DenseModes.apply, (x, w))
    ops = (_complex(2, 2, 3, g=g), _complex(3, 2, g=g), _complex(2, 2, 2, g=g))
    ops += (_complex(3, 2, g=g), _complex(2, 2, g=g))
    assert torch.autograd.gradcheck(_TuckerModes.apply, ops)
    assert torch.autograd.gradgradcheck(_TuckerModes.apply, ops)


@pytest.mark.parametrize("rows", [False, True])
def test_transform_functions_pass_gradcheck_and_gradgradcheck(rows: bool) -> None:
    g = torch.Generator().manual_seed(0)
    forward, inverse = gemm_matrices((5,), (7,), torch.float64, torch.device("cpu"))
    shape = (3, 2 * 7) if rows else (2, 3, 7)  # (C, B * N) or (B, C, N)
    x = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)

    def transform_in(t: torch.Tensor) -> torch.Tensor:
        return _ModesIn.apply(t, forward, 2, rows)

    def transform_out(s: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        return _ModesOut.apply(s, inverse, b, rows)

    assert torch.autograd.gradcheck(transform_in, (x,))
    assert torch.autograd.gradgradcheck(transform_in, (x,))
    spectrum = _complex(3, 2, 4, g=g)
    bias = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(transform_out, (spectrum, bias))
    assert torch.autograd.gradgradcheck(transform_out, (spectrum, bias))
    assert torch.autograd.gradcheck(lambda s: transform_out(s, None), (spectrum,))


def test_tucker_modes_several_dims_equal_the_rebuilt_weight() -> None:
    g = torch.Generator().manual_seed(0)
    core = torch.randn(2, 3, 2, 2, generator=g, dtype=torch.complex128)
    u_in = torch.randn(4, 2, generator=g, dtype=torch.complex128)
    u_out = torch.randn(5, 3, generator=g, dtype=torch.complex128)
    u1 = torch.randn(3, 2, generator=g, dtype=torch.complex128)
    u2 = torch.randn(2, 2, generator=g, dtype=torch.complex128)
    x = torch.randn(3, 2, 6, 4, generator=g, dtype=torch.complex128)  # (k1, k2, B, I)
    weight = torch.einsum("abcd,ia,ob,kc,ld->iokl", core, u_in, u_out, u1, u2)
    expected = torch.einsum("klbi,iokl->klbo", x, weight)
    torch.testing.assert_close(tucker_modes(x, core, u_in, u_out, [u1, u2]), expected)
    torch.testing.assert_close(
        dense_modes(x, weight), expected, rtol=1e-12, atol=1e-12
    )  # dense over two flattened mode dims


def test_cp_functions_pass_gradcheck_and_gradgradcheck() -> None:
    g = torch.Generator().manual_seed(0)
    x, w = _complex(3, 2, 4, g=g), _complex(3, 4, 2, g=g)  # (K, B, I), (K, I, O)
    assert torch.autograd.gradcheck(_ContiguousBmm.apply, (x, w))
    assert torch.autograd.gradgradcheck(_ContiguousBmm.apply, (x, w))
    a, b = _complex(4, 3, g=g), _complex(2, 3, g=g)  # (I, R), (O, R)
    assert torch.autograd.gradcheck(_Outer.apply, (a, b))
    assert torch.autograd.gradgradcheck(_Outer.apply, (a, b))
    factors = (_complex(3, g=g), _complex(4, 3, g=g), _complex(2, 3, g=g), _complex(3, 3, g=g))
    factors += (_complex(2, 3, g=g),)
    spectrum = _complex(3, 2, 2, 4, g=g)  # (k1, k2, B, I)

    def contract(t: torch.Tensor, *f: torch.Tensor) -> torch.Tensor:
        return modes_bmm(t, cp_weight_modes_first(f))

    assert torch.autograd.gradcheck(contract, (spectrum, *factors))
    assert torch.autograd.gradgradcheck(contract, (spectrum, *factors))


@pytest.mark.parametrize("modes", [(6,), (12, 12), (3, 4, 5)], ids=str)
def test_cp_weight_built_modes_first_matches_the_rebuilt_weight_path(
    monkeypatch, modes: tuple[int, ...]
) -> None:
    """The CP contraction equals main's path (the weight rebuilt by the generic contraction, then
    :func:`dense_modes`) in float64, values and every gradient, with ``lr_scale`` applied."""
    g = torch.Generator().manual_seed(1)
    conv = SpectralConv(
        5, 3, modes, format="cp", ratio=0.3, implementation="reconstructed", lr_scale=2.0,
        generator=g, dtype=torch.float64,
    )  # fmt: skip
    kept_shape = (*modes[:-1], modes[-1] // 2 + 1, 4, 5)  # (k.., B, I)
    kept = torch.randn(kept_shape, generator=g, dtype=torch.complex128, requires_grad=True)
    gy = torch.randn(*kept_shape[:-1], 3, generator=g, dtype=torch.complex128)
    calls = []

    def counted(*args: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return modes_bmm(*args)

    monkeypatch.setattr(conv_module, "modes_bmm", counted)

    def run(new: bool) -> list[torch.Tensor]:
        conv.zero_grad()
        kept.grad = None
        y = conv._contract(kept, modes_first=True) if new else dense_modes(kept, conv.weight)
        y.backward(gy)
        factors = conv.weight_source.parameters()
        return [y.detach(), kept.grad.clone()] + [p.grad.clone() for p in factors]

    new, old = run(True), run(False)
    assert calls == [1]  # the modes-first CP weight was built
    assert len(new) == 2 + 1 + 2 + len(modes)  # output, input; weights, in, out, mode factors
    for a, b in zip(new, old, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12 * float(b.abs().max()))


def test_a_modes_first_weight_of_the_wrong_shape_is_a_clear_error() -> None:
    from dataclasses import replace

    conv = SpectralConv(3, 2, (4, 4), format="cp", ratio=0.5, implementation="reconstructed")
    network = conv.weight_source.network
    assert network is not None and network.modes_first_weight is not None
    conv.weight_source.network = replace(
        network, modes_first_weight=lambda ops: torch.zeros(12, 2, 3, dtype=ops[0].dtype)
    )
    with pytest.raises(ValueError, match=r"modes_first_weight returned shape \(12, 2, 3\)"):
        conv(torch.randn(2, 3, 8, 8))
