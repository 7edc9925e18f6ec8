"""``convlens convert``: a Keras model file -> a checkpoint folder (no Keras needed later)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..models.convert import convert_keras
from .app import LOAD_OPTION_DECORATORS, LOAD_OPTIONS, InputPath, OutputPath, cli, echo_written

SPEC_OPTIONS = ("input_shape", "value_range", "mean", "std", "classes", "trust_keras_code")


def spec_options(func: Any) -> Any:
    """The loading options that apply to Keras files: the input spec, and the Lambda opt-in."""
    for name, option in reversed(list(zip(LOAD_OPTIONS, LOAD_OPTION_DECORATORS, strict=True))):
        if name in SPEC_OPTIONS:
            func = option(func)
    return func


@cli.command("convert")
@click.argument("model", metavar="MODEL", type=InputPath())
@spec_options
@click.option(
    "--data",
    default=None,
    help="Dataset the model reads (e.g. mnist, folder:DIR): checked and recorded, so later "
    "commands verify renders and mine examples without --data.",
)
@click.option(
    "--out",
    type=OutputPath("dir"),
    required=True,
    help="Checkpoint folder to write (must not exist or be empty).",
)
def convert_command(model: Path, data: str | None, out: Path, **options: Any) -> None:
    """Convert a Keras model (.keras or Keras 2 .h5) into a convlens checkpoint folder.

    The folder holds the layer graph in config.json and the weights in model.safetensors, so
    it loads without Keras and gives the same activations. Input options (--classes, --range,
    ...) are stored in its input spec, and --data is recorded as the model's dataset.
    """  # fmt: skip
    folder = convert_keras(model, out, data=data, **options)
    click.echo(f"converted {model} to {folder}")
    echo_written([folder / "config.json", folder / "model.safetensors"])
