"""The ``--method`` table (``cli/_methods.py``): typed adapters, rank and memory checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cli_helpers import assert_one_line_error, gen, invoke, planted

from factorch.cli._common import CLIError
from factorch.cli._methods import METHODS, FitRequest, check_memory, parse_rank
from factorch.decomp import cp, non_negative_cp, tr_als, tt_svd, tucker


def test_the_table_lists_each_method_once_with_its_function():
    assert list(METHODS) == ["cp", "ntf", "tucker", "tt", "tr"]
    assert {m.name: m.function for m in METHODS.values()} == {
        "cp": "factorch.decomp.cp",
        "ntf": "factorch.decomp.non_negative_cp",
        "tucker": "factorch.decomp.tucker",
        "tt": "factorch.decomp.tt_svd",
        "tr": "factorch.decomp.tr_als",
    }
    assert [m.name for m in METHODS.values() if m.handles_mask] == ["cp", "ntf", "tucker"]
    assert [m.name for m in METHODS.values() if not m.iterative] == ["tt"]


def request(x: torch.Tensor, rank, init="default") -> FitRequest:
    return FitRequest(x, None, rank, init, 7, 1e-8, 5, None)


ADAPTER_CASES = [
    ("cp", 2, "default", lambda x: cp(x, 2, init="svd", max_iter=7, generator=gen(5))),
    ("cp", 2, "random", lambda x: cp(x, 2, init="random", max_iter=7, generator=gen(5))),
    ("ntf", 2, "random",
     lambda x: non_negative_cp(x, 2, init="random", max_iter=7, generator=gen(5))),
    ("tucker", (3, 2, 2), "default",
     lambda x: tucker(x, (3, 2, 2), init="hosvd", max_iter=7, generator=gen(5))),
    ("tt", 2, "default", lambda x: tt_svd(x, 2, generator=gen(5))),
    ("tr", 2, "random", lambda x: tr_als(x, 2, init="random", max_iter=7, generator=gen(5))),
]  # fmt: skip


@pytest.mark.parametrize(("name", "rank", "init", "reference"), ADAPTER_CASES,
                         ids=[f"{c[0]}-{c[2]}" for c in ADAPTER_CASES])  # fmt: skip
def test_each_adapter_is_the_library_call(name, rank, init, reference):
    x = planted()
    got = METHODS[name].fit(request(x, rank, init))
    ref = reference(x)
    torch.testing.assert_close(got.model.to_dense(), ref.model.to_dense(), rtol=0, atol=0)
    assert got.errors == ref.errors


@pytest.mark.parametrize(("text", "rank"), [("3", 3), ("3,4,5", (3, 4, 5)), (" 2 , 1 ", (2, 1))])
def test_parse_rank(text, rank):
    assert parse_rank(text) == rank


BAD_RANKS = [
    (["{d}/x.npy", "--rank", "31"],
     r"rank 31 is too large for a tensor of shape \(6, 5, 4\): at most 20"),
    (["--rank", "67"], r"rank 67 is too large .* \(438, 6, 11\): at most 66"),
    (["{d}/x.npy", "--rank", str(10**30)], r"rank 1000000000000000000000000000000 is too large"),
    (["{d}/x.npy", "--method", "ntf", "--rank", "2,2"], r"--method ntf takes one integer rank"),
    (["{d}/x.npy", "--method", "tucker", "--rank", "3,6,2"],
     r"rank 6 is too large for mode 1 of size 5"),
    (["{d}/x.npy", "--method", "tucker", "--rank", "3,2"],
     r"--rank for tucker needs one entry per mode \(3\); got 2"),
    (["{d}/x.npy", "--method", "tucker", "--rank", "9"], r"no mode has 9 indices"),
    (["{d}/x.npy", "--method", "tr", "--rank", "21"],
     r"rank 21 is too large .* a ring of rank 20 .* can already be exact"),
    (["{d}/x.npy", "--method", "tt", "--rank", "2,2"], r"tt_svd: "),
    (["{d}/x.npy", "--rank", "2,2"], r"--method cp takes one integer rank"),
    (["{d}/x.npy", "--rank", "two"], r"--rank must be a positive integer"),
    (["{d}/x.npy", "--rank", "0"], r"--rank entries must be positive; got '0'"),
    (["{d}/x.npy"], r"--rank is required when decomposing a FILE"),
    (["{d}/x.npy", "--rank", "2", "--method", "svd"],
     r"Invalid value for '--method': 'svd' is not one of"),
    (["{d}/x.npy", "--rank", "2", "--method", "tt", "--init", "random"],
     r"--init random does not apply to --method tt \(one pass\)"),
    (["{d}/nan.npy", "--rank", "2", "--nan-as-missing", "--method", "tr"],
     r"has 1 missing entries, but --method tr does not handle missing values"),
    (["{d}/neg.npy", "--rank", "2", "--method", "ntf"],
     r"non_negative_cp: tensor has \d+ negative entries"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "match"), BAD_RANKS, ids=[f"bad{i}" for i in range(len(BAD_RANKS))]
)
def test_bad_method_or_rank_exits_2_with_one_line(tmp_path, argv, match):
    x = planted()
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "neg.npy", (x - 1.0).numpy())
    nan = x.clone()
    nan[0, 0, 0] = float("nan")
    np.save(tmp_path / "nan.npy", nan.numpy())
    args = ["decompose", *(a.format(d=tmp_path) for a in argv), "--out", str(tmp_path / "o")]
    code, stdout, err = invoke(*args)
    assert_one_line_error(code, err, match)
    assert stdout == "" and not (tmp_path / "o").exists()


@pytest.mark.parametrize(("name", "rank"), [("cp", 100_000), ("tr", (1000, 1000, 1000, 1000))])
def test_memory_check_refuses_before_fitting(name, rank):
    x = torch.zeros(400, 300, 300, dtype=torch.float64)  # prod / max = 90,000
    method = METHODS[name]
    with pytest.raises(CLIError, match=rf"--method {name} --rank .* needs about .* of memory"):
        check_memory(method, rank, x)


def test_memory_check_passes_ordinary_fits():
    check_memory(METHODS["cp"], 10, torch.zeros(40, 30, 20))
