"""The live web app as an ASGI application (Starlette): small routes, one WebSocket.

Routes: ``/`` the page; ``/static/*`` its CSS/JS (from the package); ``/api/config`` the models
and their layer tables; ``/api/sample`` a validation image; ``/api/upload`` an image file to
convert; ``/api/stats`` counters; ``/api/unit``, ``/api/render``, ``/api/class`` the details
of a unit or class;
``/atlas/{model}/{file}`` the atlas pictures (only files its manifest lists); ``/ws`` the live
updates (see :mod:`.protocol`). Every error a client can cause is a one-line JSON
``{"error": ...}`` (or an ``error`` message on the socket) and the server carries on.

Why Starlette and not FastAPI: the hot path is one WebSocket of binary frames, where FastAPI's
typed parameters and OpenAPI add nothing (and its default /docs page loads from a CDN); the JSON
part of each message is validated by pydantic models in :mod:`.protocol` all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request as HttpRequest
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..data import Dataset
from ..data.for_model import dataset_for
from ..errors import ConvlensError, DataError
from ..images.colors import DIVERGING, SEQUENTIAL, get_cmap
from ..lens import Lens
from ..units import Unit
from .atlas_source import AtlasSource
from .details import Details, private_copy
from .engine import Engine, Request, available_methods, update_blobs
from .protocol import decode_pixels, pack, parse_infer, to_u8, unpack
from .uploads import MAX_BYTES, MAX_PIXELS, UploadError, convert_upload
from .worker import ModelWorker, single_threaded

MAX_CONNECTIONS = 64
MAX_DETAIL_JOBS = 8  # on-demand analyses queued per model before the app says "busy"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
MODEL_KEYS = "abcd"


def static_dir() -> Path:
    return Path(str(resources.files("convlens.server") / "static"))


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


# --- HTTP routes ------------------------------------------------------------------------------
def _error(error: Exception, status: int = 400) -> JSONResponse:
    if isinstance(error, Busy):
        status = 503
    elif isinstance(error, UploadError) and "limit" in str(error):
        status = 413
    return JSONResponse({"error": str(error).splitlines()[0]}, status_code=status)


def _int(
    params: Any, name: str, default: int | None = None, lo: int = 0, hi: int = 2**31
) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.lstrip("-").isdigit() or len(raw) > 12:
        raise ConvlensError(f"{name} must be a whole number, got {raw[:40]!r}")
    value = int(raw)
    if not lo <= value <= hi:
        raise ConvlensError(f"{name} must lie in {lo}-{hi}, got {value}")
    return value


def build_routes(live: LiveApp) -> list[Any]:
    index_html = (static_dir() / "index.html").read_text(encoding="utf-8")

    async def index(_request: HttpRequest) -> Response:
        return HTMLResponse(index_html, headers={"Cache-Control": "no-cache"})

    async def config(_request: HttpRequest) -> Response:
        return JSONResponse(live.config())

    async def stats(_request: HttpRequest) -> Response:
        return JSONResponse(live.stats())

    async def sample(request: HttpRequest) -> Response:
        try:
            served = live.model(request.query_params.get("model"))
            data = await live.in_thread(served, served.dataset)
            n = len(data.x_val)
            index = _int(request.query_params, "index", None, 0, 2**31)
            if index is None:
                seed = _int(request.query_params, "seed", 0, 0, 2**32 - 1)
                index = int(np.random.default_rng(seed).integers(n))
            if index >= n:
                raise DataError(
                    f"index {index} is out of range: the validation split has {n} images "
                    f"(0-{n - 1})"
                )
            x = data.x_val[index].numpy()
            label = int(data.y_val[index])
            names = list(data.class_names)
            return JSONResponse(
                {
                    "index": index,
                    "count": n,
                    "label": label,
                    "label_name": names[label] if label < len(names) else str(label),
                    "shape": list(x.shape),
                    "pixels": to_u8(x, (0.0, 1.0)).reshape(-1).tolist(),
                    "dataset": data.name,
                }
            )
        except ConvlensError as error:
            return _error(error)

    async def upload(request: HttpRequest) -> Response:
        try:
            served = live.model(request.query_params.get("model"))
            declared = request.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > MAX_BYTES:
                raise UploadError(
                    f"the file is {int(declared) / 2**20:.1f} MB; "
                    f"the limit is {MAX_BYTES // 2**20} MB"
                )
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BYTES:
                    raise UploadError(f"the file is over the {MAX_BYTES // 2**20} MB limit")
                chunks.append(chunk)
            x, notes = await live.in_thread(
                served, convert_upload, b"".join(chunks), served.lens.spec
            )
            return JSONResponse(
                {
                    "shape": list(x.shape),
                    "pixels": to_u8(x, (0.0, 1.0)).reshape(-1).tolist(),
                    "notes": notes,
                }
            )
        except ConvlensError as error:
            return _error(error)

    async def unit(request: HttpRequest) -> Response:
        try:
            served = live.model(request.query_params.get("model"))
            u = served.engine.unit(request.query_params.get("unit") or "")
            if u.kind == "class":
                raise ConvlensError("for a class use /api/class?class=N")
            info = served.lens.layer(u.layer)
            out: dict[str, Any] = {
                "unit": str(u),
                "kind": u.kind,
                "layer": u.layer,
                "channel": u.channel,
                "position": list(u.position) if u.position else None,
                "layer_info": info.to_dict(),
            }
            record = served.atlas.unit(u) if served.atlas is not None else None
            if record is not None:
                out.update(record)
            else:
                out.update(await live.in_thread(served, served.details.unit, u))
                out["render"] = None  # computed on demand by /api/render
            return JSONResponse(out)
        except ConvlensError as error:
            return _error(error)

    async def render(request: HttpRequest) -> Response:
        try:
            served = live.model(request.query_params.get("model"))
            u = served.engine.unit(request.query_params.get("unit") or "")
            if u.kind == "class":
                raise ConvlensError("for a class use /api/class?class=N")
            return JSONResponse(await live.in_thread(served, served.details.render, u))
        except ConvlensError as error:
            return _error(error)

    async def klass(request: HttpRequest) -> Response:
        try:
            served = live.model(request.query_params.get("model"))
            index = _int(request.query_params, "class", None, 0, 10**6)
            if index is None or index >= served.engine.num_classes:
                raise ConvlensError(f"give class=N with N in 0-{served.engine.num_classes - 1}")
            names = list(served.lens.class_names)
            out: dict[str, Any] = {
                "class": index,
                "name": names[index] if index < len(names) else str(index),
            }
            proto = served.atlas.prototype(index) if served.atlas is not None else None
            if proto is None:
                proto = await live.in_thread(served, served.details.prototype, index)
            out["prototype"] = proto
            return JSONResponse(out)
        except ConvlensError as error:
            return _error(error)

    async def atlas_file(request: HttpRequest) -> Response:
        key = request.path_params["model"]
        rel = request.path_params["path"]
        served = live.models.get(key)
        path = served.atlas.file(rel) if served is not None and served.atlas is not None else None
        if path is None:
            return JSONResponse({"error": "not a file of the atlas"}, status_code=404)
        return FileResponse(path, headers={"Cache-Control": "max-age=3600"})

    return [
        Route("/", index),
        Route("/api/config", config),
        Route("/api/stats", stats),
        Route("/api/sample", sample),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/unit", unit),
        Route("/api/render", render),
        Route("/api/class", klass),
        Route("/atlas/{model}/{path:path}", atlas_file),
        WebSocketRoute("/ws", live.websocket),
        Mount("/static", app=StaticFiles(directory=static_dir()), name="static"),
    ]


def create_app(
    lenses: Lens | Sequence[Lens],
    *,
    atlases: Sequence[str | Path | None] = (),
    data: str | None = None,
    hosts: Sequence[str] = (),
    seed: int = 0,
) -> Starlette:
    """The ASGI app for one or more models (side by side). ``atlases``: one folder (or None)
    per model, whose pictures replace on-demand computation. ``hosts``: extra host names the
    app answers to besides the loopback ones (for ``--host``); ``"*"`` answers every name.
    """
    models = [lenses] if isinstance(lenses, Lens) else list(lenses)
    live = LiveApp(models, atlases=atlases, data=data, seed=seed)
    live.allowed_hosts = [*LOOPBACK, *hosts]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        for served in live.models.values():
            served.worker.start()
        try:
            yield
        finally:
            for served in live.models.values():
                await served.worker.stop()
                served.shutdown()

    app = Starlette(
        routes=build_routes(live),
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=live.allowed_hosts)],
        lifespan=lifespan,
    )
    app.state.live = live
    return app
