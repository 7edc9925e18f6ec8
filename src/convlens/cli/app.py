"""The root click group and the options every command shares."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="convlens")
def cli(debug: bool) -> None:
    """convlens: see what a convolutional network has learned and why it decides as it does.

    \b
    Typical session:
      convlens train --model kaggle4 --data mnist --epochs 8 --out runs/kaggle4
      convlens layers runs/kaggle4
      convlens kernels runs/kaggle4 --layer conv2d_1 --out k.png
      convlens activations runs/kaggle4 --index 7 --out acts/

    CKPT is a checkpoint folder written by 'convlens train'.
    """
    del debug  # handled in main(); declared here so it shows in --help


def ckpt_argument(func: Any) -> Any:
    """The model path argument alone (for commands that handle loading themselves)."""
    return click.argument("ckpt", metavar="CKPT", type=click.Path(path_type=Path))(func)


def lens_argument(func: Any) -> Any:
    """Add CKPT and the model-loading options; the command receives a loaded ``lens``.

    Every inspection command takes its model this way, so each loading option (snapshots
    today, foreign model files later) is added once, here, and works everywhere.
    """

    @functools.wraps(func)
    def wrapper(ckpt: Path, epoch: int | None, **kwargs: Any) -> Any:
        from ..models import load

        return func(lens=load(ckpt, epoch=epoch), **kwargs)

    wrapper = click.option(
        "--epoch", type=click.IntRange(1), default=None,
        help="Use the weights kept after this epoch (checkpoints trained with --snapshots).",
    )(wrapper)  # fmt: skip
    return click.argument("ckpt", metavar="CKPT", type=click.Path(path_type=Path))(wrapper)


def echo_written(paths: list[Path]) -> None:
    for path in paths:
        click.echo(f"wrote {path}")
