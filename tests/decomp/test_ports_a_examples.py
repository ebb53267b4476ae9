"""The docstring examples of the issue-11 (part A) entry points run and give what they show."""

from __future__ import annotations

import doctest

import pytest
import torch

import factorch
from factorch.decomp import (
    cmtf,
    constrained_cp,
    cp_arls,
    cp_power,
    non_negative_cp,
    parafac2,
    symmetric_cp_power,
)
from factorch.tensors import CPTensor, Parafac2Tensor

OBJECTS = [
    cmtf,
    constrained_cp,
    cp_arls,
    cp_power,
    non_negative_cp,
    parafac2,
    symmetric_cp_power,
    CPTensor,
    Parafac2Tensor,
]


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: o.__name__)
def test_docstring_example_runs(obj):
    globs = {"torch": torch, "factorch": factorch, obj.__name__: obj}
    finder = doctest.DocTestFinder(recurse=False)
    tests = finder.find(obj, obj.__name__, globs=globs)
    assert tests and tests[0].examples, f"{obj.__name__} has no example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{obj.__name__}: {result.failed} example(s) failed"
