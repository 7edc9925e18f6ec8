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

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import CheckpointError, ConvlensError, UnknownNameError
from ..fileio import write_atomic, write_json
from ..lens import InputSpec
from .graph import GRAPH_ARCH, build_graph
from .schema import FORMAT, MAX_PARAMETERS, VERSION, validate_config
from .zoo import build_model

MAX_CONFIG_BYTES = 64 << 20
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
    """The folder's config, checked against the schema (:mod:`convlens.models.schema`)."""
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
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise CheckpointError(f"{path} is larger than {MAX_CONFIG_BYTES >> 20} MB; it is not "
                                  "a convlens checkpoint config")  # fmt: skip
        text = path.read_text(encoding="utf-8")
        config = json.loads(text)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path} is corrupt ({exc.__class__.__name__}); retrain") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a convlens checkpoint config (format missing)")
    version = config.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
        raise CheckpointError(f"{path} was written by a newer convlens (version {version})")
    validate_config(text, str(path))
    return config


def build_from_config(
    config: dict[str, Any], weights: Path | None = None, where: str = "the config"
) -> nn.Module:
    """The architecture of a (validated) config with fresh weights.

    Built first on the meta device (no memory): too many parameters, or shapes that differ from
    the tensors in ``weights`` (read from the file's header), are refused before anything large
    is allocated.
    """
    with torch.device("meta"):
        shell = _build(config)
    count = sum(p.numel() for p in shell.parameters())
    if count > MAX_PARAMETERS:
        raise CheckpointError(
            f"the architecture in {where} has {count:,} parameters, more than convlens "
            f"builds ({MAX_PARAMETERS:,}); the config is corrupt"
        )
    if weights is not None:
        _check_shapes(shell, weights)
    return _build(config)


def _build(config: dict[str, Any]) -> nn.Module:
    arch = config["architecture"]
    try:
        if arch.get("name") == GRAPH_ARCH:  # a converted foreign model: the graph is in the config
            return build_graph(arch.get("args", {}).get("graph"))
        return build_model(arch["name"], **arch.get("args", {}))
    except UnknownNameError as exc:
        raise CheckpointError(f"the config names an unknown architecture: {exc}") from None
    except ConvlensError:
        raise
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"cannot build architecture {arch.get('name')!r}: {exc}") from None


def _check_shapes(model: nn.Module, path: Path) -> None:
    """Compare the model's tensors with those in the safetensors header (no data is read)."""
    if not path.is_file():
        raise CheckpointError(f"weights file {path} is missing; the checkpoint is incomplete")
    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"weights file {path} is corrupt ({_first_line(exc)}); retrain or re-save"
        ) from None
    wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for key, shape in wanted.items():
        if key not in shapes:
            raise CheckpointError(
                f"weights in {path} do not fit the architecture: {key} is missing; the config "
                "and the weights are of different models"
            )
        if shapes[key] != shape:
            raise CheckpointError(
                f"weights in {path} do not fit the architecture: {key} is "
                f"{'x'.join(map(str, shapes[key]))} in the file but the config builds "
                f"{'x'.join(map(str, shape))}; the config and the weights are of different models"
            )
    extra = sorted(set(shapes) - set(wanted))
    if extra:
        raise CheckpointError(f"weights in {path} do not fit the architecture: unexpected "
                              f"tensor {extra[0]}")  # fmt: skip


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load safetensors weights into ``model``; one-line errors for missing, corrupt, mismatched
    or non-finite (NaN, infinite) weights."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} is missing; the checkpoint is incomplete")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"weights file {path} is corrupt ({_first_line(exc)}); retrain or re-save"
        ) from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"weights file {path} holds NaN or infinite values (in {name}): the training "
                "that wrote it diverged; retrain (with a smaller --lr)"
            )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise CheckpointError(f"weights in {path} do not fit the architecture: {first}") from None
    return model


def probe_forward(model: nn.Module, spec: InputSpec, where: str) -> None:
    """One forward pass on a blank input: the input spec must fit the model, and the model must
    give one score per class name."""
    try:
        with torch.no_grad():
            out = model(spec.normalize(torch.zeros(1, *spec.shape)))
    except ConvlensError:
        raise
    except Exception as exc:  # any failure here means the spec does not fit the weights
        raise CheckpointError(
            f"the input spec in {where} ({'x'.join(map(str, spec.shape))}) does not fit the "
            f"model: {_first_line(exc)[:160]}; fix input_spec or retrain"
        ) from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CheckpointError(f"the model in {where} returns {shape}, not class scores")
    if out.shape[1] != len(spec.class_names):
        raise CheckpointError(
            f"{where} names {len(spec.class_names)} classes but the model has {out.shape[1]} "
            "outputs; fix input_spec.class_names or retrain"
        )


def load_checkpoint(folder: str | Path, *, epoch: int | None = None) -> tuple[nn.Module, dict]:
    """Model (eval mode, CPU) and config of a checkpoint folder; ``epoch`` picks a snapshot.

    Everything read is checked: the config against its schema, the weights' shapes against the
    architecture (before allocating it), the weights for NaN, and the input spec against the
    model by one probe forward.
    """
    config = read_config(folder)
    weights = Path(folder) / WEIGHTS if epoch is None else snapshot_path(folder, epoch)
    if epoch is not None and not weights.is_file():
        kept = snapshot_epochs(folder) or "none (train with --snapshots)"
        raise CheckpointError(f"no snapshot for epoch {epoch} in {folder}; kept epochs: {kept}")
    model = build_from_config(config, weights, str(Path(folder) / CONFIG))
    load_weights(model, weights)
    model.eval()
    probe_forward(model, InputSpec.from_dict(config["input_spec"]), str(Path(folder) / CONFIG))
    return model, config


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
