"""compress's progress reporting and its per-format decomposition defaults (issue 14 item 5)."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

import factorch.nn as fnn


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(32, 48), nn.ReLU(), nn.Linear(48, 32), nn.Linear(32, 16))


def test_progress_callback_sees_every_layer_of_every_stage():
    steps: list[fnn.Progress] = []
    _, report_ref = fnn.compress(_mlp(), ratio=0.3, format="cp")
    _small, report = fnn.compress(_mlp(), ratio=0.3, format="cp", progress=steps.append)
    names = [layer.name for layer in report.layers]
    assert [(s.stage, s.item, s.done, s.total) for s in steps] == [
        *(("allocate", n, i + 1, 3) for i, n in enumerate(names)),
        *(("decompose", n, i + 1, 3) for i, n in enumerate(names)),
    ]
    assert all(b.elapsed_s >= a.elapsed_s for a, b in itertools.pairwise(steps))
    # Reporting progress changes nothing in the result.
    assert [r.relative_error for r in report.layers] == [
        r.relative_error for r in report_ref.layers
    ]


def test_progress_true_draws_a_bar_on_stderr_and_default_is_silent(capsys):
    fnn.compress(_mlp(), ratio=0.3, format="lowrank")
    assert capsys.readouterr().err == ""
    fnn.compress(_mlp(), ratio=0.3, format="lowrank", progress=True)
    err = capsys.readouterr().err
    assert "compress: allocate" in err and "compress: decompose" in err


@pytest.mark.parametrize("bad", [1, "yes", 0.5])
def test_progress_must_be_a_bool_or_a_callable(bad):
    with pytest.raises(TypeError, match="compress: progress must be a bool or a callable"):
        fnn.compress(_mlp(), ratio=0.3, progress=bad)


def test_cp_compress_options_are_the_default_and_can_be_overridden():
    assert fnn.CPWeight.compress_options == {"tol": 1e-3}
    fast, fast_report = fnn.compress(_mlp(), ratio=0.3, format="cp")
    # The same layers fitted by from_dense with the same options: identical models.
    model = _mlp()
    for layer, name in zip(fast_report.layers, ("0", "2", "3")):
        ref = fnn.FactorizedLinear.from_dense(
            model.get_submodule(name),
            format="cp",
            rank=layer.rank,
            decomposition={"tol": 1e-3},
        )
        assert torch.equal(ref.weight, fast.get_submodule(name).weight)
    _tight, tight_report = fnn.compress(
        _mlp(), ratio=0.3, format="cp", decomposition={"tol": 1e-10}
    )
    for loose, full in zip(fast_report.layers, tight_report.layers):
        assert full.relative_error <= loose.relative_error + 1e-6
        assert loose.relative_error <= full.relative_error * 1.1  # "to a few digits"
