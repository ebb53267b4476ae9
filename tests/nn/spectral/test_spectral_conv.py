"""SpectralConv against an explicit-DFT reference: every format, odd and even grids, 1/2/3-D,
float32 and float64; gradients by gradcheck; the cost model; bad configurations."""

from __future__ import annotations

import pytest
import torch
from _spectral_reference import FORMATS, explicit_dft_conv

from factorch.nn.spectral import SpectralConv, SpectralWeight, count_real

GRIDS = [
    ((9,), (5,)),  # odd grid, odd modes
    ((8,), (8,)),  # even grid, Nyquist kept
    ((7, 8), (5, 4)),
    ((6, 7), (6, 7)),  # all frequencies of the first dimension, odd last
    ((5, 6, 7), (3, 4, 5)),
]
TOL = {torch.float32: 2e-5, torch.float64: 1e-12}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("grid", "modes"), GRIDS)
@pytest.mark.parametrize(("format", "kw"), FORMATS, ids=[f for f, _ in FORMATS])
@pytest.mark.parametrize("implementation", ["factorized", "reconstructed"])
def test_equals_explicit_dft(format, kw, grid, modes, dtype, implementation) -> None:
    g = torch.Generator().manual_seed(0)
    conv = SpectralConv(
        3, 4, modes, format=format, implementation=implementation, generator=g, dtype=dtype, **kw
    )
    with torch.no_grad():
        conv.bias.normal_(generator=g)
    x = torch.randn(2, 3, *grid, generator=g, dtype=dtype)
    with torch.no_grad():
        y = conv(x)
        bias = conv.bias.double().reshape(-1, *[1] * len(grid))
        ref = explicit_dft_conv(x, conv.weight, modes) + bias
    assert y.dtype == dtype and y.shape == (2, 4, *grid)
    err = float((y.double() - ref).abs().max() / ref.abs().max())
    assert err < TOL[dtype], err


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("grid", "modes"), [((9,), (5,)), ((7, 6), (5, 5))])
@pytest.mark.parametrize("format", ["dense", "cp", "tucker"])
def test_separable_equals_explicit_dft(format, grid, modes, dtype) -> None:
    g = torch.Generator().manual_seed(1)
    kw = {} if format == "dense" else {"rank": 2}
    conv = SpectralConv(
        3, 3, modes, format=format, separable=True, bias=False, generator=g, dtype=dtype, **kw
    )
    x = torch.randn(2, 3, *grid, generator=g, dtype=dtype)
    with torch.no_grad():
        ref = explicit_dft_conv(x, conv.weight, modes, separable=True)
        assert float((conv(x).double() - ref).abs().max() / ref.abs().max()) < TOL[dtype]


@pytest.mark.parametrize("format", ["dense", "cp", "tucker", "tt"])
def test_shared_weight_layers_are_slices_of_one_tensor(format) -> None:
    g = torch.Generator().manual_seed(2)
    kw = {} if format == "dense" else {"rank": 3}
    shared = SpectralWeight(
        3, 3, (5, 6), n_layers=2, format=format, generator=g, dtype=torch.float64, **kw
    )
    convs = [SpectralConv(3, 3, (5, 6), shared=shared, layer=l, bias=False) for l in range(2)]
    full = shared.tensor()
    x = torch.randn(2, 3, 7, 9, generator=g, dtype=torch.float64)
    for l, conv in enumerate(convs):
        torch.testing.assert_close(conv.weight, full[l])
        ref = explicit_dft_conv(x, full[l], (5, 6))
        torch.testing.assert_close(conv(x), ref, rtol=1e-10, atol=1e-12)
    stack = torch.nn.Sequential(*convs)
    assert count_real(stack) == count_real(shared)  # shared parameters counted once


@pytest.mark.parametrize(("format", "kw"), FORMATS[:4], ids=[f for f, _ in FORMATS[:4]])
def test_gradcheck(format, kw) -> None:
    g = torch.Generator().manual_seed(3)
    conv = SpectralConv(
        2,
        2,
        (3, 4),
        format=format,
        implementation="factorized",
        generator=g,
        dtype=torch.float64,
        **kw,
    )
    x = torch.randn(1, 2, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    params = tuple(conv.parameters())

    def f(inp, *ps):
        with torch.nn.utils.stateless._reparametrize_module(
            conv, dict(zip([n for n, _ in conv.named_parameters()], ps))
        ):
            return conv(inp)

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-6)


def _band_limited(n: int, coeffs: torch.Tensor) -> torch.Tensor:
    """``sum_k a_k cos(2 pi k.x) + b_k sin(2 pi k.x)`` over ``|k_j| <= 3`` on an ``n^2`` grid."""
    t = torch.arange(n, dtype=torch.float64) / n
    k = torch.arange(-3, 4, dtype=torch.float64)
    phase = (
        2
        * torch.pi
        * (
            k[:, None, None, None] * t[None, None, :, None]
            + k[None, :, None, None] * t[None, None, None, :]
        )
    )
    a, b = coeffs[..., 0], coeffs[..., 1]  # (channels, 7, 7)
    return torch.einsum("ckl,klxy->cxy", a, torch.cos(phase)) + torch.einsum(
        "ckl,klxy->cxy", b, torch.sin(phase)
    )


def test_discretisation_invariance_on_band_limited_input() -> None:
    g = torch.Generator().manual_seed(4)
    conv = SpectralConv(2, 3, (6, 6), format="cp", rank=4, generator=g, dtype=torch.float64)
    coeffs = torch.randn(2, 7, 7, 2, generator=g, dtype=torch.float64)
    coarse, fine = _band_limited(12, coeffs)[None], _band_limited(24, coeffs)[None]
    with torch.no_grad():
        torch.testing.assert_close(conv(fine)[..., ::2, ::2], conv(coarse), rtol=1e-10, atol=1e-12)


def test_auto_picks_the_cheaper_path_by_the_cost_model() -> None:
    wide = SpectralConv(32, 32, (12, 12), format="cp", rank=4)
    plan = wide.plan((1, 32, 12, 7))
    assert plan.factorized and plan.costs[0] < plan.costs[1]
    # Full rank and a large batch: the best order over the whole network rebuilds the weight
    # first, so it costs exactly what rebuilding does (never more).
    full = SpectralConv(4, 4, (4, 4), format="tucker", rank=4)
    plan = full.plan((64, 4, 4, 3))
    assert plan.costs[0] == plan.costs[1]
    forced = SpectralConv(32, 32, (12, 12), format="cp", rank=4, implementation="reconstructed")
    assert not forced.plan((1, 32, 12, 7)).factorized
    assert not SpectralConv(4, 4, (4, 4)).plan((2, 4, 4, 3)).factorized  # dense


def test_load_dense_round_trip_complex_cp_and_tucker() -> None:
    g = torch.Generator().manual_seed(5)
    for format, rank in (("cp", 3), ("tucker", (2, 3, 2, 3))):
        source = SpectralConv(
            2, 3, (4, 6), format=format, rank=rank, generator=g, dtype=torch.float64
        )
        target = SpectralConv(
            2, 3, (4, 6), format=format, rank=rank, generator=g, dtype=torch.float64
        )
        target.load_dense_(source.weight.detach())
        torch.testing.assert_close(target.weight, source.weight, rtol=1e-6, atol=1e-8)


def test_half_input_is_computed_in_the_layer_dtype_and_autocast_is_ignored() -> None:
    conv = SpectralConv(2, 2, (4,), generator=torch.Generator().manual_seed(6))
    x = torch.randn(3, 2, 16)
    y = conv(x)
    assert conv(x.to(torch.bfloat16)).dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(conv(x), y)


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (
            lambda: SpectralConv(2, 2, (4, 4, 4, 4)),
            ValueError,
            r"SpectralConv: modes must be a positive int or a sequence of 1 to 3",
        ),
        (
            lambda: SpectralConv(2, 2, (0, 4)),
            ValueError,
            r"SpectralConv: modes must be a positive int",
        ),
        (
            lambda: SpectralConv(2, 3, 4, separable=True),
            ValueError,
            r"SpectralConv: a separable .* needs in_channels == out_channels",
        ),
        (
            lambda: SpectralConv(2, 2, 4, format="cp"),
            ValueError,
            r"SpectralConv: give exactly one of rank=",
        ),
        (
            lambda: SpectralConv(2, 2, 4, rank=3),
            ValueError,
            r"SpectralConv: a dense spectral weight takes no rank",
        ),
        (
            lambda: SpectralConv(2, 2, 4, format="svd", rank=2),
            ValueError,
            r"SpectralConv: format must be one of",
        ),
        (
            lambda: SpectralConv(2, 2, (4, 4), format="tucker", rank=(9, 2, 2, 2)),
            ValueError,
            r"SpectralConv: rank\[0\] = 9 exceeds the mode size 2",
        ),
        (lambda: SpectralConv(2, 2, (4, 4), format="cp", ratio=1e-6), ValueError, r"SpectralConv"),
        (
            lambda: SpectralConv(2, 2, (4, 4), format="cp", rank=10**12),
            ValueError,
            r"SpectralConv: the cp factors needs about .* of memory",
        ),
        (
            lambda: SpectralConv(2, 2, 4, dtype=torch.float16),
            TypeError,
            r"SpectralConv: dtype must be torch.float32 or torch.float64",
        ),
        (
            lambda: SpectralConv(2, 2, 4, implementation="fast"),
            ValueError,
            r"SpectralConv: implementation must be one of",
        ),
        (
            lambda: SpectralConv(2, 2, 4, layer=1),
            ValueError,
            r"SpectralConv: layer= indexes a shared weight",
        ),
        (
            lambda: SpectralConv(2, 2, 4, shared=SpectralWeight(2, 2, 4, n_layers=2), layer=2),
            IndexError,
            r"SpectralConv: layer must be an index in \[0, 1\]",
        ),
        (
            lambda: SpectralConv(2, 3, 4, shared=SpectralWeight(2, 2, 4, n_layers=2), layer=0),
            ValueError,
            r"SpectralConv: the shared weight is for",
        ),
    ],
)
def test_bad_configurations(make, exc, match) -> None:
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize(
    ("x", "exc", "match"),
    [
        (
            torch.randn(2, 3, 16, 16),
            ValueError,
            r"SpectralConv: input must have shape \(batch, 2, 2 grid sizes\)",
        ),
        (torch.randn(2, 2, 16), ValueError, r"SpectralConv: input must have shape"),
        (
            torch.randn(2, 2, 7, 16),
            ValueError,
            r"SpectralConv: 8 modes along spatial dimension 0 need a grid of at least 8 points",
        ),
        (
            torch.randn(2, 2, 16, 7),
            ValueError,
            r"SpectralConv: 8 modes along spatial dimension 1 need a grid of at least 8",
        ),
        (
            torch.randn(2, 2, 16, 16, dtype=torch.float64),
            TypeError,
            r"SpectralConv: input dtype torch.float64 does not match",
        ),
        (
            torch.ones(2, 2, 16, 16, dtype=torch.int64),
            TypeError,
            r"SpectralConv: input must be a real floating tensor",
        ),
    ],
)
def test_bad_inputs(x, exc, match) -> None:
    conv = SpectralConv(2, 2, (8, 8))
    with pytest.raises(exc, match=match):
        conv(x)
