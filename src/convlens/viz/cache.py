"""Derived results cached in a checkpoint folder (``RUN/cache/``): one naming, one best-effort
write, one read, for every analysis that caches (the dataset maxima, the image prior).

A cache file is named by what it holds, the data it came from and a key of everything it
depends on, so another snapshot, model or dataset never reads a stale file. Writing is atomic
and best effort: a read-only checkpoint folder means no cache, never a failure.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..fileio import atomic_path
from ..lens import Lens


def cache_file(lens: Lens, kind: str, dataset: str, key: str) -> Path | None:
    """``RUN/cache/{kind}_{dataset}_{key}.safetensors``, or None for a Lens without a folder."""
    if lens.path is None:
        return None
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset)[:40]
    return Path(lens.path) / "cache" / f"{kind}_{slug}_{key}.safetensors"


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> bool:
    """Write ``tensors`` with ``meta`` atomically; False (and nothing written) where the folder
    cannot be written."""
    try:
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
    except OSError:
        return False
    return True


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a cache file."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return load_file(str(path)), meta
