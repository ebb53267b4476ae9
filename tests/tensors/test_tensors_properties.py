"""``to_dense`` commutes with norm, inner, mode_dot, entries and unfold, for every type.

Hypothesis draws shapes (orders 2-5), ranks and seeds; each factorized result in float32 and
float64 is compared with the dense float64 computation (factorch.algebra) on the same values.
The error bound is elementwise and rigorous in form: ``|got - ref| <= RTOL * bound`` where
``bound`` is the same reference computed from the entrywise absolute values of every stored
tensor (the sum of the magnitudes of all the terms the factorized formula adds up).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from factorch import algebra
from factorch.tensors import FactorizedTensor, TTMatrix
from factorch.testing import strategies as fst

F64 = torch.float64
# Relative to the sum of magnitudes of the terms: ~67 unit roundoffs (float32), ~90 (float64);
# measured worst cases over 300 random tensors are ~5 and ~8 unit roundoffs.
RTOL = {torch.float32: 4e-6, torch.float64: 1e-14}
DTYPES = [torch.float32, torch.float64]
KINDS = {
    "cp": fst.cp_tensors,
    "tucker": fst.tucker_tensors,
    "tt": fst.tt_tensors,
    "tr": fst.tr_tensors,
}
SETTINGS = settings(max_examples=12, deadline=None)


def absolute(t: FactorizedTensor) -> FactorizedTensor:
    """The same structure with every stored entry replaced by its magnitude (float64)."""
    return t._replace_tensors([x.abs().to(F64) for x in t._tensors()])


def check(got: torch.Tensor, ref: torch.Tensor, bound: torch.Tensor, dtype: torch.dtype) -> None:
    assert got.dtype == dtype
    err = (got.to(F64) - ref).abs()
    limit = RTOL[dtype] * bound + 1e-300
    worst = float((err / limit).max()) if err.numel() else 0.0
    assert bool((err <= limit).all()), f"error {worst:.2f}x the bound"


@st.composite
def cases(draw: st.DrawFn, kind: str) -> tuple[FactorizedTensor, FactorizedTensor, torch.Generator]:
    shape = draw(fst.shapes(min_ndim=2, max_ndim=5, min_side=1, max_side=5))
    a = draw(KINDS[kind](shape=shape))
    b = draw(KINDS[kind](shape=shape))
    return a, b, torch.Generator().manual_seed(draw(fst.seeds()))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(KINDS))
@SETTINGS
@given(data=st.data())
def test_norm_and_inner(kind: str, dtype: torch.dtype, data: st.DataObject) -> None:
    a64, b64, gen = data.draw(cases(kind))
    a, b = a64.to(dtype=dtype), b64.to(dtype=dtype)
    a_ref, b_ref = a.to(dtype=F64).to_dense(), b.to(dtype=F64).to_dense()
    a_abs, b_abs = absolute(a).to_dense(), absolute(b).to_dense()

    norm = a.norm()
    assert norm.shape == ()
    check(norm**2, algebra.norm(a_ref) ** 2, algebra.inner(a_abs, a_abs), dtype)

    check(a.inner(b), algebra.inner(a_ref, b_ref), algebra.inner(a_abs, b_abs), dtype)

    dense = torch.randn(a.shape, generator=gen, dtype=F64)
    got = a.inner(dense.to(dtype))
    check(got, algebra.inner(a_ref, dense), algebra.inner(a_abs, dense.abs()), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(KINDS))
@SETTINGS
@given(data=st.data())
def test_mode_dot(kind: str, dtype: torch.dtype, data: st.DataObject) -> None:
    a64, _, gen = data.draw(cases(kind))
    a = a64.to(dtype=dtype)
    a_ref, a_abs = a.to(dtype=F64).to_dense(), absolute(a).to_dense()
    mode = data.draw(st.integers(-a.ndim, a.ndim - 1))
    size = a.shape[mode]
    rows = data.draw(st.integers(1, 4))

    mat = torch.randn(rows, size, generator=gen, dtype=F64)
    out = a.mode_dot(mat.to(dtype), mode)
    assert type(out) is type(a)
    assert out.shape == algebra.mode_dot(a_ref, mat, mode).shape
    check(
        out.to_dense(),
        algebra.mode_dot(a_ref, mat, mode),
        algebra.mode_dot(a_abs, mat.abs(), mode),
        dtype,
    )

    out_t = a.mode_dot(mat.T.contiguous().to(dtype), mode, transpose=True)
    check(
        out_t.to_dense(),
        algebra.mode_dot(a_ref, mat, mode),
        algebra.mode_dot(a_abs, mat.abs(), mode),
        dtype,
    )

    vec = torch.randn(size, generator=gen, dtype=F64)
    out_v = a.mode_dot(vec.to(dtype), mode)
    assert type(out_v) is type(a) and out_v.ndim == a.ndim - 1
    check(
        out_v.to_dense(),
        algebra.mode_dot(a_ref, vec, mode),
        algebra.mode_dot(a_abs, vec.abs(), mode),
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(KINDS))
@SETTINGS
@given(data=st.data())
def test_entries_and_unfold(kind: str, dtype: torch.dtype, data: st.DataObject) -> None:
    a64, _, gen = data.draw(cases(kind))
    a = a64.to(dtype=dtype)
    a_ref, a_abs = a.to(dtype=F64).to_dense(), absolute(a).to_dense()

    sizes = torch.tensor(a.shape)
    # indices in [-I_n, I_n): negative ones count from the end, as in Python
    idx = (torch.rand(9, a.ndim, generator=gen, dtype=F64) * 2 * sizes - sizes).floor().long()
    got = a.entries(idx)
    assert got.shape == (9,)
    check(got, a_ref[tuple(idx.T)], a_abs[tuple(idx.T)], dtype)

    for mode in range(a.ndim):
        unf = a.unfold(mode)
        check(unf, algebra.unfold(a_ref, mode), algebra.unfold(a_abs, mode), dtype)

    check(a.to_dense(), a_ref, a_abs, dtype)


# --- TT-matrices: the same properties on the matrix and on to_tensor() ----------------------


@st.composite
def matrix_cases(draw: st.DrawFn) -> tuple[TTMatrix, TTMatrix, torch.Generator]:
    a = draw(fst.tt_matrices(min_cores=1, max_cores=3))
    cores_b = []
    for k, c in enumerate(a.cores):
        left = 1 if k == 0 else draw(st.integers(1, 3))
        cores_b.append((left, c.shape[1], c.shape[2]))
    gen = torch.Generator().manual_seed(draw(fst.seeds()))
    ranks = [s[0] for s in cores_b] + [1]
    b = TTMatrix(
        tuple(
            torch.randn(ranks[k], m, n, ranks[k + 1], generator=gen, dtype=F64)
            for k, (_, m, n) in enumerate(cores_b)
        )
    )
    return a, b, gen


@pytest.mark.parametrize("dtype", DTYPES)
@SETTINGS
@given(data=st.data())
def test_tt_matrix_properties(dtype: torch.dtype, data: st.DataObject) -> None:
    a64, b64, gen = data.draw(matrix_cases())
    a, b = a64.to(dtype=dtype), b64.to(dtype=dtype)
    a_ref, b_ref = a.to(dtype=F64).to_dense(), b.to(dtype=F64).to_dense()
    a_abs, b_abs = absolute(a).to_dense(), absolute(b).to_dense()
    assert a.to_dense().shape == a.shape == (a.shape[0], a.shape[1])
    assert a.ndim == 2

    check(a.norm() ** 2, algebra.norm(a_ref) ** 2, algebra.inner(a_abs, a_abs), dtype)
    check(a.inner(b), algebra.inner(a_ref, b_ref), algebra.inner(a_abs, b_abs), dtype)
    dense = torch.randn(a.shape, generator=gen, dtype=F64)
    check(
        a.inner(dense.to(dtype)),
        algebra.inner(a_ref, dense),
        algebra.inner(a_abs, dense.abs()),
        dtype,
    )

    idx = torch.stack([torch.randint(0, s, (7,), generator=gen) for s in a.shape], dim=1)
    check(a.entries(idx), a_ref[idx[:, 0], idx[:, 1]], a_abs[idx[:, 0], idx[:, 1]], dtype)
    for mode in (0, 1):
        check(a.unfold(mode), algebra.unfold(a_ref, mode), algebra.unfold(a_abs, mode), dtype)

    t_ref = a.to(dtype=F64).to_tensor()
    t_abs = absolute(a).to_tensor()
    mode = data.draw(st.integers(0, 2 * a.n_cores - 1))
    mat = torch.randn(2, t_ref.shape[mode], generator=gen, dtype=F64)
    out = a.mode_dot(mat.to(dtype), mode)
    assert isinstance(out, TTMatrix)
    check(
        out.to_tensor(),
        algebra.mode_dot(t_ref, mat, mode),
        algebra.mode_dot(t_abs, mat.abs(), mode),
        dtype,
    )

    x = torch.randn(3, 2, a.shape[1], generator=gen, dtype=F64)
    check(a.apply(x.to(dtype)), x @ a_ref.T, x.abs() @ a_abs.T, dtype)
