"""Equivariant projectors: symmetric, idempotent, range satisfies the constraint; known ranks."""

from __future__ import annotations

import pytest
import torch

from factorch.symmetry import (
    MatrixGroup,
    Representation,
    axial_rotation_group,
    equivariant_projector,
    rotation_group,
)
from factorch.symmetry._projectors import _constraints, _dense_basis, _structured_basis

F64 = torch.float64


def _permutation_group() -> MatrixGroup:
    """S3 permuting the coordinates of R^3: a finite group (discrete generators only)."""
    swap = torch.tensor([[0.0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=F64)
    cycle = torch.tensor([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=F64)
    return MatrixGroup(torch.zeros(0, 3, 3, dtype=F64), torch.stack([swap, cycle]), "S3")


def _cases() -> list[tuple[str, Representation, Representation]]:
    o3, so3, so2 = rotation_group(3, reflections=True), rotation_group(3), axial_rotation_group(2)
    v = o3.vector()
    s3 = _permutation_group()
    so4 = rotation_group(4, reflections=True)
    return [
        ("O(3) irreps", o3.irreps("2x0e + 1o + 1e + 2e"), o3.irreps("0e + 2x1o + 2e + 3o")),
        ("O(3) tensors", v.tensor(v) + o3.trivial(), 2 * v + o3.trivial(2)),
        ("SO(3) V x V -> V", so3.vector().tensor(so3.vector()), so3.vector()),
        ("SO(2)", 2 * so2.vector() + so2.trivial(), 3 * so2.vector()),
        ("SO(2) irreps", so2.irreps("1o + 2e"), so2.irreps("1e + 2e")),
        ("S3", s3.vector(2), s3.vector() + s3.trivial()),
        ("O(4)", so4.vector().tensor(so4.vector()), so4.vector().tensor(so4.vector())),
    ]


def _random_elements(rep_in: Representation, rep_out: Representation, gen: torch.Generator):
    group = rep_in.group
    k, j = group.lie_algebra.shape[0], group.discrete.shape[0]
    for trial in range(4):
        c = torch.randn(k, generator=gen, dtype=F64) * 2
        disc = [int(torch.randint(j, (1,), generator=gen)) for _ in range(trial % 3)] if j else []
        yield rep_in.matrix(c, disc), rep_out.matrix(c, disc)


@pytest.mark.parametrize(("name", "rep_in", "rep_out"), _cases(), ids=[c[0] for c in _cases()])
def test_symmetric_idempotent_and_range_is_equivariant(
    name: str, rep_in: Representation, rep_out: Representation
) -> None:
    p = equivariant_projector(rep_in, rep_out)
    dense = p.dense()
    assert float((dense - dense.T).abs().max()) < 1e-10
    assert float((dense @ dense - dense).abs().max()) < 1e-10
    assert round(float(torch.trace(dense))) == p.rank
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(rep_out.dim, rep_in.dim, generator=gen, dtype=F64)
    pw = p(w)
    for g_in, g_out in _random_elements(rep_in, rep_out, gen):
        assert float((g_out @ pw - pw @ g_in).abs().max()) < 1e-10
    # an equivariant weight is left unchanged, the residual is orthogonal to the range
    assert torch.allclose(p(pw), pw, atol=1e-12)
    assert abs(float(((w - pw) * pw).sum())) < 1e-10


def test_groups_compare_by_generators() -> None:
    rep = rotation_group(3).vector() + rotation_group(3).vector()
    assert rep.dim == 6
    assert equivariant_projector(rotation_group(3).vector(), rep).rank == 2


def test_known_dimensions() -> None:
    o3, so3, so2 = rotation_group(3, reflections=True), rotation_group(3), axial_rotation_group(2)
    assert equivariant_projector(o3.vector(), o3.vector()).rank == 1  # a I
    assert (
        equivariant_projector(so2.vector(), so2.vector()).rank == 3
    )  # [[a, -b, 0], [b, a, 0], [0, 0, c]]
    assert equivariant_projector(so2.trivial(), so2.vector()).rank == 1  # the axis
    assert equivariant_projector(o3.trivial(), o3.vector()).rank == 0
    vv = so3.vector().tensor(so3.vector())
    assert equivariant_projector(vv, so3.vector()).rank == 1  # the cross product
    assert (
        equivariant_projector(o3.vector().tensor(o3.vector()), o3.vector()).rank == 0
    )  # odd under -I
    assert (
        equivariant_projector(_permutation_group().vector(), _permutation_group().vector()).rank
        == 2
    )
    ir = o3.irreps("1o + 2e + 2x1o")
    assert equivariant_projector(ir, ir).rank == 3 * 3 + 1


def test_cross_product_is_the_SO3_map() -> None:
    so3 = rotation_group(3)
    p = equivariant_projector(so3.vector().tensor(so3.vector()), so3.vector())
    eps = torch.zeros(3, 9, dtype=F64)
    for i in range(3):
        for j in range(3):
            eps[:, 3 * i + j] = torch.linalg.cross(
                torch.eye(3, dtype=F64)[i], torch.eye(3, dtype=F64)[j]
            )
    assert torch.allclose(p(eps), eps, atol=1e-12)


@pytest.mark.parametrize("group", ["O(3)", "SO(2)"])
def test_structured_solver_matches_dense_on_large_blocks(group: str) -> None:
    g = rotation_group(3, reflections=True) if group == "O(3)" else axial_rotation_group(2)
    v = g.vector()
    block = v.tensor(v).tensor(v).blocks[0][0]  # 27-dim block: a 729-dim constraint
    cons = _constraints(block, block)
    structured = _structured_basis(cons, 27, 27)
    dense = _dense_basis(cons, 27, 27)
    assert structured is not None and structured.shape == dense.shape
    assert torch.allclose(structured @ structured.T, dense @ dense.T, atol=1e-10)
    # the public entry point takes the structured route for this size and agrees
    p = equivariant_projector(v.tensor(v).tensor(v), v.tensor(v).tensor(v))
    assert p.rank == dense.shape[1]


def test_many_copies_share_one_small_basis_and_apply_batched() -> None:
    o3 = rotation_group(3, reflections=True)
    rep_in, rep_out = 16 * o3.vector() + 8 * o3.trivial(), 32 * o3.vector() + 4 * o3.trivial()
    p = equivariant_projector(rep_in, rep_out)
    assert p.rank == 16 * 32 + 8 * 4
    w = torch.randn(3, rep_out.dim, rep_in.dim, generator=torch.Generator().manual_seed(1))
    out = p(w)  # batch of weights, float32
    assert out.dtype == torch.float32 and out.shape == w.shape
    assert torch.allclose(out[1], p(w[1]), atol=1e-6)


def test_projection_is_differentiable() -> None:
    so2 = axial_rotation_group(2)
    p = equivariant_projector(so2.vector(2), so2.vector())
    w = torch.randn(3, 6, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(p, (w,))


@pytest.mark.parametrize(
    ("call", "kind", "match"),
    [
        (
            lambda: equivariant_projector(rotation_group(3).vector(), rotation_group(3).vector()),
            None,
            None,
        ),
        (
            lambda: equivariant_projector("V", rotation_group(3).vector()),
            TypeError,
            r"equivariant_projector: rep_in must be a Representation; got str",
        ),
        (
            lambda: equivariant_projector(rotation_group(3).vector(), rotation_group(2).vector()),
            ValueError,
            r"equivariant_projector: rep_in and rep_out must be representations of one group; "
            r"got SO\(3\) and SO\(2\)",
        ),
        (
            lambda: equivariant_projector(rotation_group(2).vector(), rotation_group(2).vector())(
                torch.ones(3, 3)
            ),
            ValueError,
            r"EquivariantProjector: weight must have shape \(\.\.\., 2, 2\)",
        ),
        (
            lambda: equivariant_projector(rotation_group(2).vector(), rotation_group(2).vector())(
                torch.ones(2, 2, dtype=torch.int64)
            ),
            TypeError,
            r"EquivariantProjector: weight must have a real floating-point dtype",
        ),
        (
            lambda: MatrixGroup(torch.zeros(0, 2, 2), torch.zeros(0, 2, 2)),
            ValueError,
            r"MatrixGroup: give at least one Lie-algebra or discrete generator",
        ),
        (
            lambda: MatrixGroup(torch.zeros(1, 2, 3), torch.zeros(0, 2, 2)),
            ValueError,
            r"MatrixGroup: lie_algebra must have shape \(count, n, n\); got \(1, 2, 3\)",
        ),
        (
            lambda: MatrixGroup(torch.zeros(1, 2, 2), torch.zeros(1, 3, 3)),
            ValueError,
            r"MatrixGroup: discrete must have shape \(count, 2, 2\)",
        ),
        (
            lambda: MatrixGroup([[0.0]], torch.zeros(0, 1, 1)),
            TypeError,
            r"MatrixGroup: lie_algebra must be a torch.Tensor",
        ),
        (lambda: rotation_group(1), ValueError, r"rotation_group: n must be an int >= 2; got 1"),
        (
            lambda: axial_rotation_group(3),
            IndexError,
            r"axial_rotation_group: axis must be in \[0, 2\]; got 3",
        ),
        (
            lambda: rotation_group(2).irreps("1o"),
            ValueError,
            r"MatrixGroup.irreps: irreps need a group acting on R\^3; got n = 2",
        ),
        (
            lambda: rotation_group(3).vector(0),
            ValueError,
            r"vector: multiplicity must be a positive int; got 0",
        ),
        (
            lambda: rotation_group(3).vector() + rotation_group(3, reflections=True).vector(),
            ValueError,
            r"Representation: a direct sum needs representations of one group",
        ),
        (
            lambda: rotation_group(3).vector().tensor(rotation_group(2).vector()),
            ValueError,
            r"Representation.tensor: both representations must be of one group",
        ),
        (
            lambda: rotation_group(3).vector().matrix(torch.zeros(2)),
            ValueError,
            r"Representation.matrix: lie_coefficients must have shape \(3,\)",
        ),
        (
            lambda: rotation_group(3, reflections=True).vector().matrix(torch.zeros(3), [1]),
            IndexError,
            r"Representation.matrix: discrete indices must be in \[0, 0\]; got 1",
        ),
    ],
)
def test_errors(call: object, kind: type[Exception] | None, match: str | None) -> None:
    if kind is None:
        call()  # type: ignore[operator]
        return
    with pytest.raises(kind, match=match):
        call()  # type: ignore[operator]
