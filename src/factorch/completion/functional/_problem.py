"""What the EP and MAP fits share: checked options, the prepared problem, the model builder."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from ..._checks import as_index, check_generator
from ..._numerics import HALF_DTYPES, check_memory, stable_norm
from ._data import ContinuousData
from ._kernels import Matern
from ._model import FunctionalTensor, LatentFunctions
from ._smoother import _gaps

__all__ = ["Problem", "Structure", "build_model", "check_common", "prepare"]

Structure = Literal["tucker", "cp"]
F64 = torch.float64


@dataclass(frozen=True)
class Problem:
    """The training data as the fits use it (float64, model units ``y / scale``)."""

    y: torch.Tensor  # (N,) scaled values
    scale: float  # the data RMS: data = scale * y
    coords: tuple[torch.Tensor, ...]  # per mode, sorted distinct
    gaps: tuple[torch.Tensor, ...]
    inverse: tuple[torch.Tensor, ...]  # per mode, (N,) position of each entry's coordinate
    kernels: tuple[Matern, ...]
    ranks: tuple[int, ...]
    structure: Structure
    value_dtype: torch.dtype
    model_dtype: torch.dtype
    names: tuple[str, ...]
    units: tuple[str | None, ...]

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @property
    def ndim(self) -> int:
        return len(self.coords)

    @property
    def core_size(self) -> int:
        return math.prod(self.ranks)


def _ranks(rank: object, k: int, structure: Structure, fn: str) -> tuple[int, ...]:
    if isinstance(rank, Sequence) and not isinstance(rank, str):
        if len(rank) != k:
            raise ValueError(f"{fn}: rank needs one entry per mode ({k}); got {tuple(rank)}.")
        out = tuple(_one_rank(r, fn) for r in rank)
        if structure == "cp" and len(set(out)) > 1:
            raise ValueError(
                f"{fn}: a CP model has one rank for all modes; got {out} (use "
                "structure='tucker' for a rank per mode)."
            )
        return out
    return (_one_rank(rank, fn),) * k


def _one_rank(r: object, fn: str) -> int:
    try:
        out = as_index(r, fn, "rank")
    except TypeError as err:
        raise TypeError(
            f"{fn}: rank must be a positive int or one per mode; got {type(r).__name__}."
        ) from err
    if out < 1:
        raise ValueError(f"{fn}: rank must be a positive int; got {out}.")
    return out


def _positive(value: object, fn: str, name: str) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{fn}: {name} must be a positive int; got {type(value).__name__}.")
    out = int(value.__index__())
    if out < 1:
        raise ValueError(f"{fn}: {name} must be a positive int; got {out}.")
    return out


def _kernels(kernel: object, k: int, fn: str) -> tuple[Matern, ...]:
    if kernel is None:
        return (Matern(),) * k
    if isinstance(kernel, Matern):
        return (kernel,) * k
    if isinstance(kernel, Sequence) and not isinstance(kernel, str):
        ks = tuple(kernel)
        if len(ks) != k or not all(isinstance(x, Matern) for x in ks):
            raise ValueError(
                f"{fn}: kernel must be a Matern or one Matern per mode ({k}); got {kernel!r}."
            )
        return ks
    raise TypeError(f"{fn}: kernel must be a Matern or a sequence of them; got {kernel!r}.")


def _value_scale(y: torch.Tensor) -> float:
    """The RMS of ``y`` (computed free of under- and overflow); 1.0 for all-zero data.

    The fits work on ``y / rms``, so every prior (function variances, the noise prior, the
    initial noise) is relative to the data's RMS and a fit is equivariant to the data's scale:
    data multiplied by ``1e-30`` or ``1e200`` give the same model, rescaled.
    """
    rms = stable_norm(y) / math.sqrt(max(1, y.numel()))
    if rms == 0.0 or not math.isfinite(rms):
        return 1.0
    return rms


def check_common(
    tensor: object,
    structure: object,
    validation: object,
    max_iter: object,
    tol: object,
    patience: object,
    generator: object,
    fn: str,
) -> tuple[ContinuousData, ContinuousData | None, int, float, int]:
    """Type and value checks shared by the fits."""
    if not isinstance(tensor, ContinuousData):
        raise TypeError(
            f"{fn}: tensor must be a ContinuousData (coordinates and values; build one with "
            f"ContinuousData.from_table or .from_grid); got {type(tensor).__name__}."
        )
    if structure not in get_args(Structure):
        raise ValueError(f"{fn}: structure must be 'tucker' or 'cp'; got {structure!r}.")
    if validation is not None:
        if not isinstance(validation, ContinuousData):
            raise TypeError(
                f"{fn}: validation must be a ContinuousData or None; got "
                f"{type(validation).__name__}."
            )
        if validation.ndim != tensor.ndim:
            raise ValueError(
                f"{fn}: validation has {validation.ndim} modes but tensor has {tensor.ndim}."
            )
    iters = _positive(max_iter, fn, "max_iter")
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not 0 <= tol < math.inf:
        raise ValueError(f"{fn}: tol must be a finite number >= 0; got {tol!r}.")
    pat = _positive(patience, fn, "patience")
    check_generator(generator, fn)
    return tensor, validation, iters, float(tol), pat


def prepare(
    tensor: ContinuousData,
    rank: object,
    structure: Structure,
    kernel: object,
    fn: str,
) -> Problem:
    """Distinct coordinates per mode, resolved kernels, ranks, scaled float64 values."""
    k = tensor.ndim
    ranks = _ranks(rank, k, structure, fn)
    kernels = _kernels(kernel, k, fn)
    n = len(tensor)
    dev = tensor.device
    if n == 0:
        raise ValueError(f"{fn}: tensor has no entries; a fit needs observed values.")
    # working set: per-mode second moments at the entries, messages, Kalman states
    per_entry = sum(r * r + r for r in ranks) * 3
    core = math.prod(ranks) ** 2 * (3 if structure == "tucker" else 0)
    check_memory(
        n * per_entry + core,
        F64,
        dev,
        fn,
        f"a rank-{ranks} fit to {n} entries",
        hint="use a lower rank or structure='cp'",
    )
    coords, gaps, inverse, resolved = [], [], [], []
    for mode in range(k):
        c, inv = torch.unique(tensor.coords[:, mode], sorted=True, return_inverse=True)
        if c.numel() < 2:
            raise ValueError(
                f"{fn}: mode {mode} ({tensor.names[mode] if tensor.names else mode}) has one "
                f"distinct coordinate ({float(c[0])!r}); a latent function needs at least 2: "
                "drop the mode (it is a constant) or add data."
            )
        coords.append(c)
        gaps.append(_gaps(c))
        inverse.append(inv)
        resolved.append(kernels[mode].resolved(c))
    y = tensor.values.to(F64)
    scale = _value_scale(y)
    dtype = tensor.dtype
    return Problem(
        y / scale,
        scale,
        tuple(coords),
        tuple(gaps),
        tuple(inverse),
        tuple(resolved),
        ranks,
        structure,
        dtype,
        torch.float32 if dtype in HALF_DTYPES else dtype,
        tuple(tensor.names or ()),
        tuple(tensor.units or ()),
    )


def build_model(
    p: Problem,
    precision: Sequence[torch.Tensor],
    information: Sequence[torch.Tensor],
    means: Sequence[torch.Tensor],
    covs: Sequence[torch.Tensor],
    core_mean: torch.Tensor | None,
    core_cov: torch.Tensor | None,
    noise_shape: float,
    noise_rate: float,
) -> FunctionalTensor:
    """The :class:`FunctionalTensor` of a fit state, in the model dtype."""
    dt = p.model_dtype
    factors = tuple(
        LatentFunctions(
            p.kernels[k],
            p.coords[k],
            precision[k].to(dt),
            information[k].to(dt),
            means[k].to(dt),
            covs[k].to(dt),
        )
        for k in range(p.ndim)
    )
    return FunctionalTensor(
        factors,
        None if core_mean is None else core_mean.reshape(p.ranks).to(dt),
        None if core_cov is None else core_cov.to(dt),
        float(noise_shape),
        float(noise_rate),
        value_scale=p.scale,
        value_offset=0.0,
        names=p.names,
        units=p.units,
        value_dtype=p.value_dtype,
    )
