"""MTTKRP of a sparse tensor: ``M = X_(n) khatri_rao(A_m, m != n)`` over the listed entries only.

``M[i, r] = sum over entries p with i_n(p) = i of x_p * prod_{m != n} A_m[i_m(p), r]``.

Algorithm (measured on a 2-core AMD EPYC, one thread, random 10000^3 tensor with 5 M nonzeros,
rank 16, float32; ``benchmarks/bench_completion.py``, BENCHMARKS.md): the entries are sorted by
mode ``n`` once, into a :class:`~factorch.algebra.SparseLayout` that the caller builds and passes
to every call (about 0.2 s per mode for 5 M entries on one core, free for mode 0, which the
canonical order already sorts; without a layout each call sorts again). Then, in chunks of
about ``2**19 / R`` entries (so the temporaries stay in cache), the other factors' rows are
gathered (``index_select`` into a reused buffer) and multiplied in place, and each chunk is
reduced per output row by ``embedding_bag(mode="sum", per_sample_weights=x)`` over CSR-style row
offsets: a fused, vectorised segment sum that also applies the values. 39 ms per MTTKRP
(127 M nonzeros/s, any mode) against 6.3 M/s for the textbook
``M.index_add_(0, i, x[:, None] * B[j] * C[k])`` (2-D ``index_add_`` dispatches per row),
22 M/s for a chunked 1-D ``index_add_`` on the flattened output and about 9 M/s for
``segment_reduce``.

Opt-in ``implementation="compiled"`` (:mod:`._sparse_mttkrp_compiled`): ``torch.compile`` of the
one-liner, compiled for one thread so that inductor emits a sequential fused loop (no atomics,
no temporaries), at 220-260 M nonzeros/s; it costs a compilation (cached on disk by inductor),
so it is not the default.

Cost: ``(N - 1) R`` multiplications per entry and one pass over the entries; extra memory two
chunk buffers plus, per mode ``n > 0``, the layout's sorted copies (permutation, rows, index columns
and values: 20 bytes per entry for a 3-way float32 tensor with int32 indices).

Differentiable with respect to the factors, the weights and the values when autograd records
(an unchunked path then keeps the ``nnz x R`` product for the backward pass).

References: Bader and Kolda, "Efficient MATLAB computations with sparse and factored tensors",
SIAM J. Sci. Comput. 30(1), 2007 (COO MTTKRP); Smith et al., "SPLATT", IPDPS 2015 (sorting by
the output mode so each output row is owned by one reduction).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from .._checks import check_tensor
from .._numerics import check_memory
from ._args import as_array
from ._mttkrp import check_factors_and_mode
from ._scaling import check_overflow
from ._sparse_layout import ModeLayout, SparseLayout, as_coordinates
from ._sparse_mttkrp_compiled import compiled_mttkrp, wants_sorted

__all__ = ["Implementation", "sparse_mttkrp"]

Implementation = Literal["eager", "compiled"]
_IMPLEMENTATIONS = ("eager", "compiled")

_CPU_CHUNK_ELEMENTS = 2**19
_GPU_CHUNK_ELEMENTS = 2**25


def _chunk_size(rank: int, device: torch.device) -> int:
    budget = _GPU_CHUNK_ELEMENTS if device.type == "cuda" else _CPU_CHUNK_ELEMENTS
    return max(256, budget // max(rank, 1))


def layout_mttkrp(
    lay: ModeLayout,
    others: Sequence[torch.Tensor],
    n_rows: int,
    rank: int,
    values: torch.Tensor,
) -> torch.Tensor:
    """MTTKRP on one mode layout: ``others`` are the factors of the other modes (in mode order),
    ``values`` the entry values in layout order."""
    nnz = values.shape[0]
    dtype, device = values.dtype, values.device
    needs_grad = torch.is_grad_enabled() and (
        values.requires_grad or any(f.requires_grad for f in others)
    )
    if nnz == 0:
        return torch.zeros(n_rows, rank, dtype=dtype, device=device)
    if needs_grad:
        prod = _gather_product(others, lay.others, 0, nnz, rank, values)
        bag = torch.arange(nnz, device=device)
        return F.embedding_bag(
            bag,
            prod,
            lay.offsets,
            mode="sum",
            per_sample_weights=values,
            include_last_offset=True,
        )
    chunk = min(_chunk_size(rank, device), nnz)
    out = torch.zeros(n_rows, rank, dtype=dtype, device=device)
    buf = torch.empty(chunk, rank, dtype=dtype, device=device)
    tmp = torch.empty(chunk, rank, dtype=dtype, device=device)
    bag = torch.arange(chunk, device=device)
    starts = list(range(0, nnz, chunk))
    ends = [min(nnz, s + chunk) for s in starts]
    first_rows = lay.rows[torch.tensor(starts, device=device)].tolist()
    last_rows = lay.rows[torch.tensor(ends, device=device) - 1].tolist()
    for s, e, r0, r1 in zip(starts, ends, first_rows, last_rows):
        n = e - s
        t = buf[:n]
        if others:
            torch.index_select(others[0], 0, lay.others[0][s:e], out=t)
            for f, col in zip(others[1:], lay.others[1:]):
                torch.index_select(f, 0, col[s:e], out=tmp[:n])
                t.mul_(tmp[:n])
        else:
            t.fill_(1.0)
        offs = lay.offsets[r0 : r1 + 2].clamp(s, e) - s
        out[r0 : r1 + 1] += F.embedding_bag(
            bag[:n],
            t,
            offs,
            mode="sum",
            per_sample_weights=values[s:e],
            include_last_offset=True,
        )
    return out


def _gather_product(
    others: Sequence[torch.Tensor],
    cols: Sequence[torch.Tensor],
    s: int,
    e: int,
    rank: int,
    like: torch.Tensor,
) -> torch.Tensor:
    """``prod_m A_m[cols_m[s:e]]`` (differentiable), ones for a 1-way tensor."""
    if not others:
        return torch.ones(e - s, rank, dtype=like.dtype, device=like.device)
    prod = others[0].index_select(0, cols[0][s:e])
    for f, col in zip(others[1:], cols[1:]):
        prod = prod * f.index_select(0, col[s:e])
    return prod


def sparse_mttkrp_kernel(
    layout: SparseLayout,
    factors: Sequence[torch.Tensor | None],
    mode: int,
    values: torch.Tensor | None = None,
    *,
    implementation: Implementation = "eager",
) -> torch.Tensor:
    """Unchecked sparse MTTKRP on a prebuilt layout.

    ``factors[mode]`` may be None (every other factor is a tensor); ``values`` (``(nnz,)`` in the
    coordinates' original order) replace the layout's values (same pattern, e.g. residuals or
    loss derivatives). The eager kernel needs ``mode`` in the layout; the compiled one
    (:mod:`._sparse_mttkrp_compiled`) reads the mode's sorted entries when the layout has them
    and the coordinates in their stored order otherwise, and falls back to the eager kernel
    where it does not apply.
    """
    others = [f for m, f in enumerate(factors) if m != mode and f is not None]
    rank = next(f.shape[1] for f in factors if f is not None)
    n_rows = layout.shape[mode]
    if implementation == "compiled":
        lay = layout.layouts.get(mode)
        if lay is None:
            idx = layout.indices
            vals = layout.values if values is None else values
            rows, cols = idx[mode], [idx[m] for m in range(layout.ndim) if m != mode]
        else:
            vals = lay.values if values is None else lay.permute(values)
            rows, cols = lay.rows, list(lay.others)
        out = compiled_mttkrp(rows, cols, vals, others, n_rows)
        if out is not None:
            return out
    lay = layout.layouts.get(mode)
    if lay is None:  # the compiled kernel did not apply on a layout built for it: sort now
        lay = ModeLayout.build(layout.indices, layout.values, n_rows, mode)
    vals = lay.values if values is None else lay.permute(values)
    return layout_mttkrp(lay, others, n_rows, rank, vals)


def layout_modes(shape: Sequence[int], rank: int, implementation: Implementation) -> list[int]:
    """The modes whose sorted layout the kernel of ``implementation`` reads: every mode for the
    eager kernel; for the compiled one only the modes whose output is too large for the cache
    (the others skip the sort)."""
    if implementation == "eager":
        return list(range(len(shape)))
    return [m for m, s in enumerate(shape) if wants_sorted(s, rank)]


def _check_factors(
    factors: Sequence[object], shape: tuple[int, ...], mode: int, like: torch.Tensor, fn: str
) -> list[torch.Tensor]:
    out = []
    rank = None
    for m, f in enumerate(factors):
        f = check_tensor(
            as_array(f, fn, f"factors[{m}]"), fn, f"factors[{m}]", ndim=2, finite=False
        )
        if f.dtype != like.dtype or f.device != like.device:
            raise TypeError(
                f"{fn}: factors[{m}] is {f.dtype} on {f.device} but the tensor's values are "
                f"{like.dtype} on {like.device}; convert with .to(...)."
            )
        if rank is None:
            rank = f.shape[1]
        elif f.shape[1] != rank:
            raise ValueError(
                f"{fn}: factors must share one rank; factors[0] has {rank} columns and "
                f"factors[{m}] has {f.shape[1]}."
            )
        if m != mode and f.shape[0] != shape[m]:
            raise ValueError(
                f"{fn}: factors[{m}] has {f.shape[0]} rows but the tensor has size "
                f"{shape[m]} along mode {m}."
            )
        out.append(f)
    return out


def sparse_mttkrp(
    tensor: object,
    factors: Sequence[torch.Tensor],
    mode: int,
    *,
    weights: torch.Tensor | None = None,
    layout: SparseLayout | None = None,
    implementation: Implementation = "eager",
) -> torch.Tensor:
    """Matricized sparse tensor times Khatri--Rao product for mode ``mode``.

    Equals ``factorch.algebra.mttkrp(tensor.to_dense(), factors, mode, weights=weights)``
    (unlisted entries are zeros) at a cost proportional to ``nnz``, without forming the dense
    tensor or the Khatri--Rao product: ``M[i, r] = w_r sum_{p: i_n(p) = i} x_p prod_{m != n}
    A_m[i_m(p), r]``. The entries are grouped by mode ``mode`` through a
    :class:`~factorch.algebra.SparseLayout`: pass one built once with
    ``SparseLayout.build(tensor)`` to every call on the same coordinates; without one, each call
    builds (sorts) the layout of ``mode`` again.

    ``implementation="compiled"`` (opt-in, CPU, float32/float64, no autograd) runs one fused
    gather-multiply-accumulate loop compiled by ``torch.compile`` (inductor, C++; one thread, no
    atomics): 220-260 M nonzeros/s at rank 16 in float32, 5-6x the eager kernel on the
    test machine (BENCHMARKS.md), and for outputs that fit in cache
    (``I_mode R`` up to ``2**18`` elements) no sort at all, so a layout is optional. The first
    call per ``(N, R, dtype)`` compiles (tens of seconds; later processes load inductor's
    on-disk cache in seconds, see ``TORCHINDUCTOR_CACHE_DIR``). Where compilation is
    unavailable it warns once (``RuntimeWarning``) and uses the eager kernel; where it does not
    apply (autograd, other devices or dtypes) it uses the eager kernel silently. Results equal
    the eager kernel's up to float rounding (the entries are summed in another order).

    Args:
        tensor: a :class:`~factorch.tensors.SparseTensor` (any object with ``indices``
            ``(N, nnz)``, ``values`` ``(nnz,)`` and ``shape``).
        factors: one ``(I_m, R)`` matrix per mode (numpy arrays accepted), same dtype and device
            as ``tensor.values``; ``factors[mode]`` is only checked for its rank.
        mode: the output mode (negative values count from the end).
        weights: optional ``(R,)`` column weights.
        layout: the layout of ``tensor``'s coordinates (must include ``mode`` for the eager
            kernel).
        implementation: ``"eager"`` (default: torch operations, differentiable, any device)
            or ``"compiled"`` (see above).

    Returns:
        ``(I_mode, R)`` tensor in the values' dtype and device.

    Raises:
        TypeError: ``tensor`` is not coordinate-form sparse data; factors of another dtype or
            device.
        ValueError: factor shapes or ranks disagree; ``layout`` describes other coordinates or
            lacks ``mode``; the output would not fit in memory; an unknown ``implementation``.
        IndexError: ``mode`` out of range.

    Differentiable with respect to the factors, the weights and ``tensor.values``. Under
    autocast it computes in the values' dtype (like ``torch.index_select`` and
    ``embedding_bag``, which autocast leaves alone).

    Example:
        >>> from factorch.tensors import SparseTensor
        >>> sp = SparseTensor.from_dense(torch.eye(3, dtype=torch.float64))
        >>> a = torch.ones(3, 2, dtype=torch.float64)
        >>> sparse_mttkrp(sp, [a, 2 * a], 0).tolist()
        [[2.0, 2.0], [2.0, 2.0], [2.0, 2.0]]
    """
    fn = "sparse_mttkrp"
    coords = as_coordinates(tensor, fn)
    shape = tuple(int(s) for s in coords.shape)
    mode = check_factors_and_mode(factors, len(shape), mode, fn)
    values = coords.values
    checked = _check_factors(factors, shape, mode, values, fn)
    rank = checked[0].shape[1]
    check_memory(shape[mode] * rank, values.dtype, values.device, fn, "the output")
    if implementation not in _IMPLEMENTATIONS:
        raise ValueError(
            f"{fn}: implementation must be one of {_IMPLEMENTATIONS}; got {implementation!r}."
        )
    if layout is None:
        wanted = [m for m in layout_modes(shape, rank, implementation) if m == mode]
        layout = SparseLayout.build(coords, modes=wanted)
    else:
        if not isinstance(layout, SparseLayout):
            raise TypeError(
                f"{fn}: layout must be a factorch.algebra.SparseLayout or None; got "
                f"{type(layout).__name__}."
            )
        layout.check_describes(coords, fn)
        if implementation == "eager" and mode not in layout.layouts:
            raise ValueError(
                f"{fn}: layout was built for modes {tuple(layout.layouts)}, not mode {mode}; "
                "build it with SparseLayout.build(tensor) (every mode)."
            )
    out = sparse_mttkrp_kernel(
        layout,
        checked,
        mode,
        None if values is layout.values else values,
        implementation=implementation,
    )
    if weights is not None:
        weights = check_tensor(
            as_array(weights, fn, "weights"), fn, "weights", ndim=1, finite=False
        )
        if weights.shape[0] != rank or weights.dtype != out.dtype:
            raise ValueError(
                f"{fn}: weights must be a ({rank},) tensor of dtype {out.dtype}; got "
                f"{tuple(weights.shape)} {weights.dtype}."
            )
        out = out * weights
    inputs = [values, *(f for m, f in enumerate(checked) if m != mode)]
    check_overflow(out, inputs if weights is None else [*inputs, weights], fn)
    return out
