"""Factorized layers: factorch.nn against TensorLy-Torch (tltorch) and dense PyTorch layers.

1. Forward + backward time of a 1024 -> 1024 linear layer on a batch of 256, CP / Tucker / TT
   at 10 % of the dense parameters (both libraries fold the features as 32 x 32 and get the same
   ranks, hence the same parameter counts), against ``tltorch.FactorizedLinear`` (both of its
   implementations) and ``nn.Linear``; factorch low rank at 10 % for reference.
2. The same for a 3x3 convolution, 64 -> 64 channels, 32 x 32 inputs, batch 64
   (``tltorch.FactorizedConv``, ``nn.Conv2d``).
3. Compression quality: relative weight error of the trained layers of the digits CNN
   (``examples/compress_digits.py``) at 25 % and 10 % of their parameters: factorch's formats
   per layer, factorch's global energy allocation (``compress``), and tltorch's
   ``from_linear`` / ``from_conv`` at the same per-layer budget.

Importing tltorch switches TensorLy's process-wide backend to PyTorch; factorch does not use
TensorLy, so this script imports tltorch lazily, after factorch is set up, and nothing else in
the process depends on TensorLy's backend.

Usage::

    python benchmarks/bench_layers.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import apply_threads, format_table, machine_info, pin_threads, write_results

FORMATS = {"cp": "cp", "tucker": "tucker", "tt": "blocktt"}  # factorch -> tltorch (linear)


def time_calls(calls: dict, *, repeats: int, warmup: int = 2) -> dict:
    """Median wall and process-CPU seconds per call, round-robin over the implementations.

    Each timed call directly follows an untimed call of the same implementation: otherwise the
    first call after another implementation pays for fresh (page-faulting) activation buffers
    while the next one reuses the blocks the previous one freed, which biased the round-robin
    order by up to 2x on these layers.
    """
    for f in calls.values():
        for _ in range(warmup):
            f()
    wall = {k: [] for k in calls}
    cpu = {k: [] for k in calls}
    for _ in range(repeats):
        for k, f in calls.items():
            f()
            t0, c0 = time.perf_counter(), time.process_time()
            f()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return {
        k: {
            "median_s": statistics.median(wall[k]),
            "min_s": min(wall[k]),
            "max_s": max(wall[k]),
            "cpu_median_s": statistics.median(cpu[k]),
            "n": repeats,
        }
        for k in calls
    }


def _tl_rank(rank):
    return list(rank) if isinstance(rank, tuple) else rank


def _step(layer, x):
    def run():
        for p in layer.parameters():
            p.grad = None
        layer(x).sum().backward()

    return run


def _n_weight_params(layer) -> int:
    return sum(p.numel() for n, p in layer.named_parameters() if not n.endswith("bias"))


def bench_linear(torch, fnn, tltorch, repeats: int, batch: int = 256) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1024, generator=g)
    spec = fnn.TensorizedShape((32, 32), (32, 32))
    calls, info = {"dense nn.Linear": _step(torch.nn.Linear(1024, 1024), x)}, {}
    low = fnn.FactorizedLinear(1024, 1024, format="lowrank", ratio=0.1, generator=g)
    calls["factorch lowrank"] = _step(low, x)
    info["factorch lowrank"] = {"rank": low.rank, "params": _n_weight_params(low)}
    for fmt, tl_fmt in FORMATS.items():
        ours = fnn.FactorizedLinear(1024, 1024, format=fmt, ratio=0.1, shape=spec, generator=g)
        fact, recon = ours.flops(batch)
        cost_fact, cost_recon = ours.costs(batch)
        info[f"factorch {fmt}"] = {
            "rank": ours.rank,
            "params": _n_weight_params(ours),
            "path": "factorized" if cost_fact <= cost_recon else "reconstructed",
            "gflop_factorized": fact / 1e9,
            "gflop_reconstructed": recon / 1e9,
        }
        calls[f"factorch {fmt}"] = _step(ours, x)
        for impl in ("factorized", "reconstructed"):
            theirs = tltorch.FactorizedLinear(
                (32, 32),
                (32, 32),
                factorization=tl_fmt,
                rank=_tl_rank(ours.rank),
                implementation=impl,
            )
            if _n_weight_params(theirs) != _n_weight_params(ours):
                raise RuntimeError(f"parameter counts differ for {fmt}")
            calls[f"tltorch {fmt} {impl}"] = _step(theirs, x)
    return {
        "batch": batch,
        "timings": time_calls(calls, repeats=repeats, warmup=2),
        "layers": info,
        "dense_gflop": 2 * batch * 1024 * 1024 / 1e9,
    }


def bench_conv(torch, fnn, tltorch, repeats: int) -> dict:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 64, 32, 32, generator=g)
    calls = {"dense nn.Conv2d": _step(torch.nn.Conv2d(64, 64, 3, padding=1), x)}
    info = {}
    low = fnn.FactorizedConv2d(64, 64, 3, padding=1, format="lowrank", ratio=0.1, generator=g)
    calls["factorch lowrank"] = _step(low, x)
    info["factorch lowrank"] = {"rank": low.rank, "params": _n_weight_params(low)}
    for fmt in ("cp", "tucker", "tt"):
        ours = fnn.FactorizedConv2d(64, 64, 3, padding=1, format=fmt, ratio=0.1, generator=g)
        fact, recon = ours.flops(tuple(x.shape))
        cost_fact, cost_recon = ours.costs(tuple(x.shape))
        info[f"factorch {fmt}"] = {
            "rank": ours.rank,
            "params": _n_weight_params(ours),
            "path": "factorized" if cost_fact <= cost_recon else "reconstructed",
            "gflop_factorized": fact / 1e9,
            "gflop_reconstructed": recon / 1e9,
        }
        calls[f"factorch {fmt}"] = _step(ours, x)
        for impl in ("factorized", "reconstructed"):
            theirs = tltorch.FactorizedConv(
                64,
                64,
                3,
                order=2,
                factorization=fmt,
                rank=_tl_rank(ours.rank),
                implementation=impl,
                padding=1,
            )
            if _n_weight_params(theirs) != _n_weight_params(ours):
                raise RuntimeError(f"parameter counts differ for {fmt}")
            calls[f"tltorch {fmt} {impl}"] = _step(theirs, x)
    return {
        "timings": time_calls(calls, repeats=repeats, warmup=2),
        "layers": info,
        "dense_gflop": 2 * 64 * 32 * 32 * 64 * 64 * 9 / 1e9,
    }


def _rel(a, b) -> float:
    return float((a - b).norm() / b.norm())


def bench_quality(torch, fnn, tltorch) -> dict:
    """Relative weight errors of the trained digits CNN's layers at a given budget."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    from compress_digits import accuracy, load_digits_tensors, make_cnn, train

    torch.manual_seed(0)
    x_tr, y_tr, x_te, y_te = load_digits_tensors()
    model = train(make_cnn(), x_tr, y_tr)
    models = [
        {
            "ratio": 1.0,
            "method": "dense",
            "params": _count(model),
            "accuracy": accuracy(model, x_te, y_te),
        }
    ]
    layers = {
        n: m for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))
    }
    rows = []
    for ratio in (0.25, 0.10):
        for name, layer in layers.items():
            w = layer.weight.detach()
            is_linear = isinstance(layer, torch.nn.Linear)
            cls = fnn.FactorizedLinear if is_linear else fnn.FactorizedConv2d
            for fmt in ("lowrank", "cp", "tucker", "tt"):
                try:
                    ours = cls.from_dense(layer, format=fmt, ratio=ratio)
                    err, params = _rel(ours.weight.detach(), w), _n_weight_params(ours)
                except ValueError:  # rank 1 already exceeds this budget
                    err, params = None, None
                tl_err = tl_params = None
                if fmt != "lowrank":
                    tl_err, tl_params = _tltorch_error(torch, tltorch, layer, fmt, ratio)
                rows.append(
                    {
                        "ratio": ratio,
                        "layer": name,
                        "kind": type(layer).__name__,
                        "format": fmt,
                        "factorch_error": err,
                        "factorch_params": params,
                        "tltorch_error": tl_err,
                        "tltorch_params": tl_params,
                        "dense_params": w.numel(),
                    }
                )
        for fmt in ("lowrank", "tucker", "cp", "tt"):
            opts = {"max_iter": 200} if fmt == "cp" else None
            for allocation in ("energy", "uniform"):
                small, _ = fnn.compress(
                    model, ratio=ratio, format=fmt, allocation=allocation, decomposition=opts
                )
                models.append(
                    {
                        "ratio": ratio,
                        "method": f"factorch {fmt} {allocation}",
                        "params": _count(small),
                        "accuracy": accuracy(small, x_te, y_te),
                    }
                )
            if fmt != "lowrank":
                small = _tltorch_model(torch, tltorch, model, fmt, ratio)
                models.append(
                    {
                        "ratio": ratio,
                        "method": f"tltorch {fmt} per layer",
                        "params": _count(small),
                        "accuracy": accuracy(small, x_te, y_te),
                    }
                )
            _, report = fnn.compress(model, ratio=ratio, format=fmt, decomposition=opts)
            for r in report.layers:
                rows.append(
                    {
                        "ratio": ratio,
                        "layer": r.name,
                        "kind": r.kind,
                        "format": f"compress({fmt}, energy) -> {r.format} {r.rank}",
                        "factorch_error": r.relative_error,
                        "factorch_params": r.params_after,
                        "tltorch_error": None,
                        "tltorch_params": None,
                        "dense_params": r.params_before,
                    }
                )
    return {"rows": rows, "models": models}


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _tltorch_model(torch, tltorch, model, fmt, ratio):
    """The CNN with every layer replaced by tltorch's from_linear / from_conv at ``ratio``
    (layers where tltorch fails stay dense)."""
    import copy

    out = copy.deepcopy(model)
    for name, layer in list(out.named_modules()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if isinstance(layer, torch.nn.Linear):
                    new = tltorch.FactorizedLinear.from_linear(
                        layer, rank=ratio, n_tensorized_modes=2, factorization=FORMATS[fmt]
                    )
                elif isinstance(layer, torch.nn.Conv2d):
                    new = tltorch.FactorizedConv.from_conv(layer, rank=ratio, factorization=fmt)
                else:
                    continue
        except Exception:  # keep the dense layer where the anchor fails
            continue
        setattr(out, name, new)
    return out


def _tltorch_error(torch, tltorch, layer, fmt, ratio):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if isinstance(layer, torch.nn.Linear):
                tl_fmt = FORMATS[fmt]
                theirs = tltorch.FactorizedLinear.from_linear(
                    layer, rank=ratio, n_tensorized_modes=2, factorization=tl_fmt
                )
                approx = theirs.weight.to_matrix()
            else:
                theirs = tltorch.FactorizedConv.from_conv(layer, rank=ratio, factorization=fmt)
                approx = theirs.weight.to_tensor()
                if fmt == "tt":
                    approx = torch.movedim(approx, -1, 0)
        w = layer.weight.detach()
        return _rel(approx.detach().reshape(w.shape), w), _n_weight_params(theirs)
    except Exception as exc:  # report the anchor's failure instead of crashing
        return f"error: {type(exc).__name__}", None


def _speed_table(title: str, result: dict, key: str) -> str:
    t = {k: {"median_s": v[key]} for k, v in result["timings"].items()}
    dense_key = next(k for k in t if k.startswith("dense"))
    dense = t[dense_key]["median_s"]
    rows = []
    for fmt in ("cp", "tucker", "tt"):
        ours = t[f"factorch {fmt}"]["median_s"]
        tl_f = t[f"tltorch {fmt} factorized"]["median_s"]
        tl_r = t[f"tltorch {fmt} reconstructed"]["median_s"]
        info = result["layers"][f"factorch {fmt}"]
        rows.append(
            [
                fmt,
                str(info["rank"]),
                info["params"],
                info["path"],
                f"{ours * 1e3:.3f}",
                f"{tl_f * 1e3:.3f}",
                f"{tl_r * 1e3:.3f}",
                min(tl_f, tl_r) / ours,
                dense / ours,
            ]
        )
    low = t["factorch lowrank"]["median_s"]
    info = result["layers"]["factorch lowrank"]
    rows.append(
        [
            "lowrank",
            str(info["rank"]),
            info["params"],
            "factorized",
            f"{low * 1e3:.3f}",
            None,
            None,
            None,
            dense / low,
        ]
    )
    head = [
        "format",
        "rank",
        "params",
        "factorch path",
        "factorch ms",
        "tltorch fact. ms",
        "tltorch recon. ms",
        "x tltorch best",
        "x dense",
    ]
    clock = "process CPU time" if key.startswith("cpu") else "wall time"
    return f"{title}, {clock} (dense {dense * 1e3:.3f} ms)\n" + format_table(head, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no quality part")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    pin_threads(args.threads)
    import torch

    import factorch.nn as fnn

    threads = apply_threads(args.threads)
    import tltorch  # last: switches TensorLy's global backend to pytorch (see module docstring)

    repeats = 5 if args.quick else 15
    linear = {
        b: bench_linear(torch, fnn, tltorch, repeats if b == 256 else 5 * repeats, b)
        for b in (256, 16, 1)
    }
    conv = bench_conv(torch, fnn, tltorch, repeats)
    for key in ("cpu_median_s", "median_s"):
        for b, res in linear.items():
            print(_speed_table(f"Linear 1024->1024, batch {b}, fwd+bwd, 10 % params", res, key))
            print()
        print(_speed_table("Conv 3x3 64->64, 32x32, batch 64, fwd+bwd, 10 % params", conv, key))
        print()
    payload = {
        "machine": machine_info(),
        "threads": threads,
        "quick": args.quick,
        "linear": {str(b): v for b, v in linear.items()},
        "conv": conv,
    }
    if not args.quick:
        quality = bench_quality(torch, fnn, tltorch)
        payload["quality"] = quality
        head = ["ratio", "layer", "format", "factorch err", "params", "tltorch err", "params"]
        rows = [
            [
                r["ratio"],
                r["layer"],
                r["format"],
                r["factorch_error"],
                r["factorch_params"],
                r["tltorch_error"],
                r["tltorch_params"],
            ]
            for r in quality["rows"]
        ]
        print()
        print("Relative weight error, digits CNN layers\n" + format_table(head, rows))
        rows = [[m["ratio"], m["method"], m["params"], m["accuracy"]] for m in quality["models"]]
        print()
        print(
            "Digits CNN test accuracy right after compression (no fine-tuning)\n"
            + format_table(["ratio", "method", "params", "accuracy"], rows)
        )
    path = write_results("bench_layers_quick" if args.quick else "bench_layers", payload)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
