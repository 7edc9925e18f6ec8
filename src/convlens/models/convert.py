"""Converted models as checkpoint folders: a Keras model's graph and weights, no Keras needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from .checkpoint import save_checkpoint
from .graph import GRAPH_ARCH
from .options import parse_options


def convert_keras(path: str | Path, out: str | Path, **options: Any) -> Path:
    """Write the Keras model in ``path`` as a checkpoint folder ``out`` with a ``graph`` arch.

    ``options`` are the spec options of :func:`convlens.models.load` (``classes``,
    ``value_range`` ...), stored in the folder's input spec. Nothing is written on failure.
    """
    from .keras_bridge import convert_keras_file
    from .loader import detect_kind

    path, out = Path(path), Path(out)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; check the path")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; convert reads a .keras or .h5 file")
    kind = detect_kind(path)
    if kind not in ("keras", "h5"):
        raise CheckpointError(f"{path} is not a Keras model; convert reads .keras and .h5 files")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointError(f"{out} already exists and is not empty; choose another --out")
    model, graph, spec = convert_keras_file(path, kind, parse_options(options))
    if model.live:
        raise CheckpointError(
            f"{path} has Lambda layers ({', '.join(sorted(model.live))}) whose code cannot be "
            "stored in a checkpoint; keep using the Keras file"
        )
    return save_checkpoint(
        out,
        model,
        architecture=GRAPH_ARCH,
        arch_args={"graph": graph},
        input_spec=spec.to_dict(),
        data={"converted_from": str(path)},
    )
