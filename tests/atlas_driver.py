"""Build a small atlas, optionally killing the process (SIGKILL) at a chosen moment.

``python atlas_driver.py CKPT OUT [KILL_AT] [WAIT_FILE]``; ``KILL_AT`` is one of

- ``task:N``   as the N-th task (1-based) starts, after N-1 finished and were recorded;
- ``write:N``  inside the N-th atomic file write, after its temp file is complete but before
  it takes its name (a temp file is left behind);
- ``page:N``   after the N-th page of a publish is written (pages and manifest disagree);
- ``manifest`` just before the manifest of the first publish after a stage is written;
- ``hold``     not killed: after the first task, wait until WAIT_FILE exists (holds the lock).

The test imports :data:`OPTIONS` and :data:`STAGES` so that its own builds are the same.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from convlens.atlas import AtlasOptions

OPTIONS = AtlasOptions.preset(
    quick=True,
    max_units=2,
    max_dense_units=2,
    samples_per_class=1,
    heatmap_methods=(),  # heatmaps have their own tests; here they would only add seconds
    sanity=False,
    render_steps=6,
    evolution_units=1,
    evolution_layers=1,
)
STAGES = None  # every stage


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(kill_at: str, wait_file: str | None) -> None:
    from convlens import fileio
    from convlens.atlas import build, html

    kind, _, number = kill_at.partition(":")
    count = {"n": 0}
    limit = int(number or 0)
    if kind == "task" or kind == "hold":
        real_task = build._run_task

        def run_task(ctx, state, task):  # type: ignore[no-untyped-def]
            count["n"] += 1
            if kind == "task" and count["n"] == limit:
                die()
            real_task(ctx, state, task)
            if kind == "hold" and count["n"] == 1:
                print("holding", flush=True)
                while not Path(str(wait_file)).exists():
                    time.sleep(0.05)

        build._run_task = run_task
    elif kind == "write":
        real_atomic = fileio.atomic_path

        @contextmanager
        def atomic_path(path):  # type: ignore[no-untyped-def]
            with real_atomic(path) as tmp:
                yield tmp
                count["n"] += 1
                if count["n"] == limit:
                    die()

        fileio.atomic_path = atomic_path
    elif kind == "page":
        real_write_text = html.write_text

        def write_text(path, text):  # type: ignore[no-untyped-def]
            result = real_write_text(path, text)
            if str(path).endswith(".html"):
                count["n"] += 1
                if count["n"] == limit:
                    die()
            return result

        html.write_text = write_text
    elif kind == "manifest":
        real_write_json = build.write_json

        def write_json(path, data):  # type: ignore[no-untyped-def]
            if Path(path).name == "manifest.json":
                count["n"] += 1
                if count["n"] == 2:  # the first publish after a stage
                    die()
            return real_write_json(path, data)

        build.write_json = write_json


def main(argv: list[str]) -> None:
    import convlens as cl
    from convlens.atlas import build_atlas

    ckpt, out = argv[0], argv[1]
    if len(argv) > 2:
        install(argv[2], argv[3] if len(argv) > 3 else None)
    build_atlas(cl.load(ckpt), out, options=OPTIONS, stages=STAGES, progress=False)


if __name__ == "__main__":
    main(sys.argv[1:])
