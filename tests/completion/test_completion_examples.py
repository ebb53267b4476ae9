"""The ``Example:`` blocks in the docstrings of factorch.completion run and print what they show
(doctest)."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch

MODULES = [
    "factorch.completion._cp_als",
    "factorch.completion._dain",
    "factorch.completion._gcp",
    "factorch.completion._metrics",
    "factorch.completion._neural",
    "factorch.completion._sparse_cp",
    "factorch.completion._split",
    "factorch.completion._tt",
    "factorch.completion._tucker",
    "factorch.completion._wopt",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"torch": torch}, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
