"""The Kalman/RTS smoother equals the exact dense GP posterior (float64, 1e-8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _functional_helpers import F64, dense_gp, gen

from factorch.completion.functional import Matern, state_space_gp
from factorch.completion.functional._smoother import kalman_rts

NUS = (0.5, 1.5, 2.5)


@pytest.mark.parametrize("nu", NUS)
def test_state_space_gp_equals_dense_gp(nu):
    g = gen(1)
    x = torch.rand(25, generator=g, dtype=F64)
    x = torch.cat([x, x[:6]])  # unsorted, with repeated coordinates
    y = torch.randn(x.numel(), generator=g, dtype=F64)
    at = torch.cat([x, torch.rand(8, generator=g, dtype=F64) * 1.6 - 0.3])  # + unseen, outside
    kernel = Matern(nu, lengthscale=0.15, variance=1.7)
    mean, var = state_space_gp(x, y, kernel=kernel, noise_variance=0.04, at=at)
    ref_mean, ref_var = dense_gp(kernel, x, y, 0.04, at)
    torch.testing.assert_close(mean, ref_mean, rtol=0, atol=1e-8)
    torch.testing.assert_close(var, ref_var, rtol=0, atol=1e-8)


@pytest.mark.parametrize("nu", NUS)
def test_stacked_functions_with_singular_messages(nu):
    # two functions observed only through their sum (rank-one message precisions):
    # the posterior of u1 + u2 equals the dense GP with kernel k1 + k2 = 2 k
    g = gen(2)
    x = torch.sort(torch.rand(20, generator=g, dtype=F64)).values
    y = torch.randn(20, generator=g, dtype=F64)
    kernel = Matern(nu, lengthscale=0.2)
    noise = 0.1
    ones = torch.ones(2, dtype=F64)
    lam = (torch.outer(ones, ones) / noise).expand(20, 2, 2)
    eta = (y / noise)[:, None] * ones
    gaps = torch.cat([torch.zeros(1, dtype=F64), x.diff()])
    mean, cov = kalman_rts(gaps, kernel, lam, eta)
    twice = Matern(nu, lengthscale=0.2, variance=2.0)
    ref_mean, ref_var = dense_gp(twice, x, y, noise, x)
    torch.testing.assert_close(mean.sum(1), ref_mean, rtol=0, atol=1e-8)
    torch.testing.assert_close(cov.sum((1, 2)), ref_var, rtol=0, atol=1e-8)
    # each function alone: the dense posterior of u1 given y = u1 + u2 + e
    k = kernel.covariance(x, x)
    c = 2 * k + noise * torch.eye(20, dtype=F64)
    torch.testing.assert_close(mean[:, 0], k @ torch.linalg.solve(c, y), rtol=0, atol=1e-8)


def test_no_observations_gives_the_prior():
    kernel = Matern(2.5, lengthscale=0.3, variance=0.6)
    gaps = torch.tensor([0.0, 0.1, 0.5], dtype=F64)
    mean, cov = kalman_rts(
        gaps, kernel, torch.zeros(3, 1, 1, dtype=F64), torch.zeros(3, 1, dtype=F64)
    )
    torch.testing.assert_close(mean, torch.zeros_like(mean))
    torch.testing.assert_close(cov[:, 0, 0], torch.full((3,), 0.6, dtype=F64))


def test_numpy_input_and_default_query():
    x = np.linspace(0, 1, 9)
    mean, var = state_space_gp(x, np.sin(4 * x), kernel=Matern(1.5, 0.3), noise_variance=1e-3)
    assert mean.shape == (9,) and mean.dtype == F64
    assert float((mean - torch.sin(4 * torch.from_numpy(x))).abs().max()) < 0.05
    assert bool((var > 0).all())


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (([0.0, float("nan")], [1.0, 2.0]), {}, ValueError, "state_space_gp: x contains NaN"),
        (([0.0, 1.0], [1.0, 2.0, 3.0]), {}, ValueError, "x and y must have the same length"),
        (([0.0, 1.0], [1.0, float("inf")]), {}, ValueError, "state_space_gp: y contains 1 NaN"),
        (([0.0, 1.0], [1.0, 2.0]), {"noise_variance": 0.0}, ValueError, "noise_variance must"),
        (([0.0, 1.0], [1.0, 2.0]), {"kernel": "matern"}, TypeError, "kernel must be a Matern"),
        (([0.0, 1.0], [1.0, 2.0]), {"at": [[0.5]]}, ValueError, "at must be a 1-D tensor"),
        (("ab", [1.0]), {}, TypeError, "state_space_gp: x must be a torch.Tensor"),
    ],
)
def test_bad_input(args, kwargs, error, match):
    options = {"kernel": Matern(1.5, 0.5), "noise_variance": 0.1} | kwargs
    with pytest.raises(error, match=match):
        state_space_gp(
            torch.tensor(args[0]) if not isinstance(args[0], str) else args[0],
            torch.tensor(args[1]),
            **options,
        )


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 16, 29])
def test_associative_scan_equals_the_sequential_recursion(n):
    # x_j = A_j x_{j-1} + c_j with x_{-1} = 0, any length (odd and even splits of the scan)
    from factorch.completion.functional._smoother import scan_affine

    g = gen(n)
    a = 0.5 * torch.randn(n, 3, 3, generator=g, dtype=F64)
    c = torch.randn(n, 3, 2, generator=g, dtype=F64, requires_grad=True)
    _, states = scan_affine(a, c)
    x, ref = torch.zeros(3, 2, dtype=F64), []
    for j in range(n):
        x = a[j] @ x + c[j]
        ref.append(x)
    torch.testing.assert_close(states, torch.stack(ref), rtol=1e-12, atol=1e-12)
    (grad,) = torch.autograd.grad(states.sum(), c)
    (ref_grad,) = torch.autograd.grad(torch.stack(ref).sum(), c)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)


def test_single_observation():
    mean, var = state_space_gp(
        torch.tensor([0.3]), torch.tensor([2.0]), kernel=Matern(0.5, 1.0, 1.0), noise_variance=1.0
    )
    torch.testing.assert_close(mean, torch.tensor([1.0], dtype=F64))
    torch.testing.assert_close(var, torch.tensor([0.5], dtype=F64))
