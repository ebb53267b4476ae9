"""The built-in weight formats (``factorch.nn.formats``): parametrization contract, numerics
(autocast, half precision, tiny and huge weights, NaN, complex), budget, energy ladders, config
and the registry."""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import factorch.nn as fnn
from factorch.decomp import param_count
from factorch.nn import TensorizedShape, TensorLayout
from factorch.nn.formats import WeightFormat, format_from_config, get_format, register_format

SPEC = TensorizedShape((4, 3), (5, 4))
WEIGHTS = {
    "lowrank": lambda: fnn.LowRankWeight(TensorLayout.identity((12, 20)), 5),
    "cp": lambda: fnn.CPWeight(TensorLayout.tensorized(SPEC), 7),
    "tucker": lambda: fnn.TuckerWeight(TensorLayout.tensorized(SPEC), (3, 2, 4, 3)),
    "tt": lambda: fnn.TTWeight(TensorLayout.matrix_chain(SPEC), 5),
    "tr": lambda: fnn.TRWeight(TensorLayout.matrix_chain(SPEC), 2),
    "tt-conv": lambda: fnn.TTWeight(TensorLayout.conv_chain((6, 4, 3, 3)), 4),
}
ALS = {"max_iter": 3000, "tol": 1e-15}


def _planted(name: str, dtype: torch.dtype = torch.float64, seed: int = 0):
    """A format object (ALS options for CP/TR) and a weight exactly in the format."""
    p = WEIGHTS[name]()
    p.decomposition.update(ALS if p.format in ("cp", "tr") else {})
    g = torch.Generator().manual_seed(seed)
    return p, p(*p.init_factors(std=1.0, generator=g, dtype=dtype)).detach()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().norm() / b.abs().norm())


# --- the parametrization contract ----------------------------------------------------------------
@pytest.mark.parametrize("name", list(WEIGHTS))
def test_right_inverse_then_forward_is_exact_on_the_format(name):
    """A weight in the format (rebuilt from random factors) is recovered by decomposition."""
    p, w = _planted(name)
    factors = p.right_inverse(w)
    assert [tuple(f.shape) for f in factors] == list(p.factor_shapes)
    assert _rel(p(*factors), w) < 1e-9


@pytest.mark.parametrize("name", list(WEIGHTS))
def test_usable_with_torch_parametrize(name):
    p, planted = _planted(name, seed=1)
    shape = p.weight_shape
    host = (
        nn.Linear(20, 12, dtype=torch.float64)
        if len(shape) == 2
        else nn.Conv2d(shape[1], shape[0], shape[2:], dtype=torch.float64)
    )
    with torch.no_grad():
        host.weight.copy_(planted)
    parametrize.register_parametrization(host, "weight", p)
    originals = host.parametrizations.weight
    n = len(p.factor_shapes)
    assert [tuple(getattr(originals, f"original{i}").shape) for i in range(n)] == list(
        p.factor_shapes
    )
    assert _rel(host.weight.detach(), planted) < 1e-9
    host.weight.sum().backward()
    assert all(getattr(originals, f"original{i}").grad is not None for i in range(n))


@pytest.mark.parametrize(
    ("weight", "error", "match"),
    [
        (torch.randn(20, 12), ValueError, r"weight must have shape \(12, 20\)"),
        (torch.ones(12, 20, dtype=torch.int64), TypeError, "weight must be floating point"),
        ("weight", TypeError, "weight must be a torch.Tensor or a numpy array; got str"),
        (torch.full((12, 20), math.nan), ValueError, "contains 240 NaN and 0 Inf entries"),
    ],
    ids=["shape", "int", "str", "nan"],
)
def test_right_inverse_refuses_bad_weights(weight, error, match):
    with pytest.raises(error, match=match):
        WEIGHTS["lowrank"]().right_inverse(weight)


def test_right_inverse_accepts_numpy_weights():
    p, w = _planted("tucker")
    factors = p.right_inverse(w.numpy())
    assert all(isinstance(f, torch.Tensor) and f.dtype == torch.float64 for f in factors)
    assert _rel(p(*factors), w) < 1e-9


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_right_inverse_of_half_weights_runs_in_float32_and_returns_half(dtype):
    p = WEIGHTS["tucker"]()
    w = torch.randn(12, 20, generator=torch.Generator().manual_seed(0)).to(dtype)
    factors = p.right_inverse(w)
    assert all(f.dtype == dtype for f in factors)
    ref = p.right_inverse(w.float())  # the float32 decomposition of the same numbers
    assert all(torch.equal(a, b.to(dtype)) for a, b in zip(factors, ref))


def test_right_inverse_ignores_autocast():
    """HOOI's products would run in bfloat16 under CPU autocast; the decomposition must not."""
    p = WEIGHTS["tucker"]()
    w = torch.randn(12, 20, generator=torch.Generator().manual_seed(1))
    ref = p.right_inverse(w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = p.right_inverse(w)
    assert all(f.dtype == torch.float32 for f in got)
    assert all(torch.equal(a, b) for a, b in zip(got, ref))


@pytest.mark.parametrize("name", ["lowrank", "cp", "tucker", "tt", "tr"])
@pytest.mark.parametrize(
    ("dtype", "scale"),
    [
        (torch.float32, 1e-30),
        (torch.float32, 1e30),
        (torch.float64, 1e-200),
        (torch.float64, 1e200),
    ],
)
def test_right_inverse_is_scale_invariant(name, dtype, scale):
    """Tiny and huge weights (normal range) decompose as well as O(1) ones: the squared norms of
    1e-30 float32 data underflow, so an unscaled decomposition returns garbage there."""
    p, w = _planted(name, dtype=torch.float64, seed=2)
    if dtype == torch.float32 and name in ("cp", "tr"):
        p.decomposition.update({"max_iter": 200, "tol": 1e-8})  # float32 stalls near 1e-7
    torch.manual_seed(0)  # CP's SVD start draws extra columns when the rank exceeds a mode
    base = p(*p.right_inverse(w.to(dtype)))
    torch.manual_seed(0)
    factors = p.right_inverse((w * scale).to(dtype))
    assert all(f.dtype == dtype and bool(torch.isfinite(f).all()) for f in factors)
    got = p(*factors).to(torch.float64) / scale
    tol = 1e-9 if dtype == torch.float64 else 2e-4
    assert _rel(got, w) < tol + _rel(base.to(torch.float64), w)


@pytest.mark.parametrize("name", ["lowrank", "tucker", "tt", "tr"])
def test_complex_weights_decompose_and_rebuild(name):
    """Formats are dtype-agnostic: complex weights (spectral convolutions) go through the same
    code as real ones."""
    p, w = _planted(name, dtype=torch.complex128, seed=3)
    assert w.dtype == torch.complex128 and float(w.imag.abs().max()) > 0
    factors = p.right_inverse(w)
    assert all(f.dtype == torch.complex128 for f in factors)
    assert _rel(p(*factors), w) < 1e-9


def test_complex_cp_is_refused_by_the_engine_not_the_format():
    p, w = _planted("cp", dtype=torch.complex128, seed=4)
    assert w.dtype == torch.complex128  # init and rebuild are complex-capable
    try:
        factors = p.right_inverse(w)
    except TypeError as err:  # factorch.decomp.cp's own refusal, naming itself
        assert str(err).startswith("cp: complex")
    else:  # once the engine supports complex CP, the format recovers the planted weight
        assert _rel(p(*factors), w) < 1e-6


def test_complex_random_init_has_the_requested_variance():
    p = WEIGHTS["tucker"]()
    g = torch.Generator().manual_seed(5)
    draws = [
        float(p(*p.init_factors(std=0.3, generator=g, dtype=torch.complex128)).abs().pow(2).mean())
        for _ in range(200)
    ]
    assert statistics.mean(draws) == pytest.approx(0.09, rel=0.1)


# --- random init and dropout ---------------------------------------------------------------------
@pytest.mark.parametrize("name", list(WEIGHTS))
def test_random_init_preserves_the_dense_weight_variance(name):
    """E[W^2] = std^2 (averaged over draws), and the output variance matches nn.Linear's."""
    g = torch.Generator().manual_seed(2)
    p = WEIGHTS[name]()
    std = 0.3
    draws = [
        float(p(*p.init_factors(std=std, generator=g, dtype=torch.float64)).pow(2).mean())
        for _ in range(300)
    ]
    assert statistics.mean(draws) == pytest.approx(std**2, rel=0.1)


def test_layer_output_variance_matches_dense_default():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4096, 256, generator=g)
    dense_var = []
    fac_var: dict[str, list[float]] = {f: [] for f in ("lowrank", "cp", "tucker", "tt", "tr")}
    for _ in range(6):
        with torch.no_grad():
            dense_var.append(float(nn.Linear(256, 128, bias=False)(x).var()))
        for f in fac_var:
            layer = fnn.FactorizedLinear(256, 128, bias=False, format=f, ratio=0.2, generator=g)
            fac_var[f].append(float(layer(x).detach().var()))
    ref = statistics.mean(dense_var)
    assert ref == pytest.approx(1 / 3, rel=0.1)  # nn.Linear: Var = fan_in * 1/(3 fan_in)
    for f, v in fac_var.items():
        assert statistics.mean(v) == pytest.approx(ref, rel=0.25), f


@pytest.mark.parametrize("name", list(WEIGHTS))
def test_dropout_is_unbiased_and_never_empty(name):
    torch.manual_seed(4)
    p = WEIGHTS[name]()
    factors = p.init_factors(
        std=1.0, generator=torch.Generator().manual_seed(5), dtype=torch.float64
    )
    full = p(*factors)
    mean = sum(p(*p.dropout(factors, 0.3)) for _ in range(3000)) / 3000
    assert float((mean - full).norm() / full.norm()) < 0.1
    # p close to 1: at least one component survives, so the weight is never all zero
    for _ in range(50):
        assert float(p(*p.dropout(factors, 0.99)).abs().max()) > 0


def test_cp_dropout_with_rank_below_the_number_of_modes():
    """TensorLy-Torch 0.5's CP dropout fails with UnboundLocalError when rank <= min_dim."""
    p = fnn.CPWeight(TensorLayout.tensorized(SPEC), 2)
    factors = p.init_factors(std=1.0, dtype=torch.float64)
    out = p(*p.dropout(factors, 0.5))
    assert out.shape == (12, 20)


def test_init_factors_refuses_absurd_ranks_before_allocating():
    p = fnn.CPWeight(TensorLayout.tensorized(SPEC), 10**9)
    with pytest.raises(ValueError, match=r"CPWeight: cp factors at rank 1000000000 needs about"):
        p.init_factors(std=1.0)


# --- ranks ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: fnn.LowRankWeight(TensorLayout.identity((12, 20)), 0), ValueError, r"\[1, 12\]"),
        (lambda: fnn.LowRankWeight(TensorLayout.identity((12, 20)), 13), ValueError, r"\[1, 12\]"),
        (
            lambda: fnn.CPWeight(TensorLayout.tensorized(SPEC), 2.5),
            TypeError,
            "rank must be a positive int; got float",
        ),
        (
            lambda: fnn.CPWeight(TensorLayout.tensorized(SPEC), 0),
            ValueError,
            "rank must be a positive int; got 0",
        ),
        (
            lambda: fnn.TuckerWeight(TensorLayout.tensorized(SPEC), (5, 3, 5, 4)),
            ValueError,
            r"rank\[0\] = 5 exceeds the mode size 4",
        ),
        (
            lambda: fnn.TuckerWeight(TensorLayout.identity((4, 3)), (2, 1)),
            ValueError,
            "exceeds the product 1 of the other ranks",
        ),
        (
            lambda: fnn.TuckerWeight(TensorLayout.tensorized(SPEC), (2, 2)),
            ValueError,
            "needs 4 entries",
        ),
        (
            lambda: fnn.TTWeight(TensorLayout.matrix_chain(SPEC), (1, 30, 1)),
            ValueError,
            r"rank\[1\] = 30 exceeds 12, the largest useful rank of bond 1",
        ),
        (
            lambda: fnn.TTWeight(TensorLayout.matrix_chain(SPEC), (2, 3, 2)),
            ValueError,
            "must start and end with 1",
        ),
        (
            lambda: fnn.TRWeight(TensorLayout.matrix_chain(SPEC), (2, 3, 4)),
            ValueError,
            "close the ring",
        ),
        (lambda: fnn.CPWeight((12, 20), 3), TypeError, "layout must be a TensorLayout"),
        (
            lambda: fnn.TuckerWeight(
                TensorLayout.tensorized(SPEC), 2, decomposition={"method": "x"}
            ).right_inverse(torch.randn(12, 20)),
            ValueError,
            "method must be 'hooi' or 'hosvd'",
        ),
        (
            lambda: fnn.TuckerWeight(TensorLayout.tensorized(SPEC), 2, decomposition=3),
            TypeError,
            "decomposition must be a mapping",
        ),
    ],
    ids=[
        "lowrank-0",
        "lowrank-13",
        "cp-float",
        "cp-0",
        "tucker-mode",
        "tucker-redundant",
        "tucker-length",
        "tt-bound",
        "tt-ends",
        "tr-ring",
        "layout-type",
        "tucker-method",
        "decomposition-type",
    ],
)
def test_rank_and_option_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_numpy_integer_ranks_are_accepted():
    assert fnn.CPWeight(TensorLayout.tensorized(SPEC), np.int64(3)).rank == 3
    layout = TensorLayout.matrix_chain(SPEC)
    assert fnn.TTWeight(layout, (np.int32(1), np.int64(4), 1)).rank == (1, 4, 1)


@pytest.mark.parametrize("name", ["lowrank", "cp", "tucker", "tt", "tr"])
def test_parameter_counts_agree_with_decomp_param_count(name):
    """The format's count, its factor shapes and :func:`factorch.decomp.param_count` agree."""
    p = WEIGHTS[name]()
    budget_format = {"tt": "tt"}.get(name, name)
    for rank in p.rank_family(p.layout)[:6]:
        q = type(p)(p.layout, rank)
        assert q.n_params == type(p).count_params(p.layout, rank)
        assert q.n_params == param_count(p.layout.tensor_shape, rank, format=budget_format)


def test_tucker_hosvd_option_and_reconstruction_flops():
    p = fnn.TuckerWeight(
        TensorLayout.tensorized(SPEC), (4, 3, 5, 4), decomposition={"method": "hosvd"}
    )
    w = torch.randn(12, 20, dtype=torch.float64)
    assert float((p(*p.right_inverse(w)) - w).norm() / w.norm()) < 1e-12
    for name in WEIGHTS:
        assert WEIGHTS[name]().reconstruction_flops() > 0


def test_lowrank_svd_option_and_its_deprecated_spelling():
    layout = TensorLayout.identity((12, 20))
    w = torch.randn(12, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    exact = fnn.LowRankWeight(layout, 12, decomposition={"svd": "gram"})
    assert _rel(exact(*exact.right_inverse(w)), w) < 1e-10
    old = fnn.LowRankWeight(layout, 12, decomposition={"method": "gram"})
    with pytest.warns(DeprecationWarning, match=r"use decomposition=\{'svd': \.\.\.\}"):
        factors = old.right_inverse(w)
    assert _rel(old(*factors), w) < 1e-10


# --- energy ladders (the allocator's predictions) -----------------------------------------------
def test_lowrank_energy_ladder_is_exact():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(12, 30, generator=g, dtype=torch.float64)
    ladder = fnn.LowRankWeight.energy_ladder(w, TensorLayout.identity((12, 30)))
    s = torch.linalg.svdvals(w)
    for cand in ladder:
        assert cand.error2 == pytest.approx(float(s[cand.rank :].pow(2).sum() / s.pow(2).sum()))
        assert cand.params == cand.rank * 42 < 360


def test_tucker_energy_ladder_is_the_exact_truncated_hosvd_error():
    from factorch.decomp import hosvd

    g = torch.Generator().manual_seed(2)
    w = torch.randn(6, 5, 3, 3, generator=g, dtype=torch.float64)
    ladder = fnn.TuckerWeight.energy_ladder(w, TensorLayout.identity((6, 5, 3, 3)))
    assert len(ladder) > 3
    for cand in ladder:
        approx = hosvd(w, list(cand.rank), sequential=False).model.to_dense()
        exact = float((approx - w).norm() ** 2 / w.norm() ** 2)
        assert cand.error2 == pytest.approx(exact, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("name", ["cp", "tt", "tr"])
def test_bound_ladders_bracket_the_measured_error(name):
    """TT's ladder is an upper bound (TT-SVD's), CP's and TR's lower bounds (unfolding ranks)."""
    p = WEIGHTS[name]()
    g = torch.Generator().manual_seed(7)
    w = p.layout.to_tensor(torch.randn(12, 20, generator=g, dtype=torch.float64))
    ladder = type(p).energy_ladder(w, p.layout)
    assert ladder and all(0 <= c.error2 <= 1 for c in ladder)
    for cand in ladder[:: max(1, len(ladder) // 2)]:
        opts = {"max_iter": 300, "tol": 1e-12} if name != "tt" else None
        q = type(p)(p.layout, cand.rank, decomposition=opts)
        measured = float((q.to_tensor(*q.decompose(w)) - w).norm() ** 2 / w.norm() ** 2)
        if name == "tt":
            assert measured <= cand.error2 + 1e-9
        else:
            assert measured >= cand.error2 - 1e-9


# --- config and registry -------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(WEIGHTS))
def test_config_is_json_and_rebuilds_the_format(name):
    p = WEIGHTS[name]()
    config = json.loads(json.dumps(p.config()))
    assert config["format"] == p.format
    q = format_from_config(config)
    assert type(q) is type(p) and q.layout == p.layout and q.rank == p.rank
    factors = p.init_factors(std=1.0, generator=torch.Generator().manual_seed(8))
    assert torch.equal(q(*factors), p(*factors))


def test_registry_lists_and_finds_the_builtin_formats():
    assert fnn.available_formats()[:5] == ("lowrank", "cp", "tucker", "tt", "tr")
    assert get_format("tucker") is fnn.TuckerWeight


class _Abstract(WeightFormat):
    format = "abstract"


class _Clash(fnn.CPWeight):
    format = "cp"


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: get_format("blocktt", "f"), ValueError, r"f: format must be one of \('lowrank'"),
        (lambda: register_format(nn.Linear), TypeError, "expected a WeightFormat subclass"),
        (lambda: register_format(_Abstract), TypeError, "_Abstract does not implement"),
        (lambda: register_format(_Clash), ValueError, "'cp' is already registered to CPWeight"),
        (lambda: format_from_config({"rank": 2}), ValueError, "config must be a mapping with"),
    ],
    ids=["unknown", "not-a-format", "abstract", "clash", "config"],
)
def test_registry_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_factorized_weight_is_a_deprecated_alias():
    with pytest.warns(DeprecationWarning, match="use factorch.nn.WeightFormat"):
        alias = fnn.FactorizedWeight
    assert alias is WeightFormat
