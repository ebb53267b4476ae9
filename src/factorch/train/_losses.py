r"""Relative Lp and H1 losses between functions sampled on uniform grids.

For a prediction ``u`` and a target ``v`` sampled on ``n_1 x .. x n_d`` points, per sample and
channel,

.. math::
    \mathrm{relLp}(u, v) = \frac{\|u - v\|_p}{\|v\|_p},\qquad
    \mathrm{relH1}(u, v) = \Big(\frac{\|u - v\|_2^2 + \sum_j \|\partial_j(u - v)\|_2^2}
                                  {\|v\|_2^2 + \sum_j \|\partial_j v\|_2^2}\Big)^{1/2},

with discrete norms (the quadrature weight ``h^d`` cancels in the ratios) and derivatives on the
unit domain: spectral (``2 pi i k`` in Fourier space) on a periodic grid ``x_j = j / n``, and
second-order finite differences (central inside, one-sided at the ends) on a node grid
``x_j = j / (n - 1)`` that includes both boundaries. The per-(sample, channel) ratios are
averaged (``reduction="mean"``, the mean per-sample relative error neuraloperator's trainer
reports) or summed. Differentiable.

References: Li et al., ICLR 2021 (relative L2); Kossaifi et al., TMLR 2024 (H1 training).
"""

from __future__ import annotations

import functools
import math
from typing import Literal, get_args

import torch
from torch import nn

__all__ = ["H1Loss", "LpLoss", "Reduction", "gradients", "relative_h1", "relative_lp"]

Reduction = Literal["mean", "sum", "none"]


def _check(pred: object, target: object, dims: object, reduction: object, fn: str) -> int:
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(
            f"{fn}: pred and target must be tensors; got {type(pred).__name__} and "
            f"{type(target).__name__}."
        )
    if pred.shape != target.shape:
        raise ValueError(
            f"{fn}: pred and target must have the same shape; got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}."
        )
    if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= pred.ndim:
        raise ValueError(f"{fn}: dims must be an int in [1, {pred.ndim}]; got {dims!r}.")
    if reduction not in get_args(Reduction):
        raise ValueError(
            f"{fn}: reduction must be one of {get_args(Reduction)}; got {reduction!r}."
        )
    if pred.numel() == 0:
        raise ValueError(f"{fn}: pred and target must not be empty; got shape {tuple(pred.shape)}.")
    if not pred.is_floating_point() or not target.is_floating_point():
        raise TypeError(
            f"{fn}: pred and target must be real floating-point tensors; got {pred.dtype} and "
            f"{target.dtype}."
        )
    return dims


def _scale(u: torch.Tensor, d: int) -> torch.Tensor:
    """Per leading index, a power of two ``s`` with ``max|u| / s`` in ``[0.5, 1)`` (1 for zero or
    non-finite fields): dividing by it is exact and keeps sums of squares clear of under- and
    overflow at any scale of the dtype. No host sync."""
    peak = u.detach().abs().flatten(-d).amax(-1)
    _, exponent = torch.frexp(peak)
    s = torch.ldexp(torch.ones_like(peak), exponent)
    return torch.where(torch.isfinite(peak) & (peak > 0), s, torch.ones_like(peak))


def _ratio(
    num: torch.Tensor, den: torch.Tensor, s_num: torch.Tensor, s_den: torch.Tensor
) -> torch.Tensor:
    """``(num * s_num) / (den * s_den)``, the absolute error ``num * s_num`` where the target is
    exactly zero."""
    zero = den == 0
    return torch.where(zero, num * s_num, num / torch.where(zero, 1, den) * (s_num / s_den))


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _reduce(ratio: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "mean":
        return ratio.mean()
    if reduction == "sum":
        return ratio.sum()
    return ratio


def relative_lp(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    p: float = 2.0,
    dims: int = 2,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Relative Lp error over the last ``dims`` dimensions (module docstring).

    Args:
        pred, target: tensors of one shape, e.g. ``(batch, channels, *grid)``.
        p: the norm's order (``p >= 1``).
        dims: how many trailing dimensions are the grid.
        reduction: ``"mean"`` (default) or ``"sum"`` over the leading dimensions, or ``"none"``.

    Returns:
        A scalar (or the per-(sample, channel) ratios for ``"none"``), in the inputs' dtype
        (half precision is computed in float32); true at any scale of the dtype (each field is
        divided by an exact power of two first). A target that is exactly zero gives the
        absolute error. Differentiable.

    Raises:
        TypeError: inputs that are not floating tensors.
        ValueError: inputs of different shapes or empty, ``dims`` out of range, an unknown
            ``reduction``, or ``p < 1``.

    Example:
        >>> v = torch.ones(2, 1, 8, 8)
        >>> round(float(relative_lp(1.1 * v, v)), 6)
        0.1
    """
    fn = "relative_lp"
    d = _check(pred, target, dims, reduction, fn)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not p >= 1:
        raise ValueError(f"{fn}: p must be a number >= 1; got {p!r}.")
    out_dtype = torch.promote_types(pred.dtype, target.dtype)
    work = _compute_dtype(torch.empty((), dtype=out_dtype))
    diff = pred.to(work) - target.to(work)
    t = target.to(work)
    s_diff, s_t = _scale(diff, d), _scale(t, d)
    num = torch.linalg.vector_norm(diff.flatten(-d) / s_diff[..., None], ord=p, dim=-1)
    den = torch.linalg.vector_norm(t.flatten(-d) / s_t[..., None], ord=p, dim=-1)
    return _reduce(_ratio(num, den, s_diff, s_t), reduction).to(out_dtype)


def gradients(u: torch.Tensor, dims: int, *, periodic: bool) -> list[torch.Tensor]:
    """``du / dx_j`` for each of the last ``dims`` dimensions on the unit domain: spectral on a
    periodic grid ``j / n`` (the Nyquist mode of even grids is dropped), second-order finite
    differences on a node grid ``j / (n - 1)``.

    Args:
        u: the field, its last ``dims`` dimensions a uniform grid on the unit domain.
        dims: how many trailing dimensions are the grid.
        periodic: spectral derivatives (periodic grid) or finite differences (node grid).

    Returns:
        One tensor of ``u``'s shape per grid dimension. Differentiable.

    Raises:
        TypeError: ``u`` is not a real floating-point tensor, or ``dims`` is not an int.
        ValueError: ``dims`` outside ``1..u.ndim``.

    Example:
        >>> x = torch.arange(16, dtype=torch.float64) / 16
        >>> d, = gradients(torch.sin(2 * torch.pi * x), 1, periodic=True)
        >>> bool(torch.allclose(d, 2 * torch.pi * torch.cos(2 * torch.pi * x)))
        True
    """
    if not isinstance(u, torch.Tensor) or not u.is_floating_point():
        got = f"a {u.dtype} tensor" if isinstance(u, torch.Tensor) else type(u).__name__
        raise TypeError(f"gradients: u must be a real floating-point tensor; got {got}.")
    if isinstance(dims, bool) or not isinstance(dims, int):
        raise TypeError(f"gradients: dims must be an int; got {type(dims).__name__}.")
    if not 1 <= dims <= u.ndim:
        raise ValueError(
            f"gradients: dims must be in 1..{u.ndim} (u has {u.ndim} dimensions); got {dims}."
        )
    out = []
    for j in range(dims):
        axis = u.ndim - dims + j
        n = u.shape[axis]
        if periodic:
            k = torch.fft.fftfreq(n, d=1.0 / n, device=u.device, dtype=u.dtype)
            if n % 2 == 0:
                k[n // 2] = 0  # the Nyquist mode has no well-defined real derivative
            shape = [1] * u.ndim
            shape[axis] = n
            spectrum = torch.fft.fft(u, dim=axis) * (2j * math.pi * k).reshape(shape)
            out.append(torch.fft.ifft(spectrum, dim=axis).real)
        else:
            out.append(_finite_difference(u, axis, 1.0 / max(n - 1, 1)))
    return out


def _finite_difference(u: torch.Tensor, axis: int, h: float) -> torch.Tensor:
    """Second-order differences: central inside, one-sided three-point at the ends (first order
    two-point for 2-point grids)."""
    n = u.shape[axis]

    def part(start: int, stop: int) -> torch.Tensor:
        return u.narrow(axis, start, stop - start)

    if n < 3:
        d = (part(1, 2) - part(0, 1)) / h
        return torch.cat([d, d], dim=axis)
    inner = (part(2, n) - part(0, n - 2)) / (2 * h)
    first = (-3 * part(0, 1) + 4 * part(1, 2) - part(2, 3)) / (2 * h)
    last = (3 * part(n - 1, n) - 4 * part(n - 2, n - 1) + part(n - 3, n - 2)) / (2 * h)
    return torch.cat([first, inner, last], dim=axis)


@functools.lru_cache(maxsize=32)
def _parseval_weights(
    grid: tuple[int, ...], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Over the ``rfftn`` frequencies of ``grid``: ``c_f (1 + sum_j (2 pi k_j)^2) / N``, ``k_j`` the
    integer frequency along dimension ``j`` (0 at each Nyquist mode, as :func:`gradients` drops
    it), ``c_f = 2`` for the last dimension's frequencies ``0 < f < n / 2`` (each stands for its
    conjugate too), else 1, and ``N`` the number of grid points."""
    d = len(grid)
    total = torch.ones((), dtype=torch.float64)
    for j, n in enumerate(grid):
        last = j == d - 1
        k = torch.arange(n // 2 + 1) if last else torch.fft.fftfreq(n, d=1.0 / n).round()
        k = k.to(torch.float64)
        if n % 2 == 0:
            k[n // 2] = 0.0
        shape = [1] * d
        shape[j] = k.numel()
        total = total + (2 * math.pi * k).pow(2).reshape(shape)
    f = torch.arange(grid[-1] // 2 + 1)
    twice = (f > 0) & (2 * f < grid[-1])
    total = total * (1.0 + twice.to(torch.float64)) / math.prod(grid)
    return total.to(dtype=dtype, device=device)


def _spectral_h1_energy(u: torch.Tensor, d: int) -> torch.Tensor:
    """``sum_x u^2 + sum_j sum_x (d_j u)^2`` over the last ``d`` dimensions, with the spectral
    derivatives of :func:`gradients` (``periodic=True``), by Parseval's identity: one real FFT
    of ``u`` instead of a forward and an inverse FFT per dimension (same value up to
    round-off)."""
    grid = tuple(u.shape[-d:])
    spectrum = torch.fft.rfftn(u, dim=tuple(range(-d, 0)))
    power = torch.view_as_real(spectrum).pow(2).sum(-1)
    weights = _parseval_weights(grid, u.dtype, u.device)
    return (power * weights).flatten(-d).sum(-1)


def relative_h1(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    periodic: bool,
    dims: int = 2,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Relative H1 error over the last ``dims`` dimensions (module docstring).

    Args:
        pred, target: tensors of one shape; the last ``dims`` dimensions are a uniform grid on
            the unit domain with at least 2 points.
        periodic: spectral derivatives on a periodic grid, finite differences otherwise.
        dims, reduction: as for :func:`relative_lp`.

    Returns:
        A scalar, or per-(sample, channel) ratios for ``"none"``, as for :func:`relative_lp`
        (scale-safe, half precision computed in float32, absolute error for a zero target).
        Differentiable.

    Raises:
        TypeError: inputs that are not floating tensors.
        ValueError: inputs of different shapes or empty, ``dims`` out of range, an unknown
            ``reduction``, or a grid dimension with fewer than 2 points.

    Example:
        >>> t = torch.arange(32, dtype=torch.float64) / 32
        >>> v = torch.sin(2 * torch.pi * t).expand(1, 1, 32)
        >>> u = v + 0.01 * torch.cos(2 * torch.pi * t)
        >>> round(float(relative_h1(u, v, periodic=True, dims=1)), 4)
        0.01
    """
    fn = "relative_h1"
    d = _check(pred, target, dims, reduction, fn)
    if any(s < 2 for s in pred.shape[-d:]):
        raise ValueError(
            f"{fn}: every grid dimension needs at least 2 points; got {tuple(pred.shape[-d:])}."
        )
    out_dtype = torch.promote_types(pred.dtype, target.dtype)
    work = _compute_dtype(torch.empty((), dtype=out_dtype))
    diff = pred.to(work) - target.to(work)
    t = target.to(work)
    s_diff, s_t = _scale(diff, d), _scale(t, d)
    shape = (*s_diff.shape, *([1] * d))
    diff, t = diff / s_diff.reshape(shape), t / s_t.reshape(shape)
    if periodic:  # both fields in one real FFT
        num, den = _spectral_h1_energy(torch.stack([diff, t]), d).unbind(0)
    else:
        num = diff.flatten(-d).pow(2).sum(-1)
        den = t.flatten(-d).pow(2).sum(-1)
        for gd, gt in zip(gradients(diff, d, periodic=False), gradients(t, d, periodic=False)):
            num = num + gd.flatten(-d).pow(2).sum(-1)
            den = den + gt.flatten(-d).pow(2).sum(-1)
    return _reduce(_ratio(num.sqrt(), den.sqrt(), s_diff, s_t), reduction).to(out_dtype)


class LpLoss(nn.Module):
    """:func:`relative_lp` as a module (``loss(pred, target)``).

    Args:
        p: the norm's order (``p >= 1``).
        dims: how many trailing dimensions are the grid.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Raises:
        TypeError: at the call, inputs :func:`relative_lp` refuses.
        ValueError: at the call, options or inputs :func:`relative_lp` refuses.

    Example:
        >>> LpLoss(dims=1)(torch.zeros(1, 1, 4), torch.ones(1, 1, 4))
        tensor(1.)
    """

    def __init__(self, *, p: float = 2.0, dims: int = 2, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.p, self.dims, self.reduction = p, dims, reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return relative_lp(pred, target, p=self.p, dims=self.dims, reduction=self.reduction)


class H1Loss(nn.Module):
    """:func:`relative_h1` as a module.

    Args:
        periodic: spectral derivatives on a periodic grid, finite differences otherwise.
        dims: how many trailing dimensions are the grid.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Raises:
        TypeError: at the call, inputs :func:`relative_h1` refuses.
        ValueError: at the call, options or inputs :func:`relative_h1` refuses.

    Example:
        >>> H1Loss(periodic=False, dims=1)(torch.ones(1, 1, 4), torch.ones(1, 1, 4))
        tensor(0.)
    """

    def __init__(self, *, periodic: bool, dims: int = 2, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.periodic, self.dims, self.reduction = periodic, dims, reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return relative_h1(
            pred, target, periodic=self.periodic, dims=self.dims, reduction=self.reduction
        )
