"""Bundled real tensors: a small frozen :class:`Dataset` per name, loaded from package data.

The files live in ``factorch/datasets/data/`` (``<name>.safetensors`` holds the tensor,
``<name>.json`` its labels, description, citation and licence); ``data/SOURCES.md`` records where
each came from and the full licence texts, and ``_build.py`` rebuilds them from the upstream
copies. Nothing is downloaded at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

import torch
from safetensors.torch import load as _load_safetensors

__all__ = ["Dataset", "list_datasets", "load"]

_NAMES = ("covid19_serology", "il2_response", "digits_counts")


@dataclass(frozen=True)
class Dataset:
    """A bundled real tensor with everything needed to interpret and cite it.

    Attributes:
        name: registry name, as passed to :func:`load`.
        tensor: the data; missing entries are NaN.
        mask: boolean tensor, True where an entry was observed; ``None`` when nothing is missing.
        mode_names: one name per mode (``("sample", "antigen", "receptor")``).
        labels: one tuple of strings per mode, one string per index along that mode.
        description: what the entries mean.
        source: where the bundled copy was taken from.
        citation: references to cite when using the data.
        licence: SPDX identifier of the data's licence (``"MIT"``, ``"CC-BY-4.0"``).
        licence_text: the licence text or attribution notice that must travel with the data.
        suggested_method: a decomposition that suits the data (``"cp"``, ``"ntf"``).
        suggested_rank: a rank that gives an interpretable model with that method.

    Example:
        >>> ds = load("il2_response")
        >>> ds.shape, ds.n_missing, ds.mask is not None, ds.licence
        ((13, 4, 12, 8), 192, True, 'MIT')
    """

    name: str
    tensor: torch.Tensor
    mask: torch.Tensor | None
    mode_names: tuple[str, ...]
    labels: tuple[tuple[str, ...], ...]
    description: str
    source: str
    citation: tuple[str, ...]
    licence: str
    licence_text: str
    suggested_method: str
    suggested_rank: int

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.tensor.shape)

    @property
    def n_missing(self) -> int:
        """Number of unobserved entries."""
        return 0 if self.mask is None else int((~self.mask).sum())


def list_datasets() -> tuple[str, ...]:
    """Names of the bundled datasets, for :func:`load`.

    Returns:
        The names, in a fixed order.

    Example:
        >>> list_datasets()
        ('covid19_serology', 'il2_response', 'digits_counts')
    """
    return _NAMES


def _read_resource(filename: str) -> bytes:
    return resources.files("factorch.datasets").joinpath("data").joinpath(filename).read_bytes()


def load(
    name: str,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Dataset:
    """Load a bundled dataset by name.

    Args:
        name: one of :func:`list_datasets` (``"covid19_serology"``, ``"il2_response"``,
            ``"digits_counts"``).
        dtype: floating dtype of ``Dataset.tensor`` (the files store float64, or uint8 counts).
        device: where to put the tensor and mask (default CPU).

    Returns:
        A frozen :class:`Dataset`; the tensor is a fresh copy on each call.

    Raises:
        TypeError: ``name`` that is not a str, or a ``dtype`` that is not floating.
        ValueError: an unknown ``name`` (the message lists the bundled ones).

    Example:
        >>> ds = load("covid19_serology")
        >>> ds.shape, ds.mode_names
        ((438, 6, 11), ('sample', 'antigen', 'receptor'))
    """
    if not isinstance(name, str):
        raise TypeError(f"load: name must be a str; got {type(name).__name__}.")
    if name not in _NAMES:
        raise ValueError(
            f"load: unknown dataset {name!r}; choose one of {', '.join(map(repr, _NAMES))}."
        )
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"load: dtype must be a floating torch.dtype; got {dtype!r}.")
    meta = json.loads(_read_resource(f"{name}.json").decode("utf-8"))
    raw = _load_safetensors(_read_resource(f"{name}.safetensors"))["tensor"]
    tensor = raw.to(device=device, dtype=dtype)
    missing = torch.isnan(tensor)
    mask = ~missing if bool(missing.any()) else None
    return Dataset(
        name=name,
        tensor=tensor,
        mask=mask,
        mode_names=tuple(meta["mode_names"]),
        labels=tuple(tuple(lab) for lab in meta["labels"]),
        description=meta["description"],
        source=meta["source"],
        citation=tuple(meta["citation"]),
        licence=meta["licence"],
        licence_text=meta["licence_text"],
        suggested_method=meta["suggested_method"],
        suggested_rank=int(meta["suggested_rank"]),
    )
