"""Build an atlas folder: run the stages, record each finished task, publish manifest and pages.

Order of writes for every task: its pictures (atomic), then the state file (atomic). After each
stage (and when interrupted) the manifest and the pages are rebuilt from the finished tasks, the
manifest last. So at any instant the folder is consistent: the manifest lists only finished,
fully written pictures, and ``resume=True`` recomputes only unfinished tasks.

Everything that can be refused is refused before the first file is written: the options, the
stages, the dataset, and the folder (see :mod:`convlens.atlas.state`: someone else's files, an
atlas of other options, a corrupt state with ``resume``, another build holding the lock).
Every file written under the folder is claimed in the state first, so a later build removes
exactly the files of this one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..data import Dataset
from ..distributed import ChunkStore, Executor, InProcess
from ..errors import UnknownNameError, did_you_mean
from ..fileio import check_output, watch_writes, write_json
from ..lens import Lens
from ..progress import bar as progress_bar
from ..units import UNIT_LAYER_KINDS
from .context import BuildContext
from .manifest import MANIFEST, SCHEMA, VERSION, assemble
from .options import AtlasOptions
from .stages import STAGE_ORDER, Task, stage_tasks
from .state import (
    CHUNKS,
    AtlasState,
    check_folder,
    check_lock,
    hold_lock,
    now,
    weights_digest,
)


def build_atlas(
    lens: Lens,
    out: str | Path,
    *,
    data: str | Dataset | None = None,
    quick: bool = False,
    resume: bool = False,
    stages: Sequence[str] | None = None,
    progress: bool = True,
    options: AtlasOptions | None = None,
    threads: int | None = 1,
    executor: Executor | None = None,
    force: bool = False,
) -> Path:
    """Write the atlas of ``lens`` to folder ``out``; return the path of its ``index.html``.

    ``data``: dataset name (``"mnist"``) or a Dataset for examples and statistics (default: the
    one the checkpoint was trained on). ``quick``: the small preset (see :class:`AtlasOptions`);
    ``options`` overrides it entirely. ``resume``: keep the finished tasks of an earlier build
    with the same weights, data and options. ``stages``: run only these (others stay as they
    are when resuming, absent otherwise). ``progress``: one overall bar plus a bar per stage.
    ``threads``: torch intra-op threads during the build (restored after). The atlas runs many
    small batches, which are fastest on one thread, and on a busy machine two spinning OpenMP
    threads made renders 10-40x slower; ``None`` keeps torch's setting. ``executor``: where
    the render chunks and mining shards run (default in this process; a
    :class:`~convlens.distributed.RayExecutor` gives the same atlas). Finished chunks are kept
    in ``out/.chunks`` until their task is recorded, so a resumed build skips them too.
    ``force``: build into a folder that also holds other files (they are kept), or replace an
    atlas built with other options or data.
    """
    with _torch_threads(threads):
        return _build(
            lens, Path(out), data, quick, resume, stages, progress, options, executor, force
        )


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _build(
    lens: Lens,
    out: Path,
    data: str | Dataset | None,
    quick: bool,
    resume: bool,
    stages: Sequence[str] | None,
    progress: bool,
    options: AtlasOptions | None,
    executor: Executor | None,
    force: bool,
) -> Path:
    opts = options or AtlasOptions.preset(quick)
    selected = _select_stages(stages)
    check_output(out, kind="dir")
    chunks = ChunkStore(out / CHUNKS)
    ctx = BuildContext(
        lens=lens,
        out=out,
        options=opts,
        data_spec=data if isinstance(data, str) else None,
        dataset_override=data if isinstance(data, Dataset) else None,
        progress=progress,
        executor=(executor or InProcess(threads=None)).with_store(
            chunks, progress=progress, position=2
        ),  # in-process chunks run on the build's own thread setting
    )
    data_key = data.name if isinstance(data, Dataset) else data
    plan = {name: stage_tasks(name, ctx) for name in selected}  # checks layers and options
    fingerprint = {
        "weights": weights_digest(lens),
        "data": data_key,
        "options": opts.to_dict(),
    }
    check_lock(out)  # another build first: its folder is in flux
    check_folder(out, fingerprint, resume=resume, force=force)  # refusals write nothing
    if not resume:
        _ = ctx.dataset  # a bad --data is refused before the folder is touched
    with hold_lock(out):
        state = AtlasState.open(out, fingerprint, resume=resume, force=force)
        try:
            with watch_writes(out, state.claim):
                _run(ctx, state, plan, selected, progress)
        finally:
            state.close()
    return out / "index.html"


def _run(
    ctx: BuildContext,
    state: AtlasState,
    plan: dict[str, list[Task]],
    selected: list[str],
    progress: bool,
) -> None:
    order = [t.key for name in STAGE_ORDER for t in plan.get(name, [])]
    publish = _Publisher(ctx, state, order, plan, selected)
    publish()  # a consistent folder from the first second (pages of what is already done)
    total = sum(len(ts) for ts in plan.values())
    finished = sum(state.done(t.key) for ts in plan.values() for t in ts)
    overall = progress_bar(total, initial=finished, desc="atlas", unit="task", position=0,
                           progress=progress, leave=True)  # fmt: skip
    dirty = False
    try:
        for name in selected:
            pending = [t for t in plan[name] if not state.done(t.key)]
            if not pending:
                continue
            ctx.bar = progress_bar(len(pending), desc=f"  {name}", unit="task", position=1,
                                   progress=progress)  # fmt: skip
            try:
                for task in pending:
                    overall.set_postfix_str(task.label, refresh=True)
                    _run_task(ctx, state, task)
                    dirty = True
                    overall.update(1)
            finally:
                ctx.bar.close()
                ctx.bar = None
            publish()
            dirty = False
        if ctx.executor is not None and ctx.executor.store is not None:
            ctx.executor.store.clear()  # every task is recorded: its chunks are no longer needed
            state.forget(CHUNKS)
    finally:
        overall.close()
        if dirty:  # interrupted mid-stage: show what finished
            publish()


def _run_task(ctx: BuildContext, state: AtlasState, task: Task) -> None:
    start = time.perf_counter()
    fragment = task.run(ctx)
    state.record(task.key, fragment, time.perf_counter() - start)
    ctx.tick()


def _select_stages(stages: Sequence[str] | None) -> list[str]:
    if stages is None:
        return list(STAGE_ORDER)
    chosen = []
    for name in stages:
        if name not in STAGE_ORDER:
            raise UnknownNameError(did_you_mean(name, list(STAGE_ORDER), "atlas stage"))
        chosen.append(name)
    return [s for s in STAGE_ORDER if s in chosen]


def _header(
    ctx: BuildContext, selected: list[str], plan: dict[str, list[Task]], state: AtlasState
) -> dict[str, Any]:
    lens = ctx.lens
    config = lens.source.get("config", {}) if lens.source else {}
    statuses = {}
    for name in STAGE_ORDER:
        tasks = plan.get(name)
        if tasks is None:
            kept = any(k.startswith(name + "/") for k in state.tasks)
            statuses[name] = "done" if kept else "skipped"
        elif not tasks:
            statuses[name] = "not applicable"
        else:
            done = sum(state.done(t.key) for t in tasks)
            statuses[name] = "done" if done == len(tasks) else "partial" if done else "pending"
    complete = all(statuses[n] in ("done", "not applicable") for n in selected)
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "generator": f"convlens {__version__}",
        "created": now(),
        "complete": complete,
        "stages": statuses,
        "options": ctx.options.to_dict(),
        "model": {
            "name": lens.name,
            "checkpoint": str(Path(lens.path).resolve()) if lens.path else None,
            "epoch": lens.source.get("epoch") if lens.source else None,
            "input": lens.spec.to_dict(),
            "class_names": list(lens.class_names),
            "parameters": sum(p.numel() for p in lens.model.parameters()),
            "logits_layer": lens.logits_layer,
            "logits_source": lens.logits_source,
            "history": config.get("history", []),
            "data": config.get("data", {}),
        },
    }


def _layer_rows(ctx: BuildContext) -> list[dict[str, Any]]:
    rows = []
    pages = set(ctx.unit_layers)
    for info in ctx.lens.layers:
        row = info.to_dict()
        row["page"] = f"layer-{info.name}.html" if info.name in pages else None
        row["units_total"] = info.channels if info.kind in UNIT_LAYER_KINDS else None
        row["kernels_figure"] = None
        rows.append(row)
    return rows


class _Publisher:
    """Rebuild manifest.json and the pages from the finished tasks (manifest written last)."""

    def __init__(
        self,
        ctx: BuildContext,
        state: AtlasState,
        order: list[str],
        plan: dict[str, list[Task]],
        selected: list[str],
    ) -> None:
        self.ctx, self.state, self.order, self.plan, self.selected = (
            ctx,
            state,
            order,
            plan,
            selected,
        )

    def __call__(self) -> dict[str, Any]:
        from .html import write_pages

        header = _header(self.ctx, self.selected, self.plan, self.state)
        manifest = assemble(header, _layer_rows(self.ctx), self.state.fragments(self.order))
        pages = write_pages(self.ctx.out, manifest)
        manifest["pages"] = pages
        write_json(self.ctx.out / MANIFEST, manifest)
        return manifest
