"""PDEData, the random fields and the on-disk cache of the PDE generators."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from factorch.datasets.pde import (
    PDEData,
    darcy_flow,
    default_cache_dir,
    neumann_grf,
    periodic_grf,
)

CPU = torch.device("cpu")


def test_periodic_field_variance_matches_its_spectrum() -> None:
    alpha, tau, sigma, m = 2.0, 3.0, 2.0, 6
    u = periodic_grf(
        4000,
        16,
        dims=1,
        alpha=alpha,
        tau=tau,
        sigma=sigma,
        max_modes=m,
        generator=torch.Generator().manual_seed(0),
        device=CPU,
    )
    k = torch.arange(1, m + 1, dtype=torch.float64)
    theory = 2 * float((2 * sigma**2 * (4 * math.pi**2 * k**2 + tau**2) ** (-alpha)).sum())
    measured = float(u.var(dim=0).mean())
    assert abs(measured / theory - 1) < 0.08, (measured, theory)
    assert float(u.mean(dim=1).abs().max()) < 1e-12  # no constant mode


def test_periodic_field_is_one_function_at_every_resolution() -> None:
    kw = {"dims": 2, "alpha": 2.5, "tau": 7.0, "sigma": 10.0, "max_modes": 5, "device": CPU}
    coarse = periodic_grf(2, 12, generator=torch.Generator().manual_seed(3), **kw)
    fine = periodic_grf(2, 24, generator=torch.Generator().manual_seed(3), **kw)
    torch.testing.assert_close(coarse, fine[:, ::2, ::2], rtol=0, atol=1e-12)


def test_neumann_field_has_zero_normal_derivative() -> None:
    u = neumann_grf(
        3,
        65,
        alpha=2.0,
        tau=3.0,
        max_modes=8,
        generator=torch.Generator().manual_seed(0),
        device=CPU,
    )
    h = 1 / 64
    # one-sided second-order derivative at x = 0 vanishes to O(h^2)
    du = (-3 * u[:, 0] + 4 * u[:, 1] - u[:, 2]) / (2 * h)
    assert float(du.abs().max()) < 0.05 * float(u.abs().max())


def test_split_and_subsample() -> None:
    data = darcy_flow(5, resolution=9, generator=torch.Generator().manual_seed(0))
    train, test = data.split(3)
    assert len(train) == 3 and len(test) == 2 and data.dims == 2 and data.resolution == (9, 9)
    assert data.subsample(2).resolution == (5, 5)
    with pytest.raises(
        ValueError, match=r"PDEData.subsample: the grid size 9 must be 1 plus a multiple"
    ):
        data.subsample(3)
    with pytest.raises(
        ValueError, match=r"PDEData.split: n_first must be smaller than the 5 samples"
    ):
        data.split(5)
    with pytest.raises(ValueError, match=r"PDEData: x .* and y .* must have the same number"):
        PDEData(torch.zeros(2, 1, 4), torch.zeros(3, 1, 4), "burgers", True)


def test_cache_hit_gives_the_same_data_and_generator_state(tmp_path: Path) -> None:
    g1 = torch.Generator().manual_seed(7)
    fresh = darcy_flow(3, resolution=9, generator=g1)
    after_fresh = torch.rand(3, generator=g1)
    g2 = torch.Generator().manual_seed(7)
    first = darcy_flow(3, resolution=9, generator=g2, cache_dir=str(tmp_path))
    files = list(tmp_path.glob("darcy-*.safetensors"))
    assert len(files) == 1
    g3 = torch.Generator().manual_seed(7)
    hit = darcy_flow(3, resolution=9, generator=g3, cache_dir=str(tmp_path))
    assert torch.equal(hit.x, fresh.x) and torch.equal(hit.y, first.y)
    assert torch.equal(torch.rand(3, generator=g3), after_fresh)  # state restored on a hit
    # Another seed or other parameters: another file.
    darcy_flow(3, resolution=9, generator=torch.Generator().manual_seed(8), cache_dir=str(tmp_path))
    assert len(list(tmp_path.glob("darcy-*.safetensors"))) == 2
    # A corrupt file is regenerated and replaced.
    files[0].write_bytes(b"garbage")
    again = darcy_flow(
        3, resolution=9, generator=torch.Generator().manual_seed(7), cache_dir=str(tmp_path)
    )
    assert torch.equal(again.y, fresh.y) and files[0].stat().st_size > 100
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_default_cache_dir_honours_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FACTORCH_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "pde"


def test_cache_dir_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(TypeError, match=r"darcy_flow: cache_dir must be a path or None"):
        darcy_flow(2, resolution=9, generator=torch.Generator().manual_seed(0), cache_dir=3)
