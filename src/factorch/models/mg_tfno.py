"""Multi-grid tensorized Fourier neural operator (MG-TFNO).

A :class:`~factorch.models.TFNO` applied to multi-grid patches
(:class:`~factorch.models.MultigridPatching`): each patch at full resolution plus, per level, a
``2^l`` times coarser view of a ``2^l`` times wider region around it, stacked as channels; the
patch outputs are cropped and stitched back. The field's global coordinates are appended as
channels before patching (``global_coordinates``), so a patch knows where in the domain it lies:
the inner operator's own positional embedding only gives coordinates within the patch, and a map
that is not translation-equivariant (Navier--Stokes with a fixed forcing) cannot be learned
without them (issue 12: relative L2 0.93 without, see BENCHMARKS.md). The operator's spectral
weights are Tucker-factorized by default (per layer, or one joint tensor with ``joint=True``);
the domain decomposition bounds the size of each forward call, so a field larger than the
activations that fit in memory is processed ``patch_batch`` patches at a time
(``torch.no_grad`` inference) with only the input, its padded copies and one chunk's
activations in memory.

Reference: Kossaifi, Kovachki, Azizzadenesheli and Anandkumar, "Multi-grid tensorized Fourier
neural operator for high-resolution PDEs" (TMLR 2024): less than half the error of an FNO at
over 150x fewer parameters on turbulent Navier--Stokes at 1024^2 (their abstract).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .._checks import check_positive_int
from .._numerics import HALF_DTYPES
from ..nn.spectral import count_real
from ._blocks import check_input, errors_named, run_in_float32
from ._patching import Boundary, MultigridPatching, Stitching
from .fno import FNOConfig
from .tfno import TFNO

__all__ = ["MGTFNO", "MGTFNOConfig"]


@dataclass(frozen=True)
class MGTFNOConfig:
    """The structure of an :class:`MGTFNO`.

    Attributes:
        operator: the inner operator's config (its ``in_channels`` is ``in_channels * (levels
            + 1)``).
        in_channels: channels of the input field.
        levels: context levels (1, the MG-TFNO paper's Navier--Stokes setting).
        patch_padding: patch extension as a fraction of the field side (0.125: on Navier--Stokes
            64^2 it beat neuraloperator's 0.0625 in every run of issue 12, at 1.44x the points
            per patch; configs saved with 0.0625 keep it, the value is always saved).
        boundary: ``"periodic"`` or a non-periodic extension (``"replicate"``, ``"reflect"``,
            ``"zeros"``); default from ``operator.periodic``.
        patch_batch: largest number of patches per forward call of the operator (None: all).
        global_coordinates: append the field's global coordinates before patching (``sin`` and
            ``cos`` of ``2 pi x`` per axis when periodic, ``x`` in ``[0, 1]`` otherwise); the
            operator's ``in_channels`` counts them. Configs saved before this option was added
            load with False.
        stitching: ``"blend"`` (default: overlapping outputs averaged with weights ramping
            linearly across the ``2p`` points two neighbouring patches share, so the stitched
            field has no seams) or ``"crop"`` (each patch output cropped by the padding, as in
            the paper and neuraloperator); configs saved before this option was added load with
            ``"crop"``.

    Example:
        >>> config = MGTFNOConfig(FNOConfig(1, 1, (8, 8), hidden_channels=16), in_channels=1)
        >>> config.levels, config.boundary, MGTFNOConfig.from_json(config.to_json()) == config
        (1, 'periodic', True)
    """

    operator: FNOConfig
    in_channels: int
    levels: int = 1
    patch_padding: float = 0.125
    boundary: Boundary = "periodic"
    patch_batch: int | None = None
    global_coordinates: bool = True
    stitching: Stitching = "blend"

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["operator"] = self.operator.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MGTFNOConfig:
        values = dict(data)
        values["operator"] = FNOConfig.from_json(values["operator"])
        values.setdefault("global_coordinates", False)  # configs saved before the option
        values.setdefault("stitching", "crop")  # configs saved before the option
        return cls(**values)


class MGTFNO(nn.Module):
    """Multi-grid TFNO (module docstring) for 1-, 2- or 3-D fields with equal sides.

    Args:
        in_channels, out_channels, modes: as for :class:`~factorch.models.FNO`; the modes apply
            to the patches (side ``N / 2^levels + 2 p``).
        levels: context levels ``L >= 0``.
        patch_padding: patch extension as a fraction of the field side (default 0.125,
            :class:`MGTFNOConfig`).
        boundary: field extension beyond the domain; default ``"periodic"`` when
            ``periodic=True`` (the default), else ``"replicate"``.
        patch_batch: patches per operator call (bounds memory; None: all at once).
        global_coordinates: append the field's global coordinates as channels before patching
            (default True; without them a patch cannot tell where in the domain it lies).
        stitching: ``"blend"`` (default) or ``"crop"`` the patch outputs (:class:`MGTFNOConfig`;
            at patch padding 0.125 blending lowered the Navier--Stokes 64^2 error from 0.175 to
            0.135 in issue 12's runs).
        generator, device, dtype: as for :class:`~factorch.models.FNO`.
        **options: the inner :class:`~factorch.models.TFNO`'s options (``hidden_channels``,
            ``format``, ``ratio``, ``joint``, ...; default Tucker at ``ratio=0.1``, per layer,
            with TFNO's ``spectral_lr_scale=3``; pass ``spectral_lr_scale=1.0`` for the plain
            rate, the default before issue 12's helper mg120).

    Raises:
        TypeError: an option of the wrong type (as for :class:`~factorch.models.FNO`).
        ValueError: a bad option, or bad ``levels``, ``patch_padding``, ``boundary`` or
            ``stitching``; at forward, a field whose sides differ or do not split into
            ``2^levels`` patches.

    Example:
        >>> model = MGTFNO(1, 1, (8, 8), levels=1, hidden_channels=8,
        ...                generator=torch.Generator().manual_seed(0))
        >>> model(torch.randn(2, 1, 32, 32)).shape
        torch.Size([2, 1, 32, 32])
    """

    name: ClassVar[str] = "mg-tfno"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        modes: int | Sequence[int],
        *,
        levels: int = 1,
        patch_padding: float = 0.125,
        boundary: Boundary | None = None,
        patch_batch: int | None = None,
        global_coordinates: bool = True,
        stitching: Stitching = "blend",
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        fn = "MGTFNO"
        c_in = check_positive_int(in_channels, fn, "in_channels")
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 0:
            raise ValueError(f"{fn}: levels must be an int >= 0; got {levels!r}.")
        if not isinstance(global_coordinates, bool):
            raise TypeError(
                f"{fn}: global_coordinates must be a bool; got {type(global_coordinates).__name__}."
            )
        dims = len(modes) if isinstance(modes, Sequence) else 1
        periodic = bool(options.get("periodic", True))
        extra = _n_coordinates(dims, periodic) if global_coordinates else 0
        # The inner TFNO's defaults apply, spectral_lr_scale=3 with Tucker included: with
        # multigrid patches it lowered the Navier--Stokes 64^2 error from 0.100 to 0.081 (Tucker
        # 10 % per layer), 0.103 to 0.093 (20 %) and 0.106 to 0.100 (5 % joint; issue 12,
        # BENCHMARKS.md, helper mg120).
        # Saved configs always carry the scale, so those saved with 1 keep it.
        with errors_named(fn):
            operator = TFNO(
                (c_in + extra) * (levels + 1),
                out_channels,
                modes,
                generator=generator,
                device=device,
                dtype=dtype,
                **options,
            )
        if boundary is None:
            boundary = "periodic" if operator.config.periodic else "replicate"
        config = MGTFNOConfig(
            operator.config,
            c_in,
            levels,
            float(patch_padding),
            boundary,
            None if patch_batch is None else check_positive_int(patch_batch, fn, "patch_batch"),
            global_coordinates,
            stitching,
        )
        self._setup(config, operator)

    def _setup(self, config: MGTFNOConfig, operator: TFNO) -> None:
        with errors_named("MGTFNO"):
            self.patching = MultigridPatching(
                config.levels, config.patch_padding, config.boundary, config.stitching
            )
        self.config = config
        self.operator = operator

    @classmethod
    def from_config(
        cls,
        config: MGTFNOConfig,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> MGTFNO:
        """A freshly initialised model of this structure."""
        model = cls.__new__(cls)
        nn.Module.__init__(model)
        operator = TFNO.from_config(
            config.operator, generator=generator, device=device, dtype=dtype
        )
        model._setup(config, operator)  # type: ignore[arg-type]  # from_config returns FNO
        return model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn = "MGTFNO"
        c = self.config
        dims = c.operator.dims
        if self.operator.lifting.first.weight.dtype in HALF_DTYPES:  # after .half() / .bfloat16()
            check_input(x, fn, c.in_channels, dims, torch.float32)
            out = run_in_float32(self, x)
            if out is not None:
                return out
        x = check_input(x, fn, c.in_channels, dims, self.operator.lifting.first.weight.dtype)
        grid = tuple(x.shape[2:])
        batch = x.shape[0]
        if c.global_coordinates:
            x = _append_coordinates(x, c.operator.periodic)
        with errors_named(fn):
            total = batch * self.patching.n_patches(grid)
            step = total if c.patch_batch is None else c.patch_batch
            if step >= total:
                return self.patching.stitch(self.operator(self.patching.patch(x)), batch, grid)
            outs = [
                self.operator(self.patching.patch(x, slice(i, min(i + step, total))))
                for i in range(0, total, step)
            ]
            return self.patching.stitch(torch.cat(outs), batch, grid)

    @property
    def n_params(self) -> int:
        return count_real(self)

    @property
    def spectral_params(self) -> int:
        return self.operator.spectral_params


def _n_coordinates(dims: int, periodic: bool) -> int:
    return 2 * dims if periodic else dims


def _append_coordinates(x: torch.Tensor, periodic: bool) -> torch.Tensor:
    """``x`` with its global coordinates as extra channels: ``sin`` and ``cos`` of ``2 pi j / n``
    per axis on a periodic grid (continuous across the wrap, so periodic patch padding sees no
    jump), ``j / (n - 1)`` on a node grid."""
    grid = x.shape[2:]
    axes = []
    for n in grid:
        denom = n if periodic else max(n - 1, 1)
        axes.append(torch.arange(n, dtype=x.dtype, device=x.device) / denom)
    mesh = torch.meshgrid(*axes, indexing="ij")
    if periodic:
        parts = [f(2 * math.pi * m) for m in mesh for f in (torch.sin, torch.cos)]
    else:
        parts = list(mesh)
    coords = torch.stack(parts).unsqueeze(0).expand(x.shape[0], -1, *grid)
    return torch.cat([x, coords], dim=1)
