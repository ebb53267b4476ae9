"""Tensorized Fourier neural operator (TFNO): an FNO whose spectral weights are factorized.

Each layer's complex spectral weight ``(hidden, hidden, k_1..k_d)`` is a low-rank tensor
(Tucker by default, CP, TT, TR, ...), or one tensor for all layers (``joint=True``). The default
is neuraloperator's: Tucker at 10 % of the dense spectral parameters. Lifting, projection, skips
and channel MLPs stay dense. With Tucker the spectral weights train at 3 times the optimizer's
learning rate by default (``spectral_lr_scale=3``): on Darcy 16² and Navier–Stokes 64² this
brings Tucker at 5-10 % to within 10 % of dense FNO's test error (+10-27 % at the plain rate);
on Burgers 128 it halves the gap (+60 % to +30 %, six seeds; BENCHMARKS.md, issue 12).

Reference: Kossaifi, Kovachki, Azizzadenesheli and Anandkumar, "Multi-grid tensorized Fourier
neural operator for high-resolution PDEs" (TMLR 2024).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .fno import FNO, FNOConfig

__all__ = ["TFNO"]

DEFAULT_TUCKER_LR_SCALE = 3.0
"""TFNO's default ``spectral_lr_scale`` with Tucker weights (issue 12, BENCHMARKS.md)."""


class TFNO(FNO):
    """:class:`~factorch.models.FNO` with ``format="tucker"`` and ``ratio=0.1`` by default.

    Any other format and rank (or ratio) can be given, as for :class:`FNO`. With
    ``format="tucker"`` the default ``spectral_lr_scale`` is 3 (the spectral factors train at 3
    times the optimizer's learning rate, module docstring); other formats keep 1 (not measured).
    Pass ``spectral_lr_scale=1.0`` for the plain model.

    Args:
        in_channels: channels of the input function.
        out_channels: channels of the output function.
        modes: Fourier modes per spatial dimension.
        **options: the options of :class:`~factorch.models.FNO` (``hidden_channels``,
            ``format``, ``rank``, ``ratio``, ``generator``, ...).

    Raises:
        TypeError: an option of the wrong type (as for :class:`~factorch.models.FNO`).
        ValueError: a bad option value (as for :class:`~factorch.models.FNO`).

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> model = TFNO(1, 1, (8, 8), hidden_channels=16, generator=gen)
        >>> model.config.format, model.config.ratio, model.config.spectral_lr_scale
        ('tucker', 0.1, 3.0)
        >>> model.spectral_params <= 0.1 * model.dense_spectral_params()
        True
    """

    name: ClassVar[str] = "tfno"

    def make_config(
        self, in_channels: int, out_channels: int, modes: tuple[int, ...], options: dict[str, Any]
    ) -> FNOConfig:
        opts = dict(options)
        opts.setdefault("format", "tucker")
        if opts["format"] != "dense" and opts.get("rank") is None and opts.get("ratio") is None:
            opts["ratio"] = 0.1
        if opts["format"] == "tucker":
            opts.setdefault("spectral_lr_scale", DEFAULT_TUCKER_LR_SCALE)
        return FNOConfig(in_channels, out_channels, modes, **opts)
