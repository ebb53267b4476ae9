"""One on-disk format for models: a JSON config and a safetensors file, in one directory.

Written by :func:`factorch.nn.save_pretrained` (compressed models: the factorized layers'
structure and the whole state) and :func:`factorch.adapters.save_pretrained` (adapters: their
configs, per-module structure and only the adapter tensors). This module knows nothing of
either: it writes and reads the two files and checks everything a file could get wrong.

Layout of ``<directory>``:

* ``factorch_config.json``::

      {"factorch_model": {"version": 1, "kind": "<kind>", "factorch_version": "0.1.0"},
       "config": {...what the writer records...},
       "tensors": {"<name>": {"shape": [..], "dtype": "float32"}, ...}}

* ``model.safetensors``: exactly the tensors the manifest (``"tensors"``) lists, with those
  shapes and dtypes.

Files are untrusted input. Reading never unpickles anything (safetensors only); the JSON is
bounded in size, must be one object with no duplicate keys and no ``NaN``/``Infinity``; the
safetensors header must list the manifest's tensors exactly (names, shapes, dtypes), and their
total size is checked against ``max_entries`` before any tensor is read. Writing goes through
:func:`factorch.io.write_files` (temporary siblings, then atomic renames; both files or
neither), refusing to replace existing files unless ``force=True``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ._arrays import _safetensors_entries
from ._atomic import write_files
from ._content import DEFAULT_MAX_ENTRIES, FileFormatError, check_max_entries, shape_entries

__all__ = [
    "CONFIG_NAME",
    "MODEL_FORMAT_VERSION",
    "WEIGHTS_NAME",
    "ModelFiles",
    "read_model_config",
    "read_model_tensors",
    "save_model_files",
]

CONFIG_NAME = "factorch_config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_FORMAT_VERSION = 1
MAX_CONFIG_BYTES = 16 * 2**20
"""Largest ``factorch_config.json`` read (a config is structure, never data)."""

_DTYPES: dict[str, tuple[torch.dtype, str]] = {
    "float16": (torch.float16, "F16"),
    "bfloat16": (torch.bfloat16, "BF16"),
    "float32": (torch.float32, "F32"),
    "float64": (torch.float64, "F64"),
    "int64": (torch.int64, "I64"),
    "int32": (torch.int32, "I32"),
    "bool": (torch.bool, "BOOL"),
}
_NAME_OF = {dt: name for name, (dt, _) in _DTYPES.items()}


@dataclass(frozen=True)
class ModelFiles:
    """The parsed and checked ``factorch_config.json`` of a model directory.

    Attributes:
        directory: where the files are.
        kind: what wrote them (``"factorized"``, ``"adapters"``).
        config: the writer's config (a JSON object).
        tensors: the manifest: tensor name -> ``(shape, dtype)``.
        factorch_version: the version that wrote the files.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     save_model_files(folder, kind="demo", config={"a": 1}, tensors={"w": torch.ones(2)})
        ...     files = read_model_config(folder, kind="demo")
        ...     tensors = read_model_tensors(files)
        >>> files.kind, files.config, files.tensors
        ('demo', {'a': 1}, {'w': ((2,), torch.float32)})
    """

    directory: Path
    kind: str
    config: dict[str, Any]
    tensors: dict[str, tuple[tuple[int, ...], torch.dtype]]
    factorch_version: str


def _json_bytes(config: Mapping[str, Any], fn: str) -> bytes:
    try:
        return json.dumps(config, indent=1, allow_nan=False, sort_keys=False).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{fn}: the config must hold only JSON values (str, int, finite float, bool, None, "
            f"lists and str-keyed dicts); {e}."
        ) from e


def save_model_files(
    directory: str | os.PathLike[str],
    *,
    kind: str,
    config: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor],
    force: bool = False,
) -> None:
    """Write ``config`` and ``tensors`` to ``directory`` (created if missing), atomically.

    Tensors are copied to the CPU as contiguous, unshared tensors (tied parameters are written
    once per name). Both files are written or neither.

    Args:
        directory: the target directory.
        kind: what the files hold (recorded; readers check it).
        config: JSON-serialisable description of the model.
        tensors: name -> tensor (floating, int32/int64 or bool).
        force: replace existing files.

    Raises:
        TypeError: a non-JSON config value, a non-tensor or an unsupported dtype.
        FileExistsError: the files exist and ``force`` is False.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> save_model_files(d, kind="demo", config={"a": 1}, tensors={"w": torch.ones(2)})
        >>> read_model_config(d).tensors
        {'w': ((2,), torch.float32)}
    """
    from safetensors.torch import save

    fn = "save_model_files"
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"{fn}: kind must be a non-empty str; got {kind!r}.")
    named: dict[str, torch.Tensor] = {}
    manifest: dict[str, dict[str, Any]] = {}
    for name, t in tensors.items():
        if not isinstance(name, str) or not isinstance(t, torch.Tensor):
            raise TypeError(f"{fn}: tensors must map str to torch.Tensor; got {name!r}.")
        if t.dtype not in _NAME_OF:
            raise TypeError(
                f"{fn}: tensor {name!r} has dtype {t.dtype}; supported: {sorted(_DTYPES)}."
            )
        named[name] = t.detach().to("cpu").contiguous().clone()
        manifest[name] = {"shape": list(t.shape), "dtype": _NAME_OF[t.dtype]}
    from .. import __version__

    header = {"version": MODEL_FORMAT_VERSION, "kind": kind, "factorch_version": __version__}
    text = _json_bytes({"factorch_model": header, "config": dict(config), "tensors": manifest}, fn)
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{fn}: {str(path)!r} exists and is not a directory.")
    write_files(
        {path / CONFIG_NAME: text, path / WEIGHTS_NAME: save(named, metadata={"format": "pt"})},
        force=force,
    )


# --- reading --------------------------------------------------------------------------------------
def _refuse_constant(token: str) -> Any:
    raise FileFormatError(f"{CONFIG_NAME}: non-standard JSON constant {token!r} (NaN/Infinity).")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise FileFormatError(f"{CONFIG_NAME}: duplicate key {key!r}.")
        out[key] = value
    return out


def _parse_json(path: Path) -> dict[str, Any]:
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise FileFormatError(
            f"{CONFIG_NAME}: {size:,} bytes, more than the {MAX_CONFIG_BYTES:,} a model config "
            "may have (a config records structure, not data)."
        )
    try:
        text = path.read_bytes().decode("utf-8")
        value = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    except FileFormatError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise FileFormatError(f"{CONFIG_NAME}: not valid UTF-8 JSON ({e}).") from None
    if not isinstance(value, dict):
        raise FileFormatError(
            f"{CONFIG_NAME}: must hold a JSON object; got {type(value).__name__}."
        )
    return value


def _shape(value: object, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value
    ):
        raise FileFormatError(f"{where}: shape must be a list of non-negative ints; got {value!r}.")
    return tuple(value)


def _manifest(value: object) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    if not isinstance(value, dict):
        raise FileFormatError(f"{CONFIG_NAME}: 'tensors' must be an object; got {value!r:.60}.")
    out = {}
    for name, spec in value.items():
        where = f"{CONFIG_NAME}: tensor {name!r}"
        if not isinstance(spec, dict) or set(spec) != {"shape", "dtype"}:
            raise FileFormatError(f"{where}: must be {{'shape': [...], 'dtype': str}}.")
        if spec["dtype"] not in _DTYPES:
            raise FileFormatError(
                f"{where}: dtype must be one of {sorted(_DTYPES)}; got {spec['dtype']!r}."
            )
        out[name] = (_shape(spec["shape"], where), _DTYPES[spec["dtype"]][0])
    return out


def read_model_config(
    directory: str | os.PathLike[str], *, kind: str | tuple[str, ...] | None = None
) -> ModelFiles:
    """Read and check ``factorch_config.json`` of a model directory (no tensor is read).

    Args:
        directory: a directory written by :func:`save_model_files`.
        kind: the kind (or kinds) the caller can load; None accepts any.

    Returns:
        The parsed :class:`ModelFiles`.

    Raises:
        FileNotFoundError: no such directory, or a file of the pair is missing.
        FileFormatError: malformed JSON, a newer format version, an unexpected kind, a bad
            manifest.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     save_model_files(folder, kind="demo", config={"a": 1}, tensors={"w": torch.ones(2)})
        ...     files = read_model_config(folder, kind="demo")
        ...     tensors = read_model_tensors(files)
        >>> files.kind, files.tensors
        ('demo', {'w': ((2,), torch.float32)})
    """
    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"no such model directory: {str(path)!r}.")
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (path / name).is_file():
            raise FileNotFoundError(
                f"{str(path)!r} holds no {name}; it is not a directory written by "
                "save_pretrained (or it was only partly copied)."
            )
    top = _parse_json(path / CONFIG_NAME)
    if set(top) != {"factorch_model", "config", "tensors"}:
        raise FileFormatError(
            f"{CONFIG_NAME}: expected the keys factorch_model, config, tensors; got {sorted(top)}."
        )
    header = top["factorch_model"]
    if not isinstance(header, dict) or not isinstance(header.get("kind"), str):
        raise FileFormatError(f"{CONFIG_NAME}: 'factorch_model' must record the kind.")
    version = header.get("version")
    if version != MODEL_FORMAT_VERSION:
        raise FileFormatError(
            f"{CONFIG_NAME}: format version {version!r}; this factorch reads version "
            f"{MODEL_FORMAT_VERSION} (upgrade factorch to read newer files)."
        )
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds is not None and header["kind"] not in kinds:
        raise FileFormatError(
            f"{CONFIG_NAME}: the directory holds a {header['kind']!r} model; expected "
            f"{' or '.join(repr(k) for k in kinds)}."
        )
    if not isinstance(top["config"], dict):
        raise FileFormatError(f"{CONFIG_NAME}: 'config' must be an object.")
    return ModelFiles(
        directory=path,
        kind=header["kind"],
        config=top["config"],
        tensors=_manifest(top["tensors"]),
        factorch_version=str(header.get("factorch_version", "")),
    )


def read_model_tensors(
    files: ModelFiles, *, max_entries: int = DEFAULT_MAX_ENTRIES
) -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors``, after checking its header against the manifest.

    Args:
        files: from :func:`read_model_config`.
        max_entries: refuse files whose tensors hold more entries in total (a memory guard,
            checked before reading).

    Returns:
        name -> CPU tensor, exactly the manifest's names, shapes and dtypes.

    Raises:
        FileFormatError: not a safetensors file, damaged or truncated, tensors that differ from
            the manifest, more than ``max_entries`` entries.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     save_model_files(folder, kind="demo", config={"a": 1}, tensors={"w": torch.ones(2)})
        ...     files = read_model_config(folder, kind="demo")
        ...     tensors = read_model_tensors(files)
        >>> tensors
        {'w': tensor([1., 1.])}
    """
    from safetensors import safe_open

    fn = "read_model_tensors"
    max_entries = check_max_entries(max_entries, fn)
    path = files.directory / WEIGHTS_NAME
    header = _safetensors_entries(path)
    if header is None:
        raise FileFormatError(f"{WEIGHTS_NAME}: not a safetensors file (damaged or replaced).")
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    if set(entries) != set(files.tensors):
        missing = sorted(set(files.tensors) - set(entries))[:5]
        extra = sorted(set(entries) - set(files.tensors))[:5]
        raise FileFormatError(
            f"{WEIGHTS_NAME}: its tensors differ from the config's manifest (missing {missing}, "
            f"unexpected {extra}); the two files do not belong together."
        )
    total = 0
    for name, (shape, dtype) in files.tensors.items():
        entry = entries[name]
        got = _shape(entry.get("shape") if isinstance(entry, dict) else None, WEIGHTS_NAME)
        code = entry.get("dtype") if isinstance(entry, dict) else None
        if got != shape or code != _DTYPES[_NAME_OF[dtype]][1]:
            raise FileFormatError(
                f"{WEIGHTS_NAME}: tensor {name!r} is {code} {list(got)}; the config records "
                f"{_NAME_OF[dtype]} {list(shape)}."
            )
        total += shape_entries(shape)
    if total > max_entries:
        raise FileFormatError(
            f"{WEIGHTS_NAME}: {total:,} entries in total, more than max_entries={max_entries:,} "
            "(a memory guard); pass a larger max_entries if the model is genuine."
        )
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            out = {name: f.get_tensor(name) for name in files.tensors}
    except MemoryError:
        raise FileFormatError(f"{WEIGHTS_NAME}: not enough memory to load it.") from None
    except Exception as e:  # safetensors raises its own SafetensorError
        raise FileFormatError(f"{WEIGHTS_NAME}: cannot read the tensors ({e}).") from None
    for name, t in out.items():
        if t.is_floating_point() and bool(torch.isnan(t).any()):
            raise FileFormatError(f"{WEIGHTS_NAME}: tensor {name!r} holds NaN entries.")
    return out
