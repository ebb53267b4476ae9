"""The ``Example:`` blocks in the docstrings of factorch.completion.functional and its plots
run and print what they show (doctest)."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch

MODULES = [
    "factorch.completion.functional._data",
    "factorch.completion.functional._ep",
    "factorch.completion.functional._io",
    "factorch.completion.functional._kernels",
    "factorch.completion.functional._map",
    "factorch.completion.functional._model",
    "factorch.completion.functional._smoother",
    "factorch.completion.functional._synthetic",
    "factorch.plot._functional",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"torch": torch}, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
