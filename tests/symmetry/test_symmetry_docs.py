"""The runnable examples in the symmetry docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib
import math

import pytest
import torch

import factorch.symmetry as symmetry

MODULES = [
    "_irreps", "_spherical_harmonics", "_wigner", "_cg_product", "_gaunt", "_expressivity",
    "_representations", "_projectors", "_soft_equivariance", "_frame_averaging", "_lie",
    "_haar", "_group_conv", "_e3nn",
]  # fmt: skip


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"factorch.symmetry.{name}")
    globs = {**{k: getattr(symmetry, k) for k in symmetry.__all__}, "torch": torch, "math": math}
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    result = doctest.testmod(module, extraglobs=globs, optionflags=flags, verbose=False)
    assert result.failed == 0 and result.attempted > 0
