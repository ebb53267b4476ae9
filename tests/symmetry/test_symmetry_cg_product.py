"""Full CG tensor product: e3nn path by path, equivariance, weights, gradients, errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch

from factorch.symmetry import (
    ClebschGordanTensorProduct,
    Irreps,
    cg_paths,
    cg_tensor_product,
    clebsch_gordan,
    default_irreps_out,
    from_e3nn_layout,
    haar_orthogonal,
    irreps_wigner_D,
    to_e3nn_layout,
)

o3 = pytest.importorskip("e3nn.o3")
F64 = torch.float64


@contextlib.contextmanager
def _e3nn_float64() -> Iterator[None]:
    """e3nn builds its coefficient buffers in the default dtype: build them in float64 here,
    restoring the previous default on exit (nothing leaks into other tests)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _reference(
    x1: torch.Tensor, x2: torch.Tensor, i1: Irreps, i2: Irreps, io: Irreps, w: torch.Tensor
) -> torch.Tensor:
    """Slow, obviously correct: one einsum per path over the CG coefficients."""
    out = x1.new_zeros(*torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1]), io.dim)
    o1, o2, o3_ = i1.offsets(), i2.offsets(), io.offsets()
    for k, p in enumerate(cg_paths(i1, i2, io)):
        a = x1[..., o1[p.a] : o1[p.a] + p.irrep1.dim]
        b = x2[..., o2[p.b] : o2[p.b] + p.irrep2.dim]
        c = clebsch_gordan(*p.ls)
        wk = w[k] if w.ndim == 1 else w[k][:, None]
        out[..., o3_[p.c] : o3_[p.c] + p.irrep_out.dim] += wk * torch.einsum(
            "...i,...j,ijk->...k", a, b, c
        )
    return out


@pytest.mark.parametrize(
    ("irreps1", "irreps2"),
    [("0e + 1o + 2e", "0e + 1o + 2e"), ("2x0e + 1x1o + 2x2o", "1x0o + 2x1e + 1x3o")],
)
def test_matches_e3nn_full_tensor_product_path_by_path(irreps1: str, irreps2: str) -> None:
    with _e3nn_float64():
        ftp = o3.FullTensorProduct(irreps1, irreps2)
    i1, i2, io = Irreps(ftp.irreps_in1), Irreps(ftp.irreps_in2), Irreps(ftp.irreps_out)
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(6, i1.dim, generator=g, dtype=F64)
    x2 = torch.randn(6, i2.dim, generator=g, dtype=F64)
    ref = ftp(x1, x2)
    paths = cg_paths(i1, i2, io)
    index = {(p.a, p.b, p.c): k for k, p in enumerate(paths)}
    first = [sum(m for m, _ in ir[:i]) for ir in (i1, i2, io) for i in range(len(ir))]
    f1, f2, f3 = first[: len(i1)], first[len(i1) : len(i1) + len(i2)], first[len(i1) + len(i2) :]
    checked = 0
    for ins in ftp.instructions:
        m1, m2 = i1[ins.i_in1].mul, i2[ins.i_in2].mul
        d = io[ins.i_out].irrep.dim
        for u in range(m1):
            for v in range(m2):
                k = index[(f1[ins.i_in1] + u, f2[ins.i_in2] + v, f3[ins.i_out] + u * m2 + v)]
                w = torch.zeros(len(paths), dtype=F64)
                w[k] = 1.0
                ours = cg_tensor_product(x1, x2, i1, i2, io, weights=w)
                start = io.slices()[ins.i_out].start + (u * m2 + v) * d
                block = slice(start, start + d)
                assert torch.allclose(ours[:, block], ref[:, block], atol=1e-12)
                rest = ours.clone()
                rest[:, block] = 0
                assert float(rest.abs().max()) == 0.0
                checked += 1
    assert checked == sum(i1[i.i_in1].mul * i2[i.i_in2].mul for i in ftp.instructions)


def test_channelwise_product_matches_e3nn_after_layout_conversion() -> None:
    ir = Irreps("0e + 1o + 2e")
    out = default_irreps_out(ir, ir)
    channels = 3
    paths = cg_paths(ir, ir, out)
    g = torch.Generator().manual_seed(1)
    x1 = torch.randn(4, channels, ir.dim, generator=g, dtype=F64)
    x2 = torch.randn(4, channels, ir.dim, generator=g, dtype=F64)
    w = torch.randn(len(paths), channels, generator=g, dtype=F64)
    ours = cg_tensor_product(x1, x2, ir, ir, out, weights=w)
    e_in, e_out = o3.Irreps(str(ir * channels)), o3.Irreps(str(out * channels))
    instructions = [(p.a, p.b, p.c, "uuu", True) for p in paths]
    with _e3nn_float64():
        tp = o3.TensorProduct(
            e_in,
            e_in,
            e_out,
            instructions,
            irrep_normalization="component",
            path_normalization="none",
            internal_weights=False,
            shared_weights=True,
        )
    # e3nn's "uuu" weights: one vector of length channels per instruction, in order
    ref = tp(to_e3nn_layout(x1, ir), to_e3nn_layout(x2, ir), w.reshape(-1))
    assert torch.allclose(from_e3nn_layout(ref, out, channels), ours, atol=1e-12)


def test_matches_slow_reference_with_shared_and_channel_weights() -> None:
    i1, i2, io = Irreps("2x0e + 1o + 1e"), Irreps("1o + 2e"), Irreps("0e + 2x1o + 1e + 2e + 3o")
    g = torch.Generator().manual_seed(2)
    x1 = torch.randn(5, 2, i1.dim, generator=g, dtype=F64)
    x2 = torch.randn(1, 2, i2.dim, generator=g, dtype=F64)  # broadcast over the batch
    n = len(cg_paths(i1, i2, io))
    for w in (torch.randn(n, generator=g, dtype=F64), torch.randn(n, 2, generator=g, dtype=F64)):
        ours = cg_tensor_product(x1, x2, i1, i2, io, weights=w)
        assert torch.allclose(ours, _reference(x1, x2, i1, i2, io, w), atol=1e-12)
    ones = cg_tensor_product(x1, x2, i1, i2, io)
    assert torch.allclose(
        ones, _reference(x1, x2, i1, i2, io, torch.ones(n, dtype=F64)), atol=1e-12
    )


@pytest.mark.parametrize(
    ("irreps", "routes"),
    [("0e + 1o", (True, True, True)), ("0e + 1o + 2e + 3o", (True, True, False))],
)
def test_all_routes_match_the_reference(irreps: str, routes: tuple[bool, ...]) -> None:
    from factorch.symmetry._cg_product import _plan, _use_fused

    ir = Irreps(irreps)
    io = default_irreps_out(ir, ir)
    fused = _plan(ir, ir, io).fused
    g = torch.Generator().manual_seed(8)
    x1 = torch.randn(3, 4, ir.dim, generator=g, dtype=F64)
    x2 = torch.randn(1, 4, ir.dim, generator=g, dtype=F64)
    n = len(cg_paths(ir, ir, io))
    weights = (
        None,
        torch.randn(n, generator=g, dtype=F64),
        torch.randn(n, 4, generator=g, dtype=F64),
    )
    for w, route in zip(weights, routes):
        assert _use_fused(fused, w) is route  # the size rule picks dense or per-pair products
        ours = cg_tensor_product(x1, x2, ir, ir, io, weights=w)
        ref_w = torch.ones(n, dtype=F64) if w is None else w
        assert torch.allclose(ours, _reference(x1, x2, ir, ir, io, ref_w), atol=1e-12)


def test_equivariant_under_O3() -> None:
    i1, i2 = Irreps("0e + 1o + 2e + 1e"), Irreps("0e + 1o + 2o")
    io = default_irreps_out(i1, i2)
    g = torch.Generator().manual_seed(3)
    x1 = torch.randn(7, i1.dim, generator=g, dtype=F64)
    x2 = torch.randn(7, i2.dim, generator=g, dtype=F64)
    w = torch.randn(len(cg_paths(i1, i2, io)), generator=g, dtype=F64)
    z = cg_tensor_product(x1, x2, i1, i2, io, weights=w)
    for r in haar_orthogonal(3, 3, special=False, generator=g, dtype=F64):
        d1, d2, d3 = (irreps_wigner_D(ir, r) for ir in (i1, i2, io))
        zr = cg_tensor_product(x1 @ d1.T, x2 @ d2.T, i1, i2, io, weights=w)
        assert float((zr - z @ d3.T).abs().max()) < 1e-10


def test_cross_product_and_dot_product() -> None:
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(5, 3, generator=g, dtype=F64), torch.randn(5, 3, generator=g, dtype=F64)
    assert torch.allclose(
        cg_tensor_product(a, b, "1o", "1o", "1e"), torch.linalg.cross(a, b) / 2**0.5
    )
    assert torch.allclose(cg_tensor_product(a, b, "1o", "1o", "0e")[:, 0], (a * b).sum(1) / 3**0.5)


def test_gradients_and_dtypes() -> None:
    g = torch.Generator().manual_seed(5)
    x1 = torch.randn(2, 4, generator=g, dtype=F64, requires_grad=True)
    x2 = torch.randn(2, 4, generator=g, dtype=F64, requires_grad=True)
    w = torch.randn(6, generator=g, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b, c: cg_tensor_product(a, b, "0e + 1o", "0e + 1o", weights=c), (x1, x2, w)
    )
    z64 = cg_tensor_product(x1.detach(), x2.detach(), "0e + 1o", "0e + 1o")
    z32 = cg_tensor_product(x1.detach().float(), x2.detach().float(), "0e + 1o", "0e + 1o")
    zh = cg_tensor_product(x1.detach().bfloat16(), x2.detach().bfloat16(), "0e + 1o", "0e + 1o")
    assert z32.dtype == torch.float32 and float((z32.double() - z64).abs().max()) < 1e-6
    assert zh.dtype == torch.bfloat16 and float((zh.double() - z64).abs().max()) < 0.1


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_extreme_scales(scale: float) -> None:
    g = torch.Generator().manual_seed(6)
    x = torch.randn(3, 4, generator=g, dtype=F64)
    ref = cg_tensor_product(x, x, "0e + 1o", "0e + 1o")
    small = cg_tensor_product((x * scale).float(), x.float(), "0e + 1o", "0e + 1o")
    assert torch.allclose(small.double() / scale, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"cg_tensor_product: the product overflows torch.float32"):
        cg_tensor_product((x * 1e30).float(), (x * 1e30).float(), "0e + 1o", "0e + 1o")


def test_module() -> None:
    tp = ClebschGordanTensorProduct("0e + 1o", "0e + 1o", channels=4, dtype=F64)
    assert tp.weight.shape == (6, 4) and len(tp.paths) == 6 and "paths=6" in repr(tp)
    g = torch.Generator().manual_seed(7)
    x1 = torch.randn(3, 4, 4, generator=g, dtype=F64)
    x2 = torch.randn(3, 4, 4, generator=g, dtype=F64)
    tp(x1, x2).pow(2).sum().backward()
    assert tp.weight.grad is not None and tp.weight.grad.abs().sum() > 0
    state = tp.state_dict()
    tp2 = ClebschGordanTensorProduct("0e + 1o", "0e + 1o", channels=4, dtype=F64)
    tp2.load_state_dict(state)
    assert torch.equal(tp2(x1, x2), tp(x1, x2))


@pytest.mark.parametrize(
    ("call", "kind", "match"),
    [
        (
            lambda: cg_tensor_product(torch.ones(2, 3), torch.ones(2, 3), "0e", "1o"),
            ValueError,
            r"cg_tensor_product: x1 must have last dimension 1; got shape \(2, 3\)",
        ),
        (
            lambda: cg_tensor_product(torch.ones(2, 1), torch.ones(2, 4), "0e", "1o"),
            ValueError,
            r"cg_tensor_product: x2 must have last dimension 3",
        ),
        (
            lambda: cg_tensor_product(torch.ones(2, 1), torch.ones(3, 3), "0e", "1o"),
            ValueError,
            r"cg_tensor_product: the leading shapes of x1 \(2,\) and x2 \(3,\) must broadcast",
        ),
        (
            lambda: cg_tensor_product(torch.ones(1), torch.ones(3, dtype=F64), "0e", "1o"),
            TypeError,
            r"cg_tensor_product: x1 and x2 must have one dtype",
        ),
        (
            lambda: cg_tensor_product(
                torch.ones(1), torch.ones(3), "0e", "1o", weights=torch.ones(2)
            ),
            ValueError,
            r"cg_tensor_product: weights must have shape \(1,\) or \(1, channels\)",
        ),
        (
            lambda: cg_tensor_product(
                torch.ones(2, 1), torch.ones(2, 3), "0e", "1o", weights=torch.ones(1, 3)
            ),
            ValueError,
            r"weights with a channel axis must have 2 channels",
        ),
        (
            lambda: cg_tensor_product(torch.ones(1), torch.ones(3), "0e", "1o", weights=[1.0]),
            TypeError,
            r"cg_tensor_product: weights must be a torch.Tensor or None; got list",
        ),
        (
            lambda: cg_tensor_product(
                torch.ones(1), torch.ones(3), "0e", "1o", weights=torch.ones(1, dtype=torch.int64)
            ),
            TypeError,
            r"weights must have a real floating-point dtype",
        ),
        (
            lambda: cg_tensor_product(
                torch.ones(1), torch.ones(3), "0e", "1o", weights=torch.tensor([float("nan")])
            ),
            ValueError,
            r"weights contains NaN or Inf",
        ),
        (
            lambda: cg_tensor_product(torch.ones(1), torch.ones(3), "0e", "1x"),
            ValueError,
            r"cg_tensor_product: irreps2 must be irreps such as",
        ),
        (
            lambda: cg_tensor_product(
                torch.ones(1, dtype=torch.complex64), torch.ones(3), "0e", "1o"
            ),
            TypeError,
            r"cg_tensor_product: x1 must have a real floating-point dtype",
        ),
        (lambda: cg_paths("0e", 5), TypeError, r"cg_paths: irreps2 must be irreps such as"),
        (
            lambda: ClebschGordanTensorProduct("0e", "0e", "1o"),
            ValueError,
            r"ClebschGordanTensorProduct: no path couples 1x0e and 1x0e to 1x1o",
        ),
        (
            lambda: ClebschGordanTensorProduct("0e", "0e", channels=0),
            ValueError,
            r"ClebschGordanTensorProduct: channels must be a positive int or None; got 0",
        ),
    ],
)
def test_errors(call: object, kind: type[Exception], match: str) -> None:
    with pytest.raises(kind, match=match):
        call()  # type: ignore[operator]


def test_default_irreps_out_parses_strings_and_refuses_junk() -> None:
    from factorch.symmetry import Irreps, default_irreps_out

    assert default_irreps_out("1o", Irreps("1o")) == Irreps("1x0e+1x1e+1x2e")
    with pytest.raises(ValueError, match=r"default_irreps_out: irreps2 must be irreps such as"):
        default_irreps_out(Irreps("1o"), "not irreps")
    with pytest.raises(TypeError, match=r"default_irreps_out: irreps1 must be irreps such as"):
        default_irreps_out(3.5, Irreps("1o"))  # type: ignore[arg-type]
