"""Running the app with uvicorn: in the foreground (the CLI) or on a background thread
(notebooks, the benchmark, the browser test).

The socket is bound here, before uvicorn starts, so port 0 means "a free port" and the address
printed is the one really served. Loopback unless the caller asks otherwise.
"""

from __future__ import annotations

import socket
import threading
import time
import webbrowser
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn

from ..errors import ConvlensError
from .app import LOOPBACK, create_app
from .protocol import MAX_FRAME_BYTES

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port); one-line error if taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ConvlensError(
            f"cannot listen on {host}:{port} ({error.strerror or error}); "
            "pick another --port, or leave it out for a free one"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/"


def extra_hosts(host: str) -> list[str]:
    """Host names the app must answer besides loopback: every name when bound to all."""
    if host in ("0.0.0.0", "::", ""):
        return ["*"]
    return [] if host in LOOPBACK else [host]


def _config(app: Any, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=log_level,
        ws_max_size=MAX_FRAME_BYTES,
        # No permessage-deflate: zlib on every ~80 KB update cost more (~4 ms a frame, measured)
        # than the whole model computation, for bytes that stay on this machine.
        ws_per_message_deflate=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        timeout_graceful_shutdown=2,
        lifespan="on",
    )


def serve(
    lenses: Sequence[Any],
    *,
    atlases: Sequence[Any] = (),
    data: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    open_browser: bool = True,
    echo: Any = print,
    log_level: str = "warning",
) -> None:
    """Serve the app until interrupted (Ctrl+C), printing its address; opens a browser tab."""
    app = create_app(lenses, atlases=atlases, data=data, hosts=extra_hosts(host))
    sock = bind(host, port)
    url = url_of(sock)
    echo(f"convlens live app: {url}  (Ctrl+C stops)")
    server = uvicorn.Server(_config(app, log_level))
    if open_browser:
        threading.Timer(0.8, webbrowser.open, args=(url,)).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


@dataclass
class Background:
    """A server running on a thread: its address, and :meth:`stop`."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket
    app: Any

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def start_background(
    lenses: Sequence[Any] | Any,
    *,
    atlases: Sequence[Any] = (),
    data: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    timeout: float = 30.0,
) -> Background:
    """Start the app on a daemon thread and wait until it answers; returns its address."""
    app = create_app(lenses, atlases=atlases, data=data, hosts=extra_hosts(host))
    sock = bind(host, port)
    server = uvicorn.Server(_config(app, "error"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="convlens-serve"
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise ConvlensError("the live app did not start; run 'convlens serve' to see why")
        time.sleep(0.02)
    return Background(url=url_of(sock), server=server, thread=thread, sock=sock, app=app)
