"""Heatmap figures: one method's map over its input, and a panel comparing methods.

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

from convlens.images.colors import DIVERGING, INK, MUTED, colorize, heatmap_overlay, to_display
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


WARN = "#b42318"  # a method that fails its own faithfulness check: frame and text


@dataclass
class PanelEntry:
    """One method's column in a panel: its map, native CAM map if any, and caption lines.

    ``map_label`` names what the map is ("signed", "positive part (ReLU)"); ``warning`` (e.g.
    "worse than random on insertion") frames the column's tiles and is printed under them.
    """

    name: str
    values: Any  # (H, W)
    native: Any | None = None  # (h, w) for CAM methods
    caption: list[str] = field(default_factory=list)
    scale: float | None = None  # symmetric range; default max |values|
    map_label: str = "signed"
    warning: str | None = None


PANEL_CAPTIONS = ("deletion AUC\nlower is better", "insertion AUC\nhigher is better")


def faithfulness_warning(d: float, i: float, r_del: float, r_ins: float) -> str | None:
    """Words for the picture when a map fails its own check (does not beat the random order)."""
    fails = (["deletion"] if d >= r_del else []) + (["insertion"] if i <= r_ins else [])
    if not fails:
        return None
    return "not faithful: no better than random on " + " and ".join(fails)


def map_label(options: dict[str, Any]) -> str:
    """What a heatmap with these options shows: its positive part (CAM ReLU) or the signed map."""
    return "positive part (ReLU)" if options.get("relu") else "signed"


def warn_frame(rgb: np.ndarray, width: int = 3) -> np.ndarray:
    """The tile with a red frame drawn inside its border: this map failed its own check."""
    out = rgb.copy()
    red = np.array([int(WARN[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)
    out[:width], out[-width:], out[:, :width], out[:, -width:] = red, red, red, red
    return out


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
    caption_labels: Sequence[str] = (),
    tile: int = 128,
    max_cols: int = 7,
) -> Figure:
    """Methods side by side: rows "overlay", "map" and (for CAMs) "native", one column each.

    ``caption_labels`` name the first caption lines of every entry, as rows of a table (e.g.
    "deletion AUC\nlower is better" beside each method's "0.07 (random 0.70)").

    Every row has one colour scale and its colorbar: with ``shared_scale`` that one symmetric
    range; otherwise each map is drawn relative to its own largest |value| (printed under the
    column), so the row's colorbar reads -1..1. Each tile's caption sits right under it; a
    column whose method failed its faithfulness check is framed in red with the warning below.
    The input comes first; columns wrap into bands of at most ``max_cols``, balanced.
    """
    if not entries:
        raise ValueError("heatmap_panel: need at least one entry.")
    tile = tile_size(image, tile)
    cells: list[tuple[str, list[tuple[np.ndarray, str]], list[str], str | None]] = [
        ("input", [(input_tile(image, tile), "")], [], None)
    ]
    for e in entries:
        s = shared_scale if shared_scale else (e.scale or map_scale(e.values))
        tiles = [(overlay_tile(image, e.values, s, tile), ""),
                 (map_tile(e.values, s, tile), e.map_label)]  # fmt: skip
        if e.native is not None:
            nat = _plane(e.native)
            tiles.append((map_tile(nat, s, tile), f"native {nat.shape[0]}×{nat.shape[1]}"))
        if e.warning:
            tiles = [(warn_frame(t), label) for t, label in tiles]
        caption = list(e.caption)
        if not shared_scale:
            caption.append(f"range ±{s:.3g}")
        cells.append((e.name, tiles, caption, e.warning))

    n_bands = -(-len(cells) // max_cols)
    cols = -(-len(cells) // n_bands)
    bands = [cells[i : i + cols] for i in range(0, len(cells), cols)]
    row_names = ["overlay", "map", "native (CAM)"]
    gap, row_gap, band_gap = 16, 6, 20
    wrap_w = tile + gap - 4
    label_w = max(text_px(r, LABEL_PT) for r in row_names) + 14
    name_lines = [wrap_px(c[0].replace("_", " "), wrap_w, LABEL_PT) for c in cells]
    head_h = max(len(n) for n in name_lines) * line_px(LABEL_PT, 1.25) + 4
    tile_cap = line_px(SMALL_PT, 1.3) + 2  # one caption line under every tile
    row_h = tile + tile_cap + row_gap
    cap_line = line_px(SMALL_PT, 1.3)
    table = [label.split("\n") for label in caption_labels]  # the caption rows' own labels
    table_h = [len(lines) * cap_line + 3 for lines in table]
    label_w = max([label_w, *(text_px(ln, SMALL_PT) + 10 for lines in table for ln in lines)])
    captions = [[wrap_px(c, wrap_w, SMALL_PT) for c in cell[2]] for cell in cells]
    warnings = [wrap_px("⚠ " + c[3], wrap_w, SMALL_PT) if c[3] else [] for c in cells]

    def caption_height(k: int) -> int:
        rest = captions[k][len(table) :]
        return sum(table_h) + (sum(len(c) for c in rest) + len(warnings[k])) * cap_line

    def rows_in(band: list[Any]) -> int:
        return max(len(c[1]) for c in band)

    band_h = []
    for b, band in enumerate(bands):
        first = b * cols
        cap_h = max(caption_height(k) for k in range(first, first + len(band))) + 4
        band_h.append(head_h + rows_in(band) * row_h + cap_h)
    sheet_w = label_w + cols * tile + (cols - 1) * gap + 2  # + the last frame
    width = max(2 * MARGIN + sheet_w + COLORBAR_SPACE, 640)
    sub = [ln for s in subtitle for ln in wrap_px(s, width - 2 * MARGIN, SUBTITLE_PT)]
    sheet = Sheet(width=sheet_w, height=sum(band_h) + (len(bands) - 1) * band_gap)

    y0, k = 0, 0
    bar_rows: list[int] = []  # y of every row of maps (not the input-only first row)
    for b, band in enumerate(bands):
        for r in range(rows_in(band)):
            y = y0 + head_h + r * row_h
            sheet.text(0, y + tile / 2, row_names[r], fontsize=LABEL_PT, color=MUTED, va="center")
            bar_rows.append(y)
        y_cap = y0 + head_h + rows_in(band) * row_h
        if len(band) > 1 or b > 0:  # the caption table's row labels (not for the input alone)
            y = y_cap
            for lines, h in zip(table, table_h, strict=True):
                for i, line in enumerate(lines):
                    sheet.text(0, y + i * cap_line, line, fontsize=SMALL_PT, va="top",
                               color=MUTED if i else INK)  # fmt: skip
                y += h
        for c, (_, tiles, _, _) in enumerate(band):
            x = label_w + c * (tile + gap)
            for i, line in enumerate(name_lines[k]):
                sheet.text(x + tile / 2, y0 + i * line_px(LABEL_PT, 1.25), line,
                           fontsize=LABEL_PT, fontweight="bold", ha="center", va="top")  # fmt: skip
            for r, (t, label) in enumerate(tiles):
                sheet.add(x, y0 + head_h + r * row_h, t, label or None)
            placed: list[tuple[float, str, str, str]] = []  # (y, text, colour, weight)
            y = y_cap
            for r, h in enumerate(table_h):  # one table row per labelled caption line
                if r < len(captions[k]):
                    placed += [(y + i * cap_line, ln, INK, "normal")
                               for i, ln in enumerate(captions[k][r])]  # fmt: skip
                y += h
            for wrapped in captions[k][len(table) :]:
                placed += [(y + i * cap_line, ln, MUTED, "normal") for i, ln in enumerate(wrapped)]
                y += len(wrapped) * cap_line
            placed += [(y + i * cap_line, ln, WARN, "bold") for i, ln in enumerate(warnings[k])]
            for yy, line, color, weight in placed:
                sheet.text(x + tile / 2, yy, line, fontsize=SMALL_PT, ha="center", va="top",
                           color=color, fontweight=weight)  # fmt: skip
            k += 1
        y0 += band_h[b] + band_gap

    y_sheet = header_height(len(sub)) + 14
    canvas = Canvas(width, y_sheet + sheet.height + MARGIN)
    canvas.header(title, sub)
    sheet.draw(canvas.axes(MARGIN, y_sheet, sheet.width, sheet.height, label="panel"))
    lim = shared_scale or 1.0
    label = "evidence" if shared_scale else "÷ max |value|"
    for y in bar_rows:
        add_colorbar(canvas, MARGIN + sheet.width + 24, y_sheet + y, tile, cmap=DIVERGING,
                     vmin=-lim, vmax=lim, label=label)  # fmt: skip
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
    label: str = "signed",
    warning: str | None = None,
) -> Figure:
    """One method: input, overlay, map (and native CAM map), with a colorbar.

    ``label`` says what the map is ("signed", "positive part (ReLU)"); a ``warning`` (the method
    failed its own faithfulness check) frames the maps in red and is printed under the title.
    """
    s = scale or map_scale(values)
    tile = tile_size(image, tile)
    tiles = [("input", input_tile(image, tile)), ("overlay", overlay_tile(image, values, s, tile)),
             (f"map: {label}", map_tile(values, s, tile))]  # fmt: skip
    if native is not None:
        nat = _plane(native)
        tiles.append((f"native {nat.shape[0]}×{nat.shape[1]}", map_tile(nat, s, tile)))
    if warning:
        tiles = [(n, t if n == "input" else warn_frame(t)) for n, t in tiles]
    gap = 16
    label_h = line_px(SMALL_PT, 1.3) + 4
    sheet = Sheet(width=len(tiles) * tile + (len(tiles) - 1) * gap + 2, height=tile + label_h + 2)
    for i, (label, t) in enumerate(tiles):
        sheet.add(i * (tile + gap), 0, t, label)
    width = max(2 * MARGIN + sheet.width + COLORBAR_SPACE,
                text_px(title, TITLE_PT, bold=True) + 2 * MARGIN)  # fmt: skip
    sub = [ln for s_ in subtitle for ln in wrap_px(s_, width - 2 * MARGIN, SUBTITLE_PT)]
    warn = wrap_px("⚠ " + warning, width - 2 * MARGIN, LABEL_PT + 1) if warning else []
    y_sheet = header_height(len(sub)) + len(warn) * line_px(LABEL_PT + 1) + 14
    canvas = Canvas(width, y_sheet + sheet.height + MARGIN)
    y = canvas.header(title, sub)
    for line in warn:
        canvas.text(MARGIN, y + 2, line, fontsize=LABEL_PT + 1, color=WARN, fontweight="bold")
        y += line_px(LABEL_PT + 1)
    sheet.draw(canvas.axes(MARGIN, y_sheet, sheet.width, sheet.height, label="tiles"))
    add_colorbar(canvas, MARGIN + sheet.width + 24, y_sheet, tile, cmap=DIVERGING, vmin=-s,
                 vmax=s, label=colorbar_label)  # fmt: skip
    return canvas.fig
