"""The root click group, the options every command shares, and the types that check input.

Commands live one group per module (``cli/foundation.py``, ``cli/render.py``, ...) and are
imported only when run: :data:`COMMANDS` in ``cli/__init__.py`` names each command's module
and its one-line help, so ``convlens --help`` and ``--version`` answer without importing torch.
"""

from __future__ import annotations

import functools
import importlib
import math
from pathlib import Path
from typing import Any, Literal

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
MAX_SEED = 2**32 - 1


class RunState:
    """What main() needs to know after the command ran (set while parsing)."""

    debug = False


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        RunState.debug = True


def debug_option(hidden: bool) -> click.Option:
    """``--debug``, accepted before or after the command name (a value that happens to read
    ``--debug``, as in ``--out --debug``, is that option's value, as click parses it)."""
    return click.Option(["--debug"], is_flag=True, expose_value=False, is_eager=True,
                        hidden=hidden, callback=_set_debug,
                        help="Show full tracebacks instead of one-line errors.")  # fmt: skip


class ConvlensGroup(click.Group):
    """The root group: commands are imported on first use, and every command takes --debug."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, tuple[str, str]] = {}  # command -> (module in cli/, short help)

    def add_lazy(self, table: dict[str, tuple[str, str]]) -> None:
        self.lazy.update(table)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not any(p.name == "debug" for p in cmd.params):
            cmd.params.append(debug_option(hidden=True))
        super().add_command(cmd, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            importlib.import_module(f"{__package__}.{self.lazy[cmd_name][0]}")
        return self.commands.get(cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if args and not name.startswith("-") and self.get_command(ctx, name) is None:
            from ..errors import did_you_mean

            ctx.fail(did_you_mean(name, self.list_commands(ctx), "command").rstrip("."))
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of --help, from the table (no command module is imported)."""
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.commands.get(name)
            if cmd is not None and cmd.hidden:
                continue
            limit = formatter.width - 6 - max(len(n) for n in self.list_commands(ctx))
            rows.append((name, cmd.get_short_help_str(limit) if cmd else self.lazy[name][1]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=ConvlensGroup, context_settings=CONTEXT, params=[debug_option(hidden=False)])
@click.version_option(package_name="convlens")
def cli() -> None:
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


# --- types that check what the user typed ----------------------------------------------------


class InputPath(click.Path):
    """A path to read; an empty string is refused (it would silently mean the current folder)."""

    def __init__(self) -> None:
        super().__init__(path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not str(value).strip():
            self.fail("the path is empty", param, ctx)
        return super().convert(value, param, ctx)


class OutputPath(click.ParamType):
    """Where a command writes, checked before any work starts (see :func:`fileio.check_output`).

    ``kind``: ``"dir"`` (a folder to write into), ``"file"``, or ``"auto"`` (a file when the
    name ends in one of ``file_suffixes``, else a folder).
    """

    name = "path"

    def __init__(self, kind: Literal["dir", "file", "auto"] = "dir",
                 file_suffixes: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.kind, self.file_suffixes = kind, file_suffixes

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..fileio import check_output

        if not str(value).strip():
            self.fail("the path is empty; give a file or folder name", param, ctx)
        path = Path(value)
        as_file = self.kind == "file" or path.suffix.lower() in self.file_suffixes
        return check_output(path, kind="file" if as_file and self.kind != "dir" else "dir")


class FiniteFloat(click.FloatRange):
    """A float within bounds that is a real number (``nan`` and ``inf`` are refused)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def count(high: int, low: int = 1) -> click.IntRange:
    """An integer count with both bounds (so a typo cannot ask for 10^12 of something)."""
    return click.IntRange(low, high)


SEED = click.IntRange(0, MAX_SEED)  # what numpy, torch and Python's random all accept


def ckpt_argument(func: Any) -> Any:
    """The model path argument alone (for commands that handle loading themselves)."""
    return click.argument("ckpt", metavar="CKPT", type=InputPath())(func)


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
        "--epoch", type=count(1_000_000), default=None,
        help="Use the weights kept after this epoch (checkpoints trained with --snapshots).",
    )(carrier)  # fmt: skip
    # click lists params in reverse order of __click_params__: putting the loading options at
    # its front shows the command's own options first and the loading options after them.
    params = wrapper.__dict__.setdefault("__click_params__", [])
    taken = {p.name for p in params} & {*LOAD_OPTIONS, "epoch", "ckpt"}
    if taken:
        raise TypeError(f"{func.__name__}: option names {sorted(taken)} are reserved for loading")
    params[:0] = carrier.__click_params__  # type: ignore[attr-defined]
    return click.argument("ckpt", metavar="CKPT", type=InputPath())(wrapper)


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
        "--image", "image_path", type=InputPath(),
        help="Any PNG/JPG; converted to the model's input (the conversion is reported).",
    )(func)  # fmt: skip
    return click.option(
        "--index", type=count(10**9, 0), help="Image of the validation split, by index."
    )(func)


def quiet_option(func: Any) -> Any:
    """``--quiet`` for long commands: no bars (nor, when not on a terminal, per-stage lines)."""
    return click.option("--quiet", is_flag=True, help="No progress bars or progress lines.")(func)


def echo_written(paths: list[Path]) -> None:
    for path in paths:
        click.echo(f"wrote {path}")
