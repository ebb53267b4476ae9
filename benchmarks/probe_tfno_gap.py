"""Probe of the TFNO-vs-dense-FNO gap (issue 12, helper tfnogap): factorch only, the data,
model and training of ``bench_operator.py`` (``--n-train 500 --n-test 100 --epochs 20``), with
one change per configuration.

Changes (keyword ``changes`` of a configuration):

* ``factor_lr`` / ``core_lr``: the spectral weights' parameters (all of them / only the Tucker
  cores) in their own AdamW parameter group at this multiple of the learning rate (the library
  option ``spectral_lr_scale`` does the same by storing the parameters divided by the scale);
* ``warm="dense_init"``: the factorized weights decomposed from the dense FNO's random init of
  the same seed (other parameters copied), rescaled to the dense init's RMS when ``rescale``;
* ``warm="dense_trained"``: the dense FNO trained ``pre_epochs`` epochs (its own cosine
  schedule), decomposed, and the TFNO trained for the remaining epochs;
* ``k0``: a dense real ``(in, out)`` matrix added at the zero frequency of every spectral layer
  (initialised to zero; over the parameter budget: a diagnostic).

Run: ``python benchmarks/probe_tfno_gap.py burgers128 '[["tucker10 lr x3",
{"format": "tucker", "ratio": 0.1}, {"factor_lr": 3.0}]]' 0,1,2`` (problem, JSON list of
``[name, model options, changes]``, seeds, optional epochs). Prints each seed's test L2/H1 at the
training resolution and the median with the range.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_operator as B
import torch

import factorch.train._trainer as trainer_module
from factorch.nn.spectral import SpectralConv, count_real
from factorch.nn.spectral._modes import kept_frequencies

GROUPS: dict[str, Any] = {"mult": 1.0, "core_mult": None, "ids": set(), "core_ids": set()}
_ADAMW = trainer_module.RealViewAdamW
_CONTRACT = SpectralConv._contract


def grouped_adamw(params: Any, *, lr: float, weight_decay: float) -> Any:
    """factorch's AdamW wrapper with the spectral parameters in their own learning-rate group."""
    opt = _ADAMW(params, lr=lr, weight_decay=weight_decay)
    if GROUPS["mult"] == 1.0 and GROUPS["core_mult"] is None:
        return opt
    views = {id(p): v for p, v in opt._complex}
    core, factors, other = [], [], []
    for p in opt.params:
        t = views.get(id(p), p)
        if id(p) in GROUPS["core_ids"] and GROUPS["core_mult"] is not None:
            core.append(t)
        elif id(p) in GROUPS["ids"]:
            factors.append(t)
        else:
            other.append(t)
    groups: list[dict[str, Any]] = [{"params": other}]
    if factors:
        groups.append({"params": factors, "lr": lr * GROUPS["mult"]})
    if core:
        groups.append({"params": core, "lr": lr * GROUPS["core_mult"]})
    opt.optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    return opt


def contract_with_k0(self: Any, kept: torch.Tensor, **kw: Any) -> torch.Tensor:
    """The layer's contraction plus ``k0w`` applied at the zero frequency (when set); the
    spectrum is ``(batch, channels, modes..)`` or, with ``modes_first``, ``(modes.., batch,
    channels)``."""
    out = _CONTRACT(self, kept, **kw)
    w0 = getattr(self, "k0w", None)
    if w0 is None:
        return out
    idx = (*(kept_frequencies(m, last=False).index(0) for m in self.modes[:-1]), 0)
    d = len(self.modes)
    if kw.get("modes_first"):
        c = kept[idx] @ w0.to(kept.dtype)  # (batch, out)
        mask = torch.zeros(out.shape[:d], dtype=out.dtype)
        mask[idx] = 1
        return out + mask.reshape(*mask.shape, 1, 1) * c
    c = torch.einsum("bi,io->bo", kept[(slice(None), slice(None), *idx)], w0.to(kept.dtype))
    mask = torch.zeros(out.shape[2:], dtype=out.dtype)
    mask[idx] = 1
    return out + c.reshape(*c.shape, *([1] * d)) * mask


trainer_module.RealViewAdamW = grouped_adamw  # type: ignore[misc]
SpectralConv._contract = contract_with_k0  # type: ignore[method-assign]


def weights(model: Any) -> list[Any]:
    return [c.weight_source for c in model.blocks.convs]


def copy_from_dense(model: Any, dense: Any, *, rescale: bool) -> None:
    sd, own = dense.state_dict(), model.state_dict()
    model.load_state_dict(
        {k: sd[k] if k in sd and sd[k].shape == v.shape else v for k, v in own.items()}
    )
    for ws, wd in zip(weights(model), weights(dense)):
        full = wd.tensor().detach()
        ws.load_dense_(full)
        if rescale:
            rec = ws.tensor().detach()
            s = float((full.abs().pow(2).mean() / rec.abs().pow(2).mean()).sqrt())
            with torch.no_grad():
                for f in ws.factors:
                    f.mul_(s ** (1 / len(ws.factors)))


def run(p: Any, variant: dict[str, Any], seed: int, **ch: Any) -> tuple[int, dict, float]:
    model = B.ours_model(p, dict(variant), seed)
    if ch.get("k0"):
        for c in model.blocks.convs:
            c.k0w = torch.nn.Parameter(torch.zeros(c.in_channels, c.out_channels))
    total = p.epochs
    if ch.get("warm") == "dense_init":
        copy_from_dense(
            model, B.ours_model(p, {"format": "dense"}, seed), rescale=ch.get("rescale", False)
        )
    elif ch.get("warm") == "dense_trained":
        dense = B.ours_model(p, {"format": "dense"}, seed)
        p.epochs = ch["pre_epochs"]
        B.train_ours(p, dense, seed)
        p.epochs = total - ch["pre_epochs"]
        copy_from_dense(model, dense, rescale=False)
    GROUPS["mult"], GROUPS["core_mult"] = ch.get("factor_lr", 1.0), ch.get("core_lr")
    GROUPS["ids"] = {id(f) for w in weights(model) for f in w.factors}
    GROUPS["ids"] |= {id(w.dense) for w in weights(model) if w.dense is not None}
    GROUPS["core_ids"] = {id(w.factors[0]) for w in weights(model) if len(w.factors)}
    start = time.time()
    try:
        r = B.train_ours(p, model, seed)
    finally:
        p.epochs = total
        GROUPS["mult"], GROUPS["core_mult"] = 1.0, None
    errs = {k: (v["l2"], v["h1"]) for k, v in r["errors"].items()}
    return count_real(model), errs, time.time() - start


def main() -> None:
    torch.set_num_threads(1)
    prob, configs, seeds = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3].split(",")
    B.OVERRIDE.update(n_train=500, n_test=100, epochs=int(sys.argv[4]) if len(sys.argv) > 4 else 20)
    (p,), _ = B.make_problems(False, {prob})
    key = next(iter(p.tests))
    for name, variant, changes in configs:
        l2s = []
        for s in seeds:
            n, errs, dt = run(p, variant, int(s), **changes)
            l2s.append(errs[key][0])
            print(f"{prob} {name} seed {s}: params {n} L2 {errs[key][0]:.4f} "
                  f"H1 {errs[key][1]:.4f} ({dt:.0f}s)", flush=True)  # fmt: skip
        print(f"== {prob} {name}: median L2 {statistics.median(l2s):.4f} "
              f"range {min(l2s):.4f}-{max(l2s):.4f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
