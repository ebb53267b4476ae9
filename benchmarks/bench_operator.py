"""Neural operators side by side with neuraloperator 2.0 on the same generated data.

Problems (data from :mod:`factorch.datasets.pde`, generated once per run and shared by both
libraries): Darcy 32^2, Burgers 1-D, Navier--Stokes 64^2 (nu = 1e-3). Models: dense FNO, TFNO
with Tucker and CP spectral weights at 5 % and 10 % of the dense spectral parameters, and MG-TFNO
on Navier--Stokes; each trained with the same architecture, data, epochs, batch size, optimiser
(AdamW, cosine schedule), per-channel standardisation and H1 training loss, by each library's own
training loop (factorch: :func:`factorch.train.train_operator`; neuraloperator: its ``Trainer``
with a ``DefaultDataProcessor``), seeds interleaved. Both libraries' models are evaluated by the
same code (:func:`factorch.train.evaluate`: mean per-sample relative L2 and H1 in physical units)
on the test set at the training resolution and at 2x (zero-shot super-resolution).

Reported per (problem, model, library): test relative L2 / H1 (median over seeds), parameter
count (complex entries count twice), seconds per training epoch (median), peak memory of one
training step (bytes held by PyTorch's CPU allocator above the step's start, replayed from the
profiler's allocation events: the CPU counterpart of ``torch.cuda.max_memory_allocated``).
Plus the data generators' time against the set size and each solver's error against its
analytic or manufactured reference.

Run: ``python benchmarks/bench_operator.py [--quick] [--seeds 3] [--threads 1]``; writes
``benchmarks/results/bench_operator.json``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    apply_threads,
    format_table,
    machine_info,
    peak_allocated_bytes,
    pin_threads,
    write_results,
)


@dataclass
class Problem:
    name: str
    train: Any
    tests: dict[str, Any]
    modes: tuple[int, ...]
    hidden: int
    epochs: int
    batch: int
    lr: float
    periodic: bool
    extra: dict[str, Any] = field(default_factory=dict)


# Command-line overrides of the problems' sizes (--n-train, --n-test, --epochs, --ns-solve).
OVERRIDE: dict[str, Any] = {}


def sized(n_train: int, n_test: int) -> tuple[int, int]:
    return OVERRIDE.get("n_train", n_train), OVERRIDE.get("n_test", n_test)


def epochs(default: int) -> int:
    return OVERRIDE.get("epochs", default)


def make_problems(quick: bool, wanted: set[str]) -> tuple[list[Problem], dict[str, Any]]:
    import torch

    from factorch.datasets.pde import darcy_flow

    gen_times: dict[str, Any] = {}
    problems = []
    scale = 0.25 if quick else 1.0

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        out = fn()
        gen_times[name] = time.perf_counter() - start
        return out

    if "darcy16" in wanted:
        # The baseline: neuraloperator's small Darcy example (16^2, modes 8x8, 24
        # channels, 20 epochs), tested at 16^2 and zero-shot at 31^2 (the same solves).
        n_train, n_test = sized(int(500 * scale), int(100 * scale))
        g = torch.Generator().manual_seed(1616)
        fine = timed(
            f"darcy {n_train + n_test} at 31^2",
            lambda: darcy_flow(n_train + n_test, resolution=31, generator=g),
        )
        train, test = fine.subsample(2).split(n_train)
        _, test_fine = fine.split(n_train)
        problems.append(
            Problem(
                "darcy16",
                train,
                {"16": test, "31": test_fine},
                (8, 8),
                24,
                epochs(5 if quick else 20),
                32,
                5e-3,
                False,
            )
        )
    # Darcy: train at 32^2 (solved on 63^2 and subsampled), test at 32^2 and 63^2 (same solve).
    if "darcy32" not in wanted:
        return _rest(problems, gen_times, timed, scale, wanted)
    n_train, n_test = sized(int(1000 * scale), int(100 * scale))
    g = torch.Generator().manual_seed(1234)
    fine = timed(
        f"darcy {n_train + n_test} at 63^2",
        lambda: darcy_flow(n_train + n_test, resolution=63, generator=g),
    )
    coarse = fine.subsample(2)
    train, test = coarse.split(n_train)
    _, test_fine = fine.split(n_train)
    problems.append(
        Problem(
            "darcy32",
            train,
            {"32": test, "63": test_fine},
            (12, 12),
            32,
            epochs(8 if quick else 30),
            32,
            5e-3,
            False,
        )
    )
    return _rest(problems, gen_times, timed, scale, wanted)


def _rest(
    problems: list[Problem],
    gen_times: dict[str, Any],
    timed: Callable[[str, Callable[[], Any]], Any],
    scale: float,
    wanted: set[str],
) -> tuple[list[Problem], dict[str, Any]]:
    """Burgers and Navier--Stokes, when wanted."""
    import torch

    from factorch.datasets.pde import burgers

    quick = scale < 1
    if "burgers128" not in wanted:
        return _navier_stokes(problems, gen_times, timed, scale, wanted)
    # Burgers: nu = 0.01, t = 1, solved at 512, trained at 128, tested at 128 and 256.
    n_train, n_test = sized(int(1000 * scale), int(100 * scale))
    g = torch.Generator().manual_seed(4321)
    fine = timed(
        f"burgers {n_train + n_test} at 256",
        lambda: burgers(n_train + n_test, resolution=256, generator=g),
    )
    coarse = fine.subsample(2)
    train, test = coarse.split(n_train)
    _, test_fine = fine.split(n_train)
    problems.append(
        Problem(
            "burgers128",
            train,
            {"128": test, "256": test_fine},
            (16,),
            32,
            epochs(8 if quick else 30),
            32,
            5e-3,
            True,
        )
    )
    return _navier_stokes(problems, gen_times, timed, scale, wanted)


def _navier_stokes(
    problems: list[Problem],
    gen_times: dict[str, Any],
    timed: Callable[[str, Callable[[], Any]], Any],
    scale: float,
    wanted: set[str],
) -> tuple[list[Problem], dict[str, Any]]:
    import torch

    from factorch.datasets.pde import navier_stokes

    quick = scale < 1
    if "navier_stokes64" not in wanted:
        return problems, gen_times
    # Navier--Stokes: nu = 1e-3, omega(0) -> omega(5), at 64^2 (solved at 128^2, or with
    # --ns-solve 64 solved at 64^2 and tested also on the 32^2 subsample).
    n_train, n_test = sized(int(400 * scale), int(50 * scale))
    solve = OVERRIDE.get("ns_solve", 128)
    nu, t_final = OVERRIDE.get("ns_viscosity", 1e-3), OVERRIDE.get("ns_t", 5.0)
    g = torch.Generator().manual_seed(999)
    fine = timed(
        f"navier_stokes {n_train + n_test} at {solve}^2 (T={t_final:g}, nu={nu:g})",
        lambda: navier_stokes(
            n_train + n_test, resolution=solve, viscosity=nu, t_final=t_final, generator=g
        ),
    )
    if solve == 128:
        train, test = fine.subsample(2).split(n_train)
        _, test_fine = fine.split(n_train)
        tests = {"64": test, "128": test_fine}
    else:
        train, test = fine.split(n_train)
        tests = {"64": test, "32": test.subsample(2)}
    problems.append(
        Problem(
            "navier_stokes64",
            train,
            tests,
            (16, 16),
            32,
            epochs(6 if quick else 20),
            16,
            5e-3,
            True,
        )
    )
    return problems, gen_times


HEADER = ["problem", "model", "library", "params", "L2", "H1", "train L2", "L2 2x", "s/epoch", "MB"]


# --- models ------------------------------------------------------------------------------------
VARIANTS = [
    ("FNO dense", {"format": "dense"}),
    ("TFNO tucker 10%", {"format": "tucker", "ratio": 0.10}),
    ("TFNO tucker 5%", {"format": "tucker", "ratio": 0.05}),
    ("TFNO tt 5%", {"format": "tt", "ratio": 0.05}),
    ("TFNO cp 10%", {"format": "cp", "ratio": 0.10}),
    ("TFNO cp 5%", {"format": "cp", "ratio": 0.05}),
]
# The same models with the spectral weights trained at k x the learning rate
# (``spectral_lr_scale=k``; factorch only: neuraloperator has no such option).
for _name, _v in list(VARIANTS):
    for _k in (3, 10):
        VARIANTS.append((f"{_name} lr{_k}", {**_v, "spectral_lr_scale": float(_k)}))


MG_NAME = "MG-TFNO tucker 5% joint"
# (the plain rate pinned: MG-TFNO's default spectral_lr_scale is 3 since helper mg120)
_JOINT5 = {"format": "tucker", "ratio": 0.05, "joint": True, "spectral_lr_scale": 1.0}
_JOINT1 = {"format": "tucker", "ratio": 0.01, "joint": True, "spectral_lr_scale": 1.0}
# MG-TFNO variants on Navier--Stokes: (name, inner TFNO options, patching options); levels=1.
MG_VARIANTS = [
    (MG_NAME, _JOINT5, {"patch_padding": 0.0625, "stitching": "crop"}),  # the paper's stitching
    (
        "MG-TFNO tucker 5% joint pad 0.125",
        _JOINT5,
        {"patch_padding": 0.125, "stitching": "crop"},
    ),
    (
        "MG-TFNO tucker 5% joint pad 0.125 blend",
        _JOINT5,
        {"patch_padding": 0.125, "stitching": "blend"},
    ),
    (
        "MG-TFNO tucker 1% joint pad 0.125 blend",
        _JOINT1,
        {"patch_padding": 0.125, "stitching": "blend"},
    ),
    # the library defaults before mgns (padding 0.0625, blend)
    ("MG-TFNO tucker 5% joint blend", _JOINT5, {"patch_padding": 0.0625, "stitching": "blend"}),
    # levels=0: the same joint-Tucker operator and global coordinates, no patching
    ("MG-TFNO tucker 5% joint L0", _JOINT5, {"levels": 0}),
]
# Navier--Stokes only, without multigrid: the factorization alone (issue 12, helper mgns).
NS_VARIANTS = [("TFNO tucker 5% joint", _JOINT5), ("TFNO tucker 1% joint", _JOINT1)]
# Both at 3x the learning rate on the spectral weights (TFNO's Tucker default, issue 12).
_LR3 = {"spectral_lr_scale": 3.0}
MG_VARIANTS += [(f"{n} lr3", {**v, **_LR3}, mg) for n, v, mg in list(MG_VARIANTS)]
NS_VARIANTS += [(f"{n} lr3", {**v, **_LR3}) for n, v in list(NS_VARIANTS)]
# More capacity for MG-TFNO at 120 trajectories, where the 5 % models underfit (issue 12,
# helper mg120): Tucker at 10 % / 20 % of the dense spectral parameters, per layer or joint,
# spectral weights at 1x / 3x / 10x the learning rate; padding 0.125, blended stitching.
_BLEND = {"patch_padding": 0.125, "stitching": "blend"}
MG_VARIANTS += [
    (
        f"MG-TFNO tucker {pct}%{' joint' * joint} pad 0.125 blend lr{k}",
        {"format": "tucker", "ratio": pct / 100, "joint": joint, "spectral_lr_scale": float(k)},
        _BLEND,
    )
    for pct in (10, 20)
    for joint in (False, True)
    for k in (1, 3, 10)
]
# Wider: 48 channels at Tucker 10 % (294,649 parameters, 4.05x fewer than the 32-channel FNO).
MG_VARIANTS.append(
    (
        "MG-TFNO tucker 10% w48 pad 0.125 blend lr3",
        {"format": "tucker", "ratio": 0.1, "spectral_lr_scale": 3.0, "hidden_channels": 48},
        _BLEND,
    )
)


def ours_model(
    p: Problem, variant: dict[str, Any], seed: int, mg: dict[str, Any] | None = None
) -> Any:
    import torch

    from factorch.models import FNO, MGTFNO

    gen = torch.Generator().manual_seed(seed)
    kw = dict(hidden_channels=p.hidden, periodic=p.periodic, generator=gen) | variant
    if mg is not None:
        return MGTFNO(1, p.train.y.shape[1], p.modes, **{"levels": 1, **mg}, **kw)
    return FNO(p.train.x.shape[1], p.train.y.shape[1], p.modes, **kw)


def neuralop_model(p: Problem, variant: dict[str, Any], seed: int) -> Any:
    import torch
    from neuralop.models import FNO as NFNO

    torch.manual_seed(seed)
    fmt = variant.get("format", "dense")
    kw: dict[str, Any] = {}
    if fmt != "dense":
        kw = {
            "factorization": {"tucker": "Tucker", "cp": "CP"}[fmt],
            "rank": variant["ratio"],
            "implementation": "factorized",
        }
    return NFNO(
        n_modes=p.modes,
        in_channels=p.train.x.shape[1],
        out_channels=p.train.y.shape[1],
        hidden_channels=p.hidden,
        projection_channel_ratio=2,
        **kw,
    )


# --- training ----------------------------------------------------------------------------------
def train_ours(p: Problem, model: Any, seed: int) -> dict[str, Any]:
    import torch

    from factorch.nn.spectral import count_real
    from factorch.train import evaluate, train_operator

    res = train_operator(
        model,
        p.train,
        epochs=p.epochs,
        batch_size=p.batch,
        lr=p.lr,
        weight_decay=1e-4,
        schedule="cosine",
        loss="h1",
        generator=torch.Generator().manual_seed(seed),
    )
    errors = {k: evaluate(res.model, t) for k, t in p.tests.items()}
    return {
        "params": count_real(model),
        "train_errors": evaluate(res.model, p.train),  # final model on its training set
        "s_per_epoch": res.seconds_per_epoch,
        "cpu_s_per_epoch": res.cpu_seconds_per_epoch,
        "errors": errors,
        "model": res.model,
    }


class _NeuralopWrapper:
    """Physical-space predictions of a neuraloperator model trained with a data processor."""

    def __init__(self, model: Any, processor: Any) -> None:
        self.model, self.processor = model, processor

    def __call__(self, x: Any) -> Any:
        return self.processor.out_normalizer.inverse_transform(
            self.model(self.processor.in_normalizer.transform(x))
        )


def train_neuralop(p: Problem, model: Any, seed: int) -> dict[str, Any]:
    import torch
    from neuralop import H1Loss, LpLoss, Trainer
    from neuralop.data.datasets.tensor_dataset import TensorDataset
    from neuralop.data.transforms.data_processors import DefaultDataProcessor
    from neuralop.data.transforms.normalizers import UnitGaussianNormalizer

    from factorch.nn.spectral import count_real
    from factorch.train import evaluate

    dims = p.train.x.ndim - 2
    reduce = [0, *range(2, 2 + dims)]
    in_norm = UnitGaussianNormalizer(dim=reduce)
    in_norm.fit(p.train.x)
    out_norm = UnitGaussianNormalizer(dim=reduce)
    out_norm.fit(p.train.y)
    processor = DefaultDataProcessor(in_normalizer=in_norm, out_normalizer=out_norm)
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        TensorDataset(p.train.x, p.train.y), batch_size=p.batch, shuffle=True
    )
    periodic = {"periodic_in_x": p.periodic}
    if dims >= 2:
        periodic["periodic_in_y"] = p.periodic
    h1 = H1Loss(d=dims, **periodic)
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=p.epochs)
    times: list[float] = []
    cpu_times: list[float] = []

    class Timed(Trainer):  # type: ignore[misc]
        def train_one_epoch(self, epoch: int, train_loader: Any, training_loss: Any) -> Any:
            start = time.process_time()
            out = super().train_one_epoch(epoch, train_loader, training_loss)
            cpu_times.append(time.process_time() - start)
            times.append(out[-1])
            return out

    trainer = Timed(
        model=model,
        n_epochs=p.epochs,
        device="cpu",
        data_processor=processor,
        eval_interval=p.epochs + 1,
        verbose=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train(
            train_loader=loader,
            test_loaders={},
            optimizer=optimizer,
            scheduler=scheduler,
            training_loss=h1,
            eval_losses={"l2": LpLoss(d=dims)},
        )
    model.eval()
    wrapped = _NeuralopWrapper(model, processor)

    class Module(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            return wrapped(x)

    errors = {k: evaluate(Module(), t) for k, t in p.tests.items()}
    return {
        "params": count_real(model),
        "train_errors": evaluate(Module(), p.train),
        "s_per_epoch": statistics.median(times),
        "cpu_s_per_epoch": statistics.median(cpu_times),
        "errors": errors,
    }


def step_memory(p: Problem, model: Any) -> int:
    """Peak allocator bytes of one forward + backward on a training batch (parameters and the
    batch itself, allocated before, are not counted; gradients are)."""

    from factorch.train import relative_h1

    x, y = p.train.x[: p.batch], p.train.y[: p.batch]

    def step() -> None:
        out = model(x)
        loss = relative_h1(out, y, periodic=p.periodic, dims=x.ndim - 2)
        loss.backward()
        model.zero_grad(set_to_none=True)

    step()
    return int(peak_allocated_bytes(step)["bytes"])


# --- solver accuracy ----------------------------------------------------------------------------
def solver_accuracy() -> dict[str, Any]:
    import torch

    from factorch.datasets.pde import solve_burgers, solve_darcy, solve_navier_stokes

    out: dict[str, Any] = {}
    # Darcy: -Delta u = 1 on the unit square, max u = 0.0736713 (series solution).
    for n in (33, 65, 129):
        u = solve_darcy(torch.ones(n, n, dtype=torch.float64))
        out[f"darcy torsion max error n={n}"] = abs(float(u.max()) - 0.07367135)
    # Burgers: Cole--Hopf solution, nu = 0.02, t = 1, 128 points.
    nu = 0.02
    x = torch.arange(128, dtype=torch.float64) / 128

    def cole_hopf(t: float) -> Any:
        e = math.exp(-4 * math.pi**2 * nu * t)
        return (
            4 * math.pi * nu * e * torch.sin(2 * math.pi * x) / (2 + e * torch.cos(2 * math.pi * x))
        )

    for dt in (0.1, 0.05, 0.025):
        u = solve_burgers(cole_hopf(0.0), viscosity=nu, t_final=1.0, dt=dt)
        out[f"burgers cole-hopf max error dt={dt}"] = float((u[0] - cole_hopf(1.0)).abs().max())
    # Navier--Stokes: Taylor--Green decay, nu = 0.01, t = 1.
    t = torch.arange(32, dtype=torch.float64) / 32
    xx, yy = torch.meshgrid(t, t, indexing="ij")
    w0 = torch.sin(2 * math.pi * xx) * torch.sin(2 * math.pi * yy)
    for dt in (0.04, 0.02, 0.01):
        w = solve_navier_stokes(w0, viscosity=0.01, t_final=1.0, forcing=None, dt=dt)
        exact = w0 * math.exp(-8 * math.pi**2 * 0.01)
        out[f"ns taylor-green max error dt={dt}"] = float((w[0] - exact).abs().max())
    return out


def generation_scaling(quick: bool) -> dict[str, float]:
    import torch

    from factorch.datasets.pde import burgers, darcy_flow, navier_stokes

    sizes = (50, 200) if quick else (100, 400, 1000)
    out = {}
    for n in sizes:
        g = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        darcy_flow(n, resolution=32, generator=g)
        out[f"darcy {n} at 32^2"] = time.perf_counter() - start
        start = time.perf_counter()
        burgers(n, resolution=256, generator=g)
        out[f"burgers {n} at 256"] = time.perf_counter() - start
        m = n // 5
        start = time.perf_counter()
        navier_stokes(m, resolution=64, t_final=5.0, generator=g)
        out[f"navier_stokes {m} at 64^2 (T=5)"] = time.perf_counter() - start
    return out


GAP_VARIANTS = [
    ("FNO dense", {"format": "dense"}),
    ("TFNO tucker 10%", {"format": "tucker", "ratio": 0.10}),
    ("TFNO cp 10%", {"format": "cp", "ratio": 0.10}),
    ("TFNO tucker 10% joint", {"format": "tucker", "ratio": 0.10, "joint": True}),
    ("TFNO tucker 5%", {"format": "tucker", "ratio": 0.05}),
]


def neuralop_into_ours(p: Problem, theirs: Any) -> Any:
    """A factorch FNO holding the weights of a dense neuraloperator FNO: the same function
    (the two architectures match layer by layer; neuraloperator's grid embedding is ``j / n``,
    factorch's periodic one). Checked in ``tests/models/test_models_fno.py``."""
    import torch

    from factorch.models import FNO

    ours = FNO(p.train.x.shape[1], p.train.y.shape[1], p.modes, hidden_channels=p.hidden,
               periodic=True)  # fmt: skip
    sd = theirs.state_dict()

    def conv1d(name: str) -> dict[str, Any]:  # Conv1d(k=1) weight (out, in, 1) -> (out, in)
        return {"weight": sd[f"{name}.weight"][..., 0], "bias": sd[f"{name}.bias"]}

    state: dict[str, Any] = {}
    for mlp in ("lifting", "projection"):
        for j, part in enumerate(("first", "second")):
            for k, v in conv1d(f"{mlp}.fcs.{j}").items():
                state[f"{mlp}.{part}.{k}"] = v
    blocks = "fno_blocks"
    for i in range(len(ours.blocks.convs)):
        state[f"blocks.convs.{i}.weight_source.dense"] = sd[f"{blocks}.convs.{i}.weight.tensor"]
        state[f"blocks.convs.{i}.bias"] = sd[f"{blocks}.convs.{i}.bias"].flatten()
        state[f"blocks.skips.{i}.weight"] = sd[f"{blocks}.fno_skips.{i}.conv.weight"][..., 0]
        for j, part in enumerate(("first", "second")):
            for k, v in conv1d(f"{blocks}.channel_mlp.{i}.fcs.{j}").items():
                state[f"blocks.mlps.{i}.{part}.{k}"] = v
        state[f"blocks.gates.{i}.gate"] = sd[f"{blocks}.channel_mlp_skips.{i}.weight"]
    ours.load_state_dict({k: v.detach().clone() for k, v in state.items()})
    del torch
    return ours


CROSS = ("ours", "theirs", "their_init_our_trainer", "our_init_their_trainer")


def cross(
    p: Problem, modes: list[str], seeds: list[int], save: Callable[[dict[str, Any]], Any]
) -> dict[str, Any]:
    """Dense FNO, initialisation x training loop: each library's initial weights trained by each
    library's loop (the two models compute the same function, so a difference between rows with
    the same initial weights is the training loop's, and between rows with the same loop the
    initial draw's)."""
    import torch

    class Called(torch.nn.Module):  # neuraloperator's Trainer calls model(**sample)
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: Any, **_: Any) -> Any:
            return self.model(x)

    dense = {"format": "dense"}
    out: dict[str, Any] = {}
    for mode in modes:
        runs = []
        for seed in seeds:
            if mode == "ours":
                r = train_ours(p, ours_model(p, dense, seed), seed)
            elif mode == "theirs":
                r = train_neuralop(p, neuralop_model(p, dense, seed), seed)
            elif mode == "their_init_our_trainer":
                r = train_ours(p, neuralop_into_ours(p, neuralop_model(p, dense, seed)), seed)
            else:
                r = train_neuralop(p, Called(ours_model(p, dense, seed)), seed)
            runs.append({k: {"l2": v["l2"], "h1": v["h1"]} for k, v in r["errors"].items()})
            print(f"{mode} seed {seed}: {runs[-1]}", flush=True)
            first = next(iter(p.tests))
            out[mode] = {
                "l2": statistics.median(r[first]["l2"] for r in runs),
                "h1": statistics.median(r[first]["h1"] for r in runs),
                "per_seed": runs,
            }
            save(out)  # after every run: a run cut short keeps what it finished
    del torch
    return out


def tfno_gap(epoch_list: list[int], seeds: list[int], names: set[str]) -> dict[str, Any]:
    """factorch only, Darcy 16^2 (the darcy16 problem): test L2 of TFNO against dense FNO by
    training length and factorization (per layer or one joint tensor)."""
    from factorch.nn.spectral import count_real

    (p,), _ = make_problems(False, {"darcy16"})
    out: dict[str, Any] = {}
    for n_epochs in epoch_list:
        p.epochs = n_epochs
        for name, variant in GAP_VARIANTS:
            if name not in names:
                continue
            runs = []
            for seed in seeds:
                model = ours_model(p, variant, seed)
                r = train_ours(p, model, seed)
                runs.append(
                    {k: {"l2": v["l2"], "h1": v["h1"]} for k, v in r["errors"].items()}
                    | {"cpu_s_per_epoch": r["cpu_s_per_epoch"]}
                )
                print(f"{n_epochs} epochs {name} seed {seed}: {runs[-1]}", flush=True)
            out[f"{name} @ {n_epochs} epochs"] = {
                "params": count_real(model),
                "l2_16": statistics.median(r["16"]["l2"] for r in runs),
                "h1_16": statistics.median(r["16"]["h1"] for r in runs),
                "l2_31": statistics.median(r["31"]["l2"] for r in runs),
                "per_seed": runs,
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sets, few epochs (< 3 min)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--problems", default="darcy32,burgers128,navier_stokes64")
    parser.add_argument("--variants", default=",".join([*(v for v, _ in VARIANTS), MG_NAME]))
    # (the MG-TFNO variants other than MG_NAME are named in MG_VARIANTS)
    parser.add_argument(
        "--no-extras", action="store_true", help="skip solver accuracy and generation scaling"
    )
    parser.add_argument("--n-train", type=int, help="training samples (reduced CPU runs)")
    parser.add_argument("--n-test", type=int, help="test samples")
    parser.add_argument("--epochs", type=int, help="epochs (all problems)")
    parser.add_argument("--ns-solve", type=int, choices=(64, 128), help="Navier-Stokes solve grid")
    parser.add_argument("--ns-viscosity", type=float, help="Navier-Stokes viscosity (1e-3)")
    parser.add_argument("--ns-t", type=float, help="Navier-Stokes final time (5)")
    parser.add_argument(
        "--no-anchor", action="store_true", help="factorch only (skip neuraloperator's models)"
    )
    parser.add_argument("--tag", default="", help="suffix of the JSON file name")
    parser.add_argument(
        "--gap", default="", help="epoch counts (e.g. 20,60): TFNO-vs-dense gap on darcy16 only"
    )
    parser.add_argument(
        "--cross",
        default="",
        help=f"dense FNO, initial weights x training loop on the first problem: any of {CROSS}",
    )
    parser.add_argument("--seed-list", default="", help="explicit seeds (e.g. 0,2)")
    args = parser.parse_args()
    for key in ("n_train", "n_test", "epochs", "ns_solve", "ns_viscosity", "ns_t"):
        if getattr(args, key) is not None:
            OVERRIDE[key] = getattr(args, key)
    pin_threads(args.threads)
    threads = apply_threads(args.threads)
    import torch

    seeds = list(range(1 if args.quick else args.seeds))
    if args.seed_list:
        seeds = [int(s) for s in args.seed_list.split(",")]
    if args.cross:
        modes = args.cross.split(",")
        unknown = set(modes) - set(CROSS)
        if unknown:
            parser.error(f"--cross: unknown {sorted(unknown)}; choose from {CROSS}")
        (problem, *_), _ = make_problems(args.quick, {args.problems.split(",")[0]})

        def save(res: dict[str, Any]) -> Path:
            payload = {"machine": machine_info(), "seeds": seeds, **res}
            return write_results("bench_operator_cross" + args.tag, payload)

        res = cross(problem, modes, seeds, save)
        for k, v in res.items():
            print(f"{k}: L2 {v['l2']:.4f}, H1 {v['h1']:.4f}")
        path = save(res)
        print(f"wrote {path}")
        return
    if args.gap:
        names = set(args.variants.split(",")) & {n for n, _ in GAP_VARIANTS} or {
            n for n, _ in GAP_VARIANTS
        }
        gap = tfno_gap([int(e) for e in args.gap.split(",")], seeds, names)
        for k, v in gap.items():
            print(f"{k}: params {v['params']}, L2 {v['l2_16']:.4f}, H1 {v['h1_16']:.4f}")
        path = write_results("bench_operator_gap" + args.tag, {"machine": machine_info(), **gap})
        print(f"wrote {path}")
        return
    wanted = set(args.problems.split(","))
    problems, gen_times = make_problems(args.quick, wanted)
    variants = [v for v in VARIANTS if v[0] in set(args.variants.split(","))]
    results: dict[str, Any] = {
        "machine": machine_info(),
        "threads": threads,
        "quick": args.quick,
        "seeds": seeds,
        "generation_s": gen_times,
        "runs": [],
    }
    rows = []
    for p in problems:
        if p.name not in wanted:
            continue
        entries: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = [
            (name, v, None) for name, v in variants
        ]
        if p.name.startswith("navier_stokes"):
            entries += [
                (name, v, mg) for name, v, mg in MG_VARIANTS if name in args.variants.split(",")
            ]
            entries += [
                (name, v, None) for name, v in NS_VARIANTS if name in args.variants.split(",")
            ]
        for name, variant, mg in entries:
            per: dict[str, list[dict[str, Any]]] = {"factorch": [], "neuraloperator": []}
            for seed in seeds:  # interleaved: both libraries per seed
                ours = ours_model(p, variant, seed, mg=mg)
                r = train_ours(p, ours, seed)
                r["memory"] = step_memory(p, ours)
                r.pop("model")
                per["factorch"].append(r)
                anchor = mg is None and not variant.get("joint") and not args.no_anchor
                if anchor and "spectral_lr_scale" not in variant:
                    theirs = neuralop_model(p, variant, seed)
                    r2 = train_neuralop(p, theirs, seed)
                    r2["memory"] = step_memory(p, theirs)
                    per["neuraloperator"].append(r2)
            for lib, runs in per.items():
                if not runs:
                    continue
                summary = summarize(runs)
                results["runs"].append(
                    {"problem": p.name, "model": name, "library": lib, **summary, "per_seed": runs}
                )
                res_keys = list(p.tests)
                rows.append(
                    [
                        p.name,
                        name,
                        lib,
                        summary["params"],
                        summary["l2"][res_keys[0]],
                        summary["h1"][res_keys[0]],
                        summary["train_l2"],
                        summary["l2"][res_keys[1]],
                        summary["s_per_epoch"],
                        summary["memory_mb"],
                    ]
                )
            print(
                format_table(
                    HEADER,
                    rows[-2:],
                ),
                flush=True,
            )
            # Written after every model, so a run cut short keeps the rows it finished.
            write_results("bench_operator" + _tag(args, wanted), results)
    results["solver_accuracy"] = {} if args.no_extras else solver_accuracy()
    results["generation_scaling_s"] = {} if args.no_extras else generation_scaling(args.quick)
    print()
    print(format_table(HEADER, rows))
    print()
    for k, v in results["solver_accuracy"].items():
        print(f"{k}: {v:.3e}")
    for k, v in {**gen_times, **results["generation_scaling_s"]}.items():
        print(f"generate {k}: {v:.2f} s")
    path = write_results("bench_operator" + _tag(args, wanted), results)
    print(f"wrote {path}")
    del torch


def _tag(args: argparse.Namespace, wanted: set[str]) -> str:
    tag = "_quick" if args.quick else ("_" + "_".join(sorted(wanted)) if args.no_extras else "")
    return tag + args.tag


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = list(runs[0]["errors"])
    return {
        "params": runs[0]["params"],
        "l2": {k: statistics.median(r["errors"][k]["l2"] for r in runs) for k in keys},
        "h1": {k: statistics.median(r["errors"][k]["h1"] for r in runs) for k in keys},
        "train_l2": statistics.median(r["train_errors"]["l2"] for r in runs),
        "train_h1": statistics.median(r["train_errors"]["h1"] for r in runs),
        "s_per_epoch": statistics.median(r["s_per_epoch"] for r in runs),
        "memory_mb": statistics.median(r["memory"] for r in runs) / 2**20,
    }


if __name__ == "__main__":
    main()
