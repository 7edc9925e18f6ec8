"""One worker per served model: a queue that keeps only each client's newest drawing.

A person drawing sends faster than a model may answer; an update for a drawing that has since
changed is worth nothing, so a newer request from the same client *replaces* its waiting one
(answered ``None``: superseded). Whatever waits when the engine is free runs as one batch on a
single dedicated thread (the engine's hooks are not thread-safe, and the event loop must stay
free). Deletion/insertion curves are second-class: they run only when no drawing waits.
Bounded by construction: at most one waiting drawing and one waiting curve per client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .engine import Curves, Engine, Request, Result

MAX_BATCH = 16


def single_threaded() -> None:
    """Executor initializer: torch ops of this thread use one core.

    A batch of a few 28x28 images is far too small to split across cores: with two threads the
    synchronization costs more than it saves, and on a busy machine spin-waiting threads made one
    update ten times slower (measured: 4.5 ms on one thread, 58 ms on two, load 5 on 2 cores).
    It also leaves the other core to the on-demand analyses. The setting is per thread, so a
    notebook's own torch work keeps its threads.
    """
    torch.set_num_threads(1)


@dataclass
class _Job:
    payload: Any
    future: asyncio.Future[Any]


class ModelWorker:
    """Batches the requests of all clients of one model onto its engine."""

    def __init__(self, engine: Engine, name: str = "model", max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._live: dict[Hashable, _Job] = {}
        self._curves: dict[Hashable, _Job] = {}
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self.batches = 0  # counters for the bench and the tests
        self.requests = 0

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    1, thread_name_prefix=f"convlens-{self._name}", initializer=single_threaded
                )
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for job in [*self._live.values(), *self._curves.values()]:
            if not job.future.done():
                job.future.cancel()
        self._live.clear()
        self._curves.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    @property
    def waiting(self) -> int:
        """Jobs queued now (the no-growth tests check it returns to zero)."""
        return len(self._live) + len(self._curves)

    # --- submitting ----------------------------------------------------------------------------
    async def infer(self, client: Hashable, request: Request) -> Result | None:
        """The update for ``request``, or None if the client sent a newer one meanwhile."""
        self._drop(self._curves, client)
        return await self._submit(self._live, client, request)

    async def curves(
        self, client: Hashable, item: tuple[np.ndarray, np.ndarray, int]
    ) -> Curves | None:
        """Deletion/insertion curves for (pixels, heatmap, target), or None if superseded."""
        return await self._submit(self._curves, client, item)

    def forget(self, client: Hashable) -> None:
        """A client left: its waiting jobs go (nothing of it stays behind)."""
        self._drop(self._live, client)
        self._drop(self._curves, client)

    async def _submit(self, queue: dict[Hashable, _Job], client: Hashable, payload: Any) -> Any:
        self.start()
        assert self._wake is not None
        self._drop(queue, client)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        queue[client] = _Job(payload, future)
        self._wake.set()
        try:
            return await future
        finally:
            if queue.get(client) is not None and queue[client].future is future:
                del queue[client]

    @staticmethod
    def _drop(queue: dict[Hashable, _Job], client: Hashable) -> None:
        job = queue.pop(client, None)
        if job is not None and not job.future.done():
            job.future.set_result(None)

    # --- the loop ------------------------------------------------------------------------------
    async def _loop(self) -> None:
        assert self._wake is not None and self._executor is not None
        loop = asyncio.get_running_loop()
        executor = self._executor
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._live or self._curves:
                queue, run = (
                    (self._live, self.engine.run)
                    if self._live
                    else (self._curves, self.engine.curves)
                )
                clients = list(queue)[: self.max_batch]
                jobs = [queue.pop(c) for c in clients]
                jobs = [j for j in jobs if not j.future.done()]
                if not jobs:
                    continue
                payloads = [j.payload for j in jobs]
                try:
                    results = await loop.run_in_executor(executor, run, payloads)
                except Exception:
                    # One bad drawing must not fail its batch-mates: run each alone, each job
                    # gets its own result or its own error.
                    results = []
                    for p in payloads:
                        try:
                            results.append((await loop.run_in_executor(executor, run, [p]))[0])
                        except Exception as error:
                            results.append(error)
                self.batches += 1
                self.requests += len(jobs)
                for job, result in zip(jobs, results, strict=True):
                    if job.future.done():
                        continue
                    if isinstance(result, BaseException):
                        job.future.set_exception(result)
                    else:
                        job.future.set_result(result)
