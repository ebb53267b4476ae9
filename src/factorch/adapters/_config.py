"""The config every adapter method extends: which modules to adapt, validated on creation."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from .._checks import check_positive_int

__all__ = ["ALL_LINEAR", "AdapterConfig", "check_choice", "check_number", "check_rank"]

ALL_LINEAR = "all-linear"

C = TypeVar("C", bound="AdapterConfig")


def _check_patterns(
    value: object, fn: str, name: str, *, allow_empty: bool
) -> str | tuple[str, ...]:
    """A str (a regex, or ``"all-linear"``) or a tuple of names; lists become tuples."""
    if isinstance(value, str):
        if value.lower() == ALL_LINEAR:
            if name == "exclude_modules":
                raise ValueError(f"{fn}: exclude_modules cannot be 'all-linear'.")
            return ALL_LINEAR
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(
                f"{fn}: {name} {value!r} is not a valid regular expression ({e}); a single str "
                "is matched against whole module names with re.fullmatch."
            ) from None
        return value
    if not isinstance(value, Sequence) or isinstance(value, bytes):
        raise TypeError(
            f"{fn}: {name} must be a str (a regular expression or 'all-linear') or a sequence "
            f"of module names; got {type(value).__name__}."
        )
    out = tuple(value)
    for item in out:
        if not isinstance(item, str) or not item:
            raise TypeError(f"{fn}: {name} entries must be non-empty strings; got {item!r}.")
    if not out and not allow_empty:
        raise ValueError(
            f"{fn}: {name} must name at least one module (or be a regex or 'all-linear')."
        )
    return out


def check_rank(value: object, fn: str, name: str = "rank") -> int:
    """A positive int (numpy ints accepted); rank 0 is a ``ValueError`` naming the fix."""
    return check_positive_int(value, fn, name)


def check_number(
    value: object, fn: str, name: str, *, low: float | None = None, low_open: bool = False
) -> float:
    """A finite real number (bools refused), at least (or above) ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{fn}: {name} must be a finite number; got {value!r}.")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{fn}: {name} must be {'>' if low_open else '>='} {low}; got {value!r}.")
    return float(value)


def check_choice(value: object, choices: Sequence[str], fn: str, name: str) -> str:
    """One of ``choices``; ``ValueError`` listing them otherwise."""
    if value not in choices:
        raise ValueError(f"{fn}: {name} must be one of {tuple(choices)}; got {value!r}.")
    return str(value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdapterConfig:
    """Base of every adapter method's config (a frozen dataclass, validated on creation).

    Attributes:
        target_modules: the modules to adapt. A sequence of names: a module matches when its
            full name equals one of them or ends with ``"." + name`` (``"query"`` matches
            ``encoder.layer.0.attention.self.query``). A single str is a regular expression
            matched against whole names (``re.fullmatch``). ``"all-linear"``: every
            ``nn.Linear`` except the model's output embedding (``get_output_embeddings()`` of
            Hugging Face models).
        exclude_modules: modules to leave alone, in the same forms (no ``"all-linear"``).

    Subclasses add their own fields and check them in :meth:`validate`; ``method`` is the
    name the method is registered under (:func:`~factorch.adapters.register_method`).

    Raises:
        TypeError: ``target_modules`` or ``exclude_modules`` neither a str nor a sequence of
            non-empty strings.
        ValueError: an invalid regular expression, no target module, or ``"all-linear"`` in
            ``exclude_modules`` (subclasses add the checks of their own fields).

    Example:
        >>> config = LoraConfig(target_modules=["query", "value"], exclude_modules=["lm_head"])
        >>> isinstance(config, AdapterConfig), config.target_modules
        (True, ('query', 'value'))
    """

    method: ClassVar[str] = ""

    target_modules: str | Sequence[str]
    exclude_modules: str | Sequence[str] = ()

    def __post_init__(self) -> None:
        fn = type(self).__name__
        targets = _check_patterns(self.target_modules, fn, "target_modules", allow_empty=False)
        excludes = _check_patterns(self.exclude_modules, fn, "exclude_modules", allow_empty=True)
        object.__setattr__(self, "target_modules", targets)
        object.__setattr__(self, "exclude_modules", excludes)
        self.validate()

    def validate(self) -> None:
        """Check (and normalise with ``object.__setattr__``) the method's own fields."""

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    # --- JSON ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields plus ``"method"`` (tuples become lists)."""
        out: dict[str, Any] = {"method": self.method}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """The config :meth:`to_dict` wrote (validated again).

        Raises:
            ValueError: another method's config, unknown or missing fields, bad values.
        """
        fn = f"{cls.__name__}.from_dict"
        if not isinstance(data, Mapping):
            raise TypeError(f"{fn}: data must be a mapping; got {type(data).__name__}.")
        if data.get("method") != cls.method:
            raise ValueError(
                f"{fn}: data describes method {data.get('method')!r}, not {cls.method!r}."
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names - {"method"})
        if unknown:
            raise ValueError(f"{fn}: unknown fields {unknown}; {cls.__name__} has {sorted(names)}.")
        kwargs = {k: v for k, v in data.items() if k != "method"}
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise ValueError(f"{fn}: {e}") from None
