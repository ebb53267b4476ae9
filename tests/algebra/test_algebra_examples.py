"""The ``Example:`` blocks in the docstrings of factorch.algebra and factorch.random run and print
what they show (doctest)."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch

MODULES = [
    "factorch.algebra._autotune",
    "factorch.algebra._mttkrp",
    "factorch.algebra._norms",
    "factorch.algebra._products",
    "factorch.algebra._sparse_layout",
    "factorch.algebra._sparse_mttkrp",
    "factorch.algebra._svd",
    "factorch.algebra._unfold",
    "factorch.random._constructors",
    "factorch.random._planted",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"torch": torch}, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
