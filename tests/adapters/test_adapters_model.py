"""The framework's verbs and boundary: targeting (names, suffixes, regex, all-linear, exclude),
several named adapters (switch, disable, delete, unload), configs validated on creation, and
every refusal pinned by its message (one case each)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from _adapters_cases import CASES, Case, mlp, mlp_input, perturb
from torch import nn

import factorch.adapters as fa


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.ModuleDict(
            {"query": nn.Linear(4, 4), "value": nn.Linear(4, 4), "norm": nn.LayerNorm(4)}
        )
        self.lm_head = nn.Linear(4, 3)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.encoder
        return self.lm_head(e["norm"](e["query"](x) + e["value"](x)))


@pytest.mark.parametrize(
    ("targets", "exclude", "expected"),
    [
        (["query"], (), ["encoder.query"]),
        (["encoder.value", "query"], (), ["encoder.query", "encoder.value"]),
        (r"encoder\.(query|value)", (), ["encoder.query", "encoder.value"]),
        ("all-linear", (), ["encoder.query", "encoder.value"]),  # not the output embedding
        ("ALL-LINEAR", ["value"], ["encoder.query"]),
        (r".*", r".*(norm|head)|encoder|", ["encoder.query", "encoder.value"]),
    ],
)
def test_adapters_target_modules(targets, exclude, expected) -> None:
    model = fa.inject(
        _Tiny(), fa.LoraConfig(target_modules=targets, exclude_modules=exclude, rank=1)
    )
    assert sorted(fa.adapted_layers(model)) == expected
    assert (
        "encoder.query.base_layer.weight" in model.state_dict() or "encoder.query" not in expected
    )


def test_adapters_several_named_adapters() -> None:
    model, x = mlp(), mlp_input()
    y0 = model(x).detach()
    fa.inject(model, fa.LoraConfig(target_modules="all-linear", rank=2), adapter_name="a")
    perturb(model, seed=1)
    ya = model(x).detach()
    fa.inject(model, fa.TLoraConfig(target_modules=["0"], rank=2), adapter_name="b")
    assert fa.adapter_names(model) == ("a", "b")
    perturb(model, seed=2)  # moves only the active adapter "b"... and "a" (frozen) too
    fa.set_adapter(model, "a")
    ya2 = model(x).detach()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".a." in n for n in trainable)
    fa.set_adapter(model, "b")  # layer "2" has no adapter "b": it runs its base layer
    assert fa.adapted_layers(model)["2"].active_adapter is None
    yb = model(x).detach()
    assert not torch.allclose(ya2, yb) and not torch.allclose(yb, y0)
    with fa.disabled(model):
        assert torch.equal(model(x), y0)
    fa.disable_adapters(model)
    assert torch.equal(model(x), y0)
    fa.enable_adapters(model)
    fa.delete_adapter(model, "b")
    assert fa.adapter_names(model) == ("a",)
    assert all(layer.active_adapter is None for layer in fa.adapted_layers(model).values())
    fa.set_adapter(model, "a")
    assert torch.equal(model(x), ya2)
    fa.delete_adapter(model, "a")
    assert not fa.adapted_layers(model) and torch.equal(model(x), y0)
    assert ya.shape == y0.shape


def test_adapters_unload_and_merge_and_unload() -> None:
    model, x = mlp(), mlp_input()
    y0 = model(x).detach()
    fa.inject(model, fa.LoraConfig(target_modules="all-linear", rank=2))
    perturb(model)
    y = model(x).detach()
    fa.merge(model)
    base = fa.unload(copy.deepcopy(model))  # unmerges first
    assert torch.equal(base(x), y0)
    fa.unmerge(model)
    fa.disable_adapters(model)
    assert torch.equal(fa.merge_and_unload(copy.deepcopy(model))(x), y0)  # disabled: not merged
    fa.enable_adapters(model)
    assert torch.allclose(fa.merge_and_unload(model)(x), y, atol=1e-12)


def test_adapters_parameter_report() -> None:
    model = fa.inject(mlp(), fa.LoraConfig(target_modules=["0"], rank=2))
    count = fa.trainable_parameters(model)
    assert (count.trainable, count.total) == (2 * (12 + 16), 12 * 16 + 16 + 16 * 8 + 8 + 56)
    assert str(count).startswith("trainable params: 56 || all params: 400 || trainable%: 14.")
    shared = fa.inject(
        mlp(),
        fa.AtlasConfig(target_modules="all-linear", granularity="task"),
        context=[fa.task_vector(mlp(), mlp(seed=1))],
    )
    assert fa.trainable_parameters(shared).trainable == 1  # one shared coefficient


def test_adapters_numpy_ranks_and_half_precision() -> None:
    cfg = fa.LoraConfig(target_modules="all-linear", rank=np.int64(2), init="pissa")
    assert cfg.rank == 2 and type(cfg.rank) is int
    for dtype in (torch.float16, torch.bfloat16):
        model = fa.inject(mlp(dtype), cfg)
        x = mlp_input(dtype)
        assert model(x).dtype == dtype
        assert torch.equal(fa.disable_adapters(model)(x), mlp(dtype)(x))


def test_adapters_autocast_forward() -> None:
    model = fa.inject(mlp(torch.float32), fa.TLoraConfig(target_modules="all-linear"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(mlp_input(torch.float32))
    assert y.dtype == torch.bfloat16 and bool(torch.isfinite(y).all())


@pytest.mark.cuda
@pytest.mark.parametrize("case", CASES[::3], ids=repr)
def test_adapters_cuda(case: Case, tmp_path) -> None:
    base, adapted, x = case.build()
    adapted, base, x = adapted.cuda(), base.cuda(), x.cuda()
    perturb(adapted)
    y = adapted(x)
    fa.save_pretrained(adapted, tmp_path / "a")
    loaded = fa.from_pretrained(copy.deepcopy(base), tmp_path / "a")
    assert torch.allclose(loaded(x), y)
    fa.merge(adapted)
    assert torch.allclose(adapted(x), y, atol=1e-8)


# --- refusals ------------------------------------------------------------------------------------
_RANKED = [c for c in CASES if hasattr(c.config, "rank")]


def _with(config: fa.AdapterConfig, **changes) -> dict:
    data = config.to_dict()
    data.pop("method")
    data.update(changes)
    return data


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_adapters_no_module_matched(case: Case) -> None:
    cfg = type(case.config)(**_with(case.config, target_modules=["nope"]))
    with pytest.raises(ValueError, match="inject: no module of the model matches target_modules"):
        fa.inject(case.model(), cfg, context=case.context(case.model()) if case.context else None)


@pytest.mark.parametrize("case", _RANKED, ids=repr)
def test_adapters_rank_zero(case: Case) -> None:
    with pytest.raises(ValueError, match=r"Config: rank must be a positive int; got 0\."):
        type(case.config)(**_with(case.config, rank=0))


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_adapters_unsupported_target(case: Case) -> None:
    model = nn.Sequential(nn.Linear(12, 4), nn.LayerNorm(4))
    cfg = type(case.config)(**_with(case.config, target_modules=["1"]))
    with pytest.raises(
        TypeError, match=r"inject: module '1' is a LayerNorm, which \w+ cannot adapt"
    ):
        fa.inject(model, cfg)


BAD_CONFIGS = [
    (lambda: fa.LoraConfig(target_modules=3), TypeError, "target_modules must be a str"),
    (lambda: fa.LoraConfig(target_modules=[]), ValueError, "must name at least one module"),
    (
        lambda: fa.LoraConfig(target_modules=["a", 1]),
        TypeError,
        "entries must be non-empty strings",
    ),
    (lambda: fa.LoraConfig(target_modules="(("), ValueError, "not a valid regular expression"),
    (
        lambda: fa.LoraConfig(target_modules=["a"], exclude_modules="all-linear"),
        ValueError,
        "exclude_modules cannot be 'all-linear'",
    ),
    (
        lambda: fa.LoraConfig(target_modules=["a"], rank=1.5),
        TypeError,
        "rank must be a positive int",
    ),
    (
        lambda: fa.LoraConfig(target_modules=["a"], alpha=float("nan")),
        ValueError,
        "alpha must be a finite number",
    ),
    (
        lambda: fa.LoraConfig(target_modules=["a"], dropout=1.0),
        ValueError,
        r"dropout must be a probability in \[0, 1\)",
    ),
    (
        lambda: fa.LoraConfig(target_modules=["a"], use_rslora=1),
        TypeError,
        "use_rslora must be a bool",
    ),
    (lambda: fa.LoraConfig(target_modules=["a"], init="olora"), ValueError, "init must be one of"),
    (lambda: fa.CordaConfig(target_modules=["a"], mode="x"), ValueError, "mode must be one of"),
    (lambda: fa.CordaConfig(target_modules=["a"], damping=0), ValueError, "damping must be > 0"),
    (
        lambda: fa.TLoraConfig(target_modules=["a"], residual="x"),
        ValueError,
        "residual must be one of",
    ),
    (
        lambda: fa.TLoraConfig(target_modules=["a"], transform_rank=0),
        ValueError,
        "transform_rank must be a positive int",
    ),
    (
        lambda: fa.LeftConfig(target_modules=["a"], activation="yes"),
        TypeError,
        "activation must be a bool",
    ),
    (
        lambda: fa.AtlasConfig(target_modules=["a"], granularity="x"),
        ValueError,
        "granularity must be one of",
    ),
    (
        lambda: fa.TuckerConfig(target_modules=["a"], rank=()),
        ValueError,
        "rank must be a positive int",
    ),
    (
        lambda: fa.TTConfig(target_modules=["a"], n_factors=0),
        ValueError,
        "n_factors must be a positive",
    ),
    (lambda: fa.LoraConfig.from_dict({"method": "tlora"}), ValueError, "describes method 'tlora'"),
    (
        lambda: fa.LoraConfig.from_dict({"method": "lora", "target_modules": ["a"], "r": 2}),
        ValueError,
        r"unknown fields \['r'\]",
    ),
]


@pytest.mark.parametrize(("make", "error", "message"), BAD_CONFIGS)
def test_adapters_bad_configs(make, error, message) -> None:
    with pytest.raises(error, match=message):
        make()


def _grouped() -> nn.Module:
    return nn.Sequential(nn.Conv2d(4, 4, 3, groups=2))


_LORA = fa.LoraConfig(target_modules=["0"], rank=2)
BAD_INJECTS = [
    (lambda: fa.inject("model", _LORA), TypeError, "inject: model must be an nn.Module"),
    (lambda: fa.inject(mlp(), {"rank": 2}), TypeError, "inject: config must be an adapter config"),
    (lambda: fa.inject(mlp(), _LORA, adapter_name="a.b"), ValueError, "adapter_name must be"),
    (lambda: fa.inject(fa.inject(mlp(), _LORA), _LORA), ValueError, "already has an adapter named"),
    (
        lambda: fa.inject(mlp(), _LORA, generator=0),
        TypeError,
        "generator must be a torch.Generator",
    ),
    (lambda: fa.inject(mlp(), _LORA, context={"0": 1}), TypeError, "'lora' takes no context"),
    (lambda: fa.inject(_grouped(), _LORA), ValueError, "grouped convolution"),
    (
        lambda: fa.inject(mlp(), fa.LoraConfig(target_modules=["0"], rank=13, init="pissa")),
        ValueError,
        r"inject: module '0': .*rank 13 exceeds min\(out, fan_in\) = 12",
    ),
    (
        lambda: fa.inject(mlp(), fa.LoraConfig(target_modules=["0"], rank=10**9)),
        ValueError,
        "inject: module '0': .*rank 1000000000",
    ),
    (
        lambda: fa.inject(mlp(), fa.CordaConfig(target_modules=["0"])),
        ValueError,
        "CorDA needs context=",
    ),
    (
        lambda: fa.inject(mlp(), fa.CordaConfig(target_modules=["0"]), context={}),
        ValueError,
        "no covariance for module '0'",
    ),
    (
        lambda: fa.inject(
            mlp(),
            fa.CordaConfig(target_modules=["0"]),
            context={"0": torch.zeros(12, 12, dtype=torch.float64)},
        ),
        ValueError,
        "the context covariance is zero",
    ),
    (
        lambda: fa.inject(mlp(), fa.AtlasConfig(target_modules=["0"])),
        ValueError,
        r"aTLAS needs context=\[task vector",
    ),
    (
        lambda: fa.inject(mlp(), fa.AtlasConfig(target_modules=["0"]), context=[{"2.weight": 1}]),
        ValueError,
        "task vector 0 has no tensor '0.weight'",
    ),
    (
        lambda: fa.inject(
            mlp(), fa.AtlasConfig(target_modules=["0"]), context=[{"0.weight": torch.zeros(3)}]
        ),
        ValueError,
        r"task vector 0 has a weight of shape \(3,\)",
    ),
]


@pytest.mark.parametrize(("make", "error", "message"), BAD_INJECTS)
def test_adapters_bad_injects(make, error, message) -> None:
    with pytest.raises(error, match=message):
        make()


def test_adapters_bad_verbs() -> None:
    model = fa.inject(mlp(), _LORA)
    fa.inject(model, fa.TuckerConfig(target_modules=["0"], rank=2), adapter_name="t")
    with pytest.raises(ValueError, match="set_adapter: no adapter named 'x'"):
        fa.set_adapter(model, "x")
    with pytest.raises(ValueError, match="delete_adapter: no adapter named 'x'"):
        fa.delete_adapter(model, "x")
    fa.merge(model)
    with pytest.raises(ValueError, match="set_adapter: adapter 't' is merged into '0'"):
        fa.set_adapter(model, "default")
    with pytest.raises(ValueError, match="delete_adapter: adapter 't' is merged into '0'"):
        fa.delete_adapter(model, "t")
    with pytest.raises(ValueError, match="to_lora: rank must be a positive int; got 0"):
        fa.to_lora(model, rank=0)
    with pytest.raises(ValueError, match="to_lora: the model has no adapter named 'x'"):
        fa.to_lora(model, rank=1, adapter_name="x")
    with pytest.raises(TypeError, match="merge: model must be an nn.Module"):
        fa.merge(None)
    with pytest.raises(ValueError, match="save_pretrained: the model has no adapters"):
        fa.save_pretrained(mlp(), "unused")


def test_adapters_merge_refuses_diverged_weights() -> None:
    model = fa.inject(mlp(), _LORA)
    with torch.no_grad():
        fa.adapted_layers(model)["0"].adapters["default"].lora_B.fill_(float("inf"))
    with pytest.raises(ValueError, match="merge: merging adapter 'default' into '0' gives NaN"):
        fa.merge(model)
    assert fa.adapted_layers(model)["0"].merged_adapter is None


def test_adapters_register_method_refusals() -> None:
    with pytest.raises(TypeError, match="register_method: layer_class must be an Adapter"):
        fa.register_method(nn.Linear)
    with pytest.raises(ValueError, match="method 'lora' is already registered"):

        class Other(fa.lora.LoraLayer):
            pass

        fa.register_method(Other)


# --- the mode-seeking loss -----------------------------------------------------------------------
def test_adapters_mode_seeking_loss() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 8, generator=g, dtype=torch.float64)
    w = z @ torch.randn(8, 8, generator=g, dtype=torch.float64)
    diverse = torch.randn(6, 3, 4, 4, generator=g, dtype=torch.float64)
    collapsed = diverse.mean(0, keepdim=True).expand(6, 3, 4, 4)
    feats = [torch.randn(6, 5, generator=g, dtype=torch.float64)]
    # no mapping network (styles = latents): 15 pairs of ratio ~1 each, plus the outputs' ratios
    # (~1 when diverse, 0 when collapsed): the loss 1 / sum roughly doubles under mode collapse
    assert fa.mode_seeking_loss(z, z, collapsed) > 1.8 * fa.mode_seeking_loss(z, z, diverse)
    out = diverse.clone().requires_grad_(True)
    loss = fa.mode_seeking_loss(z, w, out, features=feats)
    loss.backward()  # descending the loss spreads the outputs apart
    with torch.no_grad():
        spread = (out - 1e-2 * out.grad).flatten(1)
        assert torch.pdist(spread, 1).sum() > torch.pdist(diverse.flatten(1), 1).sum()
    # pairs are formed within clusters by member (non-adjacent members count)
    clusters = torch.tensor([0, 1, 0, 1, 2, 2])
    alone = torch.tensor([0, 1, 2, 3, 4, 5])
    assert float(fa.mode_seeking_loss(z, w, diverse, clusters=alone)) == 0.0
    by_pair = fa.mode_seeking_loss(z, w, diverse, clusters=clusters)
    assert torch.isfinite(by_pair) and by_pair > 0
    reals = diverse[[0, 3]]
    assert fa.assign_clusters(diverse, reals)[[0, 3]].tolist() == [0, 1]
    with pytest.raises(ValueError, match="mode_seeking_loss: outputs must be a batch of 6"):
        fa.mode_seeking_loss(z, w, diverse[:3])
    with pytest.raises(TypeError, match="mode_seeking_loss: styles must be a floating-point"):
        fa.mode_seeking_loss(z, w.long(), diverse)


@pytest.mark.parametrize("rank", [1, 3])
@pytest.mark.parametrize("layout", ["matrix_chain", "tensorized"])
def test_adapters_tlora_ring_tensor_matches_the_format(layout: str, rank: int) -> None:
    from factorch.adapters.tlora import ring_tensor
    from factorch.nn import TensorizedShape, TensorLayout, TRWeight

    spec = TensorizedShape((4, 3, 5), (2, 3, 4))
    fmt = TRWeight(getattr(TensorLayout, layout)(spec), rank)
    g = torch.Generator().manual_seed(7)
    cores = [
        torch.randn(s, generator=g, dtype=torch.float64, requires_grad=True)
        for s in fmt.factor_shapes
    ]
    ours, theirs = ring_tensor(fmt, cores), fmt(*cores)
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    w = torch.randn(ours.shape, generator=g, dtype=torch.float64)
    g_ours = torch.autograd.grad((ours * w).sum(), cores)
    g_theirs = torch.autograd.grad((theirs * w).sum(), cores)
    assert all(torch.allclose(a, b, rtol=1e-12, atol=1e-12) for a, b in zip(g_ours, g_theirs))
