"""Matérn priors: the state-space form reproduces the kernel; options are checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from factorch.completion.functional import Matern

F64 = torch.float64
NUS = (0.5, 1.5, 2.5)


@pytest.mark.parametrize("nu", NUS)
def test_state_space_covariance_is_the_kernel(nu):
    # stationary SDE: Cov(u(t + d), u(t)) = H exp(F d) P_inf H^T = k(d)
    k = Matern(nu, lengthscale=0.7, variance=1.9)
    d = torch.tensor([0.0, 0.01, 0.3, 1.0, 4.0], dtype=F64)
    a, q = k.transitions(d)
    _, p_inf = k.state_space()
    cross = (a @ p_inf)[:, 0, 0]
    expected = k.covariance(d, torch.zeros(1, dtype=F64))[:, 0]
    torch.testing.assert_close(cross, expected, rtol=1e-12, atol=1e-12)
    # Q = P_inf - A P_inf A^T keeps the chain stationary and is PSD
    torch.testing.assert_close(a @ p_inf @ a.mT + q, p_inf.expand_as(q), rtol=1e-12, atol=1e-12)
    assert bool((torch.linalg.eigvalsh(q) > -1e-12).all())


@pytest.mark.parametrize("nu", NUS)
def test_stationary_covariance_holds_the_derivative_variances(nu):
    # P_inf solves the Lyapunov equation F P + P F^T + L q L^T = 0: F P + P F^T has one
    # non-zero entry (the white-noise input of the last state component)
    f, p = Matern(nu, lengthscale=0.4, variance=0.8).state_space()
    lyap = f @ p + p @ f.T
    lyap[-1, -1] = 0.0
    torch.testing.assert_close(lyap, torch.zeros_like(lyap), rtol=0, atol=1e-10)


def test_default_lengthscale_is_a_tenth_of_the_range():
    k = Matern(1.5).resolved(torch.tensor([2.0, 7.0, 12.0], dtype=F64))
    assert k.lengthscale == pytest.approx(1.0)
    assert Matern(0.5, 3.0).resolved(torch.zeros(2, dtype=F64)).lengthscale == 3.0


def test_numpy_scalars_accepted():
    k = Matern(np.float64(2.5), lengthscale=np.float32(0.5), variance=np.int64(2))
    assert (k.nu, k.lengthscale, k.variance) == (2.5, 0.5, 2.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"nu": 1.0}, ValueError, r"Matern: nu must be one of \(0.5, 1.5, 2.5\); got 1.0"),
        ({"nu": True}, ValueError, "Matern: nu must be one of"),
        ({"lengthscale": 0.0}, ValueError, "Matern: lengthscale must be a positive finite"),
        ({"lengthscale": float("nan")}, ValueError, "lengthscale must be a positive finite"),
        ({"variance": -1.0}, ValueError, "Matern: variance must be a positive finite"),
        ({"variance": "1"}, TypeError, "Matern: variance must be a positive number; got str"),
    ],
)
def test_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        Matern(**kwargs)


def test_unresolved_lengthscale_cannot_build_matrices():
    with pytest.raises(ValueError, match="lengthscale is None; call kernel.resolved"):
        Matern(1.5).state_space()
