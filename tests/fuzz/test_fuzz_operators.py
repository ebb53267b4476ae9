"""Fuzz of the neural-operator area (issue 12): ``SpectralConv`` and the models' constructors and
forwards, ``MultigridPatching.patch``, the relative losses, ``evaluate`` / ``train_operator``,
and the PDE solvers, driven with bad and extreme inputs (wrong types, absurd modes, integer /
bool / complex / half dtypes, empty and scalar tensors, NaN, tiny and huge scales, numpy arrays).

Every call ends in a clear ``TypeError``/``ValueError``/``IndexError`` whose message starts with
the entry point's name, or in a finite result in the documented dtype. Layers, models and losses
propagate NaN/Inf inputs like torch's own layers (checking every forward would cost a device
sync), so those two classes are drawn only for the solvers, which refuse them."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import _harness
import numpy as np
import pytest
import torch
from _harness import (
    BAD_KINDS,
    EXTREME_KINDS,
    Case,
    Entry,
    assert_clear_or_true,
    assert_finite_result,
    fuzz_cases,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from factorch.datasets.pde import solve_burgers, solve_darcy, solve_navier_stokes
from factorch.models import FNO, MGTFNO, MultigridPatching
from factorch.nn.spectral import SpectralConv
from factorch.train import evaluate, relative_h1, relative_lp, train_operator

NO_NONFINITE = tuple(k for k in BAD_KINDS + EXTREME_KINDS if k not in ("nan", "inf"))


@pytest.fixture(autouse=True, scope="module")
def _contiguous_cases() -> Iterator[None]:
    """Draw from a contiguous copy of the planted tensor (as the nn and decomp fuzz do)."""
    draw = _harness._low_rank
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_harness, "_low_rank", lambda *args: draw(*args).contiguous())
        yield


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _grid_dims(tensor: Any) -> int:
    return max(getattr(tensor, "ndim", 3) - 2, 1)


def _layer_dtype(case: Case) -> torch.dtype:
    """The layers are built in the case's dtype when it is float32/float64, else float32."""
    return case.dtype if case.dtype in (torch.float32, torch.float64) else torch.float32


def _check_forward(case: Case, result: Any) -> None:
    assert_finite_result(case, result, dtype=_layer_dtype(case))
    assert tuple(result.shape[2:]) == tuple(case.shape[2:]), case


def _spectral_call(tensor: Any, rank: Any) -> Any:
    channels = tensor.shape[1] if getattr(tensor, "ndim", 0) >= 3 else 1
    modes = rank
    dtype = getattr(tensor, "dtype", torch.float32)
    dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    conv = SpectralConv(
        channels, 2, (modes,) * _grid_dims(tensor) if isinstance(modes, int) else modes,
        generator=_gen(), dtype=dtype,
    )  # fmt: skip
    return conv(tensor)


def _fno_call(tensor: Any, rank: Any) -> Any:
    channels = tensor.shape[1] if getattr(tensor, "ndim", 0) >= 3 else 1
    dtype = getattr(tensor, "dtype", torch.float32)
    dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    modes = (rank,) * min(_grid_dims(tensor), 3) if isinstance(rank, int) else rank
    model = FNO(
        channels, 1, modes, hidden_channels=4, n_layers=1, format="tucker", rank=None,
        ratio=0.5, generator=_gen(), dtype=dtype,
    )  # fmt: skip
    return model(tensor)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_fuzz_spectral_conv(data: st.DataObject) -> None:
    entry = Entry("SpectralConv", _spectral_call, _check_forward, 3, 5, NO_NONFINITE)
    assert_clear_or_true(entry, data.draw(fuzz_cases(entry)))


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_fuzz_fno(data: st.DataObject) -> None:
    entry = Entry("FNO", _fno_call, _check_forward, 3, 5, NO_NONFINITE)
    assert_clear_or_true(entry, data.draw(fuzz_cases(entry)))


def _mg_call(tensor: Any, rank: Any) -> Any:
    return MultigridPatching(rank, 0.25).patch(tensor)


def _check_patches(case: Case, result: Any) -> None:
    assert_finite_result(case, result, dtype=case.dtype)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_fuzz_multigrid_patching(data: st.DataObject) -> None:
    kinds = tuple(k for k in NO_NONFINITE if k != "numpy")
    entry = Entry("MultigridPatching", _mg_call, _check_patches, 3, 5, kinds)
    case = data.draw(fuzz_cases(entry))
    if case.kind in ("numpy", "half", "bfloat16"):
        return
    assert_clear_or_true(entry, case)


def _mg_blend_call(tensor: Any, rank: Any) -> Any:
    mg = MultigridPatching(rank, 0.25, stitching="blend")
    patches = mg.patch(tensor)
    return mg.stitch(patches[:, : tensor.shape[1]], tensor.shape[0], tensor.shape[2:])


def _check_blend_round_trip(case: Case, result: Any) -> None:
    assert_finite_result(case, result, dtype=case.dtype)
    if not case.tensor.numel():
        return
    scale = float(case.tensor.abs().max())
    tol = 1e-5 if case.dtype == torch.float32 else 1e-12
    floor = 16 * torch.finfo(case.dtype).tiny  # subnormal inputs lose relative precision
    assert float((result - case.tensor).abs().max()) <= tol * scale + floor, case


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_fuzz_multigrid_blend_round_trip(data: st.DataObject) -> None:
    kinds = tuple(k for k in NO_NONFINITE if k != "numpy")
    entry = Entry("MultigridPatching", _mg_blend_call, _check_blend_round_trip, 3, 5, kinds)
    case = data.draw(fuzz_cases(entry))
    if case.kind in ("numpy", "half", "bfloat16"):
        return
    assert_clear_or_true(entry, case)


@settings(max_examples=30, deadline=None)
@given(
    data=st.data(),
    side=st.sampled_from([8, 16]),
    stitching=st.sampled_from(["crop", "blend"]),
)
def test_fuzz_mg_tfno_forward(data: st.DataObject, side: int, stitching: str) -> None:
    entry = Entry(
        "MGTFNO",
        lambda t, r: _mg_forward(t, r, side, stitching),
        lambda case, result: assert_finite_result(case, result, dtype=_layer_dtype(case)),
        3,
        3,
        NO_NONFINITE,
    )
    assert_clear_or_true(entry, data.draw(fuzz_cases(entry)))


def _mg_forward(tensor: Any, rank: Any, side: int, stitching: str = "crop") -> Any:
    if isinstance(tensor, torch.Tensor) and tensor.ndim == 3 and tensor.numel():
        tensor = (
            torch.nn.functional.interpolate(tensor.float(), size=side, mode="nearest").to(
                tensor.dtype
            )
            if tensor.is_floating_point()
            else tensor
        )
    dtype = getattr(tensor, "dtype", torch.float32)
    dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    model = MGTFNO(
        tensor.shape[1] if getattr(tensor, "ndim", 0) == 3 else 1, 1, rank, levels=1,
        hidden_channels=4, n_layers=1, format="dense", generator=_gen(), dtype=dtype,
        stitching=stitching,
    )  # fmt: skip
    out = model(tensor)
    assert out.shape[2:] == tensor.shape[2:]
    return out


def _loss_call(which: str) -> Any:
    def call(tensor: Any, rank: Any) -> Any:
        target = (
            tensor * 1.5 + 1
            if isinstance(tensor, torch.Tensor) and tensor.is_floating_point()
            else tensor
        )
        if which == "lp":
            return relative_lp(tensor, target, dims=rank)
        return relative_h1(tensor, target, periodic=True, dims=rank)

    return call


def _check_loss(case: Case, result: Any) -> None:
    assert result.ndim == 0 and bool(torch.isfinite(result)), case
    assert result.dtype == case.dtype, case


@pytest.mark.parametrize(("which", "name"), [("lp", "relative_lp"), ("h1", "relative_h1")])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_fuzz_losses(which: str, name: str, data: st.DataObject) -> None:
    kinds = tuple(k for k in NO_NONFINITE if k not in ("numpy", "all_zero"))
    entry = Entry(name, _loss_call(which), _check_loss, 1, 4, kinds)
    assert_clear_or_true(entry, data.draw(fuzz_cases(entry)))


def _model_for(tensor: Any) -> FNO:
    channels = tensor.shape[1] if getattr(tensor, "ndim", 0) == 3 else 1
    dtype = torch.float64 if getattr(tensor, "dtype", None) == torch.float64 else torch.float32
    return FNO(channels, channels, 2, hidden_channels=4, n_layers=1, generator=_gen(), dtype=dtype)


def _target(tensor: Any) -> Any:
    floating = isinstance(tensor, torch.Tensor) and tensor.is_floating_point()
    return tensor * 2 if floating or isinstance(tensor, np.ndarray) else tensor


def _evaluate_call(tensor: Any, rank: Any) -> Any:
    return evaluate(_model_for(tensor), (tensor, _target(tensor)), periodic=True, batch_size=rank)


def _train_call(tensor: Any, rank: Any) -> Any:
    return train_operator(
        _model_for(tensor), (tensor, _target(tensor)), periodic=True, epochs=1, batch_size=rank,
        generator=_gen(),
    ).metrics  # fmt: skip


def _check_metrics(case: Case, result: Any) -> None:
    assert all(math.isfinite(v) for v in _flat_values(result)), (case, result)


def _flat_values(d: Any) -> Iterator[float]:
    for v in d.values():
        yield from (_flat_values(v) if isinstance(v, dict) else [float(v)])


@pytest.mark.parametrize(
    ("call", "name"), [(_evaluate_call, "evaluate"), (_train_call, "train_operator")]
)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_fuzz_evaluate_and_train(call: Any, name: str, data: st.DataObject) -> None:
    kinds = tuple(k for k in BAD_KINDS + EXTREME_KINDS if k != "absurd_rank")  # batch_size > n
    entry = Entry(name, call, _check_metrics, 3, 3, kinds)
    assert_clear_or_true(entry, data.draw(fuzz_cases(entry)))


def _solver_input(tensor: Any, dims: int) -> Any:
    """The case tensor tiled to a ``(2, n[, n])`` field with ``n >= 12`` holding every entry of
    it (values, dtype and kind kept: a NaN stays in)."""
    if isinstance(tensor, np.ndarray):
        return np.resize(tensor, (2,) + (12,) * dims)
    if not isinstance(tensor, torch.Tensor) or tensor.ndim == 0 or tensor.numel() == 0:
        return tensor
    flat = tensor.reshape(-1)
    n = max(12, math.ceil((flat.numel() / 2) ** (1 / dims)))
    total = 2 * n**dims
    return flat.repeat(math.ceil(total / flat.numel()))[:total].reshape((2,) + (n,) * dims)


# max_iter=None (a "bad rank type") is the default and a huge max_iter is valid (it stops on
# convergence).
DARCY_KINDS = tuple(
    k for k in BAD_KINDS + EXTREME_KINDS if k not in ("bad_rank_type", "absurd_rank")
)


def _solvers() -> list[Entry]:
    def check(case: Case, result: Any) -> None:
        assert_finite_result(case, result)

    def darcy(t: Any, r: Any) -> Any:
        a = _solver_input(t, 2)
        if isinstance(a, torch.Tensor) and a.is_floating_point():
            a = a.abs() + (torch.finfo(a.dtype).tiny if a.dtype != torch.bfloat16 else 1e-30)
        return solve_darcy(a, max_iter=r)

    return [
        Entry("solve_darcy", darcy, check, 2, 3, DARCY_KINDS),
        Entry(
            "solve_burgers",
            lambda t, r: solve_burgers(
                _solver_input(t, 1), viscosity=0.05, t_final=0.01, n_snapshots=r
            ),
            check, 2, 3,
        ),
        Entry(
            "solve_navier_stokes",
            lambda t, r: solve_navier_stokes(
                _solver_input(t, 2), viscosity=1e-3, t_final=0.01, n_snapshots=r
            ),
            check, 2, 3,
        ),
    ]  # fmt: skip


@pytest.mark.parametrize("entry", _solvers(), ids=lambda e: e.name)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_fuzz_solvers(entry: Entry, data: st.DataObject) -> None:
    case = data.draw(fuzz_cases(entry))
    if case.kind in ("empty_dim", "zero_dim") and entry.name != "solve_darcy":
        pass
    assert_clear_or_true(entry, case)


# --- dtype conversions of a built layer: the complex weights follow, nothing is discarded ----

_CONVERSIONS = {
    "double": lambda m: m.double(),
    "to_float64": lambda m: m.to(torch.float64),
    "float": lambda m: m.float(),
    "to_float32": lambda m: m.to(torch.float32),
}


@settings(max_examples=30, deadline=None)
@given(
    fmt=st.sampled_from(["dense", "cp", "tucker", "tt"]),
    start=st.sampled_from([torch.float32, torch.float64]),
    convert=st.sampled_from(sorted(_CONVERSIONS)),
    dims=st.sampled_from([1, 2]),
)
def test_fuzz_spectral_dtype_conversions(
    fmt: str, start: torch.dtype, convert: str, dims: int
) -> None:
    options: dict[str, Any] = {} if fmt == "dense" else {"format": fmt, "ratio": 0.5}
    conv = SpectralConv(6, 5, (4,) * dims, generator=_gen(), dtype=start, **options)
    before = [p.detach().clone() for p in conv.parameters()]
    conv = _CONVERSIONS[convert](conv)
    real = torch.float64 if convert in ("double", "to_float64") else torch.float32
    wide = torch.complex128 if real == torch.float64 else torch.complex64
    for old, new in zip(before, conv.parameters(), strict=True):
        assert new.dtype == (wide if old.is_complex() else real), (convert, old.dtype, new.dtype)
        # every entry kept to the target's rounding (the imaginary parts included)
        assert torch.equal(new, old.to(new.dtype)), (fmt, convert)
    x = torch.randn(2, 6, *(9,) * dims, dtype=real, generator=_gen())
    y = conv(x)
    assert y.dtype == real and bool(torch.isfinite(y).all()), (fmt, convert)


# --- half-precision models: computed in float32, output in the model's half dtype -----------

_HALF_CONVERSIONS = {
    "half": lambda m: m.half(),
    "bfloat16": lambda m: m.bfloat16(),
    "to_float16": lambda m: m.to(torch.float16),
    "to_bfloat16": lambda m: m.to(torch.bfloat16),
}


@settings(max_examples=20, deadline=None)
@given(
    model_kind=st.sampled_from(["FNO", "TFNO tucker", "TFNO cp", "MGTFNO"]),
    convert=st.sampled_from(sorted(_HALF_CONVERSIONS)),
    input_dtype=st.sampled_from(["model", "float32", "float64"]),
    dims=st.sampled_from([1, 2]),
    autocast=st.booleans(),
)
def test_fuzz_models_half_precision(
    model_kind: str, convert: str, input_dtype: str, dims: int, autocast: bool
) -> None:
    if model_kind == "MGTFNO":
        dims = 2
    gen = _gen()
    options: dict[str, Any] = {"hidden_channels": 4, "n_layers": 2, "generator": gen}
    if model_kind.startswith("TFNO"):
        options.update(format=model_kind.split()[1], ratio=0.3)
    cls = MGTFNO if model_kind == "MGTFNO" else FNO
    if model_kind == "MGTFNO":
        options.update(ratio=0.3)
    model = _HALF_CONVERSIONS[convert](cls(1, 1, (4,) * dims, **options))
    half = (
        model.lifting.first.weight.dtype
        if cls is FNO
        else model.operator.lifting.first.weight.dtype
    )
    assert half in (torch.float16, torch.bfloat16)
    dtype = {"model": half, "float32": torch.float32, "float64": torch.float64}[input_dtype]
    x = torch.randn(2, 1, *(16,) * dims, generator=gen).to(dtype)
    if autocast:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    else:
        out = model(x)
    assert out.dtype == half and out.shape == (2, 1, *(16,) * dims), (model_kind, convert)
    assert bool(torch.isfinite(out).all()), (model_kind, convert)
    out.float().square().mean().backward()
    for p in model.parameters():
        assert p.grad is not None and p.grad.dtype == p.dtype and bool(torch.isfinite(p.grad).all())


# --- lr_scale / spectral_lr_scale: any value gives a clear error or the plain model's function ---

_LR_SCALES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(min_value=1e-3, max_value=1e3),
    st.integers(min_value=-3, max_value=10**6),
    st.sampled_from([True, False, None, "3", [2.0], 1e-300, 1e300, 1e-3, 1e3]),
)


@settings(max_examples=40, deadline=None)
@given(
    scale=_LR_SCALES,
    fmt=st.sampled_from(["dense", "cp", "tucker", "tt"]),
    model=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_fuzz_lr_scale(scale: Any, fmt: str, model: bool, dtype: torch.dtype) -> None:
    options: dict[str, Any] = {} if fmt == "dense" else {"format": fmt, "ratio": 0.5}
    name, key = ("FNO", "spectral_lr_scale") if model else ("SpectralConv", "lr_scale")

    def build(value: Any) -> Any:
        if model:
            return FNO(4, 1, (6,), hidden_channels=4, n_layers=1, generator=_gen(), dtype=dtype,
                       **{key: value}, **options)  # fmt: skip
        return SpectralConv(4, 3, (6,), generator=_gen(), dtype=dtype, **{key: value}, **options)

    try:
        layer = build(scale)
    except ValueError as err:
        assert str(err).startswith(name) and key in str(err), err
        return
    value = float(scale)
    assert 1e-3 <= value <= 1e3
    x = torch.randn(3, 4, 9, generator=_gen(), dtype=dtype)
    with torch.no_grad():
        y, ref = layer(x), build(1.0)(x)
    assert y.dtype == dtype and bool(torch.isfinite(y).all())
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    assert float((y - ref).abs().max()) <= tol * (1 + float(ref.abs().max())), (scale, fmt)
