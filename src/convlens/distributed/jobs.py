"""The two jobs that scale out: rendering (a map over unit chunks) and mining (a map over
dataset shards, merged with the mergeable top-k). Each wraps the public analysis per chunk.

Chunks are formed here, from the request alone, never from the number of workers where that
could change a result: renders run in fixed chunks of ``chunk_units`` targets (a chunk's batch
composition decides its floats), and mining shards are whole multiples of the mining batch, so
every batch is the one a single pass would form. The in-process executor runs the very same
chunks, so its result is the reference every cluster reproduces bit for bit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import torch

from ..data import Dataset
from ..data.source import SourceSpec, open_source, source_of
from ..errors import DataError, UnitError
from ..lens import Lens
from ..units import Unit, resolve_units
from ..viz.examples import TopK, mine
from .store import fingerprint

if TYPE_CHECKING:
    from ..viz.render.result import RenderResult
    from .executor import Executor

RENDER_CHUNK_UNITS = 64
"""Targets per render chunk: large enough to fill a CPU batch (32) twice, small enough to
spread 20,000 units over hundreds of workers. Part of the result: keep it fixed."""
MAX_SHARD_BATCHES = 64


def lens_key(lens: Lens) -> str:
    """Identity of the weights and input spec a job reads (for the chunk store)."""
    from ..viz.maxima import _weights_digest

    return f"{_weights_digest(lens)[:16]}|{lens.spec!r}"


# --- render: a map over unit chunks ----------------------------------------------------------
def render(
    executor: Executor,
    lens: Lens,
    units: Any,
    *,
    chunk_units: int | None = None,
    data: Any = None,
    progress: bool = False,
    **options: Any,
) -> RenderResult:
    """:func:`convlens.viz.render.render` of ``units`` in chunks of ``chunk_units`` targets on
    ``executor``; rows in request order, as one :class:`RenderResult`.

    The verification bar (dataset maxima) and the image prior are made once here and handed
    to every chunk, so workers never load the dataset.
    """
    from ..viz.render.api import image_prior_for
    from ..viz.render.objectives import Objective
    from ..viz.render.presets import DEFAULT_PRESET

    start = time.perf_counter()
    size = chunk_units or RENDER_CHUNK_UNITS
    if size < 1:
        raise UnitError(f"chunk_units must be at least 1, got {size}")
    given = [units] if isinstance(units, str | Unit | Objective) else list(units)
    targets: list[Any] = []
    for t in given:
        targets.extend(resolve_units(lens, t) if isinstance(t, str) else [t])
    if not targets:
        raise UnitError("no units to render; write e.g. 'conv2d_1:*' or 'class:3'")
    maxima = _maxima(lens, targets, data)
    prior, preset = image_prior_for(
        lens, options.get("preset", DEFAULT_PRESET), options.get("param"), data, progress=progress
    )
    chunks = [targets[i : i + size] for i in range(0, len(targets), size)]
    settings = {**options, "preset": preset, "data": maxima if maxima is not None else data}
    diversity = int(options.get("diversity", 1) or 1)
    # The prior is a function of its key (data and settings): the key names it in the ledger.
    prior_key = f"|prior:{prior.key}" if prior is not None else ""
    results = executor.map(
        _render_chunk,
        (lens, settings, prior),
        chunks,
        key=f"render|{lens_key(lens)}|{fingerprint(settings)}{prior_key}",
        sizes=[len(c) * diversity for c in chunks],
        desc="render",
        unit="unit",
        progress=progress,
    )
    return concat_results(results, seconds=time.perf_counter() - start)


def _render_chunk(shared: tuple[Lens, dict[str, Any], Any], targets: list[Any]) -> RenderResult:
    from ..viz.render import render as render_units

    lens, settings, prior = shared
    return render_units(lens, targets, progress=False, prior=prior, **settings)


def _maxima(lens: Lens, targets: list[Any], data: Any) -> Any:
    """What render would compute per call: the dataset maxima (or None: render unverified)."""
    from ..viz.maxima import Maxima, dataset_maxima

    if isinstance(data, Maxima) or not any(isinstance(t, Unit) for t in targets):
        return data if isinstance(data, Maxima) else None
    try:
        return dataset_maxima(lens, None, data)
    except DataError:
        if data is not None:
            raise
        return None


def concat_results(parts: Sequence[RenderResult], *, seconds: float) -> RenderResult:
    """One RenderResult from chunk results, rows in chunk order.

    Per-item fields (tensors and lists with a row per item) are concatenated, counters added,
    and run-wide fields (preset, recipe, dataset) taken from the first chunk, where all agree.
    """
    from ..viz.render.result import RenderResult

    first = parts[0]
    n = sum(len(p) for p in parts)
    merged: dict[str, Any] = {}
    for f in fields(RenderResult):
        values = [getattr(p, f.name) for p in parts]
        v0 = values[0]
        if isinstance(v0, torch.Tensor) and v0.dim() >= 1 and v0.shape[0] == len(first):
            merged[f.name] = _cat(values)
        elif isinstance(v0, list) and len(v0) == len(first):
            merged[f.name] = [x for v in values for x in v]
        elif f.name == "seconds":
            merged[f.name] = seconds
        elif isinstance(v0, int) and not isinstance(v0, bool):
            merged[f.name] = sum(values)
        elif isinstance(v0, dict) and all(isinstance(x, int) for x in v0.values()):
            total: dict[str, int] = {}
            for v in values:
                for k, x in v.items():
                    total[k] = total.get(k, 0) + x
            merged[f.name] = total
        else:
            merged[f.name] = v0
    result = RenderResult(**merged)
    assert len(result) == n
    return result


def _cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate along rows; trailing sizes that differ (curve lengths) are NaN-padded."""
    widest = [max(t.shape[d] for t in tensors) for d in range(1, tensors[0].dim())]
    padded = []
    for t in tensors:
        if list(t.shape[1:]) != widest:
            big = torch.full((t.shape[0], *widest), float("nan"), dtype=t.dtype)
            big[(slice(None), *(slice(0, s) for s in t.shape[1:]))] = t
            t = big
        padded.append(t)
    return torch.cat(padded)


# --- mining: a map over dataset shards -------------------------------------------------------
@dataclass(frozen=True)
class MineJob:
    """What every shard of one mining job shares (sent once)."""

    units: tuple[Unit, ...]
    k: int
    bottom: bool
    batch_size: int


@dataclass(frozen=True)
class Shard:
    """Images ``start:stop`` of ``split``: read from ``source`` by the worker, or sliced from
    the images the driver handed over once (``source`` None)."""

    start: int
    stop: int
    split: str = "images"
    source: SourceSpec | None = None


def shard_ranges(n: int, batch_size: int, workers: int) -> list[tuple[int, int]]:
    """Shards of whole batches (so every batch is the one a single pass forms), about four per
    worker for balance, at most MAX_SHARD_BATCHES batches each."""
    batches = math.ceil(n / batch_size)
    per = max(1, min(MAX_SHARD_BATCHES, math.ceil(batches / (4 * max(1, workers)))))
    step = per * batch_size
    return [(a, min(a + step, n)) for a in range(0, n, step)]


def mine_shards(
    executor: Executor,
    lens: Lens,
    units: Sequence[Unit],
    images: torch.Tensor,
    *,
    dataset: Dataset | None = None,
    split: str = "images",
    k: int = 9,
    bottom: bool = False,
    batch_size: int = 256,
    progress: bool = False,
) -> TopK:
    """The :class:`TopK` of one pass over ``images``, mined shard by shard on ``executor``.

    Workers of a cluster read their shard from the dataset's files when ``dataset`` is
    file-backed (checked by :func:`~convlens.data.source.source_of`); otherwise the images go
    to the object store once and each worker slices its shard. In this process the images in
    memory are sliced directly.
    """
    job = MineJob(tuple(units), k, bottom, batch_size)
    ranges = shard_ranges(len(images), batch_size, executor.workers)
    remote = executor.remote
    source = source_of(dataset, split) if remote and dataset is not None else None
    if source is not None:
        shards = [Shard(a, b, split, source) for a, b in ranges]
        shared: tuple[Any, ...] = (lens, job)
    else:
        shards = [Shard(a, b) for a, b in ranges]
        shared = (lens, job, images.numpy() if remote else images)
    what = (
        f"{dataset.name}|{split}|{dataset.split_seed}|{len(images)}"
        if dataset is not None
        else fingerprint(images)
    )
    tables = executor.map(
        _mine_shard,
        shared,
        shards,
        key=f"mine|{lens_key(lens)}|{fingerprint(job)}|{what}",
        sizes=[b - a for a, b in ranges],
        desc="mining",
        unit="img",
        progress=progress,
    )
    table = tables[0]
    for other in tables[1:]:
        table = table.merge(other)
    return table


def _mine_shard(shared: tuple[Any, ...], shard: Shard) -> TopK:
    lens, job = shared[0], shared[1]
    if shard.source is not None:
        images = open_source(shard.source).read(shard.split, shard.start, shard.stop)
    else:
        whole = shared[2]
        part = whole[shard.start : shard.stop]
        images = torch.from_numpy(part.copy()) if not isinstance(part, torch.Tensor) else part
    return mine(lens, list(job.units), images, k=job.k, bottom=job.bottom,
                batch_size=job.batch_size, index_offset=shard.start)  # fmt: skip
