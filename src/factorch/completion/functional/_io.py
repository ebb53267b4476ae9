"""Serialise a :class:`FunctionalTensor` to safetensors bytes and back (no pickle).

Layout: tensors ``factors.{k}.coords``, ``.precision``, ``.information``, ``.mean``, ``.cov`` for
every mode, and ``core.mean``, ``core.cov`` for Tucker; the string metadata holds
``factorch.type = "FunctionalTensor"``, ``factorch.version`` and ``factorch.functional``: a JSON
object with the kernels, the noise posterior, the value map, names, units and the prediction
dtype. Write the bytes with :func:`factorch.io.write_atomic` (atomic, no clobbering).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import torch

from ._kernels import Matern
from ._model import FunctionalTensor, LatentFunctions

__all__ = ["functional_from_bytes", "functional_to_bytes"]

_FIELDS = ("coords", "precision", "information", "mean", "cov")
_DTYPES = {"float16", "bfloat16", "float32", "float64"}


def functional_to_bytes(
    model: FunctionalTensor, *, metadata: Mapping[str, str] | None = None
) -> bytes:
    """The safetensors bytes of ``model`` (see the module docstring).

    Args:
        model: the model.
        metadata: extra string entries for the file's metadata.

    Returns:
        The bytes of a safetensors file (read back by :func:`functional_from_bytes`).

    Raises:
        TypeError: ``model`` is not a :class:`FunctionalTensor`, metadata not ``str -> str``.

    Example:
        >>> import torch
        >>> from factorch.completion.functional import ContinuousData, funbat
        >>> data = ContinuousData(torch.rand(50, 2, dtype=torch.float64), torch.randn(50))
        >>> model = funbat(data, 1, structure="cp", max_iter=3, generator=torch.Generator()).model
        >>> functional_from_bytes(functional_to_bytes(model)).rank
        (1, 1)
    """
    from safetensors.torch import save

    from ... import __version__

    if not isinstance(model, FunctionalTensor):
        raise TypeError(
            f"functional_to_bytes: model must be a FunctionalTensor; got {type(model).__name__}."
        )
    named: dict[str, torch.Tensor] = {}
    for k, f in enumerate(model.factors):
        for name in _FIELDS:
            named[f"factors.{k}.{name}"] = getattr(f, name)
    if model.core_mean is not None and model.core_cov is not None:
        named["core.mean"] = model.core_mean
        named["core.cov"] = model.core_cov
    named = {k: v.detach().to("cpu").contiguous() for k, v in named.items()}
    config = {
        "kernels": [
            {"nu": f.kernel.nu, "lengthscale": f.kernel.lengthscale, "variance": f.kernel.variance}
            for f in model.factors
        ],
        "noise_shape": model.noise_shape,
        "noise_rate": model.noise_rate,
        "value_scale": model.value_scale,
        "value_offset": model.value_offset,
        "names": list(model.names or ()),
        "units": list(model.units or ()),
        "value_dtype": str(model.value_dtype).replace("torch.", ""),
    }
    meta = {
        "factorch.type": "FunctionalTensor",
        "factorch.version": __version__,
        "factorch.functional": json.dumps(config),
    }
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"functional_to_bytes: metadata must map str to str; got {key!r}.")
        meta.setdefault(key, value)
    return save(named, metadata=meta)


def functional_from_bytes(data: bytes) -> FunctionalTensor:
    """Rebuild a :class:`FunctionalTensor` from :func:`functional_to_bytes` output.

    Args:
        data: the bytes of the file.

    Returns:
        The model, in the dtypes it was saved in.

    Raises:
        TypeError: ``data`` that is not bytes.
        ValueError: not a safetensors file of a functional model, or an inconsistent one.

    Example:
        >>> functional_from_bytes(b"not a model")
        Traceback (most recent call last):
            ...
        ValueError: functional_from_bytes: ...
    """
    fn = "functional_from_bytes"
    from safetensors.torch import load

    if not isinstance(data, bytes | bytearray):
        raise TypeError(f"{fn}: data must be bytes; got {type(data).__name__}.")
    try:
        named = load(bytes(data))
        meta = _metadata(bytes(data))
        if meta.get("factorch.type") != "FunctionalTensor":
            raise ValueError(f"the file holds a {meta.get('factorch.type')!r}, not a model")
        cfg = json.loads(meta["factorch.functional"])
        factors = []
        for k, kern in enumerate(cfg["kernels"]):
            parts = [named[f"factors.{k}.{name}"] for name in _FIELDS]
            kernel = Matern(kern["nu"], kern["lengthscale"], kern["variance"])
            factors.append(LatentFunctions(kernel, *parts))
        dtype = cfg["value_dtype"]
        if dtype not in _DTYPES:
            raise ValueError(f"unknown value dtype {dtype!r}")
        return FunctionalTensor(
            tuple(factors),
            named.get("core.mean"),
            named.get("core.cov"),
            float(cfg["noise_shape"]),
            float(cfg["noise_rate"]),
            value_scale=float(cfg["value_scale"]),
            value_offset=float(cfg["value_offset"]),
            names=tuple(cfg["names"]) or None,
            units=tuple(cfg["units"]) or None,
            value_dtype=getattr(torch, dtype),
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError, RuntimeError) as err:
        raise ValueError(f"{fn}: not a valid functional model file ({err}).") from err
    except Exception as err:  # safetensors raises its own SafetensorError for damaged bytes
        raise ValueError(f"{fn}: not a valid safetensors file ({err}).") from err


def _metadata(data: bytes) -> dict[str, str]:
    """The string metadata of safetensors bytes (parsed from the header: 8-byte length + JSON)."""
    size = int.from_bytes(data[:8], "little")
    if size <= 0 or size > len(data) - 8:
        raise ValueError("damaged safetensors header")
    header = json.loads(data[8 : 8 + size])
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict):
        raise ValueError("damaged safetensors metadata")
    return {str(k): str(v) for k, v in meta.items()}
