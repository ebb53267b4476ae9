"""Frame averaging: exact invariance/equivariance under rotations, reflections, translations."""

from __future__ import annotations

import pytest
import torch

from factorch.symmetry import FrameAveraging, FrameDegeneracyWarning, haar_orthogonal, pca_frames

F64 = torch.float64
N = 7


class Flat(torch.nn.Module):
    """An arbitrary (non-equivariant) point-cloud network: an MLP on the flattened cloud."""

    def __init__(self, n: int, d: int, out: int, vectors: bool = False) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(n * d, 32),
            torch.nn.Tanh(),
            torch.nn.Linear(32, out),
        )
        self.vectors, self.d = vectors, d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        return y.reshape(x.shape[0], -1, self.d) if self.vectors else y


def _setup(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x = torch.randn(4, N, 3, generator=g, dtype=F64)
    q = haar_orthogonal(3, 1, generator=g, dtype=F64)[0]
    t = torch.randn(1, 3, generator=g, dtype=F64) * 3
    return x, q, -q, t  # a rotation and a rotation-reflection


@torch.no_grad()
def test_invariant_E3_rotations_reflections_translations() -> None:
    x, rot, refl, t = _setup()
    fa = FrameAveraging(Flat(N, 3, 5).double(), group="E(3)")
    y = fa(x)
    assert y.shape == (4, 5)
    for q in (rot, refl):
        assert float((fa(x @ q.T + t) - y).abs().max()) < 1e-10
    # the backbone alone is far from invariant: the test can fail
    assert float((fa.backbone(x @ rot.T + t) - fa.backbone(x)).abs().max()) > 1e-2


@torch.no_grad()
def test_equivariant_positions_and_vectors() -> None:
    x, rot, refl, t = _setup(1)
    pos = FrameAveraging(Flat(N, 3, 3 * N, vectors=True).double(), group="E(3)", output="positions")
    vec = FrameAveraging(Flat(N, 3, 6, vectors=True).double(), group="E(3)", output="vectors")
    yp, yv = pos(x), vec(x)
    assert yp.shape == (4, N, 3) and yv.shape == (4, 2, 3)
    for q in (rot, refl):
        assert float((pos(x @ q.T + t) - (yp @ q.T + t)).abs().max()) < 1e-10
        assert float((vec(x @ q.T + t) - yv @ q.T).abs().max()) < 1e-10


@torch.no_grad()
def test_SO3_and_SE3_are_equivariant_to_rotations_only() -> None:
    x, rot, refl, t = _setup(2)
    se3 = FrameAveraging(Flat(N, 3, 6, vectors=True).double(), group="SE(3)", output="vectors")
    y = se3(x)
    assert float((se3(x @ rot.T + t) - y @ rot.T).abs().max()) < 1e-10
    assert float((se3(x @ refl.T + t) - y @ refl.T).abs().max()) > 1e-3  # chirality is seen
    so3 = FrameAveraging(Flat(N, 3, 2).double(), group="SO(3)")
    assert float((so3(x @ rot.T) - so3(x)).abs().max()) < 1e-10
    assert float((so3(x + t) - so3(x)).abs().max()) > 1e-3  # no translation invariance
    o3 = FrameAveraging(Flat(N, 3, 2).double(), group="O(3)")
    assert float((o3(x @ refl.T) - o3(x)).abs().max()) < 1e-10


@pytest.mark.parametrize("d", [2, 4])
@torch.no_grad()
def test_any_dimension(d: int) -> None:
    g = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    x = torch.randn(3, N, d, generator=g, dtype=F64)
    q = haar_orthogonal(d, 1, special=False, generator=g, dtype=F64)[0]
    fa = FrameAveraging(Flat(N, d, 4).double(), group="E(n)")
    assert float((fa(x @ q.T + 1.0) - fa(x)).abs().max()) < 1e-10
    frames = pca_frames(x, group="SE(n)")
    assert frames.rotations.shape == (3, 2 ** (d - 1), d, d)
    assert torch.allclose(
        torch.linalg.det(frames.rotations), torch.ones(3, 2 ** (d - 1), dtype=F64)
    )


def test_frames_are_orthogonal_and_cover_the_sign_flips() -> None:
    x, *_ = _setup(4)
    f = pca_frames(x, group="O(3)")
    eye = torch.eye(3, dtype=F64)
    assert f.rotations.shape == (4, 8, 3, 3)
    assert torch.allclose(f.rotations.mT @ f.rotations, eye.expand(4, 8, 3, 3), atol=1e-12)
    assert float(f.centroid.abs().max()) == 0.0  # no translations in O(3)
    assert bool((f.eigenvalues[:, 1:] >= f.eigenvalues[:, :-1]).all())


def test_degenerate_spectrum_warns() -> None:
    octahedron = torch.tensor(
        [[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=F64
    )
    fa = FrameAveraging(Flat(6, 3, 1).double())
    with pytest.warns(
        FrameDegeneracyWarning,
        match=r"pca_frames: a point cloud's covariance has nearly repeated eigenvalues",
    ):
        fa(octahedron[None])
    with pytest.warns(FrameDegeneracyWarning, match=r"relative gap"):
        pca_frames(torch.tensor([[0.0, 0, 0], [1, 1, 1]], dtype=F64))  # collinear


def test_extreme_scale_half_precision_and_gradients() -> None:
    x, *_ = _setup(5)
    f = pca_frames((x * 1e30).float())
    ref = pca_frames(x)
    assert torch.isfinite(f.rotations).all()
    assert torch.allclose(f.rotations.abs().double(), ref.rotations.abs(), atol=1e-4)
    fa = FrameAveraging(Flat(N, 3, 2))
    assert fa(x.float()).dtype == torch.float32
    assert pca_frames(x.half()).rotations.dtype == torch.float16
    xg = x[:1].clone().requires_grad_(True)
    FrameAveraging(Flat(N, 3, 2).double())(xg).sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all()


@pytest.mark.parametrize(
    ("call", "kind", "match"),
    [
        (
            lambda: pca_frames(torch.ones(4, 2), group="E(3)"),
            ValueError,
            r"pca_frames: group 'E\(3\)' acts on 3-D points but the points have 2 "
            r"coordinates; use 'E\(n\)'",
        ),
        (
            lambda: pca_frames(torch.ones(3)),
            ValueError,
            r"pca_frames: points must have at least 2 dimensions",
        ),
        (
            lambda: pca_frames(torch.ones(4, 3), group="SE3"),
            ValueError,
            r"pca_frames: group must be one of 'O\(3\)'",
        ),
        (
            lambda: pca_frames(torch.ones(4, 3), degeneracy_tol=-1.0),
            ValueError,
            r"pca_frames: degeneracy_tol must be a non-negative number or None",
        ),
        (
            lambda: pca_frames(torch.ones(4, 3, dtype=torch.int64)),
            TypeError,
            r"pca_frames: points must have a real floating-point dtype",
        ),
        (
            lambda: FrameAveraging(3),
            TypeError,
            r"FrameAveraging: backbone must be a module or callable; got int",
        ),
        (
            lambda: FrameAveraging(torch.nn.Identity(), output="scalars"),
            ValueError,
            r"FrameAveraging: output must be one of 'invariant', 'vectors', 'positions'",
        ),
        (
            lambda: FrameAveraging(lambda x: x[..., :2], output="vectors")(
                torch.randn(2, 5, 3, dtype=F64)
            ),
            ValueError,
            r"FrameAveraging: with output='vectors' the backbone's last output dimension must be 3",
        ),
    ],
)
def test_errors(call: object, kind: type[Exception], match: str) -> None:
    with pytest.raises(kind, match=match):
        call()  # type: ignore[operator]
