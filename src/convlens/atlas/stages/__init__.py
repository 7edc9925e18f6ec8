"""The stages of an atlas build, in order; each splits its work into resumable tasks.

A stage module exposes ``tasks(ctx) -> list[Task]``. A task writes its files (atomically) and
returns a manifest fragment; the build records it as finished only after it returns. A stage
whose analysis is not available, or that does not apply to the model (no snapshots), returns no
tasks, and the pages leave its part out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..context import BuildContext


@dataclass(frozen=True)
class Task:
    """One resumable piece of a stage (e.g. the renders of one layer)."""

    stage: str
    key: str  # unique in the build, e.g. "render/conv2d_1"
    label: str  # shown on the progress bar
    run: Callable[[BuildContext], dict[str, Any]]


STAGE_ORDER = (
    "overview",
    "kernels",
    "activations",
    "render",
    "examples",
    "classes",
    "evolution",
)


def stage_tasks(name: str, ctx: BuildContext) -> list[Task]:
    """The tasks of stage ``name`` for this build (imported lazily: stages pull in analyses)."""
    from importlib import import_module

    module = import_module(f"{__name__}.{name}")
    return list(module.tasks(ctx))


__all__ = ["STAGE_ORDER", "Task", "stage_tasks"]
