"""Save and load factorized tensors as ``.safetensors`` files.

Layout (tensor names inside the file; every tensor stored contiguous, on CPU):

==============  ==================================================================
``CPTensor``     ``weights``, ``factors.0`` ... ``factors.{N-1}``
``TuckerTensor`` ``core``, ``factors.0`` ... ``factors.{N-1}``
``TTTensor``     ``cores.0`` ... ``cores.{N-1}`` (also ``TRTensor``, ``TTMatrix``)
==============  ==================================================================

The string metadata carries ``factorch.type`` (the class name), ``factorch.version`` and any
extra entries the caller passes. Loading never unpickles anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ._atomic import write_atomic
from ._content import FileFormatError, safetensors_header

__all__ = ["factorized_from_bytes", "factorized_to_bytes", "load_factorized", "save_factorized"]

_CORE_TYPES = ("TTTensor", "TRTensor", "TTMatrix")


def _named_tensors(t: Any) -> tuple[str, dict[str, torch.Tensor]]:
    kind = type(t).__name__
    if kind == "CPTensor":
        named = {"weights": t.weights} | {f"factors.{n}": f for n, f in enumerate(t.factors)}
    elif kind == "TuckerTensor":
        named = {"core": t.core} | {f"factors.{n}": f for n, f in enumerate(t.factors)}
    elif kind in _CORE_TYPES:
        named = {f"cores.{n}": c for n, c in enumerate(t.cores)}
    else:
        raise TypeError(
            "save_factorized: tensor must be a CPTensor, TuckerTensor, TTTensor, TRTensor or "
            f"TTMatrix; got {kind}."
        )
    return kind, {k: v.detach().to("cpu").contiguous() for k, v in named.items()}


def factorized_to_bytes(t: Any, *, metadata: Mapping[str, str] | None = None) -> bytes:
    """Serialise a factorized tensor to safetensors bytes (see the module docstring).

    Args:
        t: a :class:`~factorch.tensors.CPTensor`, ``TuckerTensor``, ``TTTensor``, ``TRTensor``
            or ``TTMatrix`` (detached and copied to the CPU for writing).
        metadata: extra string entries for the file's metadata.

    Returns:
        The bytes of a safetensors file.

    Raises:
        TypeError: ``t`` of another type, or metadata that does not map str to str.

    Example:
        >>> cp = factorch.random.random_cp((3, 4), 2, generator=torch.Generator().manual_seed(0))
        >>> data = factorized_to_bytes(cp, metadata={"source": "example"})
        >>> torch.equal(factorized_from_bytes(data).to_dense(), cp.to_dense())
        True
    """
    from safetensors.torch import save

    from .. import __version__

    kind, named = _named_tensors(t)
    meta = {"factorch.type": kind, "factorch.version": __version__}
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(
                f"save_factorized: metadata must map str to str; got {k!r}: {type(v).__name__}."
            )
        meta[k] = v
    return save(named, metadata=meta)


def _rebuild(kind: str, named: dict[str, torch.Tensor], where: str) -> Any:
    from .. import tensors

    def seq(prefix: str) -> tuple[torch.Tensor, ...]:
        out: list[torch.Tensor] = []
        while f"{prefix}.{len(out)}" in named:
            out.append(named[f"{prefix}.{len(out)}"])
        if not out:
            raise FileFormatError(f"{where}: no '{prefix}.0' tensor for a {kind}.")
        return tuple(out)

    try:
        if kind == "CPTensor":
            return tensors.CPTensor(named["weights"], seq("factors"))
        if kind == "TuckerTensor":
            return tensors.TuckerTensor(named["core"], seq("factors"))
        if kind in _CORE_TYPES:
            return getattr(tensors, kind)(seq("cores"))
    except KeyError as e:
        raise FileFormatError(f"{where}: missing tensor {e.args[0]!r} for a {kind}.") from e
    except (TypeError, ValueError) as e:
        raise FileFormatError(f"{where}: inconsistent {kind} ({e})") from e
    raise FileFormatError(f"{where}: unknown factorch.type {kind!r} in the metadata.")


def factorized_from_bytes(data: bytes, *, where: str = "data") -> Any:
    """Inverse of :func:`factorized_to_bytes`.

    Args:
        data: the bytes of a safetensors file written by :func:`factorized_to_bytes`.
        where: how error messages name the data (a file name).

    Returns:
        The factorized tensor, its tensors on the CPU.

    Raises:
        FileFormatError: not a safetensors file, no ``factorch.type`` in its metadata, an
            unknown type, or tensors missing or inconsistent for that type (a ``ValueError``).

    Example:
        >>> factorized_from_bytes(b"not a file")
        Traceback (most recent call last):
            ...
        factorch.io._content.FileFormatError: data is not a safetensors file.
    """
    from safetensors.torch import load

    if not safetensors_header(bytes(data[:16]), len(data)):
        raise FileFormatError(f"{where} is not a safetensors file.")
    try:
        named = load(bytes(data))
        kind = _metadata_type(data)
    except FileFormatError:
        raise
    except Exception as e:  # SafetensorError
        raise FileFormatError(f"{where}: cannot read the safetensors data ({e}).") from e
    return _rebuild(kind, named, where)


def _metadata_type(data: bytes) -> str:
    n = int.from_bytes(data[:8], "little")
    header = json.loads(bytes(data[8 : 8 + n]).decode("utf-8"))
    kind = (header.get("__metadata__") or {}).get("factorch.type")
    if not isinstance(kind, str):
        raise FileFormatError("no 'factorch.type' in the safetensors metadata.")
    return kind


def save_factorized(
    t: Any,
    path: str | os.PathLike[str],
    *,
    metadata: Mapping[str, str] | None = None,
    force: bool = False,
) -> None:
    """Write a factorized tensor to a ``.safetensors`` file atomically.

    Args:
        t: the factorized tensor (as :func:`factorized_to_bytes` takes it).
        path: the file to write.
        metadata: extra string entries for the file's metadata.
        force: overwrite an existing file.

    Raises:
        TypeError: ``t`` of a type that cannot be saved, or metadata that does not map str to
            str.
        FileExistsError: ``path`` exists and ``force`` is False.

    Example:
        >>> import tempfile, pathlib
        >>> cp = factorch.random.random_cp((3, 4), 2, generator=torch.Generator().manual_seed(0))
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = pathlib.Path(folder) / "cp.safetensors"
        ...     save_factorized(cp, path)
        ...     torch.equal(load_factorized(path).weights, cp.weights)
        True
    """
    write_atomic(path, factorized_to_bytes(t, metadata=metadata), force=force)


def load_factorized(path: str | os.PathLike[str]) -> Any:
    """Read a factorized tensor written by :func:`save_factorized` (tensors land on CPU).

    Args:
        path: the ``.safetensors`` file.

    Returns:
        The factorized tensor (its class is read from the file's metadata).

    Raises:
        FileNotFoundError: no file at ``path``.
        FileFormatError: content that is not a saved factorized tensor (a ``ValueError``).

    Example:
        >>> load_factorized("no/such/file.safetensors")
        Traceback (most recent call last):
            ...
        FileNotFoundError: no such file: 'no/such/file.safetensors'.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {str(p)!r}.")
    return factorized_from_bytes(p.read_bytes(), where=p.name)
