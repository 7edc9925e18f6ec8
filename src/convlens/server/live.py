"""The state behind the live app: the served models, and the WebSocket that carries updates.

Each served model has its engine (live updates, batched by its worker), its on-demand details
and optionally an atlas. The socket handler reads client frames (:mod:`.protocol`), queues one
job per model, answers every request exactly once (an update, ``skipped`` when a newer drawing
replaced it, or a one-line ``error``), and forgets the client when it leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..data import Dataset
from ..data.for_model import dataset_for
from ..errors import ConvlensError
from ..images.colors import DIVERGING, SEQUENTIAL, get_cmap
from ..lens import Lens
from ..units import Unit
from .atlas_source import AtlasSource
from .details import Details, private_copy
from .engine import Engine, Request, available_methods, update_blobs
from .protocol import decode_pixels, pack, parse_infer, unpack
from .uploads import MAX_BYTES, MAX_PIXELS
from .worker import ModelWorker, single_threaded

MAX_CONNECTIONS = 64
MAX_DETAIL_JOBS = 8  # on-demand analyses queued per model before the app says "busy"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
MODEL_KEYS = "abcd"


@dataclass
class ServedModel:
    """One model the app shows, with its live engine, worker, details and optional atlas."""

    key: str
    lens: Lens
    label: str
    engine: Engine
    worker: ModelWorker
    details: Details
    atlas: AtlasSource | None = None
    data_name: str | None = None
    detail_jobs: int = 0
    _executor: ThreadPoolExecutor | None = None
    _dataset: Dataset | None = None
    _data_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The thread for on-demand analyses (made on first use, again after a shutdown)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                1, thread_name_prefix=f"convlens-details-{self.key}", initializer=single_threaded
            )
        return self._executor

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def dataset(self) -> Dataset:
        """The model's dataset (its own validation split), loaded once on first use."""
        with self._data_lock:
            if self._dataset is None:
                self._dataset = dataset_for(self.lens, self.data_name)
            return self._dataset


def model_label(lens: Lens) -> str:
    """A short name for the page: checkpoint folder or file name, architecture, epoch."""
    src = lens.source or {}
    name = lens.path.name if lens.path else Path(str(src.get("file", "model"))).name
    arch = (src.get("config") or {}).get("model", {})
    arch_name = arch.get("name") if isinstance(arch, dict) else arch
    parts = [name]
    if arch_name and arch_name != name:
        parts.append(str(arch_name))
    if src.get("epoch"):
        parts.append(f"epoch {src['epoch']}")
    return " · ".join(parts)


def _colormap(name: str) -> list[list[int]]:
    lut = get_cmap(name)(np.linspace(0.0, 1.0, 256), bytes=True)[:, :3]
    return lut.astype(int).tolist()


class LiveApp:
    """The state behind the routes: the served models and the open connections."""

    def __init__(
        self,
        lenses: Sequence[Lens],
        *,
        atlases: Sequence[str | Path | None] = (),
        data: str | None = None,
        seed: int = 0,
    ) -> None:
        if not lenses:
            raise ConvlensError("give at least one model to serve")
        if len(lenses) > len(MODEL_KEYS):
            raise ConvlensError(f"the app shows at most {len(MODEL_KEYS)} models side by side")
        shapes = {lens.spec.shape for lens in lenses}
        if len(shapes) > 1:
            listed = " vs ".join(
                "x".join(map(str, s)) for s in [lens.spec.shape for lens in lenses]
            )
            raise ConvlensError(
                f"the models take different inputs ({listed}); side by side needs one input size"
            )
        self.models: dict[str, ServedModel] = {}
        for i, lens in enumerate(lenses):
            key = MODEL_KEYS[i]
            folder = atlases[i] if i < len(atlases) else None
            atlas = AtlasSource(folder, f"/atlas/{key}") if folder else None
            if atlas is not None:
                atlas.check(lens)
            # The engine reads its own copy of the model: hooks live on modules, so a notebook
            # using the same Lens while the server computes would otherwise see the server's.
            engine = Engine(private_copy(lens), seed=seed)
            served = ServedModel(
                key=key,
                lens=lens,
                label=model_label(lens),
                engine=engine,
                worker=ModelWorker(engine, name=key),
                details=None,  # type: ignore[arg-type]  # set below: it needs the dataset loader
                atlas=atlas,
                data_name=data,
            )
            served.details = Details(lens, served.dataset, seed=seed)
            self.models[key] = served
        self.connections = 0
        self._ids = itertools.count()
        self.allowed_hosts: list[str] = list(LOOPBACK)

    # --- helpers -------------------------------------------------------------------------------
    def model(self, key: str | None) -> ServedModel:
        if key is None and len(self.models) == 1:
            return next(iter(self.models.values()))
        if key not in self.models:
            raise ConvlensError(
                f"unknown model {key!r}; this server shows {', '.join(self.models)}"
            )
        return self.models[key]

    async def in_thread(self, served: ServedModel, fn: Any, *args: Any) -> Any:
        """Run a details analysis on the model's details thread, bounded in queued jobs."""
        if served.detail_jobs >= MAX_DETAIL_JOBS:
            raise Busy(f"busy: {served.detail_jobs} analyses are queued; try again in a moment")
        served.detail_jobs += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(served.executor, fn, *args)
        finally:
            served.detail_jobs -= 1

    def stats(self) -> dict[str, Any]:
        """Counters for monitoring and the benchmark: requests, batches, what waits now."""
        return {
            "connections": self.connections,
            "models": {
                k: {
                    "requests": m.worker.requests,
                    "batches": m.worker.batches,
                    "waiting": m.worker.waiting,
                    "detail_jobs": m.detail_jobs,
                }
                for k, m in self.models.items()
            },
        }

    def config(self) -> dict[str, Any]:
        models = []
        for m in self.models.values():
            lens = m.lens
            spec = lens.spec
            models.append(
                {
                    "key": m.key,
                    "label": m.label,
                    "input": {
                        "channels": spec.channels,
                        "height": spec.height,
                        "width": spec.width,
                        "value_range": list(spec.value_range),
                        "describe": spec.describe(),
                    },
                    "class_names": list(lens.class_names)
                    or [str(i) for i in range(m.engine.num_classes)],
                    "layers": [info.to_dict() for info in lens.layers],
                    "conv": m.engine.conv,
                    "dense": m.engine.dense,
                    "logits_layer": lens.logits_layer,
                    "atlas": m.atlas is not None,
                    "dataset": m.data_name
                    or (lens.source.get("config") or {}).get("data", {}).get("name"),
                }
            )
        return {
            "models": models,
            "methods": available_methods(),
            "colormaps": {"sequential": _colormap(SEQUENTIAL), "diverging": _colormap(DIVERGING)},
            "limits": {"upload_bytes": MAX_BYTES, "upload_pixels": MAX_PIXELS},
        }

    # --- the live socket -----------------------------------------------------------------------
    async def websocket(self, ws: WebSocket) -> None:
        origin = ws.headers.get("origin")
        if origin and (urlsplit(origin).hostname or "") not in self._origin_hosts():
            await ws.close(code=1008, reason="cross-origin connections are refused")
            return
        if self.connections >= MAX_CONNECTIONS:
            await ws.close(code=1013, reason="too many connections")
            return
        await ws.accept()
        self.connections += 1
        client = next(self._ids)
        lock = asyncio.Lock()
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes")
                if data is None:
                    await self._send_json(
                        ws,
                        lock,
                        {
                            "type": "error",
                            "id": None,
                            "message": "send binary frames (see the protocol)",
                        },
                    )
                    continue
                header: dict[str, Any] = {}
                received = time.perf_counter()
                try:
                    header, payload = unpack(data)
                    jobs, infer = self._parse(header, payload)
                except ConvlensError as error:
                    rid = header.get("id")
                    await self._send_json(
                        ws,
                        lock,
                        {
                            "type": "error",
                            "id": rid if isinstance(rid, int) else None,
                            "message": str(error),
                        },
                    )
                    continue
                for served, request in jobs:
                    task = asyncio.create_task(
                        self._answer(
                            ws, lock, client, served, request, infer.id, infer.faith, received
                        )
                    )
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
        except WebSocketDisconnect:
            pass
        finally:
            for task in list(tasks):
                task.cancel()
            for served in self.models.values():
                served.worker.forget(client)
            self.connections -= 1

    def _origin_hosts(self) -> set[str]:
        return {h.strip("[]") for h in self.allowed_hosts} | set(self.allowed_hosts)

    def _parse(
        self, header: dict[str, Any], payload: memoryview
    ) -> tuple[list[tuple[ServedModel, Request]], Any]:
        infer = parse_infer(header)
        jobs = []
        for key in dict.fromkeys(infer.models):
            served = self.model(key)
            engine = served.engine
            engine.check(infer.method, infer.target, infer.layer)
            x = decode_pixels(infer, payload, served.lens.spec.shape, served.lens.spec.value_range)
            focus: Unit | None = None
            focus_error = None
            text = (infer.focus or {}).get(key)
            if text:
                try:
                    focus = engine.unit(text)
                except ConvlensError as error:  # a stale unit must not stop the updates
                    focus_error = {"unit": text, "error": str(error)}
            request = Request(
                x=x,
                method=infer.method,
                target=infer.target,
                layer=infer.layer,
                focus=focus,
                focus_error=focus_error,
            )
            jobs.append((served, request))
        return jobs, infer

    async def _answer(
        self,
        ws: WebSocket,
        lock: asyncio.Lock,
        client: int,
        served: ServedModel,
        request: Request,
        rid: int,
        faith: bool,
        received: float,
    ) -> None:
        try:
            result = await served.worker.infer(client, request)
            if result is None:
                await self._send_json(ws, lock, {"type": "skipped", "id": rid, "model": served.key})
                return
            fields, blobs = update_blobs(result, served.lens.class_names)
            fields["server_seconds"] = round(time.perf_counter() - received, 6)
            frame = pack({"type": "update", "id": rid, "model": served.key, **fields}, blobs)
            async with lock:
                await ws.send_bytes(frame)
            if faith:
                curves = await served.worker.curves(client, (request.x, result.heat, result.target))
                if curves is not None:
                    await self._send_json(
                        ws,
                        lock,
                        {
                            "type": "curves",
                            "id": rid,
                            "model": served.key,
                            "method": result.method,
                            "target": result.target,
                            **curves.to_json(),
                        },
                    )
        except (WebSocketDisconnect, asyncio.CancelledError):
            return  # the client went away mid-answer: nothing to tell it
        except Exception as error:  # every request gets an answer, even an unexpected failure
            with contextlib.suppress(Exception):
                await self._send_json(
                    ws,
                    lock,
                    {
                        "type": "error",
                        "id": rid,
                        "model": served.key,
                        "message": str(error).splitlines()[0],
                    },
                )

    @staticmethod
    async def _send_json(ws: WebSocket, lock: asyncio.Lock, data: dict[str, Any]) -> None:
        async with lock:
            await ws.send_text(json.dumps(data, allow_nan=False))


class Busy(ConvlensError):
    """Too many on-demand analyses queued (HTTP 503; the page says try again)."""
