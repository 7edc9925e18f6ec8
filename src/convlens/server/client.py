"""A small synchronous client of the live app's socket (benchmarks, load tests, scripts).

>>> with LiveClient("http://127.0.0.1:8000/") as c:
...     update = c.infer(pixels, method="gradcam")     # pixels: (C, H, W) uint8 or float32
...     update.arrays["conv2d_1"].shape, update.header["predicted"]

Loopback only by default: it refuses an address that is not 127.0.0.0/8, ::1 or localhost unless
``allow_remote=True``, so a benchmark cannot be pointed at another machine by mistake.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from websockets.sync.client import connect

from ..errors import ConvlensError
from .protocol import frame, read_array, unpack


@dataclass
class Update:
    """One model's answer: the header and its arrays (views into the received frame)."""

    header: dict[str, Any]
    arrays: dict[str, np.ndarray]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class LiveClient:
    """One WebSocket connection; :meth:`infer` sends a drawing and waits for its updates."""

    def __init__(self, url: str, *, timeout: float = 30.0, allow_remote: bool = False) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if not allow_remote and not _loopback(host):
            raise ConvlensError(f"{host} is not a loopback address; pass allow_remote=True")
        scheme = "wss" if parts.scheme == "https" else "ws"
        self.timeout = timeout
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(
            connect(
                f"{scheme}://{parts.netloc}/ws",
                open_timeout=timeout,
                max_size=2**24,
                compression=None,  # as the server: deflating updates costs more than it saves
            )
        )
        self._ids = itertools.count(1)

    def infer(
        self,
        pixels: np.ndarray,
        *,
        models: tuple[str, ...] = ("a",),
        method: str = "gradient",
        target: int | None = None,
        layer: str | None = None,
        focus: dict[str, str] | None = None,
        faith: bool = False,
    ) -> dict[str, Update]:
        """The update of every model for one input (and its curves when ``faith``)."""
        x = np.ascontiguousarray(pixels)
        dtype = "u8" if x.dtype == np.uint8 else "f32"
        if dtype == "f32":
            x = x.astype("<f4")
        rid = next(self._ids)
        header = {
            "type": "infer",
            "id": rid,
            "models": list(models),
            "method": method,
            "target": target,
            "layer": layer,
            "focus": focus,
            "faith": faith,
            "dtype": dtype,
            "shape": list(x.shape),
        }
        self.ws.send(frame(header, x.tobytes()))
        out: dict[str, Update] = {}
        curves: set[str] = set()
        while len(out) < len(models) or (faith and len(curves) < len(out)):
            message = self.ws.recv(timeout=self.timeout)
            if isinstance(message, str):
                data = json.loads(message)
                if data.get("id") != rid:
                    continue
                if data["type"] == "error":
                    raise ConvlensError(data["message"])
                if data["type"] == "curves":
                    curves.add(data["model"])
                    out[data["model"]].header["curves"] = data
                elif data["type"] == "skipped":
                    raise ConvlensError("the request was superseded (another was sent meanwhile)")
                continue
            head, payload = unpack(message)
            if head.get("id") != rid:
                continue
            arrays = {a["name"]: read_array(payload, a) for a in head["arrays"]}
            out[head["model"]] = Update(head, arrays)
        return out

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> LiveClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
