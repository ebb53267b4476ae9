"""Monte-Carlo lifting and group convolution: exact equivariance, unbiased estimates, errors."""

from __future__ import annotations

import math

import pytest
import torch

from factorch.symmetry import group_convolution, haar_orthogonal, haar_sample, lie_chart, lift

F64 = torch.float64


class Kernel(torch.nn.Module):
    """An MLP kernel on coordinates: (..., k) -> (..., c_out, c_in)."""

    def __init__(self, k: int, c_out: int, c_in: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(k, 16), torch.nn.Tanh(), torch.nn.Linear(16, c_out * c_in)
        )
        self.shape = (c_out, c_in)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.net(u).reshape(*u.shape[:-1], *self.shape)


def test_lifting_is_affine_equivariant() -> None:
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    d = 2
    pts = torch.randn(9, d, generator=g, dtype=F64)
    feats = torch.randn(9, 3, generator=g, dtype=F64)
    s = haar_sample("GL+", d, 5, generator=g, dtype=F64)
    trans = torch.randn(5, d, generator=g, dtype=F64)
    k = Kernel(d, 4, 3).double()
    out = lift(k, pts, feats, trans, s.elements)
    a = torch.linalg.matrix_exp(0.5 * torch.randn(d, d, generator=g, dtype=F64))
    b = torch.randn(d, generator=g, dtype=F64)
    moved = lift(k, pts @ a.T + b, feats, trans @ a.T + b, a @ s.elements)
    assert out.shape == (5, 4)
    assert torch.allclose(moved, out, atol=1e-12)


def test_group_convolution_is_equivariant_to_left_translations() -> None:
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    s = haar_sample("SL", 2, 30, generator=g, dtype=F64)
    values = torch.randn(30, 2, generator=g, dtype=F64)
    queries = haar_sample("SL", 2, 4, generator=g, dtype=F64).elements
    k = Kernel(4, 3, 2).double()
    out = group_convolution(k, s.elements, values, queries, log_weights=s.log_weights)
    a = haar_sample("SL", 2, 1, generator=g, dtype=F64).elements[0]
    moved = group_convolution(k, a @ s.elements, values, a @ queries, log_weights=s.log_weights)
    assert out.shape == (4, 3) and torch.allclose(moved, out, atol=1e-10)


def test_monte_carlo_estimate_of_an_SO2_convolution() -> None:
    # F(h_θ) = cos θ, k(φ) = cos φ on the chart angle:
    # (k * F)(g_α) = ∫ cos(α - θ) cos θ dθ/2π = cos(α)/2
    m = 20000
    h = haar_orthogonal(2, m, generator=torch.Generator().manual_seed(2), dtype=F64)
    theta = torch.atan2(h[:, 1, 0], h[:, 0, 0])
    values = torch.cos(theta)[:, None]
    alpha = torch.tensor([0.0, 1.0, 2.5], dtype=F64)
    queries = torch.stack(
        [
            torch.stack([torch.cos(alpha), -torch.sin(alpha)], -1),
            torch.stack([torch.sin(alpha), torch.cos(alpha)], -1),
        ],
        -2,
    )
    kernel = lambda c: torch.cos(c[..., -1])[..., None, None]  # noqa: E731  (last chart entry: -angle)
    est = group_convolution(kernel, h, values, queries)[:, 0]
    exact = torch.cos(alpha) / 2
    # per-sample terms are bounded by 1: standard error <= 1/sqrt(m)
    assert float((est - exact).abs().max()) < 4 / math.sqrt(m)
    assert lie_chart(queries)[:, -1].abs().max() <= math.pi


@pytest.mark.parametrize(
    ("call", "kind", "match"),
    [
        (
            lambda: lift(
                3, torch.zeros(2, 2), torch.zeros(2, 1), torch.zeros(1, 2), torch.eye(2)[None]
            ),
            TypeError,
            r"lift: kernel must be a callable",
        ),
        (
            lambda: lift(
                lambda u: u,
                torch.zeros(2, 2),
                torch.zeros(3, 1),
                torch.zeros(1, 2),
                torch.eye(2)[None],
            ),
            ValueError,
            r"lift: points must be \(N, d\) and features \(N, c_in\) with the same N",
        ),
        (
            lambda: lift(
                lambda u: u,
                torch.zeros(2, 2),
                torch.zeros(2, 1),
                torch.zeros(2, 2),
                torch.eye(2)[None],
            ),
            ValueError,
            r"lift: elements must be \(M, 2, 2\) matching translations",
        ),
        (
            lambda: lift(
                lambda u: u,
                torch.zeros(2, 2),
                torch.zeros(2, 1),
                torch.zeros(1, 2),
                torch.eye(2)[None],
            ),
            ValueError,
            r"lift: kernel must map coordinates \(\.\.\., k\) to \(\.\.\., c_out, 1\) matrices",
        ),
        (
            lambda: group_convolution(
                lambda c: c, torch.eye(2)[None], torch.ones(2, 1), torch.eye(2)[None]
            ),
            ValueError,
            r"group_convolution: values must be \(M, c_in\) with M = 1 elements",
        ),
        (
            lambda: group_convolution(
                lambda c: c, torch.eye(2)[None], torch.ones(1, 1), torch.eye(3)[None]
            ),
            ValueError,
            r"group_convolution: elements must be \(M, n, n\) and queries \(Q, n, n\) with one n",
        ),
        (
            lambda: group_convolution(
                lambda c: c,
                torch.eye(2)[None],
                torch.ones(1, 1),
                torch.eye(2)[None],
                log_weights=torch.zeros(2),
            ),
            ValueError,
            r"group_convolution: log_weights must have shape \(1,\)",
        ),
        (
            lambda: group_convolution(
                lambda c: c[..., None, None],
                -torch.eye(3)[None],
                torch.ones(1, 1),
                torch.eye(3)[None],
            ),
            ValueError,
            r"cartan_decomposition: matrices must have a positive determinant",
        ),
    ],
)
def test_errors(call: object, kind: type[Exception], match: str) -> None:
    with pytest.raises(kind, match=match):
        call()  # type: ignore[operator]
