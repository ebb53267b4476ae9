"""Pieces shared by the Tucker, tensor-train and tensor-ring algorithms.

* rank and option validation at the public boundary (numpy integers accepted wherever an int is);
* :func:`prepare` / :func:`finish`: the numerical guards every entry point applies the same way
  (issue 9): half precision computed in float32, the data divided by an exact power of two so
  that squared norms neither under- nor overflow, the model scaled back, cast to the input dtype
  and refused when it cannot be represented there, and for half precision the reported error
  recomputed for the model actually returned;
* :func:`renamed`: the deprecated spellings of renamed keywords;
* :func:`sweep`: the dimension-tree Gauss--Seidel sweep used by HOOI and non-negative Tucker
  (each partial contraction ``X x_{m in S} U_m^H`` is computed once and shared by the modes below
  it, so a sweep reads the full tensor about twice instead of ``N`` times);
* :func:`converged`: the stopping rule for errors computed from norms.

The truncated factorisations themselves live in :mod:`factorch.decomp._truncate`. Everything here
is private to :mod:`factorch.decomp` (no ``__all__`` entries).
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import torch

from .._checks import as_index, as_tensor, check_finite, check_tensor
from .._checks import check_generator as _check_generator
from .._numerics import HALF_DTYPES, power_of_two_scale, upcast, working_dtype
from ..algebra.internal import mode_dot as _mode_dot
from ..algebra.internal import mode_product
from ..tensors import FactorizedTensor, TuckerTensor

__all__: list[str] = []

SVDMethod = Literal["auto", "full", "gram", "randomized"]
"""How each truncation is computed (the ``svd=`` option of HOSVD, TT-SVD, TT-matrix and TR-SVD)."""


# --- validation ------------------------------------------------------------------------------
def is_int(x: object) -> bool:
    """An integral value that is not a bool (Python, numpy or other ``__index__`` integers)."""
    if isinstance(x, bool) or type(x).__name__ == "bool_":
        return False
    if isinstance(x, int):
        return True
    if isinstance(x, (float, complex, str, bytes)) or not hasattr(type(x), "__index__"):
        return False
    try:
        operator.index(x)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def as_int(x: object, fn: str, name: str) -> int:
    """``x`` as a Python int (after :func:`is_int`), so numpy ranks never reach torch shapes."""
    return as_index(x, fn, name)


_LINALG_DTYPES = (
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.complex64,
    torch.complex128,
)


def check_linalg_dtype(x: torch.Tensor, fn: str, name: str = "tensor") -> None:
    """float16, bfloat16 (computed in float32), float32, float64, complex64 or complex128."""
    if x.dtype not in _LINALG_DTYPES:
        raise TypeError(
            f"{fn}: {name} must be float16, bfloat16, float32, float64, complex64 or complex128; "
            f"got {x.dtype}. Convert it first, e.g. {name}.float()."
        )


def check_literal(value: object, options: Sequence[str], fn: str, name: str) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{fn}: {name} must be one of {tuple(options)}; got {value!r}.")
    return value


def check_rel_tol(value: object, fn: str, name: str) -> float:
    """A relative accuracy in the open interval (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{fn}: {name} must be a float in (0, 1); got {type(value).__name__}.")
    value = float(value)
    if not (0.0 < value < 1.0):
        raise ValueError(
            f"{fn}: {name} must be a relative accuracy in (0, 1); got {value}. "
            f"{name}=0.01 asks for ||X - X_hat|| <= 0.01 ||X||."
        )
    return value


def check_iter_options(max_iter: object, tol: object, fn: str) -> tuple[int, float]:
    if not is_int(max_iter):
        raise TypeError(f"{fn}: max_iter must be a positive int; got {type(max_iter).__name__}.")
    iters = as_int(max_iter, fn, "max_iter")
    if iters < 1:
        raise ValueError(f"{fn}: max_iter must be a positive int; got {iters!r}.")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
        raise ValueError(
            f"{fn}: tol must be a non-negative float (0 runs all max_iter iterations); got {tol!r}."
        )
    return iters, float(tol)


def check_callback(callback: object, fn: str) -> None:
    if callback is not None and not callable(callback):
        raise TypeError(f"{fn}: callback must be callable or None; got {type(callback).__name__}.")


def check_generator(generator: object, fn: str) -> torch.Generator | None:
    """``None`` or a ``torch.Generator``; a seed or anything else raises ``TypeError``."""
    return _check_generator(generator, fn)


def check_tucker_rank(
    rank: object, shape: Sequence[int], modes: Sequence[int], fn: str
) -> tuple[int, ...]:
    """Per-mode Tucker ranks for ``modes``: an int (same for every mode) or one int per mode.

    A rank larger than its mode size is an error (it cannot be represented with orthonormal
    factors); the message names the mode and the limit. So absurd ranks are refused before any
    allocation.
    """
    entries: tuple[object, ...]
    if is_int(rank):
        entries = (rank,) * len(modes)
    elif isinstance(rank, (tuple, list)):
        if len(rank) != len(modes):
            raise ValueError(
                f"{fn}: rank needs one entry per decomposed mode ({len(modes)}); got {tuple(rank)}."
            )
        entries = tuple(rank)
    else:
        raise TypeError(f"{fn}: rank must be an int or a tuple of ints; got {type(rank).__name__}.")
    ranks: list[int] = []
    for i, (m, r) in enumerate(zip(modes, entries)):
        if not is_int(r):
            raise TypeError(f"{fn}: rank[{i}] must be an int; got {type(r).__name__}.")
        value = as_int(r, fn, f"rank[{i}]")
        if value < 1:
            raise ValueError(f"{fn}: rank must be positive; got {value} for mode {m}.")
        if value > shape[m]:
            raise ValueError(
                f"{fn}: rank {value} for mode {m} exceeds that mode's size {shape[m]}; a Tucker "
                f"rank can be at most the mode size (pass rank[{i}] <= {shape[m]})."
            )
        ranks.append(value)
    return tuple(ranks)


def check_core_bound(ranks: dict[int, int], shape: Sequence[int], fn: str) -> None:
    """Each ``R_n <= prod_{m != n} R_m`` (undecomposed modes count with their full size)."""
    sizes = [ranks.get(m, shape[m]) for m in range(len(shape))]
    for n, r in ranks.items():
        others = math.prod(sizes[:n] + sizes[n + 1 :])
        if len(shape) > 1 and r > others:
            raise ValueError(
                f"{fn}: rank {r} for mode {n} exceeds the product of the other ranks ({others}); "
                f"the core would be rank-deficient along mode {n}. Use at most {others} there."
            )


# --- random draws ----------------------------------------------------------------------------
def randn(
    shape: Sequence[int],
    dtype: torch.dtype,
    device: torch.device,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Gaussian draw on the generator's device (or ``device``), then moved to ``device``."""
    where = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, dtype=dtype, device=where).to(device)


def rand(
    shape: Sequence[int],
    dtype: torch.dtype,
    device: torch.device,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Uniform [0, 1) draw on the generator's device (or ``device``), then moved to ``device``."""
    where = generator.device if generator is not None else device
    return torch.rand(tuple(shape), generator=generator, dtype=dtype, device=where).to(device)


# --- deprecated spellings ----------------------------------------------------------------------
_T = TypeVar("_T")


def renamed(
    new: _T | None, old: _T | None, fn: str, new_name: str, old_name: str, *, depth: int = 0
) -> _T | None:
    """The value of a renamed keyword: ``new``, or the deprecated ``old`` with a warning.

    The warning points at the caller of the public function (which is wrapped once by
    :func:`factorch._numerics.no_autocast`); ``depth`` counts helper frames in between.
    """
    if old is None:
        return new
    if new is not None:
        raise TypeError(
            f"{fn}: {old_name} is the deprecated name of {new_name}; pass {new_name} only."
        )
    warnings.warn(
        f"{fn}: {old_name}= is deprecated; use {new_name}= (the name every factorch "
        f"decomposition uses). The old name will be removed in factorch 0.3.",
        DeprecationWarning,
        stacklevel=4 + depth,
    )
    return old


# --- the numerical guards (issue 9) ------------------------------------------------------------
@dataclass(frozen=True)
class Work:
    """The data as the algorithms see them.

    Attributes:
        data: the input in its working dtype (float32 for half precision), divided by ``scale``
            (exact), detached when the caller does not differentiate.
        scale: the power of two the data were divided by (1.0 for all-zero data).
        dtype: the input's dtype (the returned model's dtype).
        source: the input as given (for the recomputed error of half-precision results).
    """

    data: torch.Tensor
    scale: float
    dtype: torch.dtype
    source: torch.Tensor


def data_scale(x: torch.Tensor) -> float:
    """The power of two the data are divided by: 1.0 while the largest magnitude ``m`` lies in
    ``[2**-q, 2**q]`` with ``q`` a quarter of the working dtype's exponent range (float32:
    ``2e-10 .. 4e9``; float64: ``1e-77 .. 1e77``), where squares, Gram entries and squared norms
    cannot under- or overflow, so ordinary data are used as they are (no copy); outside it,
    :func:`factorch._numerics.power_of_two_scale`'s ``2**e`` with ``m / 2**e`` in ``[0.5, 1)``.

    The peak comes from ``aminmax`` (one pass, no temporary copy) for real data.
    """
    if x.numel() == 0:
        return 1.0
    if x.is_complex():
        peak = float(x.detach().abs().max())
    else:
        low, high = torch.aminmax(x.detach())
        peak = max(-float(low), float(high))
    if peak == 0.0 or not math.isfinite(peak):
        return 1.0
    _, exponent = math.frexp(peak)
    real = working_dtype(x.real.dtype if x.is_complex() else x.dtype)
    quarter = int(math.log2(torch.finfo(real).max)) // 4
    return 1.0 if -quarter <= exponent <= quarter else math.ldexp(1.0, exponent)


def prepare(tensor: torch.Tensor, *, detach: bool) -> Work:
    """Upcast half precision, detach if asked, divide by :func:`data_scale` (exact)."""
    x = tensor.detach() if detach else tensor
    scale = data_scale(x)
    data = upcast(x)
    if scale != 1.0:
        data = data / scale
    return Work(data, scale, tensor.dtype, tensor)


class Model(Protocol):
    """What :func:`finish` needs of a factorized tensor."""

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Model: ...

    def _tensors(self) -> tuple[torch.Tensor, ...]: ...

    def to_dense(self) -> torch.Tensor: ...


_M = TypeVar("_M", bound=Model)


def finish(
    work: Work,
    model: _M,
    rescale: Callable[[_M, float], _M],
    errors: Sequence[float],
    fn: str,
    mask: torch.Tensor | None = None,
) -> tuple[_M, tuple[float, ...]]:
    """Scale the model back, cast it to the input dtype, check it, and make the last error true.

    ``rescale(model, s)`` multiplies the represented tensor by ``s`` (one core or block). A model
    that overflows (or, for non-zero data, underflows to zero) in the input dtype is refused with
    a ``ValueError``. For half-precision inputs the last error is recomputed for the returned
    (rounded) model, on the observed entries when a ``mask`` is given; float32/float64 errors
    are already true (the scaling is exact).
    """
    out = rescale(model, work.scale) if work.scale != 1.0 else model
    if out._tensors()[0].dtype != work.dtype:
        out = out.to(dtype=work.dtype)  # type: ignore[assignment]
    for t in out._tensors():
        if not bool(torch.isfinite(t).all()):
            raise ValueError(
                f"{fn}: the fitted model cannot be represented in {work.dtype}: its entries "
                f"overflow (the data's largest entry is about {work.scale:.3g}). Convert the "
                "data to a wider dtype (e.g. tensor.double()) first."
            )
    errs = tuple(errors)
    if work.dtype in HALF_DTYPES and errs:
        errs = (*errs[:-1], true_error(work.source, out, mask))
    return out, errs


def true_error(tensor: torch.Tensor, model: Model, mask: torch.Tensor | None = None) -> float:
    """``||X - X_hat|| / ||X||`` of a model, recomputed densely in float32 or wider with scaling
    (over the entries where ``mask`` is True when one is given)."""
    x = upcast(tensor.detach())
    approx = model.to(dtype=x.dtype).to_dense().detach()
    if mask is not None:
        x, approx = x[mask], approx[mask]
    s = power_of_two_scale(x)
    num = float(torch.linalg.vector_norm(((x - approx) / s).double()))
    den = float(torch.linalg.vector_norm((x / s).double()))
    return num / den if den > 0 else (0.0 if num == 0 else math.inf)


def scale_tucker(model: TuckerTensor, s: float) -> TuckerTensor:
    """The Tucker model times ``s`` (the core scaled)."""
    return TuckerTensor(model.core * s, model.factors)


_Chain = TypeVar("_Chain", bound=FactorizedTensor)


def scale_last_core(model: _Chain, s: float) -> _Chain:
    """A TT, TR or TT-matrix model times ``s`` (the last core scaled, so a left-orthonormal TT
    stays left-orthonormal)."""
    cores = model._tensors()
    out: _Chain = model._replace_tensors([*cores[:-1], cores[-1] * s])
    return out


def times_power_of_two(t: torch.Tensor, exponent: int) -> torch.Tensor:
    """``t * 2**exponent`` in steps the dtype can hold (exact unless the result over/underflows)."""
    step = int(math.log2(torch.finfo(t.real.dtype if t.is_complex() else t.dtype).max)) - 1
    while exponent != 0:
        e = max(-step, min(step, exponent))
        t = t * (2.0**e)
        exponent -= e
    return t


def log2_scale(t: torch.Tensor) -> int:
    """The exponent ``e`` of :func:`power_of_two_scale` (``2**e``; 0 for all-zero data)."""
    return round(math.log2(power_of_two_scale(t)))


def refine_error(data: torch.Tensor, model: Model, err: float) -> float:
    """``err`` from a norm formula, or, where that formula has run out of digits, the residual.

    ``sqrt(||X||^2 - ||X_hat||^2) / ||X||`` carries an absolute uncertainty of about
    ``eps / err``; below ``100 sqrt(eps)`` (0.035 in float32, 1.5e-6 in float64) that is more than
    a thousandth of ``err``, so the error of the final model is measured from the dense residual
    (one reconstruction) instead. ``data`` is the scaled working tensor.
    """
    eps = torch.finfo(data.real.dtype if data.is_complex() else data.dtype).eps
    if err >= 100 * math.sqrt(eps):
        return err
    den = float(torch.linalg.vector_norm(data.detach()))
    if den == 0:
        return 0.0
    resid = data.detach() - model.to_dense().detach()
    return float(torch.linalg.vector_norm(resid)) / den


def check_data(
    tensor: object, fn: str, *, min_ndim: int = 1, ndim: int | None = None, name: str = "tensor"
) -> torch.Tensor:
    """The data argument at a public boundary: numpy/array-likes converted once, then a finite,
    non-empty floating tensor with at least ``min_ndim`` dimensions in a supported dtype."""
    x = as_tensor(tensor, fn, name)
    check_tensor(x, fn, name, min_ndim=min_ndim, ndim=ndim, finite=False)
    check_linalg_dtype(x, fn, name)
    check_finite(x, fn, name)
    return x


def check_masked_data(
    tensor: object, mask: object, fn: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The data and its mask of observed entries (``None`` when ``mask`` is None).

    With a mask the unobserved entries may hold anything (NaN included): they are returned as
    zeros; the observed ones must be finite.
    """
    if mask is None:
        return check_data(tensor, fn), None
    from ._masking import check_mask, zero_missing

    x = as_tensor(tensor, fn, "tensor")
    check_tensor(x, fn, "tensor", min_ndim=1, finite=False)
    check_linalg_dtype(x, fn, "tensor")
    m = check_mask(mask, x, fn)
    return zero_missing(x, m), m


def masked_rel_error(data: torch.Tensor, approx: torch.Tensor, mask: torch.Tensor) -> float:
    """``||P(X - X_hat)|| / ||P(X)||`` over the observed entries (``data`` zero elsewhere)."""
    den = float(torch.linalg.vector_norm(data))
    if den == 0:
        return 0.0
    resid = torch.where(mask, data - approx, torch.zeros((), dtype=data.dtype, device=data.device))
    return float(torch.linalg.vector_norm(resid)) / den


# --- HOOI-style sweeps -----------------------------------------------------------------------
def ttm(t: torch.Tensor, matrix: torch.Tensor, mode: int) -> torch.Tensor:
    """``t x_mode matrix`` (``matrix`` is ``J x I_mode``) without permuted copies of ``t``.

    The last mode is computed as ``(matrix @ T^T)^T`` with ``T = t.reshape(-1, I)``: MKL runs this
    wide GEMM about twice as fast as the skinny ``T @ matrix^T`` (measured 18 vs 38 ms for a
    200^3 float64 tensor and J = 20, one thread); the ``J x prod`` result is transposed back
    (a copy ``J / I`` the size of ``t``). Other modes use the copy-free ``_mode_dot``. Large CPU
    tensors outside autograd instead use the formulation timed fastest on first use
    (:func:`factorch.algebra._gemm.mode_product`).
    """
    tuned = mode_product(t, matrix, mode) if t.ndim > 1 else None
    if tuned is not None:
        return tuned
    if mode == t.ndim - 1 and t.ndim > 1:
        size = t.shape[-1]
        out = (matrix @ t.reshape(-1, size).mT).mT.contiguous()
        return out.reshape(*t.shape[:-1], matrix.shape[0])
    return _mode_dot(t, matrix, mode)


def contract_modes(
    t: torch.Tensor, factors: Sequence[torch.Tensor | None], modes: Sequence[int]
) -> torch.Tensor:
    """``t x_{m in modes} factors[m]^H``, largest size reduction first (no permuted copies)."""
    order = sorted(modes, key=lambda m: (factors[m].shape[1] / factors[m].shape[0], -m))  # type: ignore[union-attr]
    for m in order:
        t = ttm(t, factors[m].mH, m)  # type: ignore[union-attr]
    return t


def sweep(
    t: torch.Tensor,
    active: Sequence[int],
    factors: list[torch.Tensor | None],
    update: Callable[[int, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Gauss--Seidel update of ``factors[n]`` for ``n`` in ``active`` (in order) by a binary
    dimension tree.

    ``t`` is the data already contracted with ``factors[m]^H`` for every decomposed mode outside
    ``active``. ``update(n, t_n)`` receives ``t_n = X x_{m != n} U_m^H`` (current factors) and
    returns the new ``U_n``. Returns the leaf tensor of the last active mode (contract it with the
    new last factor to get the core).
    """
    if len(active) == 1:
        n = active[0]
        factors[n] = update(n, t)
        return t
    h = len(active) // 2
    left, right = list(active[:h]), list(active[h:])
    sweep(contract_modes(t, factors, right), left, factors, update)
    return sweep(contract_modes(t, factors, left), right, factors, update)


def converged(
    prev: float, err: float, tol: float, dtype: torch.dtype, *, exact: bool = False
) -> bool:
    """Stop when the relative error changed by less than ``tol``.

    Errors computed as ``sqrt(||X||^2 - ||X_hat||^2) / ||X||`` carry an absolute uncertainty of
    about ``eps / err`` (``eps`` of the working dtype); changes below ten times that are noise, so
    the threshold is raised to it unless ``exact`` (the error came from the residual itself).
    ``tol == 0`` disables stopping.
    """
    if tol == 0:
        return False
    if exact:
        return abs(prev - err) < tol
    eps = torch.finfo(dtype).eps
    floor = 10 * eps / max(err, math.sqrt(eps))
    return abs(prev - err) < max(tol, floor)


def rel_error(norm_x2: float, norm_hat2: float) -> float:
    """``sqrt(max(||X||^2 - ||X_hat||^2, 0)) / ||X||`` for an orthogonal projection ``X_hat``."""
    if norm_x2 <= 0:
        return 0.0
    return math.sqrt(max(norm_x2 - norm_hat2, 0.0) / norm_x2)


def sq_norm(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t.detach()).double() ** 2)
