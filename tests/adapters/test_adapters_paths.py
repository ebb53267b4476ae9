"""The two forwards of the Tucker and TT adapters on a Linear layer (``implementation``): the
factors contracted with the input, or one GEMM with the merged weight ``W + alpha dW``. Both give
the same outputs and gradients; ``"auto"`` takes the one :meth:`step_costs` finds cheaper."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import factorch.adapters as fa
from factorch.adapters.tucker._layer import tucker_linear, tucker_weight

CONFIGS = {
    "tucker": lambda impl: fa.TuckerConfig(
        target_modules=["0", "2"], rank=(2, 3, 2, 2), implementation=impl
    ),
    "tucker-3": lambda impl: fa.TuckerConfig(
        target_modules=["0", "2"], rank=2, n_factors=3, implementation=impl
    ),
    "tt": lambda impl: fa.TTConfig(target_modules=["0", "2"], rank=3, implementation=impl),
    "tt-2": lambda impl: fa.TTConfig(
        target_modules=["0", "2"], rank=2, n_factors=2, implementation=impl
    ),
}


def _model(dtype: torch.dtype) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(24, 18), nn.Tanh(), nn.Linear(18, 12)).to(dtype)


def _adapted(name: str, impl: str, dtype: torch.dtype) -> nn.Module:
    """The adapted model drawn in float64 (the same values for every dtype), then cast."""
    config = CONFIGS[name](impl)
    model = fa.inject(_model(torch.float64), config, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return model.to(dtype)


def _grads(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    x = x.clone().requires_grad_(True)
    y = model(x)
    y.square().sum().backward()
    assert x.grad is not None
    return y.detach(), [x.grad] + [p.grad for p in model.parameters() if p.requires_grad]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_adapters_paths_agree_on_outputs_and_gradients(name: str, dtype: torch.dtype) -> None:
    x = torch.randn(2, 5, 24, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = x.to(dtype)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    ref, ref_grads = _grads(_adapted(name, "factorized", torch.float64), x.double())
    for impl in ("factorized", "merged", "auto"):
        y, grads = _grads(_adapted(name, impl, dtype), x)
        assert y.dtype == dtype
        torch.testing.assert_close(y.double(), ref, rtol=tol, atol=tol)
        for g, r in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(g.double(), r, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_adapters_paths_identity_at_init(name: str) -> None:
    x = torch.randn(4, 24, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    base = _model(torch.float64)
    for impl in ("factorized", "merged"):
        adapted = fa.inject(copy.deepcopy(base), CONFIGS[name](impl))
        assert torch.equal(adapted(x), base(x))


def test_adapters_auto_takes_the_cheaper_path() -> None:
    """A rank-9 TT-matrix of a 384 x 384 weight costs more per row than ``W`` itself (its middle
    core meets every row ``o_1 i_3`` times), so from a few rows on the merged GEMM wins; a
    Tucker update with small ranks stays factorized."""
    model = nn.Sequential(nn.Linear(384, 384))
    tt = fa.inject(copy.deepcopy(model), fa.TTConfig(target_modules=["0"], rank=9))
    layer = tt[0].adapters["default"]
    factorized, merged = layer.step_costs(256)
    assert merged < factorized
    assert layer.takes_merged(256) and not layer.takes_merged(1)
    tucker = fa.inject(copy.deepcopy(model), fa.TuckerConfig(target_modules=["0"], rank=8))
    layer = tucker[0].adapters["default"]
    assert not layer.takes_merged(256) and not layer.takes_merged(1)
    forced = fa.inject(
        copy.deepcopy(model), fa.TuckerConfig(target_modules=["0"], rank=8, implementation="merged")
    )
    assert forced[0].adapters["default"].takes_merged(1)


def test_adapters_paths_empty_batch() -> None:
    for impl in ("factorized", "merged"):
        adapted = _adapted("tt", impl, torch.float64)
        y = adapted(torch.zeros(0, 24, dtype=torch.float64))
        assert y.shape == (0, 12)


def test_adapters_implementation_is_checked_and_saved(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"TTConfig: implementation must be one of"):
        fa.TTConfig(target_modules=["0"], implementation="dense")  # type: ignore[arg-type]
    adapted = _adapted("tucker", "merged", torch.float64)
    fa.save_pretrained(adapted, tmp_path / "a")
    loaded = fa.from_pretrained(_model(torch.float64), tmp_path / "a", is_trainable=True)
    layer = loaded[0].adapters["default"]
    assert layer.config.implementation == "merged"
    x = torch.randn(3, 24, dtype=torch.float64)
    assert torch.equal(loaded(x), adapted(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adapters_tucker_kernels_match_a_dense_reference(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(4)
    sizes = [(4, 2), (3, 3), (2, 1), (5, 2), (2, 2)]  # (o_1, o_2, o_3, i_1, i_2)
    core = torch.randn(2, 3, 1, 2, 2, generator=g, dtype=torch.float64)
    mats = [torch.randn(n, r, generator=g, dtype=torch.float64) for n, r in sizes]
    w = torch.einsum("abcde,ia,jb,kc,ld,me->ijklm", core, *mats).reshape(24, 10)
    x = torch.randn(7, 10, generator=g, dtype=torch.float64)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    cast = [m.to(dtype) for m in mats]
    torch.testing.assert_close(
        tucker_weight(core.to(dtype), cast).reshape(24, 10).double(), w, rtol=tol, atol=tol
    )
    y = tucker_linear(core.to(dtype), cast, x.to(dtype), 3)
    assert y.dtype == dtype
    torch.testing.assert_close(y.double(), x @ w.T, rtol=tol, atol=tol)


# --- convolutions: conv(x) + alpha delta(x), or one convolution with the kernel W + alpha dW ---
CONV_CONFIGS = {
    "tucker-conv": lambda impl: fa.TuckerConfig(
        target_modules=["0", "2"], rank=2, implementation=impl
    ),
    "tt-conv": lambda impl: fa.TTConfig(target_modules=["0", "2"], rank=3, implementation=impl),
}


def _conv_model(dims: int, dtype: torch.dtype) -> nn.Sequential:
    conv = {1: nn.Conv1d, 2: nn.Conv2d}[dims]
    torch.manual_seed(0)
    return nn.Sequential(
        conv(3, 8, 3, padding=1),
        nn.Tanh(),
        conv(8, 6, 3, stride=2, padding=1, padding_mode="reflect", bias=False),
    ).to(dtype)


def _conv_adapted(name: str, impl: str, dims: int, dtype: torch.dtype) -> nn.Module:
    config = CONV_CONFIGS[name](impl)
    model = _conv_model(dims, torch.float64)
    model = fa.inject(model, config, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return model.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("name", sorted(CONV_CONFIGS))
def test_adapters_conv_paths_agree_on_outputs_and_gradients(
    name: str, dims: int, dtype: torch.dtype
) -> None:
    shape = (2, 3) + (7,) * dims
    x = torch.randn(shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    ref, ref_grads = _grads(_conv_adapted(name, "factorized", dims, torch.float64), x)
    for impl in ("factorized", "merged", "auto"):
        y, grads = _grads(_conv_adapted(name, impl, dims, dtype), x.to(dtype))
        assert y.dtype == dtype
        torch.testing.assert_close(y.double(), ref, rtol=tol, atol=tol)
        for g, r in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(g.double(), r, rtol=tol, atol=tol)
    unbatched = _conv_adapted(name, "merged", dims, torch.float64)(x[0])
    torch.testing.assert_close(unbatched, ref[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CONV_CONFIGS))
def test_adapters_conv_paths_identity_at_init(name: str) -> None:
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    base = _conv_model(2, torch.float64)
    for impl in ("factorized", "merged"):
        adapted = fa.inject(copy.deepcopy(base), CONV_CONFIGS[name](impl))
        assert torch.equal(adapted(x), base(x))


def test_adapters_conv_auto_takes_the_cheaper_path() -> None:
    """A Tucker update of rank 32 on 64 channels costs more per pixel than the kernel gradient
    of one convolution with ``W + alpha dW``: on a large input the merged kernel wins; on a
    tiny one (or at rank 4) the factors do, since rebuilding the kernel costs more."""
    model = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1))
    wide = fa.inject(copy.deepcopy(model), fa.TuckerConfig(target_modules=["0"], rank=32))
    layer = wide[0].adapters["default"]
    factorized, merged = layer.conv_step_costs((32, 64, 16, 16))
    assert merged < factorized
    assert layer.conv_takes_merged((32, 64, 16, 16))
    assert not layer.conv_takes_merged((1, 64, 2, 2))
    narrow = fa.inject(copy.deepcopy(model), fa.TuckerConfig(target_modules=["0"], rank=4))
    assert not narrow[0].adapters["default"].conv_takes_merged((32, 64, 16, 16))
    forced = fa.inject(
        copy.deepcopy(model), fa.TTConfig(target_modules=["0"], rank=2, implementation="merged")
    )
    assert forced[0].adapters["default"].conv_takes_merged((1, 64, 2, 2))


# --- TLoRA: W_0 T + s Delta rebuilt, or T applied to the input ---------------------------------
TLORA_CONFIGS = {
    "tr": fa.TLoraConfig(target_modules=["0", "2"], rank=2, transform_rank=2),
    "tr-rank3": fa.TLoraConfig(target_modules=["0", "2"], rank=3, transform_rank=3, n_factors=2),
    "lora": fa.TLoraConfig(target_modules=["0", "2"], rank=2, transform_rank=1, residual="lora"),
    "none": fa.TLoraConfig(target_modules=["0", "2"], transform_rank=2, residual="none"),
}


def _tlora(name: str, path: str, dtype: torch.dtype) -> nn.Module:
    model = fa.inject(
        _model(torch.float64), TLORA_CONFIGS[name], generator=torch.Generator().manual_seed(1)
    )
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    for layer in fa.adapted_layers(model).values():
        adapter = layer.adapters["default"]
        adapter.takes_activations = lambda rows, p=path: p == "activations"  # type: ignore[method-assign]
    return model.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(TLORA_CONFIGS))
def test_adapters_tlora_paths_agree_on_outputs_and_gradients(name: str, dtype: torch.dtype) -> None:
    x = torch.randn(2, 5, 24, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    ref, ref_grads = _grads(_tlora(name, "merged", torch.float64), x)
    y, grads = _grads(_tlora(name, "activations", dtype), x.to(dtype))
    assert y.dtype == dtype
    torch.testing.assert_close(y.double(), ref, rtol=tol, atol=tol)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g.double(), r, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", sorted(TLORA_CONFIGS))
def test_adapters_tlora_activations_identity_at_init(name: str) -> None:
    """``T = I`` at init, exactly for a transform rank that is a power of two."""
    x = torch.randn(4, 24, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    base = _model(torch.float64)
    adapted = fa.inject(copy.deepcopy(base), TLORA_CONFIGS[name])
    layers = fa.adapted_layers(adapted).values()
    assert all(layer.adapters["default"].takes_activations(4) for layer in layers)
    if TLORA_CONFIGS[name].transform_rank in (1, 2):
        assert torch.equal(adapted(x), base(x))
    torch.testing.assert_close(adapted(x), base(x), rtol=1e-12, atol=1e-12)


def test_adapters_tlora_takes_the_cheaper_path() -> None:
    """On a 384 x 384 weight (MiniLM's projections) applying ``T`` to the input costs
    ``3 n d^2`` against ``2 d^3 + n d^2`` for rebuilding ``W_0 T``: the input below about
    ``d`` rows, the rebuild above."""
    model = fa.inject(
        nn.Sequential(nn.Linear(384, 384)),
        fa.TLoraConfig(target_modules=["0"], rank=6, transform_rank=5),
    )
    layer = model[0].adapters["default"]
    activations, merged = layer.step_costs(256)
    assert activations < merged
    assert layer.takes_activations(1) and layer.takes_activations(256)
    assert not layer.takes_activations(512)


@pytest.mark.parametrize("rank", [1, 3])
def test_adapters_tlora_ring_halves_multiply_to_the_ring(rank: int) -> None:
    from factorch.adapters.tlora._layer import ring_halves
    from factorch.nn import TensorizedShape, TensorLayout, TRWeight

    spec = TensorizedShape((4, 3, 5), (2, 3, 4))
    fmt = TRWeight(TensorLayout.tensorized(spec), rank)
    g = torch.Generator().manual_seed(7)
    cores = [torch.randn(s, generator=g, dtype=torch.float64) for s in fmt.factor_shapes]
    for split in range(1, len(cores)):
        a, b = ring_halves(cores, split)
        assert a.shape[1] == b.shape[0] == rank**2
        assert torch.allclose((a @ b).reshape(fmt.weight_shape), fmt(*cores), atol=1e-12)
