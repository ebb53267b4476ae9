"""``factorch info`` and ``factorch datasets`` (``cli/_info.py``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from _cli_helpers import FORMAT_FILES, invoke, planted, write_all_formats, write_partial_listing

import factorch.cli._info as info_mod
from factorch.cli._info import tensor_stats


def test_info_reads_every_format(tmp_path):
    x = planted()
    x[0, 0, 0] = 0.0
    paths = write_all_formats(tmp_path, x)
    code, stdout, err = invoke("info", *paths, "--json")
    assert code == 0, err
    entries = json.loads(stdout)
    assert [e["format"] for e in entries] == ["npy", "npz", "pt", "pt", "safetensors", "coo",
                                              "coo", "tns"]  # fmt: skip
    assert [e["file"].rsplit("/", 1)[1] for e in entries] == list(FORMAT_FILES)
    for e in entries:
        assert e["shape"] == [6, 5, 4]
        assert e["dtype"] == "float64"
        assert e["nonzeros"] == 119 and e["density"] == pytest.approx(119 / 120)
        assert e["missing"] == 0 and e["unlisted"] is None
        assert e["norm_fro"] == pytest.approx(float(x.norm()), rel=1e-12)
        assert e["max"] == pytest.approx(float(x.max()), rel=1e-12)


def test_info_counts_unlisted_coordinates_as_missing_and_says_so(tmp_path):
    listed = write_partial_listing(tmp_path / "x.csv", planted(), 0.8)
    n = int((~listed).sum())
    code, stdout, err = invoke("info", str(tmp_path / "x.csv"))
    assert code == 0, err
    assert f"  missing {n} ({100 * n / 120:.1f}%)" in stdout
    assert (
        f"  {tmp_path / 'x.csv'} lists {120 - n} of 120 entries; the other {n} are read as "
        "missing values (the listed values are not all counts; --unlisted zero to change)"
    ) in stdout
    code, stdout, err = invoke("info", str(tmp_path / "x.csv"), "--unlisted", "zero", "--json")
    entry = json.loads(stdout)[0]
    assert entry["missing"] == 0 and entry["unlisted"]["read_as"] == "zero"


def test_info_human_output(tmp_path):
    x = planted()
    x[0, 0, 0] = float("nan")
    np.save(tmp_path / "x.npy", x.numpy())
    code, out, err = invoke("info", str(tmp_path / "x.npy"), "--dataset", "il2_response")
    assert code == 0, err
    assert "il2_response: bundled, float64, shape 13 × 4 × 12 × 8 (4,992 entries)" in out
    assert "  missing 192 (3.8%)" in out
    assert f"{tmp_path / 'x.npy'}: npy, float64, shape 6 × 5 × 4 (120 entries)" in out
    assert "  missing 1 (0.8%)" in out


def test_info_needs_an_input():
    code, _out, err = invoke("info")
    assert code == 2 and err == "factorch: error: give at least one FILE (or --dataset NAME).\n"


def test_datasets_listing():
    code, out, err = invoke("datasets")
    assert code == 0, err
    assert "digits_counts: 1797 image × 8 row × 8 column [CC-BY-4.0]" in out
    assert "suggested: --method ntf --rank 3" in out  # il2_response
    code, out, err = invoke("datasets", "--json")
    assert [d["name"] for d in json.loads(out)] == ["covid19_serology", "il2_response",
                                                    "digits_counts"]  # fmt: skip


def reference_stats(x: torch.Tensor) -> dict:
    v = x.to(torch.float64).reshape(-1)
    finite = v[torch.isfinite(v)]
    return {
        "missing": int(torch.isnan(v).sum()),
        "infinite": int(torch.isinf(v).sum()),
        "nonzeros": int((finite != 0).sum()),
        "min": float(finite.min()),
        "max": float(finite.max()),
        "mean": float(finite.mean()),
        "std": float(finite.std(correction=0)),
        "norm_fro": float(torch.linalg.vector_norm(finite)),
    }


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int16])
def test_stats_in_chunks_equal_the_whole_tensor_ones(monkeypatch, dtype):
    monkeypatch.setattr(info_mod, "CHUNK", 7)  # many chunks, a partial last one
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(5, 6, 3, generator=g, dtype=torch.float64) * 10).to(dtype)
    if dtype.is_floating_point:
        x[0, 0, 0], x[1, 1, 1], x[2, 2, 2] = float("nan"), float("inf"), 0.0
    got = tensor_stats(x)
    for key, want in reference_stats(x).items():
        assert got[key] == pytest.approx(want, rel=1e-12), key


def test_stats_norm_neither_underflows_nor_overflows():
    tiny = torch.full((4, 4), 1e-30, dtype=torch.float32)
    huge = torch.full((4, 4), 1e30, dtype=torch.float32)
    assert tensor_stats(tiny)["norm_fro"] == pytest.approx(4e-30, rel=1e-6)
    assert tensor_stats(huge)["norm_fro"] == pytest.approx(4e30, rel=1e-6)


def test_stats_of_complex_and_bool_tensors():
    z = torch.tensor([[3 + 4j, 0j], [float("nan") + 0j, 1j]], dtype=torch.complex128)
    got = tensor_stats(z)
    assert (got["missing"], got["nonzeros"], got["min"], got["mean"]) == (1, 2, None, None)
    assert got["norm_fro"] == pytest.approx(math.sqrt(26))
    b = tensor_stats(torch.tensor([[True, False], [True, True]]))
    assert (b["nonzeros"], b["max"], b["mean"]) == (3, 1.0, 0.75)
