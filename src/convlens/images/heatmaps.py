"""Heatmap figures: one method's signed map over its input, and a panel comparing methods.

Every map is drawn on the diverging colormap (red: evidence for the target, blue: against, white
or transparent at zero) over a symmetric range, never min-max, so zero always looks like zero.
CAM maps are also shown at their native resolution as crisp cells: a 7x7 map stays 7x7.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from convlens.images.colors import DIVERGING, MUTED, colorize, heatmap_overlay, to_display
from convlens.images.figures import (
    COLORBAR_SPACE,
    LABEL_PT,
    MARGIN,
    SMALL_PT,
    SUBTITLE_PT,
    TITLE_PT,
    Canvas,
    Sheet,
    add_colorbar,
    header_height,
    line_px,
    text_px,
    wrap_px,
)
from convlens.images.normalize import as_float

OVERLAY_ALPHA = 0.85  # strong: on MNIST's black background faint colour reads as shadow


@dataclass
class PanelEntry:
    """One method's column in a panel: its map, native CAM map if any, and caption lines."""

    name: str
    values: Any  # (H, W) signed
    native: Any | None = None  # (h, w) for CAM methods
    caption: list[str] = field(default_factory=list)
    scale: float | None = None  # symmetric range; default max |values|


def _plane(a: Any) -> np.ndarray:
    out = as_float(a).astype(np.float32)
    while out.ndim > 2 and out.shape[0] == 1:
        out = out[0]
    if out.ndim != 2:
        raise ValueError(f"need a 2-D (H, W) map, got shape {out.shape}.")
    return out


def map_scale(values: Any) -> float:
    """Symmetric range of a signed map: its max |value| (1 for an all-zero map)."""
    m = float(np.nanmax(np.abs(_plane(values)))) if np.size(values) else 0.0
    return m if m > 0 else 1.0


def tile_size(image: Any, target: int) -> int:
    """A tile side near ``target`` that is a whole multiple of the input side (crisp pixels)."""
    side = max(to_display(image).shape[:2])
    return side * max(1, round(target / side)) if side < target else target


def fit_exact(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 (h, w, 3) tile to exactly size x size: crisp cells up, area average down."""
    if rgb.shape[:2] == (size, size):
        return rgb
    up = max(rgb.shape[:2]) <= size
    method = Image.Resampling.NEAREST if up else Image.Resampling.BOX
    return np.asarray(Image.fromarray(rgb).resize((size, size), method))


def input_tile(image: Any, size: int) -> np.ndarray:
    disp = to_display(image)
    rgb = np.repeat(disp[..., None], 3, axis=2) if disp.ndim == 2 else disp
    return fit_exact((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8), size)


def overlay_tile(image: Any, values: Any, scale: float, size: int) -> np.ndarray:
    """The signed map over a grey copy of the input, opacity growing with |value| / scale."""
    over = heatmap_overlay(image, _plane(values), scale=scale, alpha=OVERLAY_ALPHA)
    return fit_exact(np.asarray(over), size)


def map_tile(values: Any, scale: float, size: int) -> np.ndarray:
    """The signed map alone on the diverging colormap over [-scale, scale]."""
    return fit_exact(colorize(_plane(values), DIVERGING, -scale, scale), size)


def heatmap_panel(
    image: Any,
    entries: Sequence[PanelEntry],
    *,
    title: str,
    subtitle: Sequence[str] = (),
    shared_scale: float | None = None,
    tile: int = 128,
    max_cols: int = 7,
) -> Figure:
    """Methods side by side: rows "overlay", "signed map" and (for CAMs) "native", per column.

    The input comes first; columns wrap into bands of at most ``max_cols``, balanced. With
    ``shared_scale`` every map uses that one symmetric range and one colorbar is drawn;
    otherwise each column has its own range, printed under it.
    """
    if not entries:
        raise ValueError("heatmap_panel: need at least one entry.")
    tile = tile_size(image, tile)
    cells: list[tuple[str, list[np.ndarray], list[str]]] = [
        ("input", [input_tile(image, tile)], [])
    ]
    for e in entries:
        s = shared_scale if shared_scale else (e.scale or map_scale(e.values))
        tiles = [overlay_tile(image, e.values, s, tile), map_tile(e.values, s, tile)]
        caption = list(e.caption)
        if e.native is not None:
            nat = _plane(e.native)
            tiles.append(map_tile(nat, s, tile))
            caption.insert(0, f"native {nat.shape[0]}×{nat.shape[1]}")
        if not shared_scale:
            caption.append(f"range ±{s:.3g}")
        cells.append((e.name, tiles, caption))

    n_bands = -(-len(cells) // max_cols)
    cols = -(-len(cells) // n_bands)
    bands = [cells[i : i + cols] for i in range(0, len(cells), cols)]
    row_names = ["overlay", "signed map", "native (CAM)"]
    gap, row_gap, band_gap = 16, 8, 18
    label_w = max(text_px(r, LABEL_PT) for r in row_names) + 14
    name_lines = [wrap_px(name.replace("_", " "), tile + gap - 4, LABEL_PT) for name, _, _ in cells]
    head_h = max(len(n) for n in name_lines) * line_px(LABEL_PT, 1.25) + 4
    cap_h = max(len(c) for _, _, c in cells) * line_px(SMALL_PT, 1.3) + 4

    def rows_in(band: list[tuple[str, list[np.ndarray], list[str]]]) -> int:
        return max(len(t) for _, t, _ in band)

    band_h = [head_h + rows_in(b) * (tile + row_gap) + cap_h for b in bands]
    sheet_w = label_w + cols * tile + (cols - 1) * gap + 2  # + the last frame
    width = max(2 * MARGIN + sheet_w + (COLORBAR_SPACE if shared_scale else 0), 640)
    sub = [ln for s in subtitle for ln in wrap_px(s, width - 2 * MARGIN, SUBTITLE_PT)]
    sheet = Sheet(width=sheet_w, height=sum(band_h) + (len(bands) - 1) * band_gap)

    y0, k = 0, 0
    for b, band in enumerate(bands):
        for r in range(rows_in(band)):
            y = y0 + head_h + r * (tile + row_gap) + tile / 2
            sheet.text(0, y, row_names[r], fontsize=LABEL_PT, color=MUTED, va="center")
        for c, (_, tiles, caption) in enumerate(band):
            x = label_w + c * (tile + gap)
            for i, line in enumerate(name_lines[k]):
                sheet.text(x + tile / 2, y0 + i * line_px(LABEL_PT, 1.25), line,
                           fontsize=LABEL_PT, fontweight="bold", ha="center", va="top")  # fmt: skip
            for r, t in enumerate(tiles):
                sheet.add(x, y0 + head_h + r * (tile + row_gap), t)
            y_cap = y0 + head_h + rows_in(band) * (tile + row_gap)
            for i, line in enumerate(caption):
                sheet.text(x + tile / 2, y_cap + i * line_px(SMALL_PT, 1.3), line,
                           fontsize=SMALL_PT, ha="center", va="top", color=MUTED)  # fmt: skip
            k += 1
        y0 += band_h[b] + band_gap

    y_sheet = header_height(len(sub)) + 14
    canvas = Canvas(width, y_sheet + sheet.height + MARGIN)
    canvas.header(title, sub)
    sheet.draw(canvas.axes(MARGIN, y_sheet, sheet.width, sheet.height, label="panel"))
    if shared_scale:
        add_colorbar(canvas, MARGIN + sheet.width + 24, y_sheet + head_h, 2 * tile + row_gap,
                     cmap=DIVERGING, vmin=-shared_scale, vmax=shared_scale,
                     label="evidence, shared scale")  # fmt: skip
    return canvas.fig


def heatmap_figure(
    image: Any,
    values: Any,
    *,
    title: str,
    subtitle: Sequence[str] = (),
    native: Any | None = None,
    scale: float | None = None,
    tile: int = 224,
    colorbar_label: str = "evidence",
) -> Figure:
    """One method: input, overlay, signed map (and native CAM map), with a colorbar."""
    s = scale or map_scale(values)
    tile = tile_size(image, tile)
    tiles = [("input", input_tile(image, tile)), ("overlay", overlay_tile(image, values, s, tile)),
             ("signed map", map_tile(values, s, tile))]  # fmt: skip
    if native is not None:
        nat = _plane(native)
        tiles.append((f"native {nat.shape[0]}×{nat.shape[1]}", map_tile(nat, s, tile)))
    gap = 16
    label_h = line_px(SMALL_PT, 1.3) + 4
    sheet = Sheet(width=len(tiles) * tile + (len(tiles) - 1) * gap + 2, height=tile + label_h + 2)
    for i, (label, t) in enumerate(tiles):
        sheet.add(i * (tile + gap), 0, t, label)
    width = max(2 * MARGIN + sheet.width + COLORBAR_SPACE,
                text_px(title, TITLE_PT, bold=True) + 2 * MARGIN)  # fmt: skip
    sub = [ln for s_ in subtitle for ln in wrap_px(s_, width - 2 * MARGIN, SUBTITLE_PT)]
    y_sheet = header_height(len(sub)) + 14
    canvas = Canvas(width, y_sheet + sheet.height + MARGIN)
    canvas.header(title, sub)
    sheet.draw(canvas.axes(MARGIN, y_sheet, sheet.width, sheet.height, label="tiles"))
    add_colorbar(canvas, MARGIN + sheet.width + 24, y_sheet, tile, cmap=DIVERGING, vmin=-s,
                 vmax=s, label=colorbar_label)  # fmt: skip
    return canvas.fig
