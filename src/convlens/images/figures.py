"""Pixel-exact figure building blocks shared by the kernel and activation figures.

Figures are laid out in output pixels at a fixed DPI instead of with subplots: hundreds of tiles
become ONE image in ONE axes (fast to draw, one shared colour scale by construction), and every
label lands exactly where it was computed. No pyplot, so no global figure registry to leak.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colorbar import Colorbar
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from PIL import Image

from convlens.images.colors import FRAME, INK, MUTED, get_cmap
from convlens.images.grids import _wrap, default_ncols, font

DPI = 150  # convlens figures are built and saved at this resolution
PT = DPI / 72  # output pixels per typographic point
MARGIN = 28
TITLE_PT, SUBTITLE_PT, LABEL_PT, SMALL_PT = 13.0, 8.5, 7.5, 6.5
_FRAME_RGB = np.array([int(FRAME[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)


def fmt_value(v: float) -> str:
    """A number for a label: 3 significant digits and a real minus sign."""
    return f"{v:.3g}".replace("-", "−")


def line_px(pt: float, leading: float = 1.4) -> int:
    """Height in output pixels of one line of text at ``pt`` points."""
    return math.ceil(pt * PT * leading)


def text_px(text: str, pt: float, *, bold: bool = False) -> int:
    """Width in output pixels of ``text`` in DejaVu Sans (matplotlib's default) at ``pt``."""
    return math.ceil(font(max(1, round(pt * PT)), bold=bold).getlength(text))


def wrap_px(text: str, width: int, pt: float) -> list[str]:
    """Word-wrap ``text`` to ``width`` output pixels at ``pt`` points."""
    return _wrap(text, width, font(max(1, round(pt * PT))))


def fit_tile(rgb: np.ndarray, target: int) -> np.ndarray:
    """Size a uint8 (h, w, 3) tile to about ``target`` px on its longer side.

    Small tiles grow by an integer nearest-neighbour factor so each weight or activation is a
    crisp square; large ones shrink by area averaging.
    """
    h, w = rgb.shape[:2]
    side = max(h, w)
    if side <= target:
        u = max(1, round(target / side))
        return np.repeat(np.repeat(rgb, u, axis=0), u, axis=1)
    s = target / side
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX))


@dataclass
class Sheet:
    """Tiles placed in a pixel canvas, plus the texts that label them (in the same pixels)."""

    width: int
    height: int
    tiles: list[tuple[int, int, np.ndarray]] = field(default_factory=list)  # (x, y, rgb)
    texts: list[tuple[float, float, str, dict[str, object]]] = field(default_factory=list)

    def add(self, x: int, y: int, rgb: np.ndarray, label: str | None = None) -> None:
        """Place a tile at (x, y); ``label`` goes centred just below it."""
        self.tiles.append((x, y, rgb))
        if label:
            h, w = rgb.shape[:2]
            self.text(x + w / 2, y + h + 2, label, ha="center", va="top", fontsize=SMALL_PT)

    def text(self, x: float, y: float, s: str, **kw: object) -> None:
        self.texts.append((x, y, s, kw))

    def pixels(self) -> np.ndarray:
        """The canvas: white, tiles pasted, each with a 1-px grey frame (zero stays visible)."""
        arr = np.full((self.height, self.width, 3), 255, dtype=np.uint8)
        for x, y, rgb in self.tiles:
            h, w = rgb.shape[:2]
            arr[max(y - 1, 0) : y + h + 1, max(x - 1, 0) : x + w + 1] = _FRAME_RGB
            arr[y : y + h, x : x + w] = rgb
        return arr

    def draw(self, ax: Axes) -> None:
        """Show the canvas 1:1 in ``ax`` (which must be exactly width x height px) with texts."""
        ax.imshow(self.pixels(), extent=(0, self.width, self.height, 0), interpolation="nearest")
        ax.set_xlim(0, self.width)
        ax.set_ylim(self.height, 0)
        ax.set_aspect("auto")
        ax.set_axis_off()
        for x, y, s, kw in self.texts:
            opts: dict[str, object] = {"color": INK, "clip_on": False}
            opts.update(kw)
            ax.text(x, y, s, **opts)  # type: ignore[arg-type]


def grid_sheet(
    tiles: Sequence[np.ndarray], labels: Sequence[str] | None, *, ncols: int | None = None
) -> Sheet:
    """Equal tiles in a near-square, slightly wide grid, each labelled below."""
    n = len(tiles)
    th, tw = tiles[0].shape[:2]
    pad, gap = 4, max(8, tw // 8)
    label_h = line_px(SMALL_PT, 1.3) + 2 if labels else 0
    cols = max(1, min(n, ncols or default_ncols(n, (th + label_h + gap) / (tw + gap))))
    rows = math.ceil(n / cols)
    sheet = Sheet(
        width=2 * pad + cols * tw + (cols - 1) * gap,
        height=2 * pad + rows * (th + label_h) + (rows - 1) * gap,
    )
    for i, rgb in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet.add(
            pad + c * (tw + gap), pad + r * (th + label_h + gap), rgb, labels[i] if labels else None
        )
    return sheet


class Canvas:
    """A Figure addressed in output pixels from the top-left, like the sheets inside it."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = int(width), int(height)
        self.fig = Figure(figsize=(self.width / DPI, self.height / DPI), dpi=DPI, facecolor="white")

    def axes(self, x: float, y: float, w: float, h: float, *, label: str) -> Axes:
        box = (x / self.width, 1 - (y + h) / self.height, w / self.width, h / self.height)
        return self.fig.add_axes(box, label=label)

    def text(self, x: float, y: float, s: str, **kw: object) -> None:
        opts: dict[str, object] = {"va": "top", "ha": "left", "color": INK}
        opts.update(kw)
        self.fig.text(x / self.width, 1 - y / self.height, s, **opts)  # type: ignore[arg-type]

    def header(self, title: str, subtitle: list[str], y: int = MARGIN) -> int:
        """Title and (already wrapped) subtitle lines at the top-left; returns the y below them."""
        self.text(MARGIN, y, title, fontsize=TITLE_PT, fontweight="bold")
        y += line_px(TITLE_PT)
        for line in subtitle:
            self.text(MARGIN, y, line, fontsize=SUBTITLE_PT, color=MUTED)
            y += line_px(SUBTITLE_PT)
        return y


def header_height(subtitle_lines: int) -> int:
    return MARGIN + line_px(TITLE_PT) + subtitle_lines * line_px(SUBTITLE_PT)


COLORBAR_SPACE = 24 + 16 + 92  # gap, bar, tick labels + axis label


def add_colorbar(
    canvas: Canvas,
    x: int,
    y: int,
    h: int,
    *,
    cmap: str | Colormap,
    vmin: float,
    vmax: float,
    label: str,
) -> Colorbar:
    """A vertical colorbar at pixel (x, y), ``h`` tall, ticked at the ends (and at zero)."""
    cax = canvas.axes(x, y, 16, h, label="colorbar")
    sm = ScalarMappable(norm=Normalize(vmin=vmin, vmax=vmax), cmap=get_cmap(cmap))
    cb = canvas.fig.colorbar(sm, cax=cax)
    ticks = [vmin, 0.0, vmax] if vmin < 0 < vmax else [vmin, vmax]
    cb.set_ticks(ticks, labels=[fmt_value(t) for t in ticks])
    cb.set_label(label, fontsize=LABEL_PT + 1, color=INK)
    cb.ax.tick_params(labelsize=LABEL_PT, colors=INK, length=3)
    cb.outline.set_edgecolor(FRAME)  # type: ignore[operator]
    return cb


def pick(
    n: int, which: slice | Sequence[int] | None, limit: int, what: str, param: str
) -> tuple[list[int], str | None]:
    """Indices to show out of ``n`` and a note for the subtitle when not all are shown.

    ``which`` (a slice or explicit indices) wins; otherwise the first ``limit``, with a hint
    naming ``param`` so the reader knows how to page on.
    """
    if which is None:
        if n <= limit:
            return list(range(n)), None
        nxt = f"slice({limit}, {min(2 * limit, n)})"
        return list(range(limit)), f"{what} 0–{limit - 1} of {n} shown ({param}={nxt} for more)"
    idx = list(range(n))[which] if isinstance(which, slice) else [int(i) for i in which]
    bad = [i for i in idx if not 0 <= i < n]
    if bad or not idx:
        raise ValueError(f"{param}: need indices in 0..{n - 1}, got {which!r}.")
    if len(idx) == n:
        return idx, None
    shown = f"{idx[0]}–{idx[-1]}" if idx == list(range(idx[0], idx[-1] + 1)) else f"{len(idx)}"
    return idx, f"{what} {shown} of {n} shown"
