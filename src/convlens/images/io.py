"""Writing pictures: atomic PNG saves for PIL images and matplotlib figures.

Atomic (temp file in the same folder, then ``os.replace``) so a crash or a concurrent reader, such
as the live web app polling an Atlas folder, never sees a half-written PNG.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import matplotlib as mpl
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from convlens.fileio import write_atomic


def _write(path: str | os.PathLike[str], writer: Callable[[IO[bytes]], None]) -> Path:
    def to_file(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            writer(f)

    return write_atomic(path, to_file)


@contextmanager
def plain_text(fig: Figure) -> Iterator[None]:
    """Draw every text of ``fig`` literally: no matplotlib math text.

    Labels carry names from files (class folders, Keras layer names); a ``$`` in one would be
    parsed as TeX and could fail the whole drawing (``$\\frac{$``). convlens never uses math
    text, so it is switched off for the texts that exist and for tick labels made while drawing.
    """
    for text in fig.findobj(Text):
        text.set_parse_math(False)
    with mpl.rc_context({"text.parse_math": False}):
        yield


def save_png(image: Image.Image, path: str | os.PathLike[str]) -> Path:
    """Write ``image`` as PNG to ``path`` atomically, creating parent folders; returns the path."""
    return _write(path, lambda f: image.save(f, format="PNG", optimize=False))


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: float | None = None) -> Path:
    """Write a matplotlib figure as a PNG atomically, creating parent folders; returns the path.

    No ``bbox_inches="tight"``: convlens figures are laid out in exact pixels, and cropping would
    shift them. ``dpi`` defaults to the figure's own (convlens figures are built at 150).
    """

    def draw(f: IO[bytes]) -> None:
        with plain_text(fig):
            fig.savefig(f, format="png", dpi=dpi or fig.dpi, facecolor="white")

    return _write(path, draw)


def figure_to_image(fig: Figure, *, dpi: float | None = None) -> Image.Image:
    """Render a figure to an RGB PIL image (for grids, notebooks and pixel-level tests)."""
    buf = io.BytesIO()
    with plain_text(fig):
        fig.savefig(buf, format="png", dpi=dpi or fig.dpi, facecolor="white")
    buf.seek(0)
    with Image.open(buf) as im:
        return im.convert("RGB")
