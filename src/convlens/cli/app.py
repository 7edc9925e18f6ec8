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

    CKPT is the model to read: a checkpoint folder written by 'convlens train' or
    'convlens convert', a Keras .keras or legacy .h5 file, a TorchScript file, or a PyTorch
    state_dict with --arch (see 'convlens layers --help' for the loading options).
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

        options = {name: kwargs.pop(name) for name in LOAD_OPTIONS}
        options = {k: v for k, v in options.items() if v not in (None, False)}
        return func(lens=load(ckpt, epoch=epoch, **options), **kwargs)

    def carrier() -> None: ...

    for option in reversed(LOAD_OPTION_DECORATORS):
        carrier = option(carrier)
    carrier = click.option(
        "--epoch", type=click.IntRange(1), default=None,
        help="Use the weights kept after this epoch (checkpoints trained with --snapshots).",
    )(carrier)  # fmt: skip
    # click lists params in reverse order of __click_params__: putting the loading options at
    # its front shows the command's own options first and the loading options after them.
    params = wrapper.__dict__.setdefault("__click_params__", [])
    taken = {p.name for p in params} & {*LOAD_OPTIONS, "epoch", "ckpt"}
    if taken:
        raise TypeError(f"{func.__name__}: option names {sorted(taken)} are reserved for loading")
    params[:0] = carrier.__click_params__  # type: ignore[attr-defined]
    return click.argument("ckpt", metavar="CKPT", type=click.Path(path_type=Path))(wrapper)


# Options for model files that do not describe themselves fully (Keras, PyTorch, TorchScript).
LOAD_OPTION_DECORATORS = [
    click.option("--input-shape", "input_shape", metavar="CxHxW",
                 help="Model input size, e.g. 3x32x32 (PyTorch files; Keras files say it)."),
    click.option("--range", "value_range", metavar="LOW,HIGH",
                 help="Pixel value range the model takes, e.g. 0,1 (default) or 0,255."),
    click.option("--mean", metavar="M[,M,M]", help="Per-channel mean the model subtracts."),
    click.option("--std", metavar="S[,S,S]", help="Per-channel std the model divides by."),
    click.option("--classes", metavar="N|a,b,c", help="Number of classes, or their names."),
    click.option("--arch", metavar="module.path:ClassName",
                 help="Network to load a state_dict file into (or a zoo model name)."),
    click.option("--arch-args", "arch_args", metavar="JSON",
                 help="Keyword arguments for --arch, as a JSON object."),
    click.option("--trust-pickle", "trust_pickle", is_flag=True,
                 help="Allow whole pickled modules (unpickling can run code from the file)."),
    click.option("--trust-keras-code", "trust_keras_code", is_flag=True,
                 help="Allow Keras Lambda layers (their code runs when the model loads)."),
    click.option("--trust-torchscript", "trust_torchscript", is_flag=True,
                 help="Let a TorchScript file use torch operators beyond convlens's list of "
                      "tensor operations (it can still never call Python functions)."),
]  # fmt: skip
LOAD_OPTIONS = ("input_shape", "value_range", "mean", "std", "classes", "arch", "arch_args",
                "trust_pickle", "trust_keras_code", "trust_torchscript")  # fmt: skip


def input_options(func: Any) -> Any:
    """``--index N`` / ``--image FILE`` / ``--data NAME``: the one input a command looks at."""
    func = click.option(
        "--data",
        default=None,
        help="Dataset for --index. Default: the one the model was trained on.",
    )(func)
    func = click.option(
        "--image", "image_path", type=click.Path(path_type=Path),
        help="Any PNG/JPG; converted to the model's input (the conversion is reported).",
    )(func)  # fmt: skip
    return click.option(
        "--index", type=click.IntRange(0), help="Image of the validation split, by index."
    )(func)


def quiet_option(func: Any) -> Any:
    """``--quiet`` for long commands: no bars (nor, when not on a terminal, per-stage lines)."""
    return click.option("--quiet", is_flag=True, help="No progress bars or progress lines.")(func)


def echo_written(paths: list[Path]) -> None:
    for path in paths:
        click.echo(f"wrote {path}")
