"""cp_degeneracy: flags cancelling component pairs, leaves well-separated models alone."""

from __future__ import annotations

import pytest
import torch

from factorch.decomp import cp_degeneracy
from factorch.random import random_cp
from factorch.tensors import CPTensor


def test_clean_model_is_not_degenerate(generator):
    report = cp_degeneracy(random_cp((8, 9, 10), 4, generator=generator, dtype=torch.float64))
    assert not report.degenerate and report.message == ""
    assert report.min_congruence > -0.85 and report.pair is not None


def test_cancelling_pair_is_flagged(generator):
    base = random_cp((8, 9, 10), 3, generator=generator, dtype=torch.float64)
    a = [f.clone() for f in base.factors]
    # component 2 ~ -component 0 (small perturbation), both with huge weights
    for n, f in enumerate(a):
        noise = 0.05 * torch.randn(f.shape[0], generator=generator, dtype=torch.float64)
        f[:, 2] = (-1.0 if n == 0 else 1.0) * f[:, 0] + noise
    model = CPTensor(torch.tensor([40.0, 1.0, 35.0], dtype=torch.float64), tuple(a))
    report = cp_degeneracy(model)
    assert report.degenerate and report.pair == (0, 2)
    assert report.min_congruence < -0.9 and report.cancellation > 3
    assert "components 0 and 2 cancel" in report.message


def test_rank_one_and_signs(generator):
    one = random_cp((3, 4), 1, generator=generator)
    assert not cp_degeneracy(one).degenerate
    # flipping one weight's sign and one factor column's sign gives the same tensor: same verdict
    m = random_cp((5, 6, 7), 2, generator=generator, dtype=torch.float64)
    f0 = m.factors[0].clone()
    f0[:, 1] *= -1
    flipped = CPTensor(
        m.weights * torch.tensor([1.0, -1.0], dtype=torch.float64), (f0, *m.factors[1:])
    )
    assert cp_degeneracy(flipped).min_congruence == pytest.approx(cp_degeneracy(m).min_congruence)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"model": torch.ones(3)},
            TypeError,
            "cp_degeneracy: model must be a CPTensor; got Tensor",
        ),
        (
            {"threshold": -2.0},
            ValueError,
            r"cp_degeneracy: threshold must be a number in \[-1, 1\]",
        ),
    ],
)
def test_bad_arguments(generator, kwargs, error, match):
    args = {"model": random_cp((3, 4), 2, generator=generator), **kwargs}
    with pytest.raises(error, match=match):
        cp_degeneracy(args.pop("model"), **args)
