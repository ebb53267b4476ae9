"""What a fitting command reads (``cli/_inputs.py``): files, datasets, masks, devices, threads.

Bad input exits 2 with one line on stderr, prints nothing on stdout and writes nothing.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _cli_helpers import assert_one_line_error, invoke, planted

from factorch.cli._inputs import resolve_device, set_threads


class Opaque:
    """Not a tensor: torch.load(weights_only=True) must refuse it."""


def make_bad_inputs(d) -> None:
    x = planted()
    np.save(d / "x.npy", x.numpy())
    torch.save(x, d / "fake.npy")
    (d / "x.mat").write_bytes(b"MATLAB 5.0")
    nan = x.clone()
    nan[0, 0, 0] = float("nan")
    np.save(d / "nan.npy", nan.numpy())
    inf = x.clone()
    inf[0, 0, 0] = float("inf")
    np.save(d / "inf.npy", inf.numpy())
    np.save(d / "big.npy", x.numpy() * 1e300)
    np.save(d / "mask_shape.npy", np.ones((2, 2), dtype=bool))
    np.save(d / "mask_vals.npy", np.full(x.shape, 2.0))
    np.save(d / "mask_none.npy", np.zeros(x.shape, dtype=bool))
    np.save(d / "vec.npy", np.arange(5.0))
    np.save(d / "empty.npy", np.zeros((0, 3)))
    np.save(d / "bool.npy", np.ones((2, 3), dtype=bool))
    np.save(d / "complex.npy", np.ones((2, 3), dtype=np.complex64))
    torch.save({"tensor": x, "x": Opaque()}, d / "obj.pt")
    (d / "nanlisted.csv").write_text("0,0,1.5\n0,1,nan\n1,1,2.5\n")
    np.savez(d / "two.npz", a=x.numpy(), b=x.numpy())


BAD = [
    (["decompose", "{d}/nope.npy", "--rank", "2"], r"FILE '.*nope.npy' does not exist"),
    (["decompose", "{d}/fake.npy", "--rank", "2"],
     r"fake.npy is not a NumPy .npy array: its content looks like a PyTorch .pt file"),
    (["decompose", "{d}/x.mat", "--rank", "2"], r"unsupported file extension '.mat'"),
    (["decompose", "{d}/obj.pt", "--rank", "2"], r"obj.pt: refused or unreadable PyTorch file"),
    (["decompose", "{d}/nan.npy", "--rank", "2"],
     r"nan.npy contains 1 NaN entries; pass --nan-as-missing"),
    (["decompose", "{d}/nanlisted.csv", "--rank", "1"],
     r"nanlisted.csv contains 1 NaN entries among its observed entries; pass --nan-as-missing"),
    (["decompose", "{d}/inf.npy", "--rank", "2"], r"inf.npy contains 1 infinite entries"),
    (["decompose", "{d}/big.npy", "--rank", "2", "--dtype", "float32"],
     r"big.npy has entries beyond the range of float32 .*use --dtype float64"),
    (["decompose", "{d}/vec.npy", "--rank", "1"],
     r"vec.npy has shape \(5,\); a decomposition needs at least 2 modes"),
    (["decompose", "{d}/empty.npy", "--rank", "1"], r"empty.npy holds an empty or 0-dimensional"),
    (["decompose", "{d}/bool.npy", "--rank", "1"], r"bool.npy holds a boolean tensor"),
    (["decompose", "{d}/complex.npy", "--rank", "1"], r"complex.npy holds a complex tensor"),
    (["decompose", "{d}/x.npy", "--rank", "2", "--max-entries", "100"],
     r"x.npy: its header declares shape \(6, 5, 4\) \(120 entries\), more than the 100 allowed "
     r"\(a memory guard\); pass --max-entries to raise the limit"),
    (["decompose", "{d}/x.npy", "--dataset", "il2_response"], r"give either FILE or --dataset"),
    (["decompose", "--dataset", "iris"], r"--dataset 'iris' is not a bundled dataset"),
    (["decompose", "--key", "t"], r"--key applies to FILE only"),
    (["decompose", "{d}/x.npy", "--rank", "2", "--key", "t"], r"x.npy holds a single array"),
    (["decompose", "{d}/two.npz", "--rank", "2"],
     r"two.npz holds 2 arrays \(a, b\); name the one to use with --key, or call it 'tensor'"),
    (["decompose", "{d}/x.npy", "--rank", "2", "--mask", "{d}/mask_shape.npy"],
     r"shape \(2, 2\) does not match the tensor's \(6, 5, 4\)"),
    (["decompose", "{d}/x.npy", "--rank", "2", "--mask", "{d}/mask_vals.npy"],
     r"entries must be 0/1 or boolean"),
    (["decompose", "{d}/x.npy", "--rank", "2", "--mask", "{d}/mask_none.npy"],
     r"x.npy: the mask leaves no observed entry"),
    (["decompose", "{d}/x.npy", "--rank", "2", "--mask", "{d}/nope.npy"],
     r"--mask '.*nope.npy' does not exist"),
    (["decompose", "{d}/x.npy", "--rank", "2", "--device", "warp9"], r"--device 'warp9' is not"),
    (["decompose", "{d}/x.npy", "--rank", "2", "--device", "meta"],
     r"--device meta: the command line runs on cpu or cuda"),
    (["rank-scan", "{d}/nan.npy", "--ranks", "1"], r"nan.npy contains 1 NaN entries"),
    (["info", "{d}/x.npy", "{d}/fake.npy"], r"fake.npy is not a NumPy .npy array"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "match"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_input_exits_2_with_one_line(tmp_path, argv, match):
    make_bad_inputs(tmp_path)
    out = tmp_path / "out"
    args = [a.format(d=tmp_path) for a in argv]
    if args[0] != "info":
        args += ["--out", str(out)]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, stdout, err = invoke(*args)
    assert_one_line_error(code, err, match)
    assert stdout == ""
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_mask_as_a_coordinate_file_of_observed_positions(tmp_path):
    x = planted()
    np.save(tmp_path / "x.npy", x.numpy())
    rows = [f"{i},{j},{k},1" for i in range(6) for j in range(5) for k in range(4) if i + j != 3]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    code, stdout, err = invoke(
        "decompose", str(tmp_path / "x.npy"), "--rank", "2", "--mask", str(tmp_path / "m.csv"),
        "--out", str(tmp_path / "o"), "--no-plots", "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["missing"] == 120 - len(rows)


def test_float32_runs_in_float32(tmp_path):
    np.save(tmp_path / "x.npy", planted().numpy())
    code, stdout, err = invoke(
        "decompose", str(tmp_path / "x.npy"), "--rank", "2", "--dtype", "float32",
        "--out", str(tmp_path / "o"), "--no-plots", "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["dtype"] == "float32"


@pytest.mark.parametrize(("device", "kind"), [("cpu", "cpu"), ("cpu:0", "cpu")])
def test_resolve_device_accepts_cpu_spellings(device, kind):
    assert resolve_device(device).type == kind


def test_resolve_device_without_cuda(monkeypatch):
    from factorch.cli._common import CLIError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(CLIError, match=r"CUDA is not available on this machine; use --device cpu"):
        resolve_device("cuda")


def test_resolve_device_with_too_few_gpus(monkeypatch):
    from factorch.cli._common import CLIError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(CLIError, match=r"this machine has 2 CUDA devices \(cuda:0 ... cuda:1\)"):
        resolve_device("cuda:7")


def test_set_threads_defaults_to_one_for_small_tensors():
    before = torch.get_num_threads()
    try:
        set_threads(None, torch.zeros(10))
        assert torch.get_num_threads() == 1
        set_threads(1, torch.zeros(10))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
