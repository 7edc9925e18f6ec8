"""The live app inside a notebook cell: a server on a background thread, shown in an iframe.

``cl.widget(lens)`` starts (or reuses) a loopback server for the model and returns an object
that Jupyter displays as an ``<iframe>`` of the drawing view. It works wherever the notebook's
browser can reach the kernel's 127.0.0.1 (Jupyter, JupyterLab and VS Code on your own machine);
on a remote kernel (Colab, a hub) the browser cannot reach it: run ``convlens serve`` there and
forward the port instead. No ipywidgets needed: the iframe is plain HTML.
"""

from __future__ import annotations

import html
from typing import Any

from .run import Background, start_background

_RUNNING: dict[tuple[int, ...], Background] = {}


class Widget:
    """A running live app embedded in a notebook cell (``_repr_html_``); ``stop()`` ends it."""

    def __init__(self, background: Background, height: int) -> None:
        self.background = background
        self.height = height

    @property
    def url(self) -> str:
        return self.background.url

    def _repr_html_(self) -> str:
        src = html.escape(self.url + "?embed=1", quote=True)
        return (
            f'<iframe src="{src}" title="convlens live app" width="100%" height="{self.height}" '
            'style="border:1px solid #d0d7de;border-radius:6px" loading="lazy"></iframe>'
            f'<div style="font:12px sans-serif;color:#6b7280">convlens live app at '
            f'<a href="{src}" target="_blank">{html.escape(self.url)}</a></div>'
        )

    def __repr__(self) -> str:
        return f"convlens live app at {self.url} (open it in a browser; .stop() ends it)"

    def stop(self) -> None:
        """Stop the server (the iframe goes blank)."""
        for key, bg in list(_RUNNING.items()):
            if bg is self.background:
                del _RUNNING[key]
        self.background.stop()


def widget(lens: Any, *others: Any, atlas: Any = None, height: int = 820, port: int = 0) -> Widget:
    """Embed the live drawing view of ``lens`` (and ``others`` side by side) in a notebook.

    The server keeps running for the kernel's lifetime; calling again with the same models
    reuses it. ``atlas``: an atlas folder for ``lens`` (unit details without recomputation).
    """
    lenses = [lens, *others]
    key = tuple(id(x) for x in lenses)
    bg = _RUNNING.get(key)
    if bg is None or not bg.thread.is_alive():
        bg = start_background(lenses, atlases=[atlas] if atlas else (), port=port)
        _RUNNING[key] = bg
    return Widget(bg, height)
