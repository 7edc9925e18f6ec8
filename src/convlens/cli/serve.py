"""``convlens serve``: the live web app (draw, and watch every layer respond).

The server code (Starlette, uvicorn, torch) is imported inside the command, so ``convlens
--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import ConvlensError
from .app import LOAD_OPTION_DECORATORS, LOAD_OPTIONS, cli

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _epochs(ckpts: tuple[Path, ...], epochs: tuple[int, ...]) -> list[tuple[Path, int | None]]:
    """Pair checkpoints with epochs: one checkpoint and two epochs compares the two epochs."""
    if len(ckpts) > 2:
        raise ConvlensError("give one or two models (CKPT [CKPT_B]) to show side by side")
    if len(epochs) > 2:
        raise ConvlensError("give --epoch at most twice (one per model)")
    if len(ckpts) == 1 and len(epochs) == 2:
        return [(ckpts[0], epochs[0]), (ckpts[0], epochs[1])]
    if len(epochs) == 2 and len(ckpts) == 2:
        return list(zip(ckpts, epochs, strict=True))
    one = epochs[0] if epochs else None
    return [(c, one) for c in ckpts]


@cli.command("serve")
@click.argument(
    "ckpts", metavar="CKPT [CKPT_B]", nargs=-1, required=True, type=click.Path(path_type=Path)
)
@click.option(
    "--atlas",
    "atlases",
    multiple=True,
    type=click.Path(path_type=Path),
    help="An atlas folder of the model (give it twice for two models): unit "
    "details come from it with no recomputation.",
)
@click.option(
    "--data",
    default=None,
    help="Dataset for validation images and examples. Default: the model's own.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="TCP port; 0 picks a free one.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on. Anything but loopback exposes the app (and your "
    "model) to the network, unauthenticated.",
)
@click.option("--no-browser", is_flag=True, help="Do not open a browser tab.")
@click.option(
    "--epoch",
    "epochs",
    type=click.IntRange(1),
    multiple=True,
    help="Use the weights kept after this epoch; twice with one CKPT shows the two "
    "epochs side by side (e.g. --epoch 1 --epoch 8).",
)
def serve_command(
    ckpts: tuple[Path, ...],
    atlases: tuple[Path, ...],
    data: str | None,
    port: int,
    host: str,
    no_browser: bool,
    epochs: tuple[int, ...],
    **load_options: Any,
) -> None:
    """Start the live web app on CKPT (and CKPT_B side by side): draw a digit, upload an image
    or pick a validation image, and see the prediction, every layer's activations and a
    heatmap update as you draw. Click a unit for its kernel, feature visualization and top
    real examples. Serves on 127.0.0.1 and a free port unless --host/--port say otherwise.

    \b
    Examples:
      convlens serve runs/kaggle4
      convlens serve runs/kaggle4 --atlas out/demo/atlas
      convlens serve runs/fcn runs/kaggle4              # two models, one drawing
      convlens serve runs/kaggle4 --epoch 1 --epoch 8   # an early epoch against the last
    """
    from ..models import load
    from ..server import serve

    pairs = _epochs(ckpts, epochs)
    if len(atlases) > len(pairs):
        raise ConvlensError(
            f"{len(atlases)} --atlas folders for {len(pairs)} model(s); give one per model"
        )
    options = {
        k: v for k, v in load_options.items() if k in LOAD_OPTIONS and v not in (None, False)
    }
    lenses = [load(path, epoch=epoch, **options) for path, epoch in pairs]
    if host not in LOOPBACK:
        click.echo(
            f"warning: serving on {host}: anyone who can reach this machine can use the app and "
            "run your model; nothing is authenticated",
            err=True,
        )
    serve(
        lenses,
        atlases=list(atlases),
        data=data,
        host=host,
        port=port,
        open_browser=not no_browser,
        echo=click.echo,
    )


for _option in LOAD_OPTION_DECORATORS:
    serve_command = _option(serve_command)
