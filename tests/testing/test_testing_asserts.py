"""The public test helpers: tolerance table, assert_close_tensors, assert_recovers."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from factorch.random import random_cp, random_tt
from factorch.testing import assert_close_tensors, assert_recovers, tolerance

F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_tolerance_table() -> None:
    assert tolerance(torch.float32) == (1e-5, 1e-6)
    assert tolerance(torch.float64) == (1e-10, 1e-12)
    assert tolerance(torch.complex64) == tolerance(torch.float32)
    assert tolerance(torch.complex128) == tolerance(torch.float64)
    assert tolerance(torch.bfloat16)[0] > tolerance(torch.float16)[0] > 1e-5
    with pytest.raises(
        ValueError, match=(r"tolerance: no tolerance for torch.int64; known dtypes are")
    ):
        tolerance(torch.int64)
    with pytest.raises(TypeError, match=r"tolerance: dtype must be a torch.dtype; got str\."):
        tolerance("float32")  # type: ignore[arg-type]


def test_close_passes_within_and_fails_beyond_the_bound() -> None:
    x = torch.randn(4, 5, generator=_gen(), dtype=F64)
    direction = torch.randn(4, 5, generator=_gen(1), dtype=F64)
    direction = direction / direction.norm() * x.norm()
    assert_close_tensors(x + 0.5e-10 * direction, x)
    with pytest.raises(
        AssertionError,
        match=(
            r"assert_close_tensors: relative error 2\.000e-10 .* exceeds the bound .* "
            r"\(rtol 1\.0e-10, atol 1\.0e-12\); shapes \(4, 5\) / \(4, 5\), dtypes torch.float64 / "
            r"torch.float64\. after step 3"
        ),
    ):
        assert_close_tensors(x + 2e-10 * direction, x, msg="after step 3")
    # explicit tolerances override the table
    assert_close_tensors(x + 1e-3 * direction, x, rtol=1e-2)
    with pytest.raises(AssertionError, match=r"rtol 1\.0e-04"):
        assert_close_tensors(x + 1e-3 * direction, x, rtol=1e-4)


def test_close_uses_the_looser_dtype_and_accepts_factorized() -> None:
    cp = random_cp((3, 4, 5), 2, generator=_gen(2), dtype=F64)
    dense = cp.to_dense()
    assert_close_tensors(cp, dense)
    assert_close_tensors(cp.to(dtype=torch.float32), dense)  # float32 tolerance applies
    with pytest.raises(AssertionError, match=r"dtypes torch.float64 / torch.float64"):
        assert_close_tensors(cp, dense + 1e-6 * dense.norm() / 8)


def _close_failures_inputs():
    x = torch.zeros(2, 3, dtype=F64)
    y = x.clone()
    y[1, 1] = float("nan")
    return x, y


def test_close_zero_reference_is_compared_against_atol_alone() -> None:
    x = torch.zeros(2, 3, dtype=F64)
    assert_close_tensors(x + 1e-13, x)


CLOSE_FAILURES_CASES = [
    pytest.param(
        lambda x, y: assert_close_tensors(x, x.T, msg="ctx"),
        AssertionError,
        r"assert_close_tensors: shapes differ: actual \(2, 3\) vs expected \(3, 2\)\. ctx",
    ),
    pytest.param(
        lambda x, y: assert_close_tensors(y, x),
        AssertionError,
        r"assert_close_tensors: actual has 1 NaN/Inf entries",
    ),
    pytest.param(
        lambda x, y: assert_close_tensors([0.0], x),
        TypeError,
        r"assert_close_tensors: actual must be a torch.Tensor or a factorized tensor; got list",
    ),
    pytest.param(
        lambda x, y: assert_close_tensors(
            torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long)
        ),
        TypeError,
        r"assert_close_tensors: give rtol and atol explicitly",
    ),
    pytest.param(
        lambda x, y: assert_close_tensors(x + 1e-6, x), AssertionError, r"relative error inf"
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), CLOSE_FAILURES_CASES)
def test_close_failures(call, error, match):
    with pytest.raises(error, match=match):
        call(*_close_failures_inputs())


def _recovers_inputs():
    truth = random_tt((4, 5, 6), 2, generator=_gen(3), dtype=F64)
    dense = truth.to_dense()
    noisy = dense + 0.01 * dense.norm() * torch.randn(4, 5, 6, generator=_gen(4), dtype=F64) / (
        120**0.5
    )
    return truth, dense, noisy


def test_recovers_accepts_a_close_estimate() -> None:
    truth, _, noisy = _recovers_inputs()
    assert_recovers(truth, noisy, tol=0.05)


RECOVERS_CASES = [
    pytest.param(
        lambda truth, dense, noisy: assert_recovers(truth, noisy, tol=0.005),
        AssertionError,
        r"assert_recovers: relative reconstruction error 1\.0\d\de-02 exceeds tol 5\.0e-03",
    ),
    pytest.param(
        lambda truth, dense, noisy: assert_recovers(truth, dense[:2], tol=0.1),
        AssertionError,
        r"assert_recovers: shapes differ: truth \(4, 5, 6\) vs",
    ),
    pytest.param(
        lambda truth, dense, noisy: assert_recovers(truth, dense, tol=-1),
        ValueError,
        r"assert_recovers: tol must be a float >= 0; got -1",
    ),
    pytest.param(
        lambda truth, dense, noisy: assert_recovers(truth, "x", tol=0.1),
        TypeError,
        r"assert_recovers: estimate must be a torch.Tensor or a factorized tensor",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), RECOVERS_CASES)
def test_recovers(call, error, match):
    with pytest.raises(error, match=match):
        call(*_recovers_inputs())


def test_testing_does_not_import_hypothesis() -> None:
    code = "import sys, factorch.testing; print('hypothesis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
