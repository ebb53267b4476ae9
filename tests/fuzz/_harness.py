"""The fuzz harness every public entry point is driven through (issue 9).

A fuzz test draws a :class:`Case` (a tensor argument, a rank argument and what class of input it
is) and calls an entry point with it. The outcome must be one of:

* a *clear* error: ``TypeError``, ``ValueError`` or ``IndexError`` whose message starts with the
  entry point's name (``"cp: ..."``), is one paragraph, and names what to change; or
* a *true* result: every tensor in it finite, in the input's dtype (or the dtype the entry point
  documents), and, where the entry point reports an error, that error equal to the error of the
  returned model recomputed here in float64.

Anything else -- a ``RuntimeError`` from deep inside torch, ``LinAlgError``,
``NotImplementedError``, NaN in a result, a reported error that is not the true one -- fails
the test with the case shown.

Each area (decomp, completion, nn, ...) has its own ``test_fuzz_<area>.py`` that lists its entry
points as :class:`Entry` values and runs them through :func:`fuzz_cases` with ``@given``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

__all__ = [
    "CLEAR_ERRORS",
    "Case",
    "Entry",
    "assert_clear_or_true",
    "assert_finite_result",
    "fuzz_cases",
    "result_tensors",
]

CLEAR_ERRORS = (TypeError, ValueError, IndexError)

BAD_KINDS = (
    "not_a_tensor",
    "integer_dtype",
    "bool_dtype",
    "complex_dtype",
    "empty_dim",
    "zero_dim",
    "nan",
    "inf",
    "bad_rank_value",
    "bad_rank_type",
    "absurd_rank",
)
EXTREME_KINDS = (
    "tiny_scale",
    "huge_scale",
    "half",
    "bfloat16",
    "numpy",
    "numpy_rank",
    "requires_grad",
    "non_contiguous",
    "all_zero",
    "plain",
)


@dataclasses.dataclass
class Case:
    """One fuzz input: the tensor and rank arguments and the class they were drawn from."""

    kind: str
    tensor: Any
    rank: Any
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def expect_error(self) -> bool:
        """True for the classes that must be refused (every other class may succeed)."""
        return self.kind in BAD_KINDS

    def __repr__(self) -> str:  # hypothesis prints this on failure
        t = self.tensor
        desc = (
            f"{type(t).__name__}(shape={tuple(t.shape)}, dtype={t.dtype})"
            if hasattr(t, "shape") and hasattr(t, "dtype")
            else repr(t)[:60]
        )
        return f"Case(kind={self.kind!r}, tensor={desc}, rank={self.rank!r})"


@dataclasses.dataclass(frozen=True)
class Entry:
    """A public entry point under fuzz.

    Attributes:
        name: the prefix its error messages carry (``"cp"``).
        call: ``call(tensor, rank)`` runs it with the fuzzed arguments (other options fixed).
        check: ``check(case, result)`` asserts the result is true (finite, right dtype, reported
            error equal to the recomputed one); see :func:`assert_finite_result`.
        min_ndim: smallest tensor order the entry point accepts (cases use at least this).
        max_ndim: largest tensor order to draw.
        kinds: input classes to draw (default: all).
    """

    name: str
    call: Callable[[Any, Any], Any]
    check: Callable[[Case, Any], None]
    min_ndim: int = 2
    max_ndim: int = 4
    kinds: tuple[str, ...] = BAD_KINDS + EXTREME_KINDS


def _low_rank(shape: tuple[int, ...], rank: int, seed: int, dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    factors = [torch.rand(n, rank, generator=g, dtype=torch.float64) + 0.1 for n in shape]
    letters = "abcdefgh"[: len(shape)]
    expr = ",".join(f"{c}z" for c in letters) + "->" + letters
    x = torch.einsum(expr, *factors)
    x = x + 0.01 * torch.rand(shape, generator=g, dtype=torch.float64)
    return x.to(dtype)


@st.composite
def fuzz_cases(draw: st.DrawFn, entry: Entry) -> Case:
    """Draw one :class:`Case` for ``entry``."""
    kind = draw(st.sampled_from(entry.kinds))
    ndim = draw(st.integers(entry.min_ndim, entry.max_ndim))
    shape = tuple(draw(st.lists(st.integers(2, 6), min_size=ndim, max_size=ndim)))
    rank: Any = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    x: Any = _low_rank(shape, rank, seed, dtype)
    if kind == "not_a_tensor":
        x = draw(st.sampled_from([None, "tensor", 3.0, {"a": 1}, [["a"]]]))
    elif kind == "integer_dtype":
        x = (x * 10).to(torch.int64)
    elif kind == "bool_dtype":
        x = x > 0.5
    elif kind == "complex_dtype":
        x = x.to(torch.complex64)
    elif kind == "empty_dim":
        shape = (*shape[:-1], 0)
        x = torch.empty(shape, dtype=dtype)
    elif kind == "zero_dim":
        x = torch.tensor(1.0, dtype=dtype)
        shape = ()
    elif kind in ("nan", "inf"):
        x = x.clone(memory_format=torch.contiguous_format)  # einsum output may be strided
        x.view(-1)[draw(st.integers(0, x.numel() - 1))] = math.nan if kind == "nan" else math.inf
    elif kind == "bad_rank_value":
        rank = draw(st.sampled_from([0, -1, -5]))
    elif kind == "bad_rank_type":
        rank = draw(st.sampled_from([1.5, "2", None, True]))
    elif kind == "absurd_rank":
        rank = draw(st.sampled_from([10**9, 10**12]))
    elif kind == "tiny_scale":
        x = x * (1e-30 if dtype == torch.float32 else 1e-200)
    elif kind == "huge_scale":
        x = x * (1e30 if dtype == torch.float32 else 1e200)
    elif kind == "half":
        x, dtype = x.to(torch.float16), torch.float16
    elif kind == "bfloat16":
        x, dtype = x.to(torch.bfloat16), torch.bfloat16
    elif kind == "numpy":
        x = x.numpy()
    elif kind == "numpy_rank":
        rank = np.int64(rank)
    elif kind == "requires_grad":
        x = x.clone().requires_grad_(True)
    elif kind == "non_contiguous":
        x = x.mT.contiguous().mT if x.ndim >= 2 else x
        assert x.ndim < 2 or not x.is_contiguous() or min(x.shape[-2:]) == 1
    elif kind == "all_zero":
        x = torch.zeros(shape, dtype=dtype)
    return Case(kind=kind, tensor=x, rank=rank, shape=tuple(shape), dtype=dtype)


def result_tensors(obj: Any, _depth: int = 0) -> Iterable[torch.Tensor]:
    """Every tensor reachable from ``obj`` (dataclass fields, sequences, dicts), for checks."""
    if _depth > 4:
        return
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, torch.nn.Module):
        yield from obj.parameters()
        yield from obj.buffers()
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from result_tensors(getattr(obj, f.name), _depth + 1)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from result_tensors(item, _depth + 1)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from result_tensors(item, _depth + 1)


def assert_clear_or_true(entry: Entry, case: Case) -> Any:
    """Run ``entry`` on ``case``; return its result, or None after a clear error.

    Fails when a must-refuse case succeeds, when an error is of another type or does not start
    with the entry point's name, and (through ``entry.check``) when a result is not true.
    """
    try:
        result = entry.call(case.tensor, case.rank)
    except CLEAR_ERRORS as err:
        msg = str(err)
        assert msg.startswith(f"{entry.name}:") or msg.startswith(f"{entry.name}("), (
            f"{case!r}: error does not name {entry.name!r}: {type(err).__name__}: {msg}"
        )
        assert "\n" not in msg.strip() and len(msg) < 600, f"{case!r}: unclear message: {msg}"
        return None
    assert not case.expect_error, f"{case!r}: {entry.name} accepted an input it must refuse"
    entry.check(case, result)
    return result


def assert_finite_result(case: Case, result: Any, *, dtype: torch.dtype | None = None) -> None:
    """Every tensor in ``result`` is finite and (for floating ones) in ``dtype``.

    ``dtype`` defaults to the case's dtype (numpy cases: float64 or float32 as drawn).
    """
    want = case.dtype if dtype is None else dtype
    for t in result_tensors(result):
        if t.is_floating_point() or t.is_complex():
            assert bool(torch.isfinite(t).all()), f"{case!r}: result has NaN or Inf entries"
            assert t.dtype == want, f"{case!r}: result dtype {t.dtype}, expected {want}"


def relative_error64(tensor: Any, approx: torch.Tensor) -> float:
    """``||X - X_hat|| / ||X||`` in float64 with scaling (true even for 1e-30 or 1e30 data)."""
    x = torch.as_tensor(np.asarray(tensor) if not isinstance(tensor, torch.Tensor) else tensor)
    x = x.detach().to(torch.float64)
    a = approx.detach().to(torch.float64)
    s = float(x.abs().max()) or 1.0
    num = float(torch.linalg.vector_norm((x - a) / s))
    den = float(torch.linalg.vector_norm(x / s))
    return num / den if den else num
