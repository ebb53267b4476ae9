"""Plot plumbing (``plot/_common.py``): PNG bytes, atomic saving, lazy and optional matplotlib."""

from __future__ import annotations

import io
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("matplotlib")

from factorch.plot import (
    plot_convergence,
    plot_cp_factors,
    plot_rank_scan,
    plot_tucker_core,
    save_figure,
)
from factorch.random import random_cp, random_tucker


def _image(png: bytes):
    from matplotlib.image import imread

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(io.BytesIO(png), format="png")


def _check_png(fig, png: bytes) -> None:
    """Exactly figsize * dpi pixels, and not a blank canvas."""
    img = _image(png)
    width, height = (round(v * 100) for v in fig.get_size_inches())
    assert img.shape[:2] == (height, width)
    assert img[..., :3].std() > 0.05
    assert (img[..., :3] < 0.5).mean() > 0.002  # some dark ink: text, axes


def test_save_figure_atomic_and_no_clobber(tmp_path):
    fig = plot_convergence([0.5, 0.3, 0.2])
    path = tmp_path / "c.png"
    save_figure(fig, path)
    first = path.read_bytes()
    _check_png(fig, first)
    with pytest.raises(FileExistsError, match=r"already exists; pass force=True"):
        save_figure(plot_convergence([0.9, 0.1]), path)
    assert path.read_bytes() == first
    save_figure(plot_convergence([0.9, 0.1]), path, force=True)
    assert path.read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png"]


def test_import_factorch_needs_no_matplotlib_and_plots_avoid_pyplot():
    code = (
        "import sys, factorch, factorch.plot, factorch.cli;"
        "assert 'matplotlib' not in sys.modules, 'imported eagerly';"
        "from factorch.random import random_cp;"
        "fig = factorch.plot.plot_cp_factors(random_cp((5, 4, 3), 2));"
        "factorch.plot.figure_to_png(fig);"
        "assert 'matplotlib' in sys.modules;"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def _blocked_matplotlib(monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def _calls():
    g = torch.Generator().manual_seed(0)
    scan = SimpleNamespace(ranks=(1,), errors=((0.5,),), best_errors=(0.5,), corcondia=(100.0,),
                           recommended=1, reason="r")  # fmt: skip
    return {
        "plot_cp_factors": lambda: plot_cp_factors(random_cp((4, 3, 2), 2, generator=g)),
        "plot_convergence": lambda: plot_convergence([0.5, 0.2]),
        "plot_rank_scan": lambda: plot_rank_scan(scan),
        "plot_tucker_core": lambda: plot_tucker_core(random_tucker((4, 3), (2, 2), generator=g)),
    }


@pytest.mark.parametrize("name", list(_calls()))
def test_every_plot_function_gives_the_same_clear_error_without_matplotlib(monkeypatch, name):
    call = _calls()[name]
    _blocked_matplotlib(monkeypatch)
    with pytest.raises(
        ModuleNotFoundError,
        match=rf"^{name}: needs matplotlib, which is not "
        r"installed; install it with pip install 'factorch\[plot\]'\.$",
    ) as info:
        call()  # fmt: skip
    assert info.value.name == "matplotlib"
