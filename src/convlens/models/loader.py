"""One entry point from a path to a Lens, whatever kind of model file it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..lens import InputSpec, Lens
from .checkpoint import CONFIG, load_checkpoint


def load(path: str | Path, *, epoch: int | None = None, **options: Any) -> Lens:
    """Open a model as a Lens: a convlens checkpoint folder (``epoch`` picks a snapshot)."""
    path = Path(path)
    if path.is_dir() or not path.exists() or (path / CONFIG).exists():
        if options:
            raise CheckpointError(
                f"options {sorted(options)} do not apply to a convlens checkpoint folder"
            )
        return load_checkpoint_lens(path, epoch=epoch)
    raise CheckpointError(
        f"cannot open {path}: expected a convlens checkpoint folder (with {CONFIG})"
    )


def load_checkpoint_lens(folder: Path, *, epoch: int | None = None) -> Lens:
    model, config = load_checkpoint(folder, epoch=epoch)
    spec = InputSpec.from_dict(config["input_spec"])
    source = {"kind": "checkpoint", "config": config, "epoch": epoch}
    return Lens.from_module(model, spec, source=source, path=folder)
