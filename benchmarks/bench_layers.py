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

    python benchmarks/bench_layers.py [--quick] [--threads N] [--sections speed,floor,quality]

4. (``floor``) Every format (low rank, CP, Tucker, TT(-matrix), TR) on the linear shapes at
   batches 256 / 16 / 1 and on the convolution: fwd+bwd process CPU time of both paths on the
   same factors, their fwd+bwd FLOPs counted by ``torch.utils.flop_counter``, the ratio of the
   ``"auto"`` path's time to the floor (the cheaper path's FLOPs at the measured rate of the
   dense ``(256, 1024) @ (1024, 1024)`` GEMM; issue 14.7 asks for <= 1.2) and whether ``"auto"``
   picked the faster path (within 5 %).
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


# --- the FLOP floor and the "auto" choice ---------------------------------------------------------
FLOOR_FORMATS = ("lowrank", "cp", "tucker", "tt", "tr")
FLOOR_TARGET = 1.2
"""Issue 14.7: fwd+bwd within 1.2x of the time its FLOPs cost as a dense GEMM."""
AUTO_TOLERANCE = 1.05
"""``auto`` counts as picking the faster path when its path is within 5 % of the faster one (two
paths closer than that are a tie on this machine)."""


def _counted_flops(torch, layer, x) -> int:
    """Matrix-multiply and convolution FLOPs of one fwd+bwd, counted by torch's FlopCounterMode
    (einsums are counted through the bmm/mm they lower to; element-wise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        _step(layer, x)()
    return int(counter.get_total_flops())


def _with_impl(layer, x, impl: str):
    step = _step(layer, x)

    def run():
        layer.implementation = impl
        step()

    return run


def gemm_rate(torch, repeats: int) -> dict:
    """FLOP/s of the dense GEMM ``(256, 1024) @ (1024, 1024)`` (the dense layer's forward GEMM):
    the rate a factorized layer's FLOPs are priced at."""
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(256, 1024, generator=g), torch.randn(1024, 1024, generator=g)
    t = time_calls({"gemm": lambda: a @ b}, repeats=5 * repeats, warmup=3)["gemm"]
    flops = 2 * 256 * 1024 * 1024
    return {"flops": flops, **t, "rate_cpu": flops / t["cpu_median_s"]}


def floor_cases(torch, fnn) -> list[tuple[str, object, object]]:
    """``(name, layer, input)`` for every format on the linear and convolution shapes above."""
    spec = fnn.TensorizedShape((32, 32), (32, 32))
    out = []
    for batch in (256, 16, 1):
        g = torch.Generator().manual_seed(10 + batch)
        x = torch.randn(batch, 1024, generator=g)
        for fmt in FLOOR_FORMATS:
            kw = {} if fmt == "lowrank" else {"shape": spec}
            layer = fnn.FactorizedLinear(1024, 1024, format=fmt, ratio=0.1, generator=g, **kw)
            out.append((f"linear b{batch} {fmt}", layer, x))
    g = torch.Generator().manual_seed(3)
    x = torch.randn(64, 64, 32, 32, generator=g)
    for fmt in FLOOR_FORMATS:
        layer = fnn.FactorizedConv2d(64, 64, 3, padding=1, format=fmt, ratio=0.1, generator=g)
        out.append((f"conv b64 {fmt}", layer, x))
    return out


KERNEL_OPS = (
    "aten::mm",
    "aten::bmm",
    "aten::addmm",
    "aten::baddbmm",
    "aten::mkldnn_convolution",
    "aten::convolution_backward",
    "aten::_slow_conv2d_forward",
    "aten::_slow_conv2d_backward",
)
"""Operators whose self time is GEMM / convolution kernel time (the rest is element-wise work,
copies, autograd and Python overhead)."""


def kernel_share(torch, step, calls: int = 3) -> dict:
    """Profile ``calls`` steps: the share of operator self time spent in GEMM/convolution kernels
    (:data:`KERNEL_OPS`) and that kernel time per step (profiler wall clock)."""
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    kernels = sum(e.self_cpu_time_total for e in events if e.key in KERNEL_OPS)
    return {"share": kernels / total if total else 0.0, "kernel_s": kernels * 1e-6 / calls}


def _kernel_rate(flops: int, share: float, seconds: float) -> float | None:
    """FLOP/s inside the kernels: the counted FLOPs over the kernels' share of the CPU time (the
    profiler's own clock is wall time, which a loaded machine stretches)."""
    return flops / (share * seconds) if share > 0 else None


def _dense_cases(torch):
    g = torch.Generator().manual_seed(4)
    out = []
    for batch in (256, 16, 1):
        out.append(
            (f"dense linear b{batch}", torch.nn.Linear(1024, 1024), torch.randn(batch, 1024))
        )
    out.append(("dense linear 8->8 b1", torch.nn.Linear(8, 8), torch.randn(1, 8, generator=g)))
    x = torch.randn(64, 64, 32, 32, generator=g)
    out.append(("dense conv b64", torch.nn.Conv2d(64, 64, 3, padding=1), x))
    return out


def bench_floor(torch, fnn, repeats: int) -> dict:
    """Per case: fwd+bwd time of ``auto``, ``factorized`` and ``reconstructed`` on the same
    factors, the counted FLOPs of both paths, their ratio to the GEMM-priced floor and the share
    of the ``auto`` path's time spent in GEMM/convolution kernels. Dense layers for reference."""
    rate = gemm_rate(torch, repeats)
    rows, dense = [], []
    for name, layer, x in _dense_cases(torch):
        reps = repeats if x.numel() > 100_000 else 5 * repeats
        t = time_calls({"dense": _step(layer, x)}, repeats=reps, warmup=2)["dense"]
        flops = _counted_flops(torch, layer, x)
        kernels = kernel_share(torch, _step(layer, x))
        dense.append(
            {
                "case": name,
                "gflop": flops / 1e9,
                "timings": t,
                "floor_s": flops / rate["rate_cpu"],
                "ratio_to_floor": t["cpu_median_s"] * rate["rate_cpu"] / flops,
                "kernels": kernels,
                "kernel_rate": _kernel_rate(flops, kernels["share"], t["cpu_median_s"]),
            }
        )
    for name, layer, x in floor_cases(torch, fnn):
        flops = {}
        for impl in ("factorized", "reconstructed"):
            layer.implementation = impl
            flops[impl] = _counted_flops(torch, layer, x)
        layer.implementation = "auto"
        shape = x.shape[0] if name.startswith("linear") else tuple(x.shape)
        costs = layer.costs(shape)
        auto = "factorized" if layer.use_factorized(*costs) else "reconstructed"
        calls = {impl: _with_impl(layer, x, impl) for impl in ("factorized", "reconstructed")}
        reps = repeats if x.numel() > 100_000 else 5 * repeats
        t = time_calls(calls, repeats=reps, warmup=2)
        secs = {k: v["cpu_median_s"] for k, v in t.items()}
        fastest = min(secs, key=secs.__getitem__)
        floor_s = min(flops.values()) / rate["rate_cpu"]
        kernels = kernel_share(torch, _with_impl(layer, x, auto))
        layer.implementation = "auto"
        rows.append(
            {
                "case": name,
                "rank": layer.rank if isinstance(layer.rank, int) else list(layer.rank),
                "params": _n_weight_params(layer),
                "gflop": {k: v / 1e9 for k, v in flops.items()},
                "costs": {"factorized": costs[0], "reconstructed": costs[1]},
                "timings": t,
                "auto": auto,
                "fastest": fastest,
                "auto_over_fastest": secs[auto] / secs[fastest],
                "auto_correct": secs[auto] <= AUTO_TOLERANCE * secs[fastest],
                "floor_s": floor_s,
                "ratio_to_floor": secs[auto] / floor_s,
                "best_ratio_to_floor": secs[fastest] / floor_s,
                "kernels": kernels,
                "kernel_rate": _kernel_rate(flops[auto], kernels["share"], secs[auto]),
            }
        )
    return {
        "gemm": rate,
        "dense": dense,
        "rows": rows,
        "target": FLOOR_TARGET,
        "auto_tolerance": AUTO_TOLERANCE,
    }


def floor_table(result: dict) -> str:
    head = [
        "case",
        "rank",
        "GF fact.",
        "GF recon.",
        "fact. ms",
        "recon. ms",
        "auto",
        "auto ok",
        "floor ms",
        "auto/floor",
        "met",
        "kernel %",
        "kernel GF/s",
    ]
    rows = []
    for r in result["dense"]:
        rows.append(
            [
                r["case"],
                "-",
                f"{r['gflop']:.3f}",
                None,
                f"{r['timings']['cpu_median_s'] * 1e3:.3f}",
                None,
                "dense",
                None,
                f"{r['floor_s'] * 1e3:.3f}",
                r["ratio_to_floor"],
                "yes" if r["ratio_to_floor"] <= FLOOR_TARGET else "no",
                f"{100 * r['kernels']['share']:.0f}",
                f"{r['kernel_rate'] / 1e9:.0f}" if r["kernel_rate"] else None,
            ]
        )
    for r in result["rows"]:
        t = r["timings"]
        rows.append(
            [
                r["case"],
                str(r["rank"]).replace(" ", ""),
                f"{r['gflop']['factorized']:.3f}",
                f"{r['gflop']['reconstructed']:.3f}",
                f"{t['factorized']['cpu_median_s'] * 1e3:.3f}",
                f"{t['reconstructed']['cpu_median_s'] * 1e3:.3f}",
                r["auto"][:5] + ".",
                "yes" if r["auto_correct"] else f"no ({r['auto_over_fastest']:.2f}x)",
                f"{r['floor_s'] * 1e3:.3f}",
                r["ratio_to_floor"],
                "yes" if r["ratio_to_floor"] <= FLOOR_TARGET else "no",
                f"{100 * r['kernels']['share']:.0f}",
                f"{r['kernel_rate'] / 1e9:.0f}" if r["kernel_rate"] else None,
            ]
        )
    g = result["gemm"]
    title = (
        "fwd+bwd against the FLOP floor (process CPU time; floor = counted fwd+bwd FLOPs of the "
        f"cheaper path at the dense GEMM rate, {g['rate_cpu'] / 1e9:.1f} GFLOP/s; kernel % / "
        "GF/s: share of the auto path's profiled time in GEMM/conv kernels, and the counted "
        "FLOPs over that share of the CPU time)"
    )
    return title + "\n" + format_table(head, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no quality part")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--sections",
        default="speed,floor,quality",
        help="comma-separated subset of speed (against tltorch), floor (FLOP floor and the "
        "auto choice), quality (compression; skipped by --quick)",
    )
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    if args.quick:
        sections.discard("quality")
    pin_threads(args.threads)
    import torch

    import factorch.nn as fnn

    threads = apply_threads(args.threads)
    import tltorch  # last: switches TensorLy's global backend to pytorch (see module docstring)

    repeats = 5 if args.quick else 15
    payload = {
        "machine": machine_info(),
        "threads": threads,
        "quick": args.quick,
        "sections": sorted(sections),
    }
    if "speed" in sections:
        linear = {
            b: bench_linear(torch, fnn, tltorch, repeats if b == 256 else 5 * repeats, b)
            for b in (256, 16, 1)
        }
        conv = bench_conv(torch, fnn, tltorch, repeats)
        for key in ("cpu_median_s", "median_s"):
            for b, res in linear.items():
                title = f"Linear 1024->1024, batch {b}, fwd+bwd, 10 % params"
                print(_speed_table(title, res, key))
                print()
            title = "Conv 3x3 64->64, 32x32, batch 64, fwd+bwd, 10 % params"
            print(_speed_table(title, conv, key))
            print()
        payload["linear"] = {str(b): v for b, v in linear.items()}
        payload["conv"] = conv
    if "floor" in sections:
        floor = bench_floor(torch, fnn, repeats)
        payload["floor"] = floor
        print(floor_table(floor))
        print()
    if "quality" in sections:
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
    name = "bench_layers_quick" if args.quick else "bench_layers"
    if args.sections != parser.get_default("sections"):  # a subset: keep the full run's file
        name += "_" + "_".join(sorted(sections))
    path = write_results(name, payload)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
