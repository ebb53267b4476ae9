"""Fuzz of ``factorch.adapters`` (issue 9, through ``_harness``): every method's config with bad
and extreme ranks, ``inject`` of every method on Linear and Conv layers whose weights are drawn
from the harness's input classes (wrong types, integer/complex/half dtypes, NaN for the SVD-based
inits, tiny and huge scales, empty dimensions), and ``from_pretrained`` on damaged files.

Every call ends in a clear ``TypeError``/``ValueError``/``IndexError`` whose message starts with
the entry point's name, or in an adapted model whose parameters and forward are finite and in
the weight's dtype (and equal to the base model at init)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import _harness
import pytest
import torch
from _harness import (
    BAD_KINDS,
    CLEAR_ERRORS,
    Case,
    Entry,
    assert_clear_or_true,
    assert_finite_result,
    fuzz_cases,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import factorch.adapters as fa

RANKED = {
    "lora": fa.LoraConfig,
    "tlora": fa.TLoraConfig,
    "corda": fa.CordaConfig,
    "left": fa.LeftConfig,
    "tucker": fa.TuckerConfig,
    "tt": fa.TTConfig,
}
RANK_KINDS = ("bad_rank_value", "bad_rank_type", "numpy_rank", "plain")
WEIGHT_KINDS = (
    "not_a_tensor",
    "integer_dtype",
    "bool_dtype",
    "complex_dtype",
    "tiny_scale",
    "huge_scale",
    "half",
    "bfloat16",
    "numpy",
    "requires_grad",
    "non_contiguous",
    "all_zero",
    "plain",
)


@pytest.fixture(autouse=True, scope="module")
def _contiguous_cases() -> Iterator[None]:
    """Draw from a contiguous copy of the planted tensor (as the nn fuzz does)."""
    draw = _harness._low_rank
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_harness, "_low_rank", lambda *args: draw(*args).contiguous())
        yield


def _layer(tensor: Any) -> Any:
    """An nn.Linear / nn.Conv{1,2,3}d holding ``tensor`` as its weight (else ``tensor`` itself)."""
    if not isinstance(tensor, torch.Tensor) or not 2 <= tensor.ndim <= 5:
        return tensor
    if tensor.ndim == 2:
        layer: nn.Module = nn.Linear(1, 1, bias=False)
        layer.out_features, layer.in_features = tensor.shape
    else:
        layer = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[tensor.ndim - 3](1, 1, 1, bias=False)
        layer.out_channels, layer.in_channels = tensor.shape[:2]
        layer.kernel_size = tuple(tensor.shape[2:])
    layer.weight = nn.Parameter(tensor, requires_grad=tensor.is_floating_point())
    return nn.Sequential(layer)


def _input(model: nn.Module, dtype: torch.dtype) -> torch.Tensor:
    layer = model[0].base_layer
    g = torch.Generator().manual_seed(0)
    if isinstance(layer, nn.Linear):
        return torch.rand(3, layer.in_features, generator=g).to(dtype)
    size = tuple(k + 1 for k in layer.kernel_size)
    return torch.rand(2, layer.in_channels, *size, generator=g).to(dtype)


def _check(case: Case, model: Any) -> None:
    assert_finite_result(case, model)
    x = _input(model, case.dtype)
    y = model(x)
    with fa.disabled(model):
        y0 = model(x)
    assert y.dtype == case.dtype and bool(torch.isfinite(y.double()).all()), case
    assert torch.allclose(y.double(), y0.double(), rtol=1e-2, atol=1e-6 * float(y0.abs().max())), (
        case
    )


def _context(config: fa.AdapterConfig, model: nn.Module) -> Any:
    if isinstance(config, fa.CordaConfig):
        layer = model[0]
        if isinstance(layer, nn.Linear) and layer.weight.is_floating_point() and layer.in_features:
            x = torch.rand(8, layer.in_features, generator=torch.Generator().manual_seed(1))
            return {"0": x.T.double().to(layer.weight.dtype) @ x.double().to(layer.weight.dtype)}
        return {"0": torch.eye(1)}
    if isinstance(config, fa.AtlasConfig) and isinstance(model[0].weight, torch.Tensor):
        w = model[0].weight
        if w.is_floating_point():
            return [{"0.weight": torch.ones_like(w)}]
    return None


def _inject_entry(config: fa.AdapterConfig, kinds: tuple[str, ...]) -> Entry:
    def call(tensor: Any, rank: Any) -> Any:
        model = _layer(tensor)
        context = _context(config, model) if isinstance(model, nn.Sequential) else None
        return fa.inject(model, config, context=context)

    lo, hi = (2, 2) if isinstance(config, fa.CordaConfig) else (2, 5)
    return Entry("inject", call, _check, min_ndim=lo, max_ndim=hi, kinds=kinds)


INJECTS = [
    _inject_entry(fa.LoraConfig(target_modules=["0"], rank=2), WEIGHT_KINDS),
    _inject_entry(
        fa.LoraConfig(target_modules=["0"], rank=1, init="pissa"), (*WEIGHT_KINDS, "nan", "inf")
    ),
    _inject_entry(fa.TLoraConfig(target_modules=["0"], rank=2, n_factors=2), WEIGHT_KINDS),
    _inject_entry(fa.CordaConfig(target_modules=["0"], rank=1), (*WEIGHT_KINDS, "nan", "inf")),
    _inject_entry(fa.LeftConfig(target_modules=["0"], rank=2), WEIGHT_KINDS),
    _inject_entry(fa.AtlasConfig(target_modules=["0"]), WEIGHT_KINDS),
    _inject_entry(fa.TuckerConfig(target_modules=["0"], rank=2), WEIGHT_KINDS),
    _inject_entry(fa.TTConfig(target_modules=["0"], rank=2, n_factors=2), WEIGHT_KINDS),
]
# the two forwards of the Tucker and TT adapters on a Linear layer, forced (``"auto"`` above)
FORCED_PATHS = [
    _inject_entry(
        fa.TuckerConfig(target_modules=["0"], rank=2, implementation="merged"), WEIGHT_KINDS
    ),
    _inject_entry(
        fa.TTConfig(target_modules=["0"], rank=2, n_factors=2, implementation="factorized"),
        WEIGHT_KINDS,
    ),
]


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_fuzz_inject(data: st.DataObject) -> None:
    entry = data.draw(st.sampled_from(INJECTS))
    case = data.draw(fuzz_cases(entry))
    assert_clear_or_true(entry, case)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_fuzz_inject_forced_paths(data: st.DataObject) -> None:
    entry = data.draw(st.sampled_from(FORCED_PATHS))
    case = data.draw(fuzz_cases(entry))
    assert_clear_or_true(entry, case)


def _config_entry(name: str) -> Entry:
    cls = RANKED[name]

    def call(tensor: Any, rank: Any) -> Any:
        return cls(target_modules=["0"], rank=rank)

    def check(case: Case, config: Any) -> None:
        assert isinstance(config.rank, int) and config.rank >= 1, case

    return Entry(cls.__name__, call, check, kinds=RANK_KINDS)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_fuzz_configs(data: st.DataObject) -> None:
    entry = _config_entry(data.draw(st.sampled_from(sorted(RANKED))))
    case = data.draw(fuzz_cases(entry))
    assert case.kind not in BAD_KINDS or case.kind in RANK_KINDS
    assert_clear_or_true(entry, case)


# --- damaged files -------------------------------------------------------------------------------
def _saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Any]:
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    model = fa.inject(copy.deepcopy(base), fa.TLoraConfig(target_modules="all-linear", rank=2))
    path = tmp_path_factory.mktemp("fuzz") / "a"
    fa.save_pretrained(model, path)
    return base, model, path


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Any]:
    return _saved(tmp_path_factory)


@settings(max_examples=60, deadline=None)
@given(
    which=st.sampled_from(["factorch_config.json", "model.safetensors"]),
    edit=st.sampled_from(["flip", "truncate", "append", "empty"]),
    where=st.floats(0, 1),
    byte=st.integers(0, 255),
)
def test_fuzz_from_pretrained_damaged_files(
    saved, tmp_path_factory, which, edit, where, byte
) -> None:
    base, _, path = saved
    target = tmp_path_factory.mktemp("damaged")
    for f in path.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    data = bytearray((target / which).read_bytes())
    pos = int(where * (len(data) - 1))
    if edit == "flip":
        data[pos] = byte
    elif edit == "truncate":
        data = data[:pos]
    elif edit == "append":
        data += bytes([byte]) * 9
    else:
        data = bytearray()
    (target / which).write_bytes(bytes(data))
    fresh = copy.deepcopy(base)
    try:
        loaded = fa.from_pretrained(fresh, target)
    except CLEAR_ERRORS as err:
        msg = str(err)
        assert "\n" not in msg.strip() and len(msg) < 800, msg
        assert not fa.adapted_layers(fresh)  # a failed load changes nothing
        return
    # what loaded is exactly what the file holds (a flipped byte inside a tensor is data)
    from safetensors.torch import load_file

    stored = load_file(target / "model.safetensors")
    state = loaded.state_dict()
    for key, value in stored.items():
        module, _, rest = key.partition(".default.")
        assert torch.equal(state[f"{module}.adapters.default.{rest}"], value), key
    assert fa.adapter_names(loaded) == ("default",)
