"""``--ray``: the option that moves a command's chunks onto Ray (shared by atlas, examples,
render). Without it, chunks run in this process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import click

from ..distributed import Executor, check_spec, executor_from_spec
from ..distributed.executor import import_ray


def _check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Validate before the model loads: a bad address or a missing Ray fails in one line."""
    if value is None:
        return None
    spec = check_spec(value)
    import_ray()
    return spec


def ray_option(func: Any) -> Any:
    return click.option(
        "--ray",
        "ray_spec",
        metavar="auto|ray://HOST:PORT|local:N",
        default=None,
        callback=_check,
        expose_value=True,
        help="Run the work on Ray: 'auto' (the running cluster), 'ray://HOST:PORT' (Ray Client) "
        "or 'local:N' (start a local Ray with N workers). Same results as without it. Needs "
        "pip install 'convlens[ray]'.",
    )(func)


@contextlib.contextmanager
def executor_for(spec: str | None, *, threads: int | None = 1) -> Iterator[Executor]:
    """The executor of ``--ray`` (in-process without it), shut down when the command ends."""
    executor = executor_from_spec(spec, threads=threads)
    try:
        yield executor
    finally:
        executor.close()
