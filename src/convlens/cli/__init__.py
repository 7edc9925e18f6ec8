"""The ``convlens`` command: thin wrappers that parse, call the API and print.

Errors a user can fix print one line on stderr and exit with status 2 (``--debug``, before or
after the command name, shows the traceback): bad input (:class:`ConvlensError`), usage errors
(an unknown option, a missing argument, a value out of range: one line with the ``--help`` hint)
and file-system errors. Python warnings raised while a command runs are shown after its output,
as one line each, and not at all when it fails (the error line is the message).

Each command group lives in its own module and registers itself on :data:`cli` when imported.
:data:`COMMANDS` names every command's module and its one-line summary, so ``convlens --help``
lists them without importing any (and so without importing torch). To add a command: write it
in a module here with ``@cli.command("name")`` and add its line to :data:`COMMANDS`.
"""

from __future__ import annotations

import os
import sys
import warnings

import click

from ..errors import ConvlensError
from .app import RunState, cli

# command -> (module in convlens.cli, summary for 'convlens --help')
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("foundation", "Train a zoo model and write a checkpoint folder."),
    "compare": ("foundation", "Train several models on one split, print their accuracy."),
    "models": ("foundation", "List the architectures of the zoo."),
    "datasets": ("foundation", "List the datasets convlens can read."),
    "layers": ("foundation", "Print the layer table, with receptive fields."),
    "kernels": ("foundation", "Draw the learned kernels of conv layers."),
    "activations": ("foundation", "Draw every conv layer's feature maps for one input."),
    "render": ("render", "Show what units want to see (feature visualization)."),
    "prototypes": ("render", 'Render "the perfect digit" of each class, verified.'),
    "examples": ("examples", "Find the real images that excite each unit most."),
    "explain": ("explain", "Heatmaps of why the model decides on one image."),
    "sanity": ("explain", "Model-randomization sanity check of heatmap methods."),
    "convert": ("convert", "Convert a Keras model into a checkpoint folder."),
    "atlas": ("atlas", "Build the atlas of a model: an HTML report."),
    "serve": ("serve", "The live web app: draw a digit and watch every layer respond."),
}
cli.add_lazy(COMMANDS)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI; every error a user can cause is one line and exit status 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    RunState.debug = False
    with warnings.catch_warnings(record=True) as caught:
        code = _run(args)
    if code == 0:
        for warning in caught:
            text = " ".join(str(warning.message).split())
            click.echo(f"convlens: warning: {text}", err=True)
    code = _flush_stdout(code)
    if code:
        sys.exit(code)


def _run(args: list[str]) -> int:
    """Run the command; the exit status (errors are printed here, as one line)."""
    try:
        result = cli.main(args=args, prog_name="convlens", standalone_mode=False)
    except ConvlensError as exc:
        if RunState.debug:
            raise
        return _error(str(exc))
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("convlens: interrupted", err=True)
        return 130
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help())
        return 0
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "convlens"
        text = exc.format_message().strip().rstrip(".")
        text = text[:1].lower() + text[1:] if text[1:2].islower() else text
        return _error(f"{text}; see '{where} --help'")
    except click.ClickException as exc:
        return _error(exc.format_message())
    except BrokenPipeError:
        return _stdout_gone()
    except OSError as exc:
        if RunState.debug:
            raise
        return _error(_os_error(exc))
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def _error(message: str) -> int:
    click.echo(f"convlens: error: {' '.join(message.split())}", err=True)
    return 2


def _os_error(exc: OSError) -> str:
    """An OS error no convlens check turned into a message: say which file, or stdout."""
    reason = (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
    if exc.filename is not None:
        return f"{exc.filename}: {reason}"
    if _from_stdout(exc):
        return f"cannot write to standard output: {reason}"
    return reason


def _from_stdout(exc: BaseException) -> bool:
    """Whether the error came from printing (a frame writing to stdout, e.g. ``click.echo``)."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_locals.get("file") in (sys.stdout, sys.__stdout__):
            return True
        tb = tb.tb_next
    return False


def _flush_stdout(code: int) -> int:
    """Flush what the command printed; a full device or a closed pipe is one line, not a
    traceback at interpreter exit."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return _stdout_gone()
    except OSError as exc:
        reason = (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
        code = _error(f"cannot write to standard output: {reason}")
        _discard_stdout()
        return code
    return code


def _stdout_gone() -> int:
    """The reader of our output went away (``convlens models | head -1``): stop quietly."""
    _discard_stdout()
    return 1


def _discard_stdout() -> None:
    """Point stdout at /dev/null so Python's final flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. captured)
        pass


__all__ = ["COMMANDS", "cli", "main"]
