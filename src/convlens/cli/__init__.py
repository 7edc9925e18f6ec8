"""The ``convlens`` command: thin wrappers that parse, call the API and print.

Errors a user can fix print one line on stderr and exit with status 2 (``--debug`` shows the
traceback). Each command group lives in its own module and registers itself on :data:`cli`.
"""

from __future__ import annotations

import sys

import click

from ..errors import ConvlensError
from .app import cli

# Command modules register themselves on import.
from . import foundation  # noqa: F401  isort: skip
from . import render  # noqa: F401  isort: skip
from . import examples  # noqa: F401  isort: skip
from . import explain  # noqa: F401  isort: skip
from . import convert  # noqa: F401  isort: skip
from . import atlas  # noqa: F401  isort: skip
from . import serve  # noqa: F401  isort: skip


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning ConvlensError into one line and exit status 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="convlens", standalone_mode=False)
    except ConvlensError as exc:
        if debug:
            raise
        click.echo(f"convlens: error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("convlens: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("convlens: interrupted", err=True)
        sys.exit(130)


__all__ = ["cli", "main"]
