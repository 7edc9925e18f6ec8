"""Grids and sprite sheets drawn with PIL: fast enough for hundreds of tiles, crisp pixels.

``image_grid`` is the labelled picture a person reads; ``sprite_sheet`` packs plain tiles into one
file plus their boxes, for the HTML atlas to cut out with CSS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from convlens.images.colors import FRAME, INK, MUTED, colorize
from convlens.images.normalize import as_float, to_unit_range

GridNorm = Literal["minmax", "symmetric", "none"]

_FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@lru_cache(maxsize=32)
def font(size: int, *, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans (shipped with matplotlib, so present everywhere) at ``size`` pixels."""
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(str(_FONT_DIR / name), size)
    except OSError:  # pragma: no cover - matplotlib without its fonts
        return ImageFont.load_default(size)


def _text_w(text: str, f: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> float:
    return f.getlength(text)


def _label_size(labels: Sequence[str], width: int, size: int, min_size: int) -> int:
    """One font size for all labels of a grid: the largest (down to ``min_size``) where most fit.

    A shared size keeps the grid calm; the few labels still too long get an ellipsis.
    """
    texts = sorted((str(t) for t in labels), key=len)
    typical = texts[min(len(texts) - 1, int(0.9 * len(texts)))] if texts else ""
    for s in range(size, min_size - 1, -1):
        if _text_w(typical, font(s)) <= width:
            return s
    return min_size


def _ellipsize(text: str, width: int, f: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> str:
    """Cut ``text`` with an ellipsis until it fits ``width`` px."""
    if _text_w(text, f) <= width:
        return text
    while len(text) > 1 and _text_w(text + "…", f) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def default_ncols(n: int, cell_aspect: float = 1.0) -> int:
    """Columns for n tiles: from about sqrt(n) up to 1.5x that, trading empty cells against width.

    ``cell_aspect`` (cell height / width, labels included) keeps the *page* square to slightly
    wide rather than the count of rows and columns: 10 -> 5x2, 32 -> 8x4, 64 -> 8x8.
    """
    base = math.sqrt(n * cell_aspect)
    lo = min(n, max(1, math.ceil(base)))
    hi = min(n, max(lo, math.ceil(base * 1.5)))

    def cost(c: int) -> float:
        rows = math.ceil(n / c)
        return (rows * c - n) / n + 0.15 * abs(math.log(c / (rows * cell_aspect)))

    return min(range(lo, hi + 1), key=cost)


def _wrap(text: str, width: int, f: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> list[str]:
    """Greedy word wrap to ``width`` pixels."""
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split(" "):
            trial = f"{line} {word}" if line else word
            if line and _text_w(trial, f) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def _as_batch(images: Any) -> np.ndarray:
    """Images as float (N, C, H, W) with C in {1, 3}; accepts (N, H, W) and lists of PIL images."""
    if isinstance(images, Sequence) and images and isinstance(images[0], Image.Image):
        arrs = [np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0 for im in images]
        return np.stack([a.transpose(2, 0, 1) for a in arrs])
    a = as_float(images)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4 or a.shape[1] not in (1, 3):
        raise ValueError(
            f"need images shaped (N, H, W), (N, 1, H, W) or (N, 3, H, W), got {a.shape}; "
            "pick channels first, e.g. images[:, :1]."
        )
    if a.shape[0] == 0:
        raise ValueError("need at least one image, got an empty batch.")
    return a


def _normalize(
    a: np.ndarray, norm: GridNorm, shared: bool
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Scale a (N, C, H, W) batch into [0, 1]; return the value range when one holds for all."""
    if norm == "none":
        return np.clip(a, 0.0, 1.0), (0.0, 1.0)
    if norm == "minmax":
        if shared:
            lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
            return to_unit_range(a), (lo, hi)
        return to_unit_range(a, batch=True), None
    if norm == "symmetric":
        if shared:
            m = float(np.nanmax(np.abs(a)))
            return to_unit_range(a, mode="symmetric"), (-m, m)
        return to_unit_range(a, mode="symmetric", batch=True), None
    raise ValueError(f"unknown norm {norm!r}; use 'minmax', 'symmetric' or 'none'.")


def _tiles_rgb(a: np.ndarray, cmap: str) -> list[np.ndarray]:
    """Unit-range (N, C, H, W) -> uint8 (H, W, 3) tiles; one channel goes through ``cmap``."""
    if a.shape[1] == 3:
        return [(np.transpose(t, (1, 2, 0)) * 255 + 0.5).astype(np.uint8) for t in a]
    return [colorize(t[0], cmap, 0.0, 1.0) for t in a]


def _default_tile_side(n: int, side: int) -> int:
    """Crisp integer upscales of small images (28 px -> 84 px); big images shrink when many."""
    target = 84 if n <= 64 else 64 if n <= 256 else 48
    if side <= target:
        return side * max(1, round(target / side))
    return min(side, 224 if n <= 16 else 128)


def _resize(tile: np.ndarray, w: int, h: int) -> Image.Image:
    """Nearest-neighbour when enlarging (pixels stay square), area-averaging when shrinking."""
    im = Image.fromarray(tile)
    if (w, h) == im.size:
        return im
    up = w >= im.width and h >= im.height
    return im.resize((w, h), Image.Resampling.NEAREST if up else Image.Resampling.BOX)


def _tile_size(h: int, w: int, side: int) -> tuple[int, int]:
    s = side / max(h, w)
    return max(1, round(w * s)), max(1, round(h * s))


def image_grid(
    images: Any,
    *,
    labels: Sequence[str] | None = None,
    ncols: int | None = None,
    tile_px: int | None = None,
    cmap: str = "gray",
    norm: GridNorm = "minmax",
    shared: bool = False,
    title: str | None = None,
    colorbar: bool = False,
    colorbar_label: str | None = None,
    label_position: Literal["below", "above"] = "below",
) -> Image.Image:
    """A labelled grid of images as one PIL image.

    ``images``: (N, H, W), (N, 1, H, W) or (N, 3, H, W) arrays or tensors (3 channels are shown in
    colour and ignore ``cmap``), or a list of PIL images (pass ``norm="none"``). Each tile is
    scaled on its own (``norm``) unless ``shared=True``, which puts all tiles on one scale so
    brightness compares across tiles. Small images are enlarged by an integer nearest-neighbour
    factor (28 px -> 84 px) so pixels stay crisp; ``tile_px`` sets the longer tile side instead.
    ``ncols`` defaults to ceil(sqrt(N)) or a little more (fewest empty cells), so grids are square
    to slightly wide.
    ``colorbar`` adds a horizontal bar: in data units when the scale is shared (or ``"none"``),
    otherwise marked per tile ("min ... max" or "-max ... 0 ... +max").
    """
    a = _as_batch(images)
    n, c, h, w = a.shape
    if labels is not None and len(labels) != n:
        raise ValueError(f"image_grid: got {len(labels)} labels for {n} images.")
    if colorbar and c == 3:
        raise ValueError("image_grid: a colorbar needs single-channel images; RGB has no scale.")
    unit, vrange = _normalize(a, norm, shared)
    tiles = _tiles_rgb(unit, cmap)

    side = tile_px if tile_px is not None else _default_tile_side(n, max(h, w))
    tw, th = _tile_size(h, w, side)
    pad, gap = max(10, tw // 8), max(6, tw // 12)
    label_size = int(np.clip(tw * 0.13, 10, 13))
    if labels is not None:
        label_size = _label_size(labels, tw + gap - 2, label_size, 9)
    label_h = label_size + 8 if labels is not None else 0
    cols = max(1, min(n, ncols or default_ncols(n, (th + label_h + gap) / (tw + gap))))
    rows = math.ceil(n / cols)
    grid_w = cols * tw + (cols - 1) * gap
    width = max(grid_w + 2 * pad, 200 if title else 0)

    title_lines: list[str] = []
    title_font = font(int(np.clip(width / 40, 14, 22)), bold=True)
    if title:
        title_lines = _wrap(title, width - 2 * pad, title_font)
    title_h = len(title_lines) * int(title_font.size * 1.3) + (pad // 2 if title_lines else 0)
    cbar_h = 58 if colorbar else 0
    height = pad + title_h + rows * (th + label_h) + (rows - 1) * gap + cbar_h + pad

    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = pad
    for line in title_lines:
        draw.text((pad, y), line, fill=INK, font=title_font)
        y += int(title_font.size * 1.3)
    top = pad + title_h
    left = (width - grid_w) // 2
    for i, tile in enumerate(tiles):
        r, col = divmod(i, cols)
        x0 = left + col * (tw + gap)
        y0 = top + r * (th + label_h + gap)
        ty = y0 + (label_h if label_position == "above" else 0)
        canvas.paste(_resize(tile, tw, th), (x0, ty))
        draw.rectangle((x0 - 1, ty - 1, x0 + tw, ty + th), outline=FRAME)
        if labels is not None and labels[i]:
            text = _ellipsize(str(labels[i]), tw + gap - 2, font(label_size))
            ly = ty + th + 3 if label_position == "below" else y0 + 1
            draw.text((x0 + tw / 2, ly), text, fill=INK, font=font(label_size), anchor="ma")
    if colorbar:
        grid_bottom = top + rows * (th + label_h) + (rows - 1) * gap
        _draw_colorbar(canvas, cmap, norm, vrange, colorbar_label, grid_bottom + 12, width)
    return canvas


def _fmt(v: float) -> str:
    return f"{v:.3g}".replace("-", "−")


def _draw_colorbar(
    canvas: Image.Image,
    cmap: str,
    norm: GridNorm,
    vrange: tuple[float, float] | None,
    label: str | None,
    y: int,
    width: int,
) -> None:
    """A horizontal colour scale under the grid, with end (and zero) ticks and a caption."""
    draw = ImageDraw.Draw(canvas)
    bar_w = min(width - 60, 320)
    x0, bar_h = (width - bar_w) // 2, 12
    ramp = colorize(np.tile(np.linspace(0.0, 1.0, bar_w), (bar_h, 1)), cmap, 0.0, 1.0)
    canvas.paste(Image.fromarray(ramp), (x0, y))
    draw.rectangle((x0 - 1, y - 1, x0 + bar_w, y + bar_h), outline=FRAME)
    f = font(11)
    if vrange is not None:
        ticks = [(0.0, _fmt(vrange[0])), (1.0, _fmt(vrange[1]))]
        if vrange[0] < 0 < vrange[1]:
            ticks.insert(1, (-vrange[0] / (vrange[1] - vrange[0]), "0"))
        caption = label or "value"
    elif norm == "symmetric":
        ticks = [(0.0, "−max"), (0.5, "0"), (1.0, "+max")]
        caption = label or "each tile on its own symmetric scale"
    else:
        ticks = [(0.0, "min"), (1.0, "max")]
        caption = label or "each tile on its own min–max scale"
    for t, text in ticks:
        x = x0 + t * (bar_w - 1)
        draw.line((x, y + bar_h, x, y + bar_h + 3), fill=INK)
        draw.text((x, y + bar_h + 4), text, fill=INK, font=f, anchor="ma")
    draw.text((x0 + bar_w / 2, y + bar_h + 20), caption, fill=MUTED, font=f, anchor="ma")


def sprite_sheet(
    images: Any,
    *,
    tile_px: int,
    ncols: int | None = None,
    cmap: str = "gray",
    norm: GridNorm = "minmax",
    shared: bool = False,
) -> tuple[Image.Image, list[dict[str, int]]]:
    """Plain tiles (no labels, no gaps) in one RGB sheet, plus each tile's box in pixels.

    One file per layer instead of thousands of tiny PNGs; the HTML atlas shows tile i with CSS
    ``background-position: -x px -y px`` and size ``w x h``. ``tile_px`` is the longer tile side;
    normalization works as in :func:`image_grid`.
    """
    if tile_px < 1:
        raise ValueError(f"sprite_sheet: tile_px must be >= 1, got {tile_px}.")
    a = _as_batch(images)
    n, _, h, w = a.shape
    unit, _ = _normalize(a, norm, shared)
    tw, th = _tile_size(h, w, tile_px)
    cols = max(1, min(n, ncols or default_ncols(n)))
    rows = math.ceil(n / cols)
    sheet = Image.new("RGB", (cols * tw, rows * th), "white")
    boxes: list[dict[str, int]] = []
    for i, tile in enumerate(_tiles_rgb(unit, cmap)):
        r, col = divmod(i, cols)
        box = {"x": col * tw, "y": r * th, "w": tw, "h": th}
        sheet.paste(_resize(tile, tw, th), (box["x"], box["y"]))
        boxes.append(box)
    return sheet, boxes
