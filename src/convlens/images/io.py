"""Writing pictures: atomic PNG saves for PIL images and matplotlib figures.

Atomic (temp file in the same folder, then ``os.replace``) so a crash or a concurrent reader, such
as the live web app polling an Atlas folder, never sees a half-written PNG.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from matplotlib.figure import Figure
from PIL import Image

from convlens.fileio import write_atomic


def _write(path: str | os.PathLike[str], writer: Callable[[IO[bytes]], None]) -> Path:
    def to_file(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            writer(f)

    return write_atomic(path, to_file)


def save_png(image: Image.Image, path: str | os.PathLike[str]) -> Path:
    """Write ``image`` as PNG to ``path`` atomically, creating parent folders; returns the path."""
    return _write(path, lambda f: image.save(f, format="PNG", optimize=False))


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: float | None = None) -> Path:
    """Write a matplotlib figure as a PNG atomically, creating parent folders; returns the path.

    No ``bbox_inches="tight"``: convlens figures are laid out in exact pixels, and cropping would
    shift them. ``dpi`` defaults to the figure's own (convlens figures are built at 150).
    """
    return _write(
        path,
        lambda f: fig.savefig(f, format="png", dpi=dpi or fig.dpi, facecolor="white"),
    )


def figure_to_image(fig: Figure, *, dpi: float | None = None) -> Image.Image:
    """Render a figure to an RGB PIL image (for grids, notebooks and pixel-level tests)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi, facecolor="white")
    buf.seek(0)
    with Image.open(buf) as im:
        return im.convert("RGB")
