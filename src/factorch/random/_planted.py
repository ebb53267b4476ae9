"""Planted low-rank data for tests and benchmarks: a random factorized tensor plus exact noise."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from math import prod
from typing import Literal, get_args

import torch

from .._checks import as_index, check_tensor
from ..algebra.internal import as_array
from ..tensors import CPTensor, TRTensor, TTTensor, TuckerTensor
from ._common import check_entries, check_shape, draw, is_int, resolve
from ._constructors import random_cp, random_tr, random_tt, random_tucker

__all__ = ["Planted", "PlantedKind", "add_noise", "planted"]

PlantedKind = Literal["cp", "tucker", "tt", "tr"]


def add_noise(
    x: torch.Tensor, *, relative: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``x + E`` with Gaussian ``E`` rescaled so that ``||E|| = relative * ||x||`` exactly.

    ``E`` is drawn in float64 on the CPU (complex for complex ``x``) and scaled there, then cast
    and moved to ``x``'s dtype and device (so the equality holds up to that dtype's rounding).
    ``x`` must be finite. Not differentiable with respect to the noise scale (the noise is a
    constant); differentiable in ``x`` through the sum only (``||x||`` is taken detached).

    Args:
        x: the tensor to perturb (a torch tensor or numpy array), finite.
        relative: the noise norm relative to ``||x||``, finite and non-negative.
        generator: a CPU ``torch.Generator`` (``None``: torch's global one).

    Returns:
        ``x + E`` in ``x``'s dtype and device (a copy of ``x`` for ``relative=0``).

    Raises:
        TypeError: ``x`` that is not an array, ``relative`` that is not a number, a bad generator.
        ValueError: non-finite ``x``, a negative or non-finite ``relative``, a generator not on
            the CPU.

    Example:
        >>> x = torch.ones(3, 4, dtype=torch.float64)
        >>> y = add_noise(x, relative=0.1, generator=torch.Generator().manual_seed(0))
        >>> round(float((y - x).norm() / x.norm()), 12)
        0.1
    """
    fn = "add_noise"
    x = check_tensor(as_array(x, fn, "x"), fn, "x")
    if isinstance(relative, bool) or not isinstance(relative, (int, float)):
        raise TypeError(f"{fn}: relative must be a float; got {type(relative).__name__}.")
    if not math.isfinite(relative) or relative < 0:
        raise ValueError(f"{fn}: relative must be a finite float >= 0; got {relative}.")
    resolve(x.dtype, x.device, generator, fn)
    if relative == 0:
        return x.clone()
    wide = torch.complex128 if x.is_complex() else torch.float64
    noise = draw(x.shape, generator, wide, torch.device("cpu"))
    target = relative * float(torch.linalg.vector_norm(x.detach().to(wide)))
    current = float(torch.linalg.vector_norm(noise))
    if current > 0:
        noise = noise * (target / current)
    return x + noise.to(device=x.device, dtype=x.dtype)


@dataclass(frozen=True, eq=False)
class Planted:
    """A planted problem: ``tensor = truth.to_dense() + noise`` with ``||noise|| = noise_level
    * ||truth||``.

    Attributes:
        tensor: the dense observed tensor.
        truth: the factorized ground truth.
        noise: the relative noise level that was added.

    Example:
        >>> p = planted("tucker", (4, 5, 6), 2, generator=torch.Generator().manual_seed(0))
        >>> torch.equal(p.tensor, p.clean), p.truth.rank
        (True, (2, 2, 2))
    """

    tensor: torch.Tensor
    truth: CPTensor | TuckerTensor | TTTensor | TRTensor
    noise: float

    @property
    def clean(self) -> torch.Tensor:
        """The noiseless dense tensor ``truth.to_dense()``."""
        return self.truth.to_dense()


def planted(
    kind: PlantedKind,
    shape: Sequence[int],
    rank: int | Sequence[int],
    *,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Planted:
    """A random ``kind`` tensor of ``rank`` (see :func:`random_cp` and siblings) plus Gaussian
    noise of relative norm ``noise`` (:func:`add_noise`). Deterministic given ``generator``.

    Args:
        kind: ``"cp"``, ``"tucker"``, ``"tt"`` or ``"tr"``.
        shape: the size of each mode.
        rank: the rank, as the matching ``random_*`` constructor takes it (an int for CP).
        noise: relative noise norm, non-negative.
        generator: a CPU ``torch.Generator`` (``None``: torch's global one).
        dtype: a floating or complex dtype (default ``torch.get_default_dtype()``).
        device: where the result lives (default the CPU).

    Returns:
        A :class:`Planted` holding the noisy dense tensor, the truth and the noise level.

    Raises:
        TypeError: a non-int CP rank, or a bad shape, rank, dtype, device or generator.
        ValueError: an unknown ``kind``, or bad values as in the ``random_*`` constructors and
            :func:`add_noise`.

    Example:
        >>> p = planted("cp", (4, 5, 6), 2, noise=0.05, generator=torch.Generator().manual_seed(0))
        >>> p.tensor.shape, p.noise
        (torch.Size([4, 5, 6]), 0.05)
    """
    fn = "planted"
    kinds = get_args(PlantedKind)
    if kind not in kinds:
        raise ValueError(f"{fn}: kind must be one of {kinds}; got {kind!r}.")
    sizes = check_shape(shape, fn)
    dt, dev = resolve(dtype, device, generator, fn)
    check_entries(2 * prod(sizes), dt, dev, fn, f"the dense {sizes} tensor and its noise")
    truth: CPTensor | TuckerTensor | TTTensor | TRTensor
    if kind == "cp":
        if not is_int(rank):
            raise TypeError(f"{fn}: a CP rank must be an int; got {type(rank).__name__}.")
        truth = random_cp(
            sizes, as_index(rank, fn, "rank"), generator=generator, dtype=dt, device=dev
        )
    elif kind == "tucker":
        truth = random_tucker(sizes, rank, generator=generator, dtype=dt, device=dev)
    elif kind == "tt":
        truth = random_tt(sizes, rank, generator=generator, dtype=dt, device=dev)
    else:
        truth = random_tr(sizes, rank, generator=generator, dtype=dt, device=dev)
    dense = truth.to_dense()
    observed = add_noise(dense, relative=noise, generator=generator)
    return Planted(tensor=observed, truth=truth, noise=float(noise))
