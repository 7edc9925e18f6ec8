"""Scale-out: the same analyses, their chunks mapped over Ray workers or run in this process.

``executor=`` on :func:`convlens.render`, :func:`convlens.examples` and the atlas takes an
:class:`Executor`: :class:`InProcess` (the default of the CLI and the atlas) or
:class:`RayExecutor` (``executor_from_spec("local:2")``, ``"auto"``, ``"ray://HOST:PORT"``).
Renders are split into fixed chunks of units and mining into shards of whole batches, the same
chunks on every executor, so a cluster reproduces the in-process result exactly. Ray is an
optional extra: ``pip install 'convlens[ray]'``.
"""

from .executor import (
    RAY_INSTALL,
    Executor,
    InProcess,
    RayExecutor,
    check_spec,
    executor_from_spec,
    ray_available,
)
from .jobs import RENDER_CHUNK_UNITS, concat_results, mine_shards, render, shard_ranges
from .store import ChunkStore

__all__ = [
    "RAY_INSTALL",
    "RENDER_CHUNK_UNITS",
    "ChunkStore",
    "Executor",
    "InProcess",
    "RayExecutor",
    "check_spec",
    "concat_results",
    "executor_from_spec",
    "mine_shards",
    "ray_available",
    "render",
    "shard_ranges",
]
