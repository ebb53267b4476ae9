"""Input checks, masks and dtype rules shared by the attention functions (internal).

Every public attention function of this subpackage validates its tensors here, so one message
format (``"<fn>: <what> must be <expected>; got <value>."``) and one set of dtype rules hold:

* real floating tensors only (complex, integer and bool data are refused), finite, at least 2-D,
  on one device, with one dtype;
* under ``torch.autocast`` the result has the autocast dtype, as ``scaled_dot_product_attention``
  does (float64 inputs are left alone, as autocast does); half-precision data (float16,
  bfloat16) is computed in float32 and returned in its own dtype.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch

from ..._checks import as_tensor, check_positive_int
from ..._numerics import HALF_DTYPES, check_memory

__all__ = [
    "SMALL_ELEMENTS",
    "check_bool",
    "check_dropout",
    "check_memory_if_large",
    "check_parameter_memory",
    "check_qkv",
    "check_scale",
    "compute_dtypes",
    "errors_as",
    "finish",
    "optional_block",
    "pair_logit_bound",
    "token_bias",
    "widen_for_logits",
]


def check_qkv(
    fn: str, names: Sequence[str], tensors: Sequence[object], *, n_query: int = 1
) -> list[torch.Tensor]:
    """Validate query / key / value tensors ``(..., L, d)``, ``(..., S, d)``, ``(..., S, dv)``.

    ``tensors[:n_query]`` are queries, then come keys (width ``d``, length ``S``) and values
    (length ``S``, one common width). Key tensors are those whose name starts with ``"k"``.
    """
    out: list[torch.Tensor] = []
    for name, x in zip(names, tensors):
        t = as_tensor(x, fn, name)
        if t.is_complex() or not t.is_floating_point():
            raise TypeError(
                f"{fn}: {name} must have a real floating dtype; got {t.dtype}. Convert it "
                f"first, e.g. {name}.float()."
            )
        if t.ndim < 2:
            raise ValueError(
                f"{fn}: {name} must have at least 2 dimensions (..., length, features); got "
                f"shape {tuple(t.shape)}."
            )
        if t.numel() == 0:
            raise ValueError(
                f"{fn}: {name} has an empty dimension (shape {tuple(t.shape)}); every "
                "dimension must be at least 1."
            )
        data = t.detach()
        if not bool(torch.isfinite(data.sum())) and not bool(torch.isfinite(data).all()):
            raise ValueError(f"{fn}: {name} contains NaN or Inf entries; all must be finite.")
        out.append(t)
    first = out[0]
    for name, t in zip(names[1:], out[1:]):
        if t.device != first.device:
            raise ValueError(
                f"{fn}: {name} is on {t.device} but {names[0]} is on {first.device}; move them "
                "to one device."
            )
        if t.dtype != first.dtype:
            raise TypeError(
                f"{fn}: {name} has dtype {t.dtype} but {names[0]} has {first.dtype}; use one dtype."
            )
    batch = first.shape[:-2]
    for name, t in zip(names[1:], out[1:]):
        if t.shape[:-2] != batch:
            raise ValueError(
                f"{fn}: {name} must have the batch dimensions {tuple(batch)} of {names[0]}; got "
                f"shape {tuple(t.shape)}."
            )
    d = first.shape[-1]
    keys = [(n, t) for n, t in zip(names[n_query:], out[n_query:]) if n.startswith("k")]
    values = [(n, t) for n, t in zip(names[n_query:], out[n_query:]) if not n.startswith("k")]
    length = keys[0][1].shape[-2] if keys else values[0][1].shape[-2]
    for name, t in keys:
        if t.shape[-1] != d:
            raise ValueError(
                f"{fn}: {name} must have {d} features (the width of {names[0]}); got shape "
                f"{tuple(t.shape)}."
            )
    for name, t in keys + values:
        if t.shape[-2] != length:
            raise ValueError(
                f"{fn}: {name} must have length {length} (the key length); got shape "
                f"{tuple(t.shape)}."
            )
    if values:
        dv = values[0][1].shape[-1]
        for name, t in values:
            if t.shape[-1] != dv:
                raise ValueError(
                    f"{fn}: {name} must have {dv} features (the width of {values[0][0]}); got "
                    f"shape {tuple(t.shape)}."
                )
    return out


# Working sets below this many elements (256 MiB of float64) are never refused: skipping the
# memory query keeps small calls (training steps on short sequences) cheap.
SMALL_ELEMENTS = 1 << 25


def check_memory_if_large(
    n_elements: int, dtype: torch.dtype, device: torch.device, fn: str, what: str, hint: str
) -> None:
    """:func:`factorch._numerics.check_memory` for working sets that could fail."""
    if n_elements > SMALL_ELEMENTS:
        check_memory(n_elements, dtype, device, fn, what, hint=hint)


def check_parameter_memory(
    fn: str,
    n_parameters: int,
    dtype: torch.dtype | None,
    device: torch.device | str | None,
) -> None:
    """Refuse a module whose parameters cannot fit in ``device``'s memory, before allocating."""
    check_memory_if_large(
        n_parameters,
        torch.get_default_dtype() if dtype is None else dtype,
        torch.device("cpu") if device is None else torch.device(device),
        fn,
        f"{n_parameters} parameters",
        "use smaller dimensions",
    )


@contextlib.contextmanager
def errors_as(fn: str) -> Iterator[None]:
    """Re-raise the clear errors of the functions a module calls under the module's name.

    ``ValueError("metric_tensor_attention: the logits ...")`` raised inside
    ``MetricTensorAttention.forward`` becomes ``ValueError("MetricTensorAttention.forward: the
    logits ...")``, so the caller sees the entry point they called.
    """
    try:
        yield
    except (TypeError, ValueError, IndexError) as err:
        msg = str(err)
        head, sep, rest = msg.partition(": ")
        if not sep or " " in head or head == fn:
            raise
        raise type(err)(f"{fn}: {rest}") from err


def check_scale(fn: str, scale: object, d: int) -> float:
    """``None`` -> ``1/sqrt(d)``; otherwise a finite, non-zero real number."""
    if scale is None:
        return 1.0 / math.sqrt(d)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise TypeError(f"{fn}: scale must be a float or None; got {type(scale).__name__}.")
    if not math.isfinite(scale) or scale == 0:
        raise ValueError(f"{fn}: scale must be a finite non-zero number; got {scale}.")
    return float(scale)


def check_bool(fn: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{fn}: {name} must be a bool; got {type(value).__name__}.")
    return value


def check_dropout(fn: str, p: object, name: str = "dropout_p") -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"{fn}: {name} must be a float in [0, 1); got {type(p).__name__}.")
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"{fn}: {name} must be a float in [0, 1); got {p}.")
    return float(p)


def optional_block(fn: str, block_size: object) -> int | None:
    if block_size is None:
        return None
    return check_positive_int(block_size, fn, "block_size")


def compute_dtypes(x: torch.Tensor) -> tuple[torch.dtype, torch.dtype]:
    """``(result dtype, working dtype)`` for data ``x``.

    Under an active autocast region for ``x``'s device the result takes the autocast dtype, as
    ``torch.nn.functional.scaled_dot_product_attention`` does; float64 data keeps float64 (autocast
    never lowers it). Half-precision work is done in float32.
    """
    out = x.dtype
    device_type = x.device.type
    if out != torch.float64 and torch.is_autocast_enabled(device_type):
        out = torch.get_autocast_dtype(device_type)
    work = torch.float32 if out in HALF_DTYPES or x.dtype in HALF_DTYPES else x.dtype
    if out == torch.float64:
        work = torch.float64
    return out, work


def token_bias(
    fn: str,
    *,
    batch: torch.Size,
    n_query: int,
    n_key: int,
    attn_mask: object,
    key_padding_mask: object,
    is_causal: bool,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor | None:
    """The additive per-token bias ``T (..., L, S)`` the masks define, or ``None`` without masks.

    ``attn_mask``: boolean (``True`` = the key takes part, as in ``scaled_dot_product_attention``)
    or floating (added), broadcastable to ``(*batch, L, S)``. ``key_padding_mask``: boolean,
    broadcastable to ``(*batch, S)``, ``True`` = padding (ignored), as in
    ``torch.nn.MultiheadAttention``. ``is_causal``: key ``j`` visible to query ``i`` iff ``j <= i``
    (top-left aligned, as in ``scaled_dot_product_attention``). Blocked entries are ``-inf``.
    """
    if attn_mask is None and key_padding_mask is None and not is_causal:
        return None
    full = (*batch, n_query, n_key)
    bias = torch.zeros((), device=device, dtype=dtype)
    neg = torch.tensor(-math.inf, device=device, dtype=dtype)
    if attn_mask is not None:
        if not isinstance(attn_mask, torch.Tensor):
            raise TypeError(
                f"{fn}: attn_mask must be a torch.Tensor or None; got {type(attn_mask).__name__}."
            )
        if attn_mask.device != device:
            raise ValueError(
                f"{fn}: attn_mask is on {attn_mask.device} but the query is on {device}; move "
                "it to one device."
            )
        _check_broadcast(fn, "attn_mask", tuple(attn_mask.shape), full)
        if attn_mask.dtype == torch.bool:
            bias = torch.where(attn_mask, bias, neg)
        elif attn_mask.is_floating_point():
            if bool(torch.isnan(attn_mask).any()) or bool((attn_mask == math.inf).any()):
                raise ValueError(
                    f"{fn}: a floating attn_mask must not contain NaN or +Inf (use -inf to "
                    "block a key)."
                )
            bias = bias + attn_mask.to(dtype)
        else:
            raise TypeError(
                f"{fn}: attn_mask must be a bool or floating tensor; got {attn_mask.dtype}."
            )
    if key_padding_mask is not None:
        if not isinstance(key_padding_mask, torch.Tensor) or key_padding_mask.dtype != torch.bool:
            got = (
                key_padding_mask.dtype
                if isinstance(key_padding_mask, torch.Tensor)
                else type(key_padding_mask).__name__
            )
            raise TypeError(
                f"{fn}: key_padding_mask must be a bool tensor (True = padding); got {got}."
            )
        if key_padding_mask.device != device:
            raise ValueError(
                f"{fn}: key_padding_mask is on {key_padding_mask.device} but the query is on "
                f"{device}; move it to one device."
            )
        _check_broadcast(fn, "key_padding_mask", tuple(key_padding_mask.shape), (*batch, n_key))
        bias = torch.where(key_padding_mask.unsqueeze(-2), neg, bias)
    if is_causal:
        rows = torch.arange(n_query, device=device).unsqueeze(-1)
        cols = torch.arange(n_key, device=device)
        bias = torch.where(cols <= rows, bias, neg)
    return bias.expand(full)


def pair_logit_bound(q: torch.Tensor, k1: torch.Tensor, k2: torch.Tensor, c: float) -> float:
    """``max_i |c| Σ_l |q_il| max_j |k1_jl| max_k |k2_kl|`` in float64: a bound on every pair
    logit (Hölder), in ``O(n d)``."""
    m1 = k1.detach().abs().amax(-2).double()
    m2 = k2.detach().abs().amax(-2).double()
    r = (q.detach().abs().double() * (m1 * m2).unsqueeze(-2)).sum(-1).amax()
    return abs(c) * float(r)


def widen_for_logits(fn: str, dtype: torch.dtype, bound: float) -> torch.dtype:
    """The working dtype that holds logits up to ``bound`` (float64 when ``dtype`` cannot);
    ``ValueError`` when not even float64 can."""
    if not bound < torch.finfo(torch.float64).max / 16:
        raise ValueError(
            f"{fn}: the logits can reach {bound:.3g}, beyond the range of float64; scale the "
            "queries or keys down."
        )
    if dtype != torch.float64 and not bound < torch.finfo(dtype).max / 16:
        return torch.float64
    return dtype


def finish(fn: str, out: torch.Tensor, out_dtype: torch.dtype, what: str) -> torch.Tensor:
    """Cast the result to ``out_dtype`` and refuse it (``ValueError``) when it is not finite:
    its logits overflowed even in float64, or its values do not fit ``out_dtype``."""
    res = out.to(out_dtype)
    check = res.detach()
    if not bool(torch.isfinite(check.sum())) and not bool(torch.isfinite(check).all()):
        raise ValueError(
            f"{fn}: the result cannot be represented in {out_dtype}: {what}; scale the inputs "
            "down (divide the values, or the queries and keys, by a constant)."
        )
    return res


def _check_broadcast(fn: str, name: str, shape: tuple[int, ...], full: tuple[int, ...]) -> None:
    try:
        ok = torch.broadcast_shapes(shape, full) == torch.Size(full)
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"{fn}: {name} must broadcast to {full}; got shape {shape}.")
