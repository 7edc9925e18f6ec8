"""Finished chunks on disk, so a job killed on the driver resumes without redoing them.

A chunk is stored under a content key: the job (function, weights, settings) and the chunk's
own argument, hashed. A resumed job recomputes every chunk whose key has no file, and only
those. Files are written atomically and read with ``torch.load(weights_only=True)``: results
are encoded as plain tensors, lists and dicts (:func:`encode`), never pickled objects, so a
tampered file cannot run code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..fileio import atomic_path
from ..units import Unit

_TYPES: dict[str, type] = {}


def _types() -> dict[str, type]:
    """The result types a chunk may return (imported lazily: analyses import this package)."""
    if not _TYPES:
        from ..viz.examples import TopK
        from ..viz.render.result import RenderResult

        _TYPES.update({"TopK": TopK, "RenderResult": RenderResult, "Unit": Unit})
    return _TYPES


class ChunkStore:
    """A folder of finished chunks (``root/<key>.pt``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def key(self, job: str, fn: Callable[..., Any], arg: Any) -> str:
        text = f"{job}|{fn.__module__}.{fn.__qualname__}|{fingerprint(arg)}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def load(self, key: str) -> Any:
        return decode(torch.load(self.path(key), map_location="cpu", weights_only=True))

    def save(self, key: str, result: Any) -> None:
        try:
            plain = encode(result)
        except TypeError:
            return  # a result this store cannot encode safely: recomputed on resume, not lost
        with atomic_path(self.path(key)) as tmp:
            torch.save(plain, tmp)

    def __len__(self) -> int:
        return len(list(self.root.glob("*.pt"))) if self.root.is_dir() else 0

    def clear(self) -> None:
        if self.root.is_dir():
            shutil.rmtree(self.root)


def encode(obj: Any) -> Any:
    """``obj`` as tensors, numbers, strings, lists and dicts (tagged dicts for known types)."""
    if obj is None or isinstance(obj, bool | int | float | str | torch.Tensor):
        return obj
    if isinstance(obj, list | tuple):
        return {"__seq__": type(obj).__name__, "items": [encode(v) for v in obj]}
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError("only string keys are stored")
        return {"__dict__": {k: encode(v) for k, v in obj.items()}}
    name = type(obj).__name__
    if _types().get(name) is type(obj):
        if dataclasses.is_dataclass(obj):
            state = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        else:
            state = dict(vars(obj))
        return {"__type__": name, "state": {k: encode(v) for k, v in state.items()}}
    raise TypeError(f"cannot store {name}")


def decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__seq__" in obj:
            items = [decode(v) for v in obj["items"]]
            return tuple(items) if obj["__seq__"] == "tuple" else items
        if "__dict__" in obj:
            return {k: decode(v) for k, v in obj["__dict__"].items()}
        if "__type__" in obj:
            cls = _types()[obj["__type__"]]
            state = {k: decode(v) for k, v in obj["state"].items()}
            if dataclasses.is_dataclass(cls):
                return cls(**state)
            made = cls.__new__(cls)
            made.__dict__.update(state)
            return made
    return obj


def fingerprint(obj: Any) -> str:
    """A stable text identity of a chunk argument or a setting (tensors by their bytes)."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        digest = hashlib.sha256(t.numpy().tobytes()).hexdigest()[:16]
        return f"T{tuple(t.shape)}{t.dtype}{digest}"
    if isinstance(obj, list | tuple):
        return "[" + ",".join(fingerprint(v) for v in obj) + "]"
    if isinstance(obj, dict):
        return "{" + ",".join(f"{k!r}:{fingerprint(obj[k])}" for k in sorted(obj, key=str)) + "}"
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return type(obj).__name__ + fingerprint(fields)
    return repr(obj)
