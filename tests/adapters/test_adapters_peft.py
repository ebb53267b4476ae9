"""Against Hugging Face PEFT (the anchor): factorch's LoRA on the same model with the same
initial weights gives PEFT's outputs and gradients (Linear and Conv2d, plain and rsLoRA), and
``to_lora`` files load in PEFT and reproduce the adapted model."""

from __future__ import annotations

import copy

import peft  # the anchor, in the test extra: imported, never skipped
import pytest
import torch
from _adapters_cases import perturb
from torch import nn

import factorch.adapters as fa


def _models() -> dict[str, tuple[nn.Module, torch.Tensor, list[str]]]:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(10, 12), nn.Tanh(), nn.Linear(12, 5)).double()
    cnn = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, stride=2), nn.Tanh(), nn.Conv2d(6, 2, 1)
    ).double()
    g = torch.Generator().manual_seed(2)
    return {
        "linear": (mlp, torch.randn(7, 10, generator=g, dtype=torch.float64), ["0", "2"]),
        "conv": (cnn, torch.randn(2, 3, 9, 9, generator=g, dtype=torch.float64), ["0", "2"]),
    }


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("rslora", [False, True])
def test_adapters_lora_matches_peft_outputs_and_gradients(kind: str, rslora: bool) -> None:
    base, x, targets = _models()[kind]
    cfg = peft.LoraConfig(r=3, lora_alpha=5, target_modules=targets, use_rslora=rslora)
    theirs = peft.get_peft_model(copy.deepcopy(base), cfg)
    ours = fa.inject(
        copy.deepcopy(base),
        fa.LoraConfig(target_modules=targets, rank=3, alpha=5, use_rslora=rslora),
    )
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for name in targets:
            a = torch.randn(ours[int(name)].adapters["default"].lora_A.shape, generator=g)
            b = torch.randn(ours[int(name)].adapters["default"].lora_B.shape, generator=g)
            mine = ours[int(name)].adapters["default"]
            mine.lora_A.copy_(a)
            mine.lora_B.copy_(b)
            layer = theirs.base_model.model[int(name)]
            layer.lora_A["default"].weight.copy_(a.reshape(layer.lora_A["default"].weight.shape))
            layer.lora_B["default"].weight.copy_(b.reshape(layer.lora_B["default"].weight.shape))
    y_ours, y_theirs = ours(x), theirs(x)
    assert torch.allclose(y_ours, y_theirs, rtol=1e-12, atol=1e-12)
    y_ours.square().sum().backward()
    y_theirs.square().sum().backward()
    for name in targets:
        mine = ours[int(name)].adapters["default"]
        layer = theirs.base_model.model[int(name)]
        ga, gb = layer.lora_A["default"].weight.grad, layer.lora_B["default"].weight.grad
        assert torch.allclose(mine.lora_A.grad, ga.reshape(mine.lora_A.shape), rtol=1e-10)
        assert torch.allclose(mine.lora_B.grad, gb.reshape(mine.lora_B.shape), rtol=1e-10)
    n_theirs = sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    assert fa.trainable_parameters(ours).trainable == n_theirs


@pytest.mark.parametrize(
    "config",
    [
        fa.TLoraConfig(target_modules=["0", "2"], rank=2),
        fa.TuckerConfig(target_modules=["0", "2"], rank=2),
        fa.LeftConfig(target_modules=["0", "2"], rank=1),
    ],
    ids=lambda c: c.method,
)
@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_adapters_to_lora_files_load_in_peft(kind: str, config: fa.AdapterConfig, tmp_path) -> None:
    base, x, _ = _models()[kind]
    ours = fa.inject(copy.deepcopy(base), config)
    perturb(ours)
    export = fa.to_lora(ours, rank=64)
    export.save_peft(tmp_path / "lora")
    loaded = peft.PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "lora")
    assert torch.allclose(loaded(x), ours(x), rtol=1e-9, atol=1e-9)
    low = fa.to_lora(ours, rank=1)
    assert 0 < low.max_relative_error < 1
    with pytest.raises(FileExistsError, match="already exist"):
        export.save_peft(tmp_path / "lora")


def test_adapters_pissa_matches_peft() -> None:
    """PiSSA init: PEFT moves ``s B A`` out of the base weight, factorch keeps the base and
    subtracts the frozen initial ``s B_0 A_0``; the factors (up to each component's sign), the
    outputs, the gradients and the model after an SGD step agree (float32: PEFT refuses
    PiSSA in float64)."""
    base, x, targets = _models()["linear"]
    base, x = base.float(), x.float()
    cfg = peft.LoraConfig(r=3, lora_alpha=5, target_modules=targets, init_lora_weights="pissa")
    theirs = peft.get_peft_model(copy.deepcopy(base), cfg)
    ours = fa.inject(
        copy.deepcopy(base), fa.LoraConfig(target_modules=targets, rank=3, alpha=5, init="pissa")
    )
    pairs, signs = [], []
    for name in targets:
        mine = ours[int(name)].adapters["default"]
        layer = theirs.base_model.model[int(name)]
        a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        sign = torch.sign((mine.lora_A * a).sum(1)).detach()
        assert torch.allclose(mine.lora_A, sign[:, None] * a, rtol=1e-4, atol=1e-6)
        assert torch.allclose(mine.lora_B, b * sign[None, :], rtol=1e-4, atol=1e-6)
        pairs.append((mine, layer))
        signs.append(sign)
    y_ours, y_theirs = ours(x), theirs(x)
    assert torch.allclose(y_ours, base(x), rtol=1e-5, atol=1e-5)
    assert torch.allclose(y_ours, y_theirs, rtol=1e-4, atol=1e-5)
    (y_ours - 1).square().sum().backward()
    (y_theirs - 1).square().sum().backward()
    for (mine, layer), sign in zip(pairs, signs):
        ga, gb = layer.lora_A["default"].weight.grad, layer.lora_B["default"].weight.grad
        assert torch.allclose(mine.lora_A.grad, sign[:, None] * ga, rtol=1e-4, atol=1e-6)
        assert torch.allclose(mine.lora_B.grad, gb * sign[None, :], rtol=1e-4, atol=1e-6)
    for model in (ours, theirs):
        torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    moved = (ours(x) - y_ours).abs().max().detach()
    assert moved > 1e-3
    assert torch.allclose(ours(x), theirs(x), rtol=1e-4, atol=1e-3 * float(moved))
