"""Opt-in compiled sparse MTTKRP: one fused gather-multiply-accumulate loop from inductor.

``torch.compile`` (inductor, C++ code generation) turns the textbook one-liner
``M.index_add_(0, i, x[:, None] * B[j] * C[k])`` into a single loop over the entries that loads
the other factors' rows, multiplies them with the value in vector registers and adds the result
into the output row: no ``nnz x R`` temporary, one pass over the coordinates. The kernel is
compiled for one thread (``cpp.threads=1``), so the loop is sequential and its writes need no
atomics; the entries are summed in the order given (deterministic, bit-identical across runs).

When the output is small enough to stay in cache (``I_n R`` up to :data:`SORT_ABOVE` elements),
the entries need not be grouped by the output mode at all, so the caller can skip the layout's
sort; larger outputs read a mode-sorted :class:`~factorch.algebra.SparseLayout` for locality.

Measured (BENCHMARKS.md, "Sparse tensors and completion"; 2-core Intel Xeon, one thread, random
10000^3 tensor with 5 M nonzeros, rank 16, float32): 19-23 ms per MTTKRP (220-260 M nonzeros/s,
process CPU time) against 119-121 ms for the eager kernel of :mod:`._sparse_mttkrp` timed in the
same process.

Compilation and its cache: the first call for an ``(N, R, dtype)`` combination compiles (tens of
seconds cold); inductor stores the result in its on-disk cache (``TORCHINDUCTOR_CACHE_DIR``, by
default under the system's temporary directory), so later processes load it in a few seconds
(tracing and loading, not compiling). Sizes (``nnz``, mode sizes) are dynamic: a new tensor of the
same kind does not compile again.

Fallback: when compilation is unavailable (no C++ compiler, an inductor error), the first failure
emits one ``RuntimeWarning`` naming the reason and every call in the process then returns
``None``, so the caller runs the eager kernel (same results up to float rounding). Past dynamo's
recompile limit (8 ``(N, R, dtype)`` kinds per process) new kinds also fall back. Calls with fewer
than :data:`MIN_ENTRIES` entries run the eager kernel (nothing to gain).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch

__all__ = ["MIN_ENTRIES", "SORT_ABOVE", "compiled_available", "compiled_mttkrp", "wants_sorted"]

# output elements (I_n * R) above which the compiled kernel reads mode-sorted entries: 2**18
# float32 elements = 1 MiB, about a core's L2 cache
SORT_ABOVE = 2**18

# fewer entries run the eager kernel: the call costs microseconds either way, and sizes 0 and 1
# would each compile a specialised kernel
MIN_ENTRIES = 2**12

_COMPILED_DTYPES = (torch.float32, torch.float64)
_state: dict[str, object] = {"fn": None, "failed": None, "warned": False}


def _fused(
    out: torch.Tensor,
    rows: torch.Tensor,
    cols: list[torch.Tensor],
    values: torch.Tensor,
    others: list[torch.Tensor],
) -> torch.Tensor:
    prod = values[:, None] * others[0][cols[0].long()]
    for f, c in zip(others[1:], cols[1:]):
        prod = prod * f[c.long()]
    return out.index_add_(0, rows.long(), prod)


def _compiled_fn() -> Callable[..., torch.Tensor]:
    fn = _state["fn"]
    if fn is None:
        fn = torch.compile(_fused, options={"cpp.threads": 1})
        _state["fn"] = fn
    return fn  # type: ignore[return-value]


def compiled_available() -> bool:
    """False once compilation failed in this process (the eager kernel is used from then on)."""
    return _state["failed"] is None


def wants_sorted(n_rows: int, rank: int) -> bool:
    """Whether the compiled kernel should read entries sorted by the output mode (large output)."""
    return n_rows * rank > SORT_ABOVE


def compiled_mttkrp(
    rows: torch.Tensor,
    cols: Sequence[torch.Tensor],
    values: torch.Tensor,
    others: Sequence[torch.Tensor],
    n_rows: int,
) -> torch.Tensor | None:
    """``M[rows[p]] += values[p] * prod_m others[m][cols[m][p]]`` by the compiled loop.

    ``None`` when the compiled kernel does not apply (no other factor, not CPU, a dtype other
    than float32/float64, autograd recording, inside ``torch.compile``) or compilation failed;
    the caller then runs the eager kernel.
    """
    if (
        not others
        or values.shape[0] < MIN_ENTRIES
        or values.device.type != "cpu"
        or values.dtype not in _COMPILED_DTYPES
        or _state["failed"] is not None
        or torch.compiler.is_compiling()
        or (
            torch.is_grad_enabled()
            and (values.requires_grad or any(f.requires_grad for f in others))
        )
    ):
        return None
    rank = others[0].shape[1]
    out = torch.zeros(n_rows, rank, dtype=values.dtype, device=values.device)
    factors = [f.contiguous() for f in others]
    for t in (out, rows, *cols, values, *factors):
        torch._dynamo.maybe_mark_dynamic(t, 0)  # one compilation for every nnz and mode size
    try:
        # past dynamo's recompile limit (8 (N, R, dtype) kinds per process) raise instead of
        # silently running _fused uncompiled (nnz x R temporaries)
        # (no_grad: grad mode is part of dynamo's guards; one kernel serves every caller)
        with (
            warnings.catch_warnings(),
            torch._dynamo.config.patch(fail_on_recompile_limit_hit=True),
            torch.no_grad(),
        ):
            warnings.simplefilter("ignore")  # inductor's own deprecation notices
            return _compiled_fn()(out, rows, list(cols), values, factors)
    except Exception as exc:  # no compiler, inductor failure: fall back to the eager kernel
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        if "RecompileLimit" not in type(exc).__name__:
            _state["failed"] = reason  # do not try again in this process
        if not _state["warned"]:
            _state["warned"] = True
            warnings.warn(
                "factorch.algebra.sparse_mttkrp: the compiled kernel is unavailable "
                f"({reason}); using the eager kernel.",
                RuntimeWarning,
                stacklevel=3,
            )
        return None
