"""The live web app as an ASGI application (Starlette): small routes, one WebSocket.

Routes: ``/`` the page; ``/static/*`` its CSS/JS (from the package); ``/api/config`` the models
and their layer tables; ``/api/sample`` a validation image; ``/api/upload`` an image file to
convert; ``/api/stats`` counters; ``/api/unit``, ``/api/render``, ``/api/class`` the details of
a unit or class; ``/atlas/{model}/{file}`` the atlas pictures (only files its manifest lists);
``/ws`` the live updates (handled in :mod:`.live`; frames in :mod:`.protocol`). Every error a
client can cause is a one-line JSON ``{"error": ...}`` (or an ``error`` message on the socket)
and the server carries on.

Why Starlette and not FastAPI: the hot path is one WebSocket of binary frames, where FastAPI's
typed parameters and OpenAPI add nothing (and its default /docs page loads from a CDN); the JSON
part of each message is validated by pydantic models in :mod:`.protocol` all the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request as HttpRequest
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from ..errors import ConvlensError, DataError
from ..lens import Lens
from .live import LOOPBACK, Busy, LiveApp
from .protocol import to_u8
from .uploads import MAX_BYTES, UploadError, convert_upload


def static_dir() -> Path:
    return Path(str(resources.files("convlens.server") / "static"))


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
                    f"the file is over the {MAX_BYTES // 2**20} MB limit "
                    f"({int(declared):,} bytes); shrink it"
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
