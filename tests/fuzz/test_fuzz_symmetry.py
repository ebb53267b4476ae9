"""Fuzz the public tensor entry points of factorch.symmetry through the shared harness.

Every call must either raise a clear ``TypeError`` / ``ValueError`` / ``IndexError`` naming the
entry point, or return a finite result in the input's dtype whose values agree with a float64
computation on the same input.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from _harness import (
    BAD_KINDS,
    EXTREME_KINDS,
    Case,
    Entry,
    assert_clear_or_true,
    assert_finite_result,
    fuzz_cases,
)
from hypothesis import given, settings

from factorch.symmetry import (
    FrameDegeneracyWarning,
    cartan_decomposition,
    cg_tensor_product,
    from_e3nn_layout,
    gaunt_tensor_product,
    pca_frames,
    polar_decomposition,
    spherical_harmonics,
    to_e3nn_layout,
    wigner_D,
)

RANK_KINDS = ("bad_rank_value", "bad_rank_type", "absurd_rank", "numpy_rank")
NO_RANK = tuple(k for k in BAD_KINDS + EXTREME_KINDS if k not in RANK_KINDS)
LMAX_KINDS = tuple(
    k for k in BAD_KINDS + EXTREME_KINDS if k != "bad_rank_value"
)  # lmax = 0 is valid
TOL = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 3e-2, torch.bfloat16: 1e-1}


def _shape(x: Any) -> tuple[int, ...] | None:
    return tuple(x.shape) if hasattr(x, "shape") and hasattr(x, "dtype") else None


def _adaptable(x: Any) -> bool:
    """A tensor or array whose every entry is finite (bad entries must reach the entry point)."""
    if isinstance(x, torch.Tensor):
        return x.is_floating_point() and bool(torch.isfinite(x.detach().float()).all())
    if isinstance(x, np.ndarray):
        return x.dtype.kind == "f" and bool(np.isfinite(x).all())
    return False


def _last(x: Any, k: int) -> Any:
    """The first ``k`` entries of the last axis when there are that many; otherwise ``x`` as is."""
    shape = _shape(x)
    return x[..., :k] if shape and shape[-1] >= k and _adaptable(x) else x


def _square(x: Any) -> Any:
    shape = _shape(x)
    if shape and len(shape) >= 2 and _adaptable(x):
        m = min(shape[-2:])
        return x[..., :m, :m]
    return x


def _vectors(x: Any) -> Any:
    shape = _shape(x)
    if shape and int(np.prod(shape)) % 3 == 0 and int(np.prod(shape)) > 0 and _adaptable(x):
        return x.reshape(-1, 3)
    return x


def _f64(x: Any) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.detach().to(torch.float64)


def _close(case: Case, out: torch.Tensor, ref: torch.Tensor) -> None:
    scale = float(ref.abs().max()) or 1.0
    err = float((out.detach().to(torch.float64) - ref).abs().max()) / scale
    assert err <= TOL[case.dtype], f"{case!r}: relative error {err:.2e} against float64"


def _check_sh(case: Case, out: Any) -> None:
    assert_finite_result(case, out)
    _close(case, out, spherical_harmonics(_f64(_vectors(case.tensor)), int(case.rank)))


def _check_cg(case: Case, out: Any) -> None:
    assert_finite_result(case, out)
    x = _f64(_last(case.tensor, 4))
    _close(case, out, cg_tensor_product(x, x, "0e + 1o", "0e + 1o"))


def _check_gaunt(case: Case, out: Any) -> None:
    assert_finite_result(case, out)
    x = _f64(_last(case.tensor, 4))
    _close(case, out, gaunt_tensor_product(x, x, lmax_out=int(case.rank)))


def _check_polar(case: Case, out: Any) -> None:
    assert_finite_result(case, out)
    g = _f64(_square(case.tensor))
    _close(case, out.positive.double() @ out.orthogonal.double(), g)


def _check_cartan(case: Case, out: Any) -> None:
    assert_finite_result(case, out)
    g = _f64(_square(case.tensor))
    recon = torch.linalg.matrix_exp(out.symmetric.double()) @ out.rotation.double()
    _close(case, recon, g)


def _check_frames(case: Case, out: Any) -> None:
    # eigenvalues are squares of the data, kept in float32 at least: check the frames' dtype
    for t in (out.rotations, out.centroid):
        assert torch.isfinite(t).all() and t.dtype == case.dtype, f"{case!r}: bad frames"
    r = out.rotations.detach().double()
    eye = torch.eye(r.shape[-1], dtype=torch.float64)
    assert float((r.mT @ r - eye).abs().max()) <= 10 * TOL[case.dtype]


def _check_layout(case: Case, out: Any) -> None:
    assert_finite_result(case, out)
    x = _f64(_last(case.tensor, 4))
    assert torch.equal(from_e3nn_layout(out.double(), "0e + 1o", x.shape[-2]), x)


def _frames(t: Any, r: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FrameDegeneracyWarning)  # degenerate clouds: tested apart
        return pca_frames(t, group="E(n)")


ENTRIES = [
    Entry(
        "spherical_harmonics",
        lambda t, r: spherical_harmonics(_vectors(t), r),
        _check_sh,
        1,
        3,
        LMAX_KINDS,
    ),
    Entry(
        "cg_tensor_product",
        lambda t, r: cg_tensor_product(_last(t, 4), _last(t, 4), "0e + 1o", "0e + 1o"),
        _check_cg,
        1,
        3,
        NO_RANK,
    ),
    Entry(
        "gaunt_tensor_product",
        lambda t, r: gaunt_tensor_product(_last(t, 4), _last(t, 4), lmax_out=r),
        _check_gaunt,
        1,
        3,
        LMAX_KINDS,
    ),
    Entry(
        "polar_decomposition",
        lambda t, r: polar_decomposition(_square(t)),
        _check_polar,
        2,
        3,
        NO_RANK,
    ),
    Entry(
        "cartan_decomposition",
        lambda t, r: cartan_decomposition(_square(t)),
        _check_cartan,
        2,
        3,
        NO_RANK,
    ),
    Entry("pca_frames", _frames, _check_frames, 2, 3, NO_RANK),
    Entry(
        "wigner_D",
        lambda t, r: wigner_D(r, _square(_last(t, 3))),
        lambda c, o: assert_finite_result(c, o),
        2,
        3,
        LMAX_KINDS,
    ),
    Entry(
        "to_e3nn_layout",
        lambda t, r: to_e3nn_layout(_last(t, 4), "0e + 1o"),
        _check_layout,
        2,
        3,
        NO_RANK,
    ),
]


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_fuzz_symmetry(entry: Entry) -> None:
    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(case=fuzz_cases(entry))
    def run(case: Case) -> None:
        assert_clear_or_true(entry, case)

    run()
