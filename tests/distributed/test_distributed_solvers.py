"""Distributed CP-ALS, CP completion and HOSVD with 2, 3 and 4 gloo processes
on this machine give the single-process result (float64, 1e-10) on dense and sparse inputs,
uneven shards, an empty shard and a mode smaller than the number of ranks; every rank gets the
same result; partial rows travel only between the ranks that share them; bad launches fail on
every rank with the same message.

One job per world size runs the whole battery (``_distributed_worker.py battery``: starting a
process costs seconds here), the three jobs launched together; the tests compare their saved
results with references computed in this process. (Four ranks run only the checks that need
them: grids split along two modes.)
"""

from __future__ import annotations

import math
import re
from functools import cache
from pathlib import Path

import _distributed_cases as cases
import pytest
import torch

from factorch.completion import cp_als as completion_cp_als
from factorch.decomp import cp as decomp_cp
from factorch.decomp import hosvd as decomp_hosvd
from factorch.decomp import non_negative_cp
from factorch.tensors import CPTensor, SparseTensor

TOL = 1e-10
WORLDS = (2, 3, 4)


@cache
def _batteries(root: str) -> dict[int, cases.Job]:
    """The three battery jobs, launched together (their process starts overlap)."""
    args = {}
    for world in WORLDS:
        out = Path(root) / f"battery{world}"
        out.mkdir(parents=True, exist_ok=True)
        args[world] = ["battery", str(out)]
    return cases.run_many(args)


def _results(world: int, root: str) -> list[dict[str, object]]:
    job = _batteries(root)[world]
    assert job.returncodes == [0] * world, "\n".join(job.stderr)
    out = Path(root) / f"battery{world}"
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(world)]


@pytest.fixture(scope="session")
def battery_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("distributed"))


def _names(world: int) -> list[str]:
    return [c.name for c in cases.checks(world)]


def _reference(check: cases.Check) -> dict[str, object]:
    opts = dict(check.options)
    if check.method in ("cp", "nncp"):
        data = check.data.to_dense() if isinstance(check.data, SparseTensor) else check.data
        if check.method == "nncp":
            res = non_negative_cp(data, 3, method="mu", **opts)
        else:
            res = decomp_cp(data, 3, **opts)
        return {
            "weights": res.model.weights,
            "factors": list(res.model.factors),
            "errors": list(res.errors),
            "iterations": res.iterations,
            "converged": res.converged,
        }
    if check.method == "cp_als":
        res = completion_cp_als(check.data, 3, validation=check.validation, **opts)
        empty = [(check.data.counts(n) == 0).nonzero().squeeze(1) for n in range(3)]
        return {
            "model": res.model,
            "train_rmse": list(res.train_rmse),
            "val_rmse": list(res.val_rmse),
            "best_epoch": res.best_epoch,
            "epochs": res.epochs,
            "converged": res.converged,
            "empty_slices": empty,
        }
    res = decomp_hosvd(check.data, **opts)
    return {"core": res.model.core, "factors": list(res.model.factors), "errors": list(res.errors)}


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=TOL, atol=TOL)


@pytest.mark.parametrize(
    ("world", "name"),
    [pytest.param(w, n, id=f"{w}-{n}") for w in WORLDS for n in _names(w)],
)
def test_matches_single_process(world: int, name: str, battery_root: str) -> None:
    results = _results(world, battery_root)
    check = next(c for c in cases.checks(world) if c.name == name)
    got, ref = results[0][name], _reference(check)
    if check.method in ("cp", "nncp"):
        if check.method == "nncp":  # unit columns as the distributed result has them
            unit = CPTensor(ref["weights"], tuple(ref["factors"])).normalize()
            ref = {**ref, "weights": unit.weights, "factors": list(unit.factors)}
            assert min(float(f.min()) for f in got["factors"]) >= 0
        _close(got["weights"], ref["weights"])
        for a, b in zip(got["factors"], ref["factors"]):
            _close(a, b)
        assert (got["iterations"], got["converged"]) == (ref["iterations"], ref["converged"])
        assert got["errors"] == pytest.approx(ref["errors"], abs=TOL)
    elif check.method == "cp_als":
        model = CPTensor(got["weights"], tuple(got["factors"]))
        _close(model.to_dense(), ref["model"].to_dense())
        assert got["train_rmse"] == pytest.approx(ref["train_rmse"], abs=TOL)
        assert got["val_rmse"] == pytest.approx(ref["val_rmse"], abs=TOL)
        keys = ("best_epoch", "epochs", "converged")
        assert [got[k] for k in keys] == [ref[k] for k in keys]
        for a, b in zip(got["empty_slices"], ref["empty_slices"]):
            assert torch.equal(a, b)
    else:
        _close(got["core"], ref["core"])
        for a, b in zip(got["factors"], ref["factors"]):
            _close(a, b)
        assert got["errors"] == pytest.approx(ref["errors"], abs=1e-12)


def _equal(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


_PER_RANK = ("row_bytes", "comm")  # what each rank sent and waited: its own


@pytest.mark.parametrize("world", WORLDS)
def test_every_rank_gets_the_same_result(world: int, battery_root: str) -> None:
    results = _results(world, battery_root)
    for name in _names(world):
        first = {k: v for k, v in results[0][name].items() if k not in _PER_RANK}
        for r in range(1, world):
            other = {k: v for k, v in results[r][name].items() if k not in _PER_RANK}
            assert _equal(first, other), f"{name}: rank {r} differs from rank 0"


def _connectivity_rows(check: cases.Check, world: int) -> int:
    """Rows moved per sweep by all ranks together under the medium-grained model: each row
    touched by ``u`` ranks of its layer moves ``2 (u - 1)`` times (reduce and distribute)."""
    layout = check.layout()
    data = check.data
    total = 0
    for n in range(3):
        for layer in layout.layers(n):
            if len(layer) == 1:
                continue
            start, stop = layout.chunk(n, layout.coords(layer[0])[n])
            touch = torch.zeros(stop - start, dtype=torch.int64)
            for r in layer:
                if isinstance(data, SparseTensor):
                    mine = data.indices[:, layout.locate(data.indices) == r]
                    rows = torch.unique(mine[n].long()) - start
                    touch[rows] += 1
                elif all(e > s for s, e in layout.block(r)):
                    touch += 1
            total += 2 * int((touch - 1).clamp(min=0).sum())
    return total


@pytest.mark.parametrize("world", WORLDS)
def test_rows_travel_only_within_layers(world: int, battery_root: str) -> None:
    results = _results(world, battery_root)
    for check in cases.checks(world):
        if check.method not in ("cp", "nncp"):
            continue
        sent = sum(results[r][check.name]["row_bytes"] for r in range(world))
        expected = _connectivity_rows(check, world) * cases.RANK * 8
        assert sent == pytest.approx(expected), check.name
        factor_bytes = sum(check.data.shape) * cases.RANK * 8
        # Far below an all-reduce of every factor (2 (p - 1) / p of it per rank).
        assert sent / world <= 2 * (world - 1) / world * factor_bytes


BAD_LAUNCHES = {
    "shape": (
        "ValueError",
        r"^distributed\.cp: the ranks disagree on shape \(rank 0: \(11, 7, 5\), rank 1: "
        r"\(11, 7, 6\)\); layout .* every rank must pass the same layout",
    ),
    "rank": (
        "ValueError",
        r"^distributed\.cp: the ranks disagree on rank \(components\) \(rank 0: 3, rank 1: 4\)",
    ),
    "wrong_shard": (
        "ValueError",
        r"^distributed\.cp: this process is rank 1 but holds the shard of rank 0; .* \(raised on "
        r"rank 1; every rank stops\)$",
    ),
    "missing_file": (
        "FileNotFoundError",
        r"^distributed\.read_dense_shard: no such file: '.*part\.1\.pt'\. \(raised on rank 1; "
        r"every rank stops\)$",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_LAUNCHES))
def test_bad_launch_fails_every_rank_with_one_message(name: str, battery_root: str) -> None:
    ranks = [r["bad_launches"] for r in _results(2, battery_root)]
    kind, pattern = BAD_LAUNCHES[name]
    assert ranks[0][name] == ranks[1][name]
    got_kind, message = ranks[0][name]
    assert got_kind == kind and re.search(pattern, message), message
    assert ranks[0]["healthy_after"] is None  # the group survives agreed errors


@pytest.mark.parametrize("name", ["sparse_m0", "als_m0"])
def test_injected_latency_delays_every_collective_and_changes_nothing(
    name: str, battery_root: str
) -> None:
    """``fd.inject_latency``: off by default; on, every collective of each rank sleeps alpha
    plus its bytes / bandwidth inside the timed collective, and the results are bit-identical."""
    alpha, bandwidth = cases.LATENCY
    for ranked in _results(2, battery_root):
        off, on = ranked["latency"][f"{name}_off"], ranked["latency"][f"{name}_on"]
        same = {k: v for k, v in on.items() if k != "comm"}
        assert _equal({k: v for k, v in off.items() if k != "comm"}, same)
        assert off["comm"]["injected"] == 0.0
        c = on["comm"]
        assert (c["calls"], c["bytes"]) == (off["comm"]["calls"], off["comm"]["bytes"])
        assert c["calls"] > 20
        assert c["injected"] == pytest.approx(c["calls"] * alpha + c["bytes"] / bandwidth)
        assert c["seconds"] >= c["injected"]  # slept inside the collectives
