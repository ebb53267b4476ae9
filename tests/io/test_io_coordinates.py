"""Coordinate files: parsing, unlisted entries, bounded memory (``io._coordinates``)."""

from __future__ import annotations

import pytest
import torch

from factorch.io import FileFormatError, read_observed, read_tensor


def test_csv_with_header_and_comments(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("# a comment\ni,j,k,value\n0,0,0,1.5\n1,2,3,-2\n\n0,1,0,4e-1\n")
    got = read_tensor(p, unlisted="zero")
    want = torch.zeros(2, 3, 4, dtype=torch.float64)
    want[0, 0, 0], want[1, 2, 3], want[0, 1, 0] = 1.5, -2.0, 0.4
    torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize(("name", "sep"), [("c.txt", " "), ("c.tsv", "\t"), ("c.txt", "  ")])
def test_whitespace_separated(tmp_path, name, sep):
    p = tmp_path / name
    p.write_text(f"0{sep}1{sep}2.5\n2{sep}0{sep}nan\n")
    got = read_tensor(p, unlisted="zero")
    assert got.shape == (3, 2)
    assert got[0, 1] == 2.5
    assert torch.isnan(got[2, 0])
    assert int((got != 0).sum()) == 2  # NaN != 0 is True; the rest are zeros


def test_integral_float_indices_accepted(tmp_path):
    (tmp_path / "c.csv").write_text("1.0,2e0,7\n")
    assert read_tensor(tmp_path / "c.csv").shape == (2, 3)


# --- what unlisted entries are ----------------------------------------------------------------
def planted_listing(tmp_path, fraction: float = 0.8, counts: bool = False):
    """A rank-1 tensor of shape (6, 5, 4), a listing of ``fraction`` of its entries."""
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.rand(n, generator=g, dtype=torch.float64) + 0.5 for n in (6, 5, 4))
    x = torch.einsum("i,j,k->ijk", a, b, c)
    if counts:
        x = torch.round(10 * x)
    listed = torch.rand(x.shape, generator=g) < fraction
    listed[-1, -1, -1] = True  # the file's indices span the whole shape
    rows = [f"{i},{j},{k},{x[i, j, k].item()!r}" for i, j, k in listed.nonzero().tolist()]
    (tmp_path / "x.csv").write_text("\n".join(rows) + "\n")
    return x, listed


def test_auto_reads_unlisted_real_values_as_missing(tmp_path):
    x, listed = planted_listing(tmp_path)
    obs = read_observed(tmp_path / "x.csv")
    assert obs.unlisted == "missing" and obs.counts is False
    assert obs.n_unlisted == obs.n_missing == int((~listed).sum()) > 0
    assert torch.equal(obs.mask, listed)
    torch.testing.assert_close(obs.tensor[listed], x[listed], rtol=0, atol=0)
    assert bool(torch.isnan(obs.tensor[~listed]).all())


def test_auto_reads_unlisted_counts_as_zeros(tmp_path):
    x, listed = planted_listing(tmp_path, counts=True)
    obs = read_observed(tmp_path / "x.csv")
    assert obs.unlisted == "zero" and obs.counts is True and obs.mask is None
    assert obs.n_unlisted == int((~listed).sum()) and obs.n_missing == 0
    torch.testing.assert_close(obs.tensor, torch.where(listed, x, 0.0), rtol=0, atol=0)


@pytest.mark.parametrize("counts", [False, True])
def test_explicit_choice_overrides_the_rule(tmp_path, counts):
    _x, listed = planted_listing(tmp_path, counts=counts)
    missing = read_observed(tmp_path / "x.csv", unlisted="missing")
    zero = read_observed(tmp_path / "x.csv", unlisted="zero")
    assert (missing.unlisted, zero.unlisted) == ("missing", "zero")
    assert torch.equal(missing.mask, listed) and zero.mask is None
    assert bool((zero.tensor[~listed] == 0).all())


def test_complete_listing_has_no_unlisted_entries(tmp_path):
    (tmp_path / "c.csv").write_text("0,0,1.5\n0,1,2.5\n1,0,3.5\n1,1,4.5\n")
    obs = read_observed(tmp_path / "c.csv", unlisted="missing")
    assert (obs.mask, obs.unlisted, obs.n_unlisted) == (None, None, 0)


def test_the_rule_decides_the_fit(tmp_path):
    """The issue's case: 80 % of a rank-1 tensor listed; zeros ruin the fit, missing does not."""
    from factorch.decomp import cp

    x, _listed = planted_listing(tmp_path)
    obs = read_observed(tmp_path / "x.csv")
    g = torch.Generator().manual_seed(0)
    fit = cp(torch.nan_to_num(obs.tensor), 1, mask=obs.mask, generator=g)
    err = float(torch.linalg.norm(fit.model.to_dense() - x) / torch.linalg.norm(x))
    assert err < 1e-6
    as_zeros = read_tensor(tmp_path / "x.csv", unlisted="zero")
    bad = cp(as_zeros, 1, generator=torch.Generator().manual_seed(0))
    bad_err = float(torch.linalg.norm(bad.model.to_dense() - x) / torch.linalg.norm(x))
    assert bad_err > 0.1


# --- FROSTT .tns ----------------------------------------------------------------------------
def test_tns_is_one_based(tmp_path):
    (tmp_path / "t.tns").write_text("1 1 1 3\n2 3 1 1\n")
    got = read_tensor(tmp_path / "t.tns")
    assert got.shape == (2, 3, 1)
    assert (got[0, 0, 0], got[1, 2, 0], float(got.sum())) == (3.0, 1.0, 4.0)


def test_tns_refuses_index_zero(tmp_path):
    (tmp_path / "t.tns").write_text("0 1 3\n")
    with pytest.raises(
        FileFormatError, match=r"line 1: indices must be positive integers \(1-based\)"
    ):
        read_tensor(tmp_path / "t.tns")


# --- malformed and oversized files ------------------------------------------------------------
MALFORMED = [
    ("0,0,1\n0,0,2\n", r"coordinate \(0, 0\) appears 2 times"),
    ("0,-1,1\n", r"line 1: indices must be non-negative integers \(0-based\); got -1.0 in mode 1"),
    ("0,1.5,1\n", r"line 1: indices must be non-negative integers"),
    ("inf,0,1\n", r"line 1: indices must be non-negative integers .*got inf in mode 0"),
    ("nan,0,1\n", r"line 1: indices must be non-negative integers .*got nan"),
    ("1e19,0,1\n", r"line 1: index 10000000000000000000 in mode 0 needs a tensor of more than"),
    ("0,1,1\n0,1\n", r"line 2: expected 3 fields like the first entry; got 2"),
    ("0,1,1\nfoo,bar,baz\n", r"line 2: expected numbers 'i,j,...,value'"),
    ("5\n", r"line 1: a coordinate line needs at least one index and a value"),
    ("i,j,value\n", r"holds no coordinate entries"),
    ("20000,20000,1\n", r"largest indices declares shape \(20001, 20001\) \(400,040,001 entries\)"),
    ("0,0,1\n0\x00,1,1\n", r"bad.csv, line 2: a NUL byte; a coordinate file is plain text"),
    ("\x00\x01\x02", r"bad.csv is not a coordinate text file .*looks like binary data"),
]


@pytest.mark.parametrize(
    ("text", "match"), MALFORMED, ids=[f"bad{i}" for i in range(len(MALFORMED))]
)
def test_malformed(tmp_path, text, match):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(FileFormatError, match=match):
        read_tensor(p)


def test_not_utf8(tmp_path):
    (tmp_path / "bad.csv").write_bytes(b"0,0,1\n\xff\xfe,1\n")
    with pytest.raises(FileFormatError, match=r"bad.csv is not a coordinate text file"):
        read_tensor(tmp_path / "bad.csv")


def test_refuses_key(tmp_path):
    (tmp_path / "c.csv").write_text("0,0,1\n")
    with pytest.raises(FileFormatError, match=r"is a coordinate file; key= does not apply"):
        read_tensor(tmp_path / "c.csv", key="x")


def test_max_entries_bounds_the_dense_shape(tmp_path):
    (tmp_path / "c.csv").write_text("9,9,1\n")
    assert read_tensor(tmp_path / "c.csv", max_entries=100).shape == (10, 10)
    with pytest.raises(FileFormatError, match=r"\(100 entries\), more than the 99 allowed"):
        read_tensor(tmp_path / "c.csv", max_entries=99)


def test_max_entries_bounds_the_listing(tmp_path):
    (tmp_path / "c.csv").write_text("".join(f"{i},1\n" for i in range(5)))
    with pytest.raises(FileFormatError, match=r"c.csv lists more than 4 entries"):
        read_tensor(tmp_path / "c.csv", max_entries=4)


def test_a_tiny_file_cannot_ask_for_gigabytes(tmp_path):
    """28 bytes whose largest index spans 2**28 entries: refused at the default limit."""
    (tmp_path / "c.csv").write_text("16383,16383,0,1\n")
    assert (tmp_path / "c.csv").stat().st_size < 28
    with pytest.raises(FileFormatError, match=r"\(268,435,456 entries\), more than the"):
        read_tensor(tmp_path / "c.csv")
