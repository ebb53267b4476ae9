"""cp_degeneracy: flags cancelling component pairs, leaves well-separated models alone."""

from __future__ import annotations

import math

import pytest
import torch

from factorch.decomp import cp_degeneracy
from factorch.decomp._degeneracy import degeneracy_from_grams
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


# --- from the fit's Grams (issue 14): the same numbers without a pass over the factors ---------


def _close_reports(a, b, tol: float = 1e-12) -> None:
    assert a.degenerate == b.degenerate and a.pair == b.pair and a.threshold == b.threshold
    assert abs(a.min_congruence - b.min_congruence) <= tol
    assert abs(a.cancellation - b.cancellation) <= tol * max(1.0, abs(b.cancellation))


def _from_grams(model: CPTensor, threshold: float = -0.85):
    grams = [f.mT @ f for f in model.factors]
    return degeneracy_from_grams(model.weights, grams, threshold=threshold)


def test_degeneracy_from_grams_matches_the_factors(generator):
    for rank in (1, 2, 3, 5):
        model = random_cp((8, 9, 10), rank, generator=generator, dtype=torch.float64)
        _close_reports(_from_grams(model), cp_degeneracy(model))
    # a cancelling pair, negative weights, a zero column and an unusual threshold
    base = random_cp((6, 7, 8), 3, generator=generator, dtype=torch.float64)
    a = [f.clone() for f in base.factors]
    for n, f in enumerate(a):
        f[:, 2] = (-1.0 if n == 0 else 1.0) * f[:, 0] + 0.05 * torch.randn(
            f.shape[0], generator=generator, dtype=torch.float64
        )
    model = CPTensor(torch.tensor([40.0, -1.0, 35.0], dtype=torch.float64), tuple(a))
    report = _from_grams(model)
    assert report.degenerate and report.pair == (0, 2)
    _close_reports(report, cp_degeneracy(model))
    a[1][:, 1] = 0.0
    zero = CPTensor(torch.tensor([2.0, 1.0, -3.0], dtype=torch.float64), tuple(a))
    _close_reports(_from_grams(zero, -0.5), cp_degeneracy(zero, threshold=-0.5))


def test_degeneracy_from_grams_nan_like_the_factors(generator):
    model = random_cp((5, 6, 7), 3, generator=generator, dtype=torch.float64)
    f = model.factors[0].clone()
    f[2, 1] = float("nan")
    bad = CPTensor(model.weights, (f, *model.factors[1:]))
    a, b = _from_grams(bad), cp_degeneracy(bad)
    assert a.pair == b.pair and math.isnan(a.min_congruence) and math.isnan(b.min_congruence)


@pytest.mark.parametrize("path", ["small", "reference"])
@pytest.mark.parametrize("shape", [(10, 10, 10), (7, 6, 5, 4)])
def test_fit_reports_the_degeneracy_of_its_model(path, shape, generator, monkeypatch):
    from factorch.decomp import _cp, cp

    monkeypatch.setattr(_cp, "_PATH", path)
    calls = []

    def spy(*args, **kwargs):
        calls.append(1)
        return degeneracy_from_grams(*args, **kwargs)

    monkeypatch.setattr(_cp, "degeneracy_from_grams", spy)
    x = random_cp(shape, 3, generator=generator, dtype=torch.float64).to_dense()
    for rank in (2, 4):
        res = cp(x, rank, max_iter=8, tol=0, generator=generator)
        _close_reports(res.extras["degeneracy"], cp_degeneracy(res.model))
    assert len(calls) == 2  # float64 fits: from the Grams
    low = cp(x.float(), 4, max_iter=3, tol=0, generator=generator)  # float32: from the factors
    assert low.extras["degeneracy"] == cp_degeneracy(low.model) and len(calls) == 2
