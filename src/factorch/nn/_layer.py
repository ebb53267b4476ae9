"""Shared machinery of factorized layers: factors as parameters, the format, the ``"auto"`` rule."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, cast, get_args

import torch
from torch import nn

from .._checks import check_generator
from .._numerics import HALF_DTYPES, check_memory
from ..decomp.internal import Rank
from ._spec import TensorLayout
from .formats import WeightFormat, check_weight_finite, get_format

__all__ = ["FactorizedLayer", "Implementation", "build_format", "errors_named"]

Implementation = Literal["auto", "factorized", "reconstructed"]


@contextlib.contextmanager
def errors_named(fn: str, *, inner: str = "") -> Iterator[None]:
    """Re-raise factorch's own ``TypeError``/``ValueError``/``IndexError`` from inside as the same
    type whose message starts with ``fn`` (the public entry point the caller used): an ``inner``
    prefix (e.g. the class name a constructor reports) is replaced, another function's name is
    kept after ``fn``. Errors without a ``"<name>: "`` prefix (not factorch's) pass unchanged."""
    try:
        yield
    except (TypeError, ValueError, IndexError) as err:
        msg = str(err)
        if msg.startswith(f"{fn}:") or not _NAMED.match(msg):
            raise
        if inner and msg.startswith(f"{inner}: "):
            msg = msg[len(inner) + 2 :]
        raise type(err)(f"{fn}: {msg}") from err


_NAMED = re.compile(r"[A-Za-z_][\w.]*: ")


def check_implementation(implementation: object, fn: str) -> Implementation:
    if implementation not in get_args(Implementation):
        raise ValueError(
            f"{fn}: implementation must be one of {get_args(Implementation)}; "
            f"got {implementation!r}."
        )
    return cast(Implementation, implementation)


def check_probability(p: object, fn: str, name: str) -> float:
    """A probability in ``[0, 1)``: ``TypeError`` for a non-number, ``ValueError`` outside."""
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(
            f"{fn}: {name} must be a float probability in [0, 1); got {type(p).__name__} {p!r} "
            "(pass a number such as 0.1)."
        )
    if not 0 <= p < 1:
        raise ValueError(f"{fn}: {name} must be a probability in [0, 1); got {p!r}.")
    return float(p)


def check_layer_dtype(dtype: object, fn: str) -> torch.dtype | None:
    """None or a floating dtype; integer, bool and complex dtypes are refused (``TypeError``)."""
    if dtype is None:
        return None
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"{fn}: dtype must be a torch.dtype or None; got {dtype!r}.")
    if not dtype.is_floating_point:
        raise TypeError(
            f"{fn}: dtype must be a floating dtype (torch.float32, torch.float64, torch.float16, "
            f"torch.bfloat16); got {dtype}."
        )
    return dtype


def build_format(
    fn: str,
    format: object,
    layout_of: Callable[[type[WeightFormat]], TensorLayout],
    *,
    rank: object,
    ratio: float | None,
    decomposition: Mapping[str, Any] | None,
    fixed_modes_of: Callable[[type[WeightFormat], TensorLayout], Sequence[int]] | None = None,
) -> WeightFormat:
    """The format object a layer stores: the class registered as ``format``, the layout it uses
    for this layer, and the rank given or the one ``ratio`` asks for (errors name ``fn``)."""
    cls = get_format(format, fn)
    if decomposition is not None and not isinstance(decomposition, Mapping):
        raise TypeError(
            f"{fn}: decomposition must be a mapping of options or None; "
            f"got {type(decomposition).__name__}."
        )
    layout = layout_of(cls)
    fixed = tuple(fixed_modes_of(cls, layout)) if fixed_modes_of is not None else ()
    canonical = cls.resolve_rank(layout, rank=rank, ratio=ratio, fn=fn, fixed_modes=fixed)
    return cls(layout, canonical, decomposition=decomposition)


class FactorizedLayer(nn.Module):
    """Base of the factorized layers: ``factors`` (an ``nn.ParameterList``) in the format of
    ``parametrization`` (a :class:`~factorch.nn.formats.WeightFormat`), an optional ``bias``, and
    the ``implementation`` switch.

    ``weight`` rebuilds the dense weight (differentiable). ``rank_dropout`` (a probability) drops
    rank components at random in training mode (tensor dropout, see
    :func:`factorch.nn.tensor_dropout`).

    ``implementation="auto"`` compares the format's cost model for the factorized forward with
    rebuilding the weight, for the input's actual size (a fixed rule, no timing). A size that is
    symbolic while tracing (``torch.export`` with a dynamic batch dimension) is taken as
    unbounded, so the traced program keeps the path with the lower cost per row; forcing
    ``"factorized"`` or ``"reconstructed"`` skips the cost model altogether.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> layer = FactorizedLinear(6, 4, format="cp", rank=3, generator=gen)
        >>> isinstance(layer, FactorizedLayer), type(layer.parametrization).__name__
        (True, 'CPWeight')
        >>> len(layer.factors), layer.weight.shape, layer.n_params  # 30 factor entries + bias
        (5, torch.Size([4, 6]), 34)
    """

    parametrization: WeightFormat
    factors: nn.ParameterList
    bias: nn.Parameter | None

    def _setup(
        self,
        parametrization: WeightFormat,
        *,
        bias_shape: tuple[int, ...] | None,
        fan_in: int,
        implementation: str,
        rank_dropout: float,
        init_std: float | None,
        generator: torch.Generator | None,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
    ) -> None:
        fn = type(self).__name__
        dtype = check_layer_dtype(dtype, fn)
        generator = check_generator(generator, fn)
        self.implementation = check_implementation(implementation, fn)
        self.rank_dropout = check_probability(rank_dropout, fn, "rank_dropout")
        if init_std is not None and (
            isinstance(init_std, bool)
            or not isinstance(init_std, (int, float))
            or not (math.isfinite(init_std) and init_std >= 0)
        ):
            raise ValueError(
                f"{fn}: init_std must be a non-negative finite number or None; got {init_std!r}."
            )
        self.parametrization = parametrization
        std = 1.0 / math.sqrt(3.0 * fan_in) if init_std is None else float(init_std)
        factors = self._init_factors(std, generator, device, dtype)
        # contiguous: a loaded state_dict is copied into these tensors, and their strides decide
        # the GEMM's summation order (a reloaded layer must compute bit for bit the same)
        self.factors = nn.ParameterList([nn.Parameter(f.contiguous()) for f in factors])
        if bias_shape is None:
            self.register_parameter("bias", None)
        else:
            bound = 1.0 / math.sqrt(fan_in)
            b = torch.rand(bias_shape, generator=generator, dtype=factors[0].dtype) * 2 - 1
            self.bias = nn.Parameter((b * bound).to(factors[0].device))

    def _init_factors(
        self,
        std: float,
        generator: torch.Generator | None,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
    ) -> tuple[torch.Tensor, ...]:
        """Random factors, after refusing (before allocating) ones that cannot fit in memory."""
        p = self.parametrization
        dtype = dtype or torch.get_default_dtype()
        check_memory(  # half precision is drawn in float64, then cast
            p.n_params,
            torch.float64 if dtype in HALF_DTYPES else dtype,
            device if device is not None else "cpu",
            type(self).__name__,
            f"the {p.format} factors at rank {p.rank}",
            hint="use a smaller rank or ratio",
        )
        return p.init_factors(std=std, generator=generator, device=device, dtype=dtype)

    # --- properties ------------------------------------------------------------------------------
    @property
    def format(self) -> str:
        return self.parametrization.format

    @property
    def rank(self) -> Rank:
        return self.parametrization.rank

    @property
    def weight(self) -> torch.Tensor:
        """The dense weight rebuilt from the factors (differentiable, no dropout)."""
        return self.parametrization(*self.factors)

    @property
    def n_params(self) -> int:
        """The number of trainable numbers (factors plus bias)."""
        return sum(p.numel() for p in self.parameters())

    def current_factors(self) -> tuple[torch.Tensor, ...]:
        """The factors used by this forward pass (rank dropout applied in training mode)."""
        factors = tuple(self.factors)
        if self.training and self.rank_dropout > 0:
            factors = self.parametrization.dropout(factors, self.rank_dropout)
        return factors

    def set_factors(self, factors: Sequence[torch.Tensor]) -> None:
        """Replace the factor parameters (shapes must match ``parametrization.factor_shapes``)."""
        fn = f"{type(self).__name__}.set_factors"
        want = self.parametrization.factor_shapes
        got = tuple(tuple(f.shape) for f in factors)
        if got != tuple(want):
            raise ValueError(f"{fn}: factor shapes must be {want}; got {got}.")
        self.factors = nn.ParameterList([nn.Parameter(f.detach().clone()) for f in factors])

    def reparametrize_(self, rank: Any, factors: Sequence[torch.Tensor]) -> None:
        """Change the rank in place: a new parametrization of the same format and layout, and
        ``factors`` of the matching shapes as fresh parameters (rebuild optimizers after)."""
        old = self.parametrization
        self.parametrization = type(old)(old.layout, rank, decomposition=old.decomposition)
        self.set_factors(factors)

    # --- the implementation choice ---------------------------------------------------------------
    def use_factorized(self, factorized_cost: int, reconstructed_cost: int) -> bool:
        """The ``"auto"`` rule: the factorized forward unless rebuilding costs less."""
        return factorized_cost <= reconstructed_cost

    def takes_factorized(self, costs: Callable[[], tuple[int, int]]) -> bool:
        """Whether this forward contracts the factors; ``costs`` runs only for ``"auto"``."""
        if self.implementation != "auto":
            return self.implementation == "factorized"
        return self.use_factorized(*costs())

    # --- from a dense layer ----------------------------------------------------------------------
    def _load_dense(
        self, weight: torch.Tensor, bias: torch.Tensor | None, *, training: bool, fn: str
    ) -> None:
        """Decompose ``weight`` into the factors, copy ``bias`` and the source's train/eval
        mode (autocast off, half precision decomposed in float32: see ``right_inverse``)."""
        check_weight_finite(weight, fn)
        self.set_factors(self.parametrization.right_inverse(weight))
        if self.bias is not None and bias is not None:
            self.bias = nn.Parameter(bias.detach().clone())
        self.train(training)

    def _check_float_input(self, x: object, fn: str, expected: str) -> torch.Tensor:
        """``x`` is a floating tensor of the layer's dtype (autocast may mix dtypes)."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"{fn}: input must be a torch.Tensor of {expected}; got {type(x).__name__}."
            )
        if not x.is_floating_point():
            raise TypeError(
                f"{fn}: input must be a floating-point tensor of {expected}; got {x.dtype}."
            )
        dtype = self.factors[0].dtype
        if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(
                f"{fn}: input dtype {x.dtype} does not match the layer's {dtype}; convert one "
                f"of them (e.g. x.to({dtype}) or layer.to({x.dtype}))."
            )
        return x

    # --- config (rebuild the structure without decomposing) -----------------------------------
    def config(self) -> dict[str, Any]:
        """A JSON-serialisable description: ``{"layer": class name, "args": constructor
        arguments, "weight": the format's config}``. ``from_config`` rebuilds the layer (random
        factors; load a ``state_dict`` for the trained ones) without running a decomposition."""
        rank = self.rank if isinstance(self.rank, int) else list(self.rank)
        args = {
            **self._config_args(),
            "format": self.format,
            "rank": rank,
            "implementation": self.implementation,
        }
        return {"layer": type(self).__name__, "args": args, "weight": self.parametrization.config()}

    def _config_args(self) -> dict[str, Any]:
        """The constructor arguments that fix the layer's shape (JSON types)."""
        raise NotImplementedError  # pragma: no cover - every concrete layer defines it

    @classmethod
    def _check_config(cls, config: object) -> dict[str, Any]:
        fn = f"{cls.__name__}.from_config"
        if not isinstance(config, Mapping) or config.get("layer") != cls.__name__:
            got = config.get("layer") if isinstance(config, Mapping) else type(config).__name__
            raise ValueError(f"{fn}: config must describe a {cls.__name__}; got {got!r}.")
        args = dict(config["args"])
        if isinstance(args.get("rank"), list):
            args["rank"] = tuple(args["rank"])
        return args

    def extra_repr(self) -> str:
        return (
            f"format={self.format!r}, rank={self.rank}, implementation={self.implementation!r}, "
            f"params={self.parametrization.n_params}/{self.parametrization.dense_params}"
        )
