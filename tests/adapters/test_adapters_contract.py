"""The contract every adapter method satisfies (issue 13), on every method and layer kind:
identity at init, only adapter parameters train, disable equals base, merge equals the unmerged
forward, unmerge restores the base weights bit for bit, save then load reproduces outputs,
merge_and_unload gives plain layers computing the same function, and the LoRA export of the
update at full rank is exact."""

from __future__ import annotations

import copy

import pytest
import torch
from _adapters_cases import CASES, Case, adapter_params, perturb
from torch import nn

import factorch.adapters as fa


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_adapters_identity_at_init_and_trainable_split(case: Case) -> None:
    base, adapted, x = case.build()
    assert (adapted(x) - base(x)).abs().max() <= 1e-6 * base(x).abs().max()
    ours = {id(p) for p in adapter_params(adapted)}
    assert ours
    for name, p in adapted.named_parameters():
        assert p.requires_grad == (id(p) in ours), name
    count = fa.trainable_parameters(adapted)
    assert count.trainable == sum(p.numel() for p in adapter_params(adapted)) > 0
    assert count.adapters == {"default": count.trainable}


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_adapters_gradients_reach_the_adapter(case: Case) -> None:
    _, adapted, x = case.build()
    perturb(adapted)
    adapted(x).square().sum().backward()
    grads = [p.grad for p in adapter_params(adapted)]
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    assert any(bool(g.abs().sum() > 0) for g in grads if g is not None)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_adapters_disable_merge_unmerge(case: Case) -> None:
    base, adapted, x = case.build()
    weights = {n: p.detach().clone() for n, p in base.named_parameters()}
    perturb(adapted)
    y = adapted(x).detach()
    y0 = base(x).detach()
    assert (y - y0).abs().max() > 1e-4  # the adapter now changes the function
    with fa.disabled(adapted):
        assert torch.equal(adapted(x), y0)
    assert torch.equal(adapted(x), y)
    fa.merge(adapted)
    assert torch.allclose(adapted(x), y, rtol=1e-10, atol=1e-10)
    with fa.disabled(adapted):  # merged, then disabled: the kept base weights, exactly
        assert torch.equal(adapted(x), y0)
    fa.unmerge(adapted)
    for name, p in adapted.named_parameters():
        key = name.replace(".base_layer", "")
        if key in weights:
            assert torch.equal(p, weights[key]), name
    assert torch.equal(adapted(x), y)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_adapters_save_then_load_reproduces_outputs(case: Case, tmp_path) -> None:
    base, adapted, x = case.build()
    perturb(adapted)
    y = adapted(x).detach()
    fa.save_pretrained(adapted, tmp_path / "a")
    fresh = copy.deepcopy(base)
    loaded = fa.from_pretrained(fresh, tmp_path / "a")
    assert loaded is fresh
    out = loaded(x)
    # A frozen model may take another contraction order than a trainable one (the cost model
    # counts the backward pass): equal to rounding to the trainable original, bit-identical to
    # the same model frozen.
    torch.testing.assert_close(out, y, rtol=1e-12, atol=1e-15)
    for p in adapted.parameters():
        p.requires_grad_(False)
    assert torch.equal(out, adapted(x))
    assert not any(p.requires_grad for p in loaded.parameters())
    trainable = fa.from_pretrained(copy.deepcopy(base), tmp_path / "a", is_trainable=True)
    assert {id(p) for p in adapter_params(trainable)} == {
        id(p) for p in trainable.parameters() if p.requires_grad
    }


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_adapters_merge_and_unload_and_lora_export(case: Case) -> None:
    _, adapted, x = case.build()
    perturb(adapted)
    y = adapted(x).detach()
    export = fa.to_lora(adapted, rank=64)
    assert export.max_relative_error < 1e-12
    for name, f in export.modules.items():
        layer = fa.adapted_layers(adapted)[name]
        delta = layer.adapters["default"].delta_weight(layer.weight)
        approx = (f.B @ f.A.reshape(f.A.shape[0], -1)).reshape(delta.shape)
        assert torch.allclose(approx, delta, atol=1e-10)
    plain = fa.merge_and_unload(adapted)
    assert not fa.adapted_layers(plain)
    assert all(type(m) in (nn.Linear, nn.Conv2d, nn.ReLU, nn.Sequential) for m in plain.modules())
    assert torch.allclose(plain(x), y, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_adapters_float32_identity_and_merge(case: Case) -> None:
    base, adapted, x = case.build(torch.float32)
    assert adapted(x).dtype == torch.float32
    assert (adapted(x) - base(x)).abs().max() <= 1e-6 * base(x).abs().max()
    perturb(adapted)
    y = adapted(x).detach()
    fa.merge(adapted)
    assert torch.allclose(adapted(x), y, rtol=1e-4, atol=1e-5)
