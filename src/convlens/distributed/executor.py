"""Executors: where the chunks of a job run. In this process (the default) or on Ray.

Both run the *same* chunks, formed by the caller before the executor is chosen, so what a chunk
computes never depends on where it ran or on how many workers there are. An executor only maps
a module-level function over chunk arguments: the shared input (the Lens) is handed over once
(``ray.put``, cached per worker process), finished chunks are counted on one progress bar on
the driver, and, with a :class:`~convlens.distributed.store.ChunkStore`, each finished chunk is
saved as it arrives so a killed driver resumes without redoing it. Ray's task retries
(``max_retries``) rerun the chunks of a worker that died; a chunk is collected exactly once.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch

from ..errors import ConvlensError
from ..progress import bar as progress_bar
from .store import ChunkStore

S = TypeVar("S")
A = TypeVar("A")
R = TypeVar("R")

RAY_INSTALL = "--ray needs Ray, an optional extra: pip install 'convlens[ray]'"
SPEC_FORMS = "auto, ray://HOST:PORT or local:N"


class Executor:
    """Runs chunk functions; subclasses say where. ``store``: finished chunks, for resuming."""

    name = "in-process"
    workers = 1
    remote = False  # chunks run in other processes (arguments and results travel)
    store: ChunkStore | None = None
    show_progress: bool | None = None  # overrides a call's ``progress`` (the atlas sets it)
    bar_position: int | None = None  # tqdm line, below the atlas's own bars

    def render(self, lens: Any, units: Any, **options: Any) -> Any:
        """:func:`convlens.render` in fixed unit chunks on this executor (see ``jobs.render``)."""
        from .jobs import render

        return render(self, lens, units, **options)

    def mine(self, lens: Any, units: Any, images: Any, **options: Any) -> Any:
        """The mining pass of :func:`convlens.examples`, shard by shard (``jobs.mine_shards``)."""
        from .jobs import mine_shards

        return mine_shards(self, lens, units, images, **options)

    def map(
        self,
        fn: Callable[[S, A], R],
        shared: S,
        args: Sequence[A],
        *,
        key: str = "",
        sizes: Sequence[int] | None = None,
        desc: str = "chunks",
        unit: str = "chunk",
        progress: bool | None = False,
    ) -> list[R]:
        """``[fn(shared, a) for a in args]``, in order, each chunk computed once.

        ``key`` identifies the job for the store (what ``shared`` and the settings are; the
        chunk's own argument is added per chunk); ``sizes`` weights the progress bar (units or
        images per chunk).
        """
        n = len(args)
        weights = list(sizes) if sizes is not None else [1] * n
        store = self.store if key else None
        keys = [store.key(key, fn, a) for a in args] if store is not None else None
        results: list[Any] = [None] * n
        todo, done_before = [], 0
        for i in range(n):
            if keys is not None and store is not None and store.has(keys[i]):
                results[i] = store.load(keys[i])
                done_before += weights[i]
            else:
                todo.append(i)
        show = progress if self.show_progress is None else self.show_progress
        bar = progress_bar(sum(weights), initial=done_before, desc=f"    {desc}", unit=unit,
                           progress=show, position=self.bar_position)  # fmt: skip
        try:
            for i, result in self._run(fn, shared, [(i, args[i]) for i in todo]):
                results[i] = result
                if keys is not None and store is not None:
                    store.save(keys[i], result)
                bar.update(weights[i])
        finally:
            bar.close()
        return results

    def _run(
        self, fn: Callable[[S, A], R], shared: S, indexed: list[tuple[int, A]]
    ) -> Iterator[tuple[int, R]]:
        raise NotImplementedError

    def with_store(
        self,
        store: ChunkStore | None,
        *,
        progress: bool | None = None,
        position: int | None = None,
    ) -> Executor:
        """The same executor (same cluster connection) saving finished chunks in ``store``;
        ``progress``/``position`` fix whether and where its chunk bar shows."""
        other = copy.copy(self)
        other.store, other.show_progress, other.bar_position = store, progress, position
        return other

    def close(self) -> None:
        """Release what the executor started (a local Ray cluster); idempotent."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class InProcess(Executor):
    """Every chunk in this process, one after another: the default, and the reference result.

    ``threads``: torch intra-op threads while a chunk runs; 1 by default, as on a Ray worker of
    one CPU, because CPU kernels (matrix products) may split sums by thread count, and the
    small batches of a render run fastest on one thread anyway. None keeps torch's setting.
    """

    def __init__(self, threads: int | None = 1) -> None:
        self.threads = threads

    def _run(
        self, fn: Callable[[S, A], R], shared: S, indexed: list[tuple[int, A]]
    ) -> Iterator[tuple[int, R]]:
        for i, arg in indexed:
            with torch_threads(self.threads):
                result = fn(shared, arg)
            yield i, result


class RayExecutor(Executor):
    """Chunks as Ray tasks: ``address`` ``"auto"`` (a running cluster), ``"ray://HOST:PORT"``
    (Ray Client) or ``None`` with ``local_workers=N`` (start a local Ray with N worker CPUs).

    Each task asks for ``cpus_per_task`` CPUs (and runs torch on that many threads) and
    ``gpus_per_task`` GPUs (the Lens moves to the worker's GPU when > 0). A worker process that
    dies takes its task with it; Ray reruns it up to ``max_retries`` times. Errors raised by
    convlens inside a task (bad input) are not retried and reach the caller as themselves.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        local_workers: int | None = None,
        cpus_per_task: float = 1,
        gpus_per_task: float = 0,
        max_retries: int = 3,
        object_store_mb: int = 256,
    ) -> None:
        ray = import_ray()
        self.ray = ray
        self.cpus_per_task, self.gpus_per_task = cpus_per_task, gpus_per_task
        self.max_retries = max_retries
        self.remote = True
        self._started = False
        self._puts: dict[int, tuple[Any, Any]] = {}  # id(shared) -> (shared, ObjectRef)
        if ray.is_initialized():
            self.name = "ray (connected)"
        elif address is None:
            n = local_workers or 1
            # Lean on purpose: no dashboard, a small object store, plain logging. Only the
            # Lens and the chunk results travel through the store; data is read by workers.
            store = object_store_mb * 1024**2
            ray.init(num_cpus=n, include_dashboard=False, configure_logging=False,
                     object_store_memory=store, log_to_driver=False)  # fmt: skip
            self._started = True
            self.name = f"local:{n}"
        else:
            try:
                ray.init(address=address, configure_logging=False, log_to_driver=False)
            except Exception as error:  # unreachable cluster, wrong address, missing client
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise ConvlensError(
                    f"cannot connect to Ray at {address!r} ({first or type(error).__name__}); "
                    "check the address, or use --ray local:N"
                ) from None
            self._started = True
            self.name = address
        cpus = ray.cluster_resources().get("CPU", 1)
        self.workers = max(1, int(cpus // max(cpus_per_task, 1e-9)))
        self._remote = ray.remote(convlens_chunk)

    def _ref(self, obj: Any) -> Any:
        """``obj`` in Ray's object store, put once per object (the Lens: once per build)."""
        hit = self._puts.get(id(obj))
        if hit is None or hit[0] is not obj:
            while len(self._puts) >= 16:
                self._puts.pop(next(iter(self._puts)))
            hit = (obj, self.ray.put(obj))
            self._puts[id(obj)] = hit
        return hit[1]

    def _run(
        self, fn: Callable[[S, A], R], shared: S, indexed: list[tuple[int, A]]
    ) -> Iterator[tuple[int, R]]:
        ray = self.ray
        if not indexed:
            return
        # A tuple's parts are put one by one, so the Lens is shared by the jobs that use it.
        refs = [self._ref(p) for p in shared] if isinstance(shared, tuple) else [self._ref(shared)]
        threads = max(1, int(self.cpus_per_task))
        task = self._remote.options(
            num_cpus=self.cpus_per_task,
            num_gpus=self.gpus_per_task,
            max_retries=self.max_retries,
            retry_exceptions=False,
        )
        # The refs travel inside a list so Ray hands the task the refs, not a fresh copy of the
        # Lens each time: the worker fetches each once and keeps it (see convlens_chunk).
        boxed, gpu, whole = refs, self.gpus_per_task > 0, isinstance(shared, tuple)
        pending = {task.remote(fn, boxed, whole, arg, threads, gpu): i for i, arg in indexed}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for done in ready:
                    i = pending.pop(done)
                    yield i, self._get(done, i)
        finally:
            for left in pending:  # interrupted (Ctrl-C, an error): stop the rest
                with contextlib.suppress(Exception):
                    ray.cancel(left, force=True)

    def _get(self, ref: Any, i: int) -> Any:
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None)
            if isinstance(cause, ConvlensError):
                raise cause from None
            raise
        except _died(ray):
            raise ConvlensError(
                f"Ray workers died {self.max_retries + 1} times running chunk {i}; "
                "check their memory (ray logs) and run again (with --resume for an atlas)"
            ) from None

    def close(self) -> None:
        self._puts.clear()
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started = False


def _died(ray: Any) -> tuple[type[BaseException], ...]:
    """Ray's exceptions for a task whose worker (or node) died more often than retried."""
    names = ("WorkerCrashedError", "NodeDiedError", "OwnerDiedError")
    return tuple(getattr(ray.exceptions, n) for n in names if hasattr(ray.exceptions, n))


# --- worker side -----------------------------------------------------------------------------
_WORKER_CACHE: dict[str, Any] = {}


def convlens_chunk(fn: Callable[[Any, Any], Any], boxed: list[Any], whole: bool, arg: Any,
              threads: int, gpu: bool) -> Any:  # fmt: skip
    """Run one chunk on a Ray worker, the shared inputs fetched once per worker process."""
    parts = [_fetch(ref, gpu) for ref in boxed]
    with torch_threads(threads):
        return fn(tuple(parts) if whole else parts[0], arg)


def _fetch(ref: Any, gpu: bool) -> Any:
    import ray

    key = ref.hex()
    if key not in _WORKER_CACHE:
        while len(_WORKER_CACHE) >= 8:  # a build puts a few Lenses (snapshots): keep the last
            _WORKER_CACHE.pop(next(iter(_WORKER_CACHE)))
        obj = ray.get(ref)
        if gpu and torch.cuda.is_available() and hasattr(obj, "model") and hasattr(obj, "to"):
            obj = obj.to("cuda")
        _WORKER_CACHE[key] = obj
    return _WORKER_CACHE[key]


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch threads (None: as is), restoring the setting afterwards."""
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


# --- choosing one ----------------------------------------------------------------------------
def import_ray() -> Any:
    """The ``ray`` module, or a one-line ConvlensError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConvlensError(RAY_INSTALL) from None
    return ray


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def check_spec(spec: str) -> str:
    """A valid ``--ray`` value (``auto``, ``ray://HOST:PORT``, ``local:N``), or a one-line error."""
    text = spec.strip()
    if text == "auto" or re.fullmatch(r"ray://[^\s:/]+:\d+", text):
        return text
    match = re.fullmatch(r"local:(\d+)", text)
    if match and int(match.group(1)) >= 1:
        return text
    raise ConvlensError(f"--ray {spec!r} is not a Ray address; use {SPEC_FORMS} (N >= 1)")


def executor_from_spec(spec: str | None, *, threads: int | None = 1) -> Executor:
    """``None`` -> :class:`InProcess`; ``auto`` / ``ray://HOST:PORT`` / ``local:N`` -> Ray.

    ``threads`` applies to the in-process executor (torch threads while a chunk runs; 1 matches
    Ray's one-CPU tasks, so results agree bit for bit).
    """
    if spec is None:
        return InProcess(threads)
    text = check_spec(spec)
    import_ray()
    if text.startswith("local:"):
        return RayExecutor(local_workers=int(text.split(":", 1)[1]))
    return RayExecutor(text)
