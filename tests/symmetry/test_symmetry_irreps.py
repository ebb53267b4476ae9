"""Irreps value type: parsing, layout, algebra, e3nn interoperation, errors."""

from __future__ import annotations

import pytest
import torch

from factorch.symmetry import (
    Irrep,
    Irreps,
    e3nn_layout_irreps,
    from_e3nn_layout,
    irreps_from_e3nn,
    irreps_to_e3nn,
    to_e3nn_layout,
)

o3 = pytest.importorskip("e3nn.o3")


def test_parse_and_layout() -> None:
    ir = Irreps("2x0e + 1x1o + 3x2e")
    assert str(ir) == "2x0e+1x1o+3x2e"
    assert ir.dim == 2 + 3 + 15 and ir.num_irreps == 6 and ir.lmax == 2
    assert ir.slices() == (slice(0, 2), slice(2, 5), slice(5, 20))
    assert ir.ls == (0, 0, 1, 2, 2, 2)
    assert ir.offsets() == (0, 1, 2, 5, 10, 15)
    assert Irreps("1o") == Irreps("1x1o") == Irreps([(1, "1o")]) == Irreps([(1, (1, -1))])
    assert Irreps("").dim == 0 and len(Irreps("")) == 0
    assert Irrep.parse("3y") == Irrep(3, -1) and Irrep.parse("2y") == Irrep(2, 1)
    assert hash(Irreps("0e+1o")) == hash(Irreps("1x0e + 1x1o"))


def test_algebra() -> None:
    ir = Irreps("1x0e + 1x0e + 2x1o + 0x2e")
    assert ir.simplify() == Irreps("2x0e + 2x1o")
    assert Irreps("1e + 1o + 0e").sorted() == Irreps("0e + 1o + 1e")
    assert Irreps("0e") + "1o" == Irreps("0e + 1o")
    assert Irreps("2x0e + 1o") * 3 == Irreps("6x0e + 3x1o") == 3 * Irreps("2x0e + 1o")
    assert [str(x) for x in Irrep(2, 1).couple(Irrep(1, -1))] == ["1o", "2o", "3o"]
    assert Irreps.spherical_harmonics(3) == Irreps("0e + 1o + 2e + 3o")
    assert Irreps.spherical_harmonics(2, p=1) == Irreps("0e + 1e + 2e")
    assert ir[1:3] == Irreps("1x0e + 2x1o") and ir[0].mul == 1


def test_e3nn_round_trip() -> None:
    for text in ["2x0e + 1x1o + 3x2e", "1x0o + 2x1e + 1x5o", ""]:
        e = o3.Irreps(text)
        assert Irreps(e) == Irreps(text) == irreps_from_e3nn(e)
        assert irreps_to_e3nn(text) == e
        assert Irreps(e).dim == e.dim


@pytest.mark.parametrize("irreps", ["0e + 1o", "2x0e + 1x1o + 1x2e", "3x1e"])
@pytest.mark.parametrize("channels", [1, 4])
def test_layout_conversion_round_trip_and_meaning(irreps: str, channels: int) -> None:
    g = torch.Generator().manual_seed(0)
    ir = Irreps(irreps)
    x = torch.randn(5, channels, ir.dim, generator=g, dtype=torch.float64)
    flat = to_e3nn_layout(x, ir)
    assert flat.shape == (5, channels * ir.dim)
    assert torch.equal(from_e3nn_layout(flat, ir, channels), x)
    # block by block: copy c * mul + u of the e3nn block is copy u of channel c
    big = e3nn_layout_irreps(ir, channels)
    assert big == Irreps([(mul * channels, irrep) for mul, irrep in ir])
    for (mul, irrep), s_small, s_big in zip(ir, ir.slices(), big.slices()):
        blk = flat[:, s_big].reshape(5, channels, mul, irrep.dim)
        assert torch.equal(blk, x[:, :, s_small].reshape(5, channels, mul, irrep.dim))


@pytest.mark.parametrize(
    ("spec", "kind", "match"),
    [
        ("2x1q", ValueError, r"Irreps: each term must look like '2x1o' or '1e'; got '2x1q'"),
        ("1o + + 2e", ValueError, r"Irreps: each term must look like"),
        (3, TypeError, r"Irreps: spec must be a string such as '2x0e \+ 1x1o'"),
        ([(1.5, "1o")], TypeError, r"Irreps: a multiplicity must be an int; got float"),
        ([(-1, "1o")], ValueError, r"Irreps: a multiplicity must be non-negative; got -1"),
        ([(1, (1, 2))], ValueError, r"Irrep: p must be 1 \(even\) or -1 \(odd\); got 2"),
        ([(1, (-1, 1))], ValueError, r"Irrep: l must be a non-negative int; got -1"),
        ([3], TypeError, r"Irreps: each item must be a \(mul, irrep\) pair; got int"),
    ],
)
def test_irreps_errors(spec: object, kind: type[Exception], match: str) -> None:
    with pytest.raises(kind, match=match):
        Irreps(spec)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "kind", "match"),
    [
        (lambda: Irrep.parse("x"), ValueError, r"Irrep.parse: text must be a degree followed by e"),
        (lambda: Irrep.parse(1), TypeError, r"Irrep.parse: text must be a str such as '1o'"),
        (lambda: Irreps("").lmax, ValueError, r"Irreps.lmax: the empty direct sum has no degrees"),
        (lambda: Irreps.spherical_harmonics(-1), ValueError, r"Irreps.spherical_harmonics: lmax"),
        (lambda: Irreps.spherical_harmonics(2, p=0), ValueError, r"p must be 1 or -1; got 0"),
        (lambda: irreps_to_e3nn("1q"), ValueError, r"irreps_to_e3nn: irreps must be irreps"),
        (lambda: irreps_from_e3nn(5), TypeError, r"irreps_from_e3nn: irreps must be irreps"),
        (
            lambda: to_e3nn_layout(torch.zeros(2, 3), "0e + 1o"),
            ValueError,
            r"to_e3nn_layout: x must have last dimension 4; got shape \(2, 3\)",
        ),
        (
            lambda: to_e3nn_layout(torch.zeros(4), "0e + 1o"),
            ValueError,
            r"to_e3nn_layout: x must have at least 2 dimensions",
        ),
        (
            lambda: from_e3nn_layout(torch.zeros(2, 7), "0e + 1o", 2),
            ValueError,
            r"from_e3nn_layout: x must have last dimension 8",
        ),
        (
            lambda: from_e3nn_layout(torch.zeros(2, 8), "0e + 1o", 0),
            ValueError,
            r"from_e3nn_layout: channels must be a positive int; got 0",
        ),
        (
            lambda: e3nn_layout_irreps("0e", True),
            ValueError,
            r"e3nn_layout_irreps: channels must be a positive int; got True",
        ),
    ],
)
def test_helper_errors(call: object, kind: type[Exception], match: str) -> None:
    with pytest.raises(kind, match=match):
        call()  # type: ignore[operator]
