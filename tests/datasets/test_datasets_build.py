"""The dataset build script (``datasets/_build.py``) rebuilds the bundle byte for byte."""

from __future__ import annotations

from importlib import resources

import pytest

DATA = resources.files("factorch.datasets").joinpath("data")
NAMES = ("covid19_serology", "il2_response", "digits_counts")


def test_build_script_reproduces_the_bundle(tmp_path, monkeypatch):
    pytest.importorskip("tensorly.datasets")
    pytest.importorskip("sklearn.datasets")
    from factorch.datasets import _build

    monkeypatch.setattr(_build, "DATA_DIR", tmp_path)
    _build.main()
    for name in NAMES:
        for ext in ("safetensors", "json"):
            rebuilt = (tmp_path / f"{name}.{ext}").read_bytes()
            assert rebuilt == DATA.joinpath(f"{name}.{ext}").read_bytes(), (name, ext)
