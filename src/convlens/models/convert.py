"""Converted models as checkpoint folders: a Keras model's graph and weights, no Keras needed."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, DataError
from .checkpoint import save_checkpoint
from .graph import GRAPH_ARCH
from .options import parse_options


def convert_keras(
    path: str | Path, out: str | Path, *, data: str | None = None, **options: Any
) -> Path:
    """Write the Keras model in ``path`` as a checkpoint folder ``out`` with a ``graph`` arch.

    ``options`` are the spec options of :func:`convlens.models.load` (``classes``,
    ``value_range`` ...), stored in the folder's input spec. ``data`` names the dataset the
    model reads (``mnist``, ``folder:DIR``...): it is checked against the model and recorded,
    so renders are verified and examples mined without ``--data`` later; without ``--classes``
    its class names are used. Nothing is written on failure.
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
    parsed = parse_options(options)
    model, graph, spec = convert_keras_file(path, kind, parsed)
    record: dict[str, Any] = {"converted_from": str(path)}
    if data is not None:
        spec = _check_data(data, spec, keep_classes=parsed.classes is not None)
        record.update({"name": data, "split_seed": 0})
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
        data=record,
    )


def _check_data(data: str, spec: Any, *, keep_classes: bool) -> Any:
    """The dataset must fit the model (channels, classes); its class names fill in unnamed ones."""
    from ..data import load_dataset

    if spec.height != spec.width:
        raise DataError(
            f"--data needs a square model input; this one is {spec.height}x{spec.width}"
        )
    dataset = load_dataset(data, size=spec.height)
    if dataset.channels != spec.channels:
        raise DataError(
            f"--data {data} has {dataset.channels}-channel images; the model takes "
            f"{spec.channels} channels"
        )
    names = tuple(dataset.class_names)
    if len(names) != len(spec.class_names):
        raise DataError(
            f"--data {data} has {len(names)} classes; the model has {len(spec.class_names)}"
        )
    return spec if keep_classes else dataclasses.replace(spec, class_names=names)
