"""The complex weights of spectral convolutions: dense, or factorized in any weight format, for
one layer or shared by all layers (joint factorization).

A :class:`SpectralWeight` holds the tensor ``W`` over ``(in, out, k_1, .., k_d)`` (``(channels,
k..)`` when separable), with a leading ``layer`` mode when ``n_layers`` is given: one
factorized tensor for a whole stack, the "global" factorization of the MG-TFNO paper (Kossaifi et
al., TMLR 2024), from which layer ``l`` takes the slice ``W[l]``. Dense weights are one complex
parameter; factorized ones are the factors of a :class:`~factorch.nn.WeightFormat` (complex), in
the format's own parametrization (its ``right_inverse`` loads a dense weight; complex CP runs the
complex CP-ALS of :func:`factorch.decomp.cp`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import opt_einsum
import torch
from torch import nn

from ..._checks import check_generator, check_positive_int
from ..._numerics import check_memory
from .._spec import TensorLayout
from ..formats import WeightFormat, get_format
from ._einsum import Contraction
from ._modes import mode_sizes
from ._networks import Network, network_for, symbols

__all__ = ["SpectralWeight", "check_modes", "complex_dtype", "count_real"]

# einsum labels: batch, in, out, layer, then the spatial modes; fresh labels from 16 on.
BATCH, IN, OUT, LAYER = (opt_einsum.get_symbol(i) for i in range(4))
_FIRST_MODE = 4
FRESH = symbols(16)


def mode_labels(d: int) -> str:
    return "".join(opt_einsum.get_symbol(_FIRST_MODE + j) for j in range(d))


def complex_dtype(dtype: torch.dtype | None, fn: str) -> torch.dtype:
    """The complex dtype of a layer's real dtype (float32 -> complex64, float64 -> complex128)."""
    real = torch.get_default_dtype() if dtype is None else dtype
    if real == torch.float32:
        return torch.complex64
    if real == torch.float64:
        return torch.complex128
    raise TypeError(
        f"{fn}: dtype must be torch.float32 or torch.float64 (the FFTs and complex weights need "
        f"one; half-precision inputs are computed in the layer's dtype); got {real}."
    )


def count_real(module: nn.Module) -> int:
    """Real numbers stored by ``module``'s parameters: a complex entry counts as two (the
    convention of neuraloperator's ``count_model_params``), shared parameters once.

    Args:
        module: any module.

    Returns:
        The number of real numbers its parameters store.

    Raises:
        TypeError: ``module`` is not an ``nn.Module``.

    Example:
        >>> count_real(torch.nn.Linear(3, 2))
        8
    """
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"count_real: module must be a torch.nn.Module; got {type(module).__name__}."
        )
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in module.parameters())


LR_SCALE_RANGE = (1e-3, 1e3)


def check_lr_scale(value: object, fn: str, name: str = "lr_scale") -> float:
    """``value`` (the argument ``name``) as a float in :data:`LR_SCALE_RANGE` (``ValueError``
    otherwise: far outside it the stored parameters would underflow or overflow)."""
    low, high = LR_SCALE_RANGE
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and low <= value <= high)
    ):
        raise ValueError(f"{fn}: {name} must be a number in [{low:g}, {high:g}]; got {value!r}.")
    return float(value)


def check_modes(modes: object, fn: str) -> tuple[int, ...]:
    """Modes as a tuple of 1 to 3 positive ints."""
    if isinstance(modes, numbers.Integral) and not isinstance(modes, bool):
        modes = (int(modes),)
    if not isinstance(modes, Sequence) or not 1 <= len(modes) <= 3:
        raise ValueError(
            f"{fn}: modes must be a positive int or a sequence of 1 to 3 of them (one per spatial "
            f"dimension); got {modes!r}."
        )
    return tuple(check_positive_int(m, fn, "modes") for m in modes)


def complex_following(fn: Any) -> Any:
    """``fn`` (a tensor conversion from ``Module._apply``) made to carry complex tensors along as
    their real counterparts move: applied to the real view, a float32/float64 result becomes
    complex64/complex128; another real result (half precision: no complex FFT kernels) keeps the
    complex dtype and takes only the device; a conversion to a complex dtype applies as is."""
    if getattr(fn, "_complex_following", False):
        return fn

    def convert(t: torch.Tensor) -> torch.Tensor:
        if not t.is_complex():
            return fn(t)
        real = fn(torch.view_as_real(t))
        if real.is_complex():
            return fn(t)
        if real.dtype in (torch.float32, torch.float64):
            return torch.view_as_complex(real.contiguous())
        return t.to(device=real.device)

    convert._complex_following = True  # type: ignore[attr-defined]
    return convert


class SpectralWeight(nn.Module):
    """Complex spectral weights, dense or factorized, for one layer or shared by ``n_layers``.

    Args:
        in_channels, out_channels: channel counts (equal when ``separable``).
        modes: Fourier modes per spatial dimension (the lowest ``m`` frequencies of each); the
            stored mode sizes are ``(m_1, .., m_{d-1}, m_d // 2 + 1)``.
        n_layers: share one tensor among this many layers (a leading layer mode); ``None``: one
            layer.
        separable: a weight per channel ``(channels, k..)`` (depthwise) instead of
            ``(in, out, k..)``.
        format: ``"dense"`` or a registered weight format (``"cp"``, ``"tucker"``, ``"tt"``,
            ``"tr"``, ``"lowrank"``, ...).
        rank, ratio: the format's rank, or the fraction of the dense parameter count it may
            use (exactly one for a factorized format; neither for dense).
        decomposition: options for loading a dense weight (:meth:`WeightFormat.right_inverse`).
        init_std: standard deviation of the weight's (complex) entries; default
            ``sqrt(2 / (in + out))`` (neuraloperator's ``"auto"``).
        lr_scale: the parameters (dense weight or factors) are stored divided by this number
            (in ``[0.001, 1000]``) and multiplied by it when used: the same function and init,
            but an optimizer whose steps do not depend on the parameters' scale (Adam, AdamW)
            moves them ``lr_scale`` times faster, i.e. the spectral weights train at
            ``lr_scale`` times the optimizer's learning rate (with SGD, ``lr_scale**2`` times).
            Default 1 (plain).
        generator, device, dtype: random init source; placement; the real dtype
            (float32 or float64) whose complex counterpart the weights use.

    Raises:
        TypeError: a size of the wrong type, a bad generator or dtype.
        ValueError: non-positive sizes, 0 or more than 3 spatial dimensions, unequal channels
            for ``separable``, an unknown format, or a rank/ratio that does not fit the format.

    Example:
        >>> w = SpectralWeight(2, 3, (4, 4), format="cp", rank=2,
        ...                    generator=torch.Generator().manual_seed(0))
        >>> w.shape, w.tensor().dtype
        ((2, 3, 4, 3), torch.complex64)
        >>> count_real(w) < count_real(SpectralWeight(2, 3, (4, 4)))  # 52 real numbers vs 144
        True
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        modes: int | Sequence[int],
        *,
        n_layers: int | None = None,
        separable: bool = False,
        format: str = "dense",
        rank: Any = None,
        ratio: float | None = None,
        decomposition: Mapping[str, Any] | None = None,
        init_std: float | None = None,
        lr_scale: float = 1.0,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        fn = type(self).__name__
        self.lr_scale = check_lr_scale(lr_scale, fn)
        self.in_channels = check_positive_int(in_channels, fn, "in_channels")
        self.out_channels = check_positive_int(out_channels, fn, "out_channels")
        self.modes = check_modes(modes, fn)
        self.n_layers = None if n_layers is None else check_positive_int(n_layers, fn, "n_layers")
        self.separable = bool(separable)
        if self.separable and self.in_channels != self.out_channels:
            raise ValueError(
                f"{fn}: a separable (depthwise) spectral weight needs in_channels == "
                f"out_channels; got {self.in_channels} and {self.out_channels}."
            )
        cdtype = complex_dtype(dtype, fn)
        generator = check_generator(generator, fn)
        channels = (self.in_channels,) if self.separable else (self.in_channels, self.out_channels)
        lead = () if self.n_layers is None else (self.n_layers,)
        self.shape: tuple[int, ...] = (*lead, *channels, *mode_sizes(self.modes))
        std = math.sqrt(2.0 / (self.in_channels + self.out_channels))
        if init_std is not None:
            if (
                isinstance(init_std, bool)
                or not isinstance(init_std, (int, float))
                or not (math.isfinite(init_std) and init_std >= 0)
            ):
                raise ValueError(
                    f"{fn}: init_std must be a non-negative finite number or None; "
                    f"got {init_std!r}."
                )
            std = float(init_std)
        self.format = format
        self.fmt: WeightFormat | None = None
        if format == "dense":
            if rank is not None or ratio is not None:
                raise ValueError(
                    f"{fn}: a dense spectral weight takes no rank or ratio; got rank={rank!r}, "
                    f"ratio={ratio!r} (pass format='cp', 'tucker', 'tt', ... to factorize it)."
                )
            # randn, then its scaled copy: twice the weight at the peak.
            check_memory(
                2 * math.prod(self.shape), cdtype, device or "cpu", fn, "the dense weight",
                hint="use fewer modes or channels",
            )  # fmt: skip
            w = torch.randn(self.shape, generator=generator, dtype=cdtype) * (std / self.lr_scale)
            self.dense: nn.Parameter | None = nn.Parameter(w.to(device))
            self.factors = nn.ParameterList()
        else:
            cls = get_format(format, fn)
            if isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and 0 < ratio <= 1:
                # The budget a ratio asks for, before the (size-proportional) rank search.
                check_memory(
                    math.ceil(ratio * math.prod(self.shape)), cdtype, device or "cpu", fn,
                    f"the {format} factors at ratio {ratio}", hint="use fewer modes or channels",
                )  # fmt: skip
            layout = TensorLayout.identity(self.shape)
            canonical = cls.resolve_rank(layout, rank=rank, ratio=ratio, fn=fn)
            self.fmt = cls(layout, canonical, decomposition=decomposition)
            check_memory(self.fmt.n_params, cdtype, device or "cpu", fn, f"the {format} factors")
            factors = self.fmt.init_factors(
                std=std, generator=generator, device=device, dtype=cdtype
            )
            self.dense = None
            self.factors = nn.ParameterList([nn.Parameter(self._stored(f)) for f in factors])
        labels = (LAYER if self.n_layers is not None else "") + IN
        labels += "" if self.separable else OUT
        self.labels = labels + mode_labels(len(self.modes))
        self.network: Network | None = (
            None if self.fmt is None else network_for(self.fmt, self.labels, FRESH)
        )

    # --- what a layer contracts with -------------------------------------------------------------
    @property
    def rank(self) -> Any:
        return None if self.fmt is None else self.fmt.rank

    @property
    def dtype(self) -> torch.dtype:
        return self.dense.dtype if self.dense is not None else self.factors[0].dtype

    def _apply(self, fn: Any, recurse: bool = True) -> SpectralWeight:
        # ``Module.double()``/``.float()`` skip complex parameters and ``Module.to(torch.float64)``
        # casts them to real (discarding the imaginary part). The complex weights follow the
        # real dtype instead: float64 -> complex128, float32 -> complex64.
        return super()._apply(complex_following(fn), recurse)

    def layer_labels(self) -> str:
        """The weight's labels once the layer mode is fixed."""
        return self.labels[1:] if self.n_layers is not None else self.labels

    def check_layer(self, layer: int | None, fn: str) -> None:
        if self.n_layers is None:
            if layer is not None:
                raise ValueError(f"{fn}: this weight is not shared; layer must be None.")
            return
        if layer is None or not 0 <= layer < self.n_layers:
            raise IndexError(
                f"{fn}: layer must be an index in [0, {self.n_layers - 1}] of the shared weight; "
                f"got {layer!r}."
            )

    def _stored(self, value: torch.Tensor) -> torch.Tensor:
        """A parameter's stored form: its value divided by ``lr_scale``."""
        return value if self.lr_scale == 1.0 else value / self.lr_scale

    def factor_values(self) -> list[torch.Tensor]:
        """The factors as used (the stored parameters times ``lr_scale``). Differentiable."""
        if self.lr_scale == 1.0:
            return list(self.factors)
        return [f * self.lr_scale for f in self.factors]

    def _dense_value(self) -> torch.Tensor:
        if self.dense is None:
            raise RuntimeError("SpectralWeight: not a dense weight.")
        return self.dense if self.lr_scale == 1.0 else self.dense * self.lr_scale

    def onehot(self, layer: int) -> torch.Tensor:
        e = torch.zeros(self.shape[0], dtype=self.dtype, device=self.factors[0].device)
        e[layer] = 1
        return e

    def operands(self, layer: int | None) -> tuple[list[str], list[torch.Tensor]] | None:
        """Subscripts and operands of the weight of ``layer`` as a network (None: no network)."""
        if self.dense is not None:
            w = self._dense_value()
            return [self.layer_labels()], [w if layer is None else w[layer]]
        if self.network is None:
            return None
        subs = list(self.network.subscripts)
        ops = self.network.operands(self.factor_values())
        if layer is not None:
            subs.append(LAYER)
            ops.append(self.onehot(layer))
        return subs, ops

    def tensor(self, layer: int | None = None) -> torch.Tensor:
        """The dense complex weight of ``layer``, or the whole tensor (with the layer mode of a
        shared weight) for ``None``. Differentiable."""
        if self.dense is not None:
            w = self._dense_value()
            return w if layer is None else w[layer]
        net = self.operands(layer)
        if net is None and self.fmt is not None:
            full = self.fmt(*self.factor_values())
            return full if layer is None else full[layer]
        if net is None:
            raise RuntimeError("SpectralWeight.tensor: neither dense nor factorized.")
        subs, ops = net
        eq = ",".join(subs) + "->" + (self.labels if layer is None else self.layer_labels())
        return Contraction(eq, [tuple(o.shape) for o in ops])(*ops)

    def load_dense_(self, weight: torch.Tensor) -> None:
        """Set the weight from a dense complex tensor of shape ``self.shape`` (factorized formats
        decompose it with their ``right_inverse``; not differentiable)."""
        fn = f"{type(self).__name__}.load_dense_"
        if tuple(weight.shape) != self.shape:
            raise ValueError(
                f"{fn}: weight must have shape {self.shape}; got {tuple(weight.shape)}."
            )
        with torch.no_grad():
            if self.dense is not None:
                self.dense.copy_(self._stored(weight.to(self.dense.dtype)))
                return
            if self.fmt is None:
                raise RuntimeError(f"{fn}: neither dense nor factorized.")
            factors = self.fmt.right_inverse(weight.to(self.dtype))
            for p, f in zip(self.factors, factors):
                p.copy_(self._stored(f))

    def config(self) -> dict[str, Any]:
        rank = self.rank
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "modes": list(self.modes),
            "n_layers": self.n_layers,
            "separable": self.separable,
            "format": self.format,
            "rank": list(rank) if isinstance(rank, tuple) else rank,
            "lr_scale": self.lr_scale,
        }

    def extra_repr(self) -> str:
        stored = count_real(self)
        dense = 2 * math.prod(self.shape)
        return (
            f"shape={self.shape}, format={self.format!r}, rank={self.rank}, reals={stored}/{dense}"
        )
