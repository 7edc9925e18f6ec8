"""Checkpoint folders: weights in safetensors (no pickle) plus a JSON config.

Layout::

    CKPT/config.json            architecture (zoo name + args), input spec, history, data split
    CKPT/model.safetensors      final weights
    CKPT/snapshots/epoch_003.safetensors   weights after each epoch (``--snapshots``)
    CKPT/cache/                 derived data other views cache (e.g. dataset maxima)
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import CheckpointError, ConvlensError
from ..fileio import write_atomic, write_json
from .graph import GRAPH_ARCH, build_graph
from .zoo import build_model

FORMAT = "convlens-checkpoint"
VERSION = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
SNAPSHOTS = "snapshots"


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Write a module's state dict as safetensors, atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return write_atomic(path, lambda tmp: save_file(state, str(tmp)))


def save_checkpoint(
    folder: str | Path,
    model: nn.Module,
    *,
    architecture: str,
    arch_args: dict[str, Any],
    input_spec: dict[str, Any],
    history: list[dict[str, float]] | None = None,
    data: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder (weights first, config last: a folder without a config is junk)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(model, folder / WEIGHTS)
    config = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": {"name": architecture, "args": arch_args},
        "input_spec": input_spec,
        "history": history or [],
        "data": data or {},
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    write_json(folder / CONFIG, config)
    return folder


def snapshot_path(folder: str | Path, epoch: int) -> Path:
    return Path(folder) / SNAPSHOTS / f"epoch_{epoch:03d}.safetensors"


def snapshot_epochs(folder: str | Path) -> list[int]:
    """The epochs for which per-epoch weights were kept, ascending."""
    snap = Path(folder) / SNAPSHOTS
    if not snap.is_dir():
        return []
    return sorted(int(p.stem.split("_")[1]) for p in snap.glob("epoch_*.safetensors"))


def read_config(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / CONFIG
    if not folder.exists():
        raise CheckpointError(
            f"no checkpoint at {folder}: train one with 'convlens train --out {folder}' "
            "or give a .keras, .h5 or .pt file"
        )
    if not path.is_file():
        raise CheckpointError(f"{folder} is not a convlens checkpoint (no {CONFIG} inside)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is corrupt ({exc.__class__.__name__}); retrain") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a convlens checkpoint config (format missing)")
    if int(config.get("version", 0)) > VERSION:
        raise CheckpointError(
            f"{path} was written by a newer convlens (version {config['version']})"
        )
    return config


def build_from_config(config: dict[str, Any]) -> nn.Module:
    arch = config["architecture"]
    try:
        if arch.get("name") == GRAPH_ARCH:  # a converted foreign model: the graph is in the config
            return build_graph(arch.get("args", {}).get("graph"))
        return build_model(arch["name"], **arch.get("args", {}))
    except ConvlensError:
        raise
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"cannot build architecture {arch.get('name')!r}: {exc}") from None


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load safetensors weights into ``model``; one-line errors for missing/corrupt/mismatched."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} is missing; the checkpoint is incomplete")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"weights file {path} is corrupt ({exc}); retrain or re-save"
        ) from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise CheckpointError(f"weights in {path} do not fit the architecture: {first}") from None
    return model


def load_checkpoint(folder: str | Path, *, epoch: int | None = None) -> tuple[nn.Module, dict]:
    """Model (eval mode, CPU) and config of a checkpoint folder; ``epoch`` picks a snapshot."""
    config = read_config(folder)
    model = build_from_config(config)
    weights = Path(folder) / WEIGHTS if epoch is None else snapshot_path(folder, epoch)
    if epoch is not None and not weights.is_file():
        kept = snapshot_epochs(folder) or "none (train with --snapshots)"
        raise CheckpointError(f"no snapshot for epoch {epoch} in {folder}; kept epochs: {kept}")
    load_weights(model, weights)
    model.eval()
    return model, config
