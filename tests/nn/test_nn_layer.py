"""Contract battery of the factorized layers (``factorch.nn._layer``), run on every layer type
and format.

For each case (layer type x format, see ``_nn_cases.py``): ``from_dense`` at an exact rank
computes the dense layer's function and keeps its training/eval mode; ``state_dict`` round trip;
the factorized and reconstructed paths agree in values and gradients; ``torch.compile`` agrees;
``torch.export`` with a dynamic batch dimension agrees at other batch sizes; gradients reach every
factor; autocast gives the autocast dtype; the cost-based ``"auto"`` choice follows the counts.
"""

from __future__ import annotations

import copy
import io
import json

import pytest
import torch
from _nn_cases import CASES, factorized_layers, set_implementation
from torch import nn

import factorch.nn as fnn

# float64: exact to round-off; float32: round-off of a few chained products
TOL = {torch.float64: 1e-10, torch.float32: 2e-4}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_from_dense_at_exact_rank_reproduces_dense_float64(case):
    g = torch.Generator().manual_seed(1)
    dense, layer = case.build(torch.float64, g)
    x = case.make_input(torch.float64, g)
    for impl in ("factorized", "reconstructed"):
        set_implementation(layer, impl)
        assert _rel(layer(x), dense(x)) < TOL[torch.float64], impl


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.name.startswith(("linear", "conv2d"))], ids=str
)
def test_from_dense_float32(case):
    g = torch.Generator().manual_seed(2)
    dense, layer = case.build(torch.float32, g)
    x = case.make_input(torch.float32, g)
    assert all(p.dtype == torch.float32 for p in layer.parameters())
    assert all(f.factors[0].dtype == torch.float32 for f in factorized_layers(layer))
    assert _rel(layer(x), dense(x)) < (1e-3 if case.format == "cp" else TOL[torch.float32])


@pytest.mark.parametrize("case", CASES, ids=str)
def test_state_dict_round_trip(case):
    g = torch.Generator().manual_seed(3)
    _, layer = case.build(torch.float64, g)
    x = case.make_input(torch.float64, g)
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    fresh = copy.deepcopy(layer)
    for p in fresh.parameters():
        torch.nn.init.normal_(p)
    assert _rel(fresh(x), layer(x)) > 1e-3  # the fresh copy really differs before loading
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(fresh(x), layer(x))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_factorized_and_reconstructed_agree_in_values_and_gradients(case, dtype):
    g = torch.Generator().manual_seed(4)
    _, layer = case.build(dtype, g)
    x = case.make_input(dtype, g)
    if x.is_floating_point():
        x.requires_grad_(True)
    outs, grads = [], []
    for impl in ("factorized", "reconstructed"):
        set_implementation(layer, impl)
        layer.zero_grad()
        if x.grad is not None:
            x.grad = None
        y = layer(x)
        (y * torch.linspace(-1, 1, y.numel(), dtype=dtype).reshape(y.shape)).sum().backward()
        outs.append(y.detach())
        grads.append(
            [p.grad.clone() for p in layer.parameters()]
            + ([x.grad.clone()] if x.is_floating_point() else [])
        )
    tol = TOL[dtype] * (10 if dtype == torch.float32 else 1)
    assert _rel(outs[0], outs[1]) < tol
    for a, b in zip(*grads):
        assert _rel(a, b) < tol


@pytest.mark.parametrize("case", CASES, ids=str)
def test_gradients_reach_every_factor(case):
    g = torch.Generator().manual_seed(5)
    _, layer = case.build(torch.float64, g)
    x = case.make_input(torch.float64, g)
    for impl in ("factorized", "reconstructed"):
        set_implementation(layer, impl)
        layer.zero_grad()
        layer(x).pow(2).sum().backward()
        for name, p in layer.named_parameters():
            assert p.grad is not None and float(p.grad.abs().max()) > 0, (impl, name)


COMPILE_CASES = [c for c in CASES if c.name.startswith(("linear", "conv2d", "embedding-tt"))]


@pytest.mark.parametrize("case", COMPILE_CASES, ids=str)
def test_torch_compile_aot_eager_matches_eager(case):
    g = torch.Generator().manual_seed(6)
    _, layer = case.build(torch.float32, g)
    x = case.make_input(torch.float32, g)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    for impl in ("factorized", "reconstructed"):
        set_implementation(layer, impl)
        torch._dynamo.reset()
        assert _rel(compiled(x), layer(x)) < 1e-6


# importing inductor's mkldnn helpers emits torch's own torch.jit DeprecationWarning
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_torch_compile_inductor_matches_eager():
    g = torch.Generator().manual_seed(7)
    layer = fnn.FactorizedLinear(64, 32, format="tt", rank=4, generator=g)
    x = torch.randn(16, 64, generator=g)
    torch._dynamo.reset()
    compiled = torch.compile(layer)
    y = compiled(x)
    assert _rel(y, layer(x)) < 1e-5
    y.sum().backward()
    assert all(p.grad is not None for p in layer.parameters())


@pytest.mark.parametrize("case", [c for c in CASES if not c.name.startswith("embedding")], ids=str)
def test_autocast_bfloat16(case):
    g = torch.Generator().manual_seed(8)
    _, layer = case.build(torch.float32, g)
    x = case.make_input(torch.float32, g)
    ref = layer(x)
    for impl in ("factorized", "reconstructed"):
        set_implementation(layer, impl)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(x)
        assert y.dtype == torch.bfloat16, impl
        assert _rel(y.float(), ref) < 0.1, impl


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.name.startswith(("linear", "conv2d"))], ids=str
)
def test_gradcheck_factorized_path(case):
    g = torch.Generator().manual_seed(9)
    _, layer = case.build(torch.float64, g)
    set_implementation(layer, "factorized")
    x = case.make_input(torch.float64, g)[:1].requires_grad_(True)
    params = tuple(layer.parameters())

    def f(x, *ps):
        with torch.nn.utils.stateless._reparametrize_module(
            layer, {n: p for (n, _), p in zip(layer.named_parameters(), ps)}
        ):
            return layer(x)

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_auto_picks_the_cheaper_path(case, monkeypatch):
    g = torch.Generator().manual_seed(10)
    _, layer = case.build(torch.float64, g)
    x = case.make_input(torch.float64, g)
    set_implementation(layer, "auto")
    inner = factorized_layers(layer)[0]
    calls = []
    original = inner.use_factorized

    def spy(fact, recon):
        calls.append((fact, recon, original(fact, recon)))
        return calls[-1][2]

    monkeypatch.setattr(inner, "use_factorized", spy)
    layer(x)
    fact, recon, chose = calls[-1]
    assert fact > 0 and recon > 0
    assert chose == (fact <= recon)


def _resized(x: torch.Tensor, batch: int, g: torch.Generator) -> torch.Tensor:
    """An input like ``x`` with leading dimension ``batch``."""
    shape = (batch, *x.shape[1:])
    if x.is_floating_point():
        return torch.randn(shape, generator=g, dtype=x.dtype)
    return torch.randint(0, int(x.max()) + 1, shape, generator=g)


EXPORT_CASES = [
    pytest.param(c, impl, id=f"{c}-{impl}")
    for c in CASES
    for impl in (
        ("auto", "factorized", "reconstructed")
        if c.name in ("linear-cp", "conv2d-tt")
        else ("auto",)
    )
]


@pytest.mark.parametrize(("case", "implementation"), EXPORT_CASES)
def test_torch_export_with_a_dynamic_batch_matches_eager(case, implementation):
    """Issue 9.15: the cost model used to turn the batch size into a Python int, so export with a
    dynamic batch dimension failed for every layer. Symbolic sizes now count as unbounded."""
    g = torch.Generator().manual_seed(12)
    _, layer = case.build(torch.float32, g)
    set_implementation(layer, implementation)
    x = case.make_input(torch.float32, g)
    batch = torch.export.Dim("batch", min=2, max=64)
    program = torch.export.export(layer, (x,), dynamic_shapes=({0: batch},))
    exported = program.module()
    for size in (5, 11):
        xb = _resized(x, size, g)
        assert _rel(exported(xb), layer(xb)) < 1e-5, size


MODE_CASES = [
    (nn.Linear(12, 8), fnn.FactorizedLinear, {"format": "cp", "rank": 2}),
    (nn.Conv1d(3, 4, 3), fnn.FactorizedConv1d, {"format": "tt", "rank": 2}),
    (nn.Conv2d(3, 4, 3), fnn.FactorizedConv2d, {"format": "tucker", "rank": 2}),
    (nn.Conv3d(3, 4, 2), fnn.FactorizedConv3d, {"format": "lowrank", "rank": 2}),
    (nn.Embedding(24, 6), fnn.FactorizedEmbedding, {"format": "tr", "rank": 2}),
    (nn.Linear(12, 8), fnn.LowRankLinear, {"rank": 3}),
    (nn.Conv2d(3, 4, 3), fnn.LowRankConv2d, {"rank": 3}),
]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(
    ("dense", "cls", "kwargs"), MODE_CASES, ids=[c[1].__name__ for c in MODE_CASES]
)
def test_from_dense_keeps_the_training_mode(dense, cls, kwargs, training):
    """Issue 9.16: an eval() source used to come back in training mode."""
    dense = copy.deepcopy(dense).train(training)
    layer = cls.from_dense(dense, **kwargs)
    assert layer.training is training
    assert layer.to_dense().training is training


@pytest.mark.parametrize("case", CASES, ids=str)
def test_config_rebuilds_the_layer_without_decomposing(case):
    """Issue 13's groundwork: a JSON config plus a state_dict reproduce a factorized layer."""
    g = torch.Generator().manual_seed(13)
    _, outer = case.build(torch.float64, g)
    layer = factorized_layers(outer)[0]
    config = json.loads(json.dumps(layer.config()))
    assert config["layer"] == type(layer).__name__ and config["weight"]["format"] == case.format
    twin = type(layer).from_config(config, dtype=torch.float64)
    twin.load_state_dict(layer.state_dict())
    assert twin.parametrization.layout == layer.parametrization.layout
    assert _rel(twin.weight, layer.weight) < 1e-14  # same factors (BLAS may reorder sums)


def test_from_config_refuses_another_layers_config():
    config = fnn.FactorizedConv2d(3, 4, 3, rank=2).config()
    with pytest.raises(ValueError, match="FactorizedLinear.from_config: config must describe a"):
        fnn.FactorizedLinear.from_config(config)


@pytest.mark.cuda
@pytest.mark.parametrize("case", CASES, ids=str)
def test_cuda_device_follows(case):
    g = torch.Generator().manual_seed(11)
    dense, layer = case.build(torch.float32, g)
    x = case.make_input(torch.float32, g)
    ref = layer(x)
    layer = layer.cuda()
    for impl in ("factorized", "reconstructed"):
        set_implementation(layer, impl)
        y = layer(x.cuda())
        assert y.device.type == "cuda"
        assert _rel(y.cpu(), ref) < 1e-4
    if isinstance(layer, fnn.FactorizedLayer):  # from_dense on a CUDA layer stays on CUDA
        spec = getattr(layer, "shape", None)
        kwargs = {"shape": spec} if isinstance(spec, fnn.TensorizedShape) else {}
        rebuilt = type(layer).from_dense(
            dense.cuda(), format=case.format, rank=layer.rank, **kwargs
        )
        assert all(p.device.type == "cuda" for p in rebuilt.parameters())
