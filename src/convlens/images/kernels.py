"""Learned kernels as a figure: what each filter of a conv layer looks for, sign included."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from convlens.images.colors import DIVERGING, MUTED, colorize
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
    fit_tile,
    fmt_value,
    grid_sheet,
    header_height,
    line_px,
    pick,
    text_px,
    wrap_px,
)
from convlens.images.normalize import as_float


def select_input_channels(weights: Any, k: int) -> np.ndarray:
    """For each filter, the ``k`` input channels whose kernels have the largest L2 norm.

    Returns int indices shaped (O, k), strongest first (ties keep channel order). This is how
    :func:`draw_kernels` summarizes filters with more input channels than fit in a row.
    """
    w = as_float(weights)
    if w.ndim != 4:
        raise ValueError(f"select_input_channels: need weights (O, I, kh, kw), got {w.shape}.")
    norms = np.sqrt(np.square(w).sum(axis=(2, 3)))
    return np.argsort(-norms, axis=1, kind="stable")[:, : max(1, min(k, w.shape[1]))]


def kernel_pages(num_filters: int, per_page: int = 64) -> list[slice]:
    """Slices that page through a big layer, to pass one by one as ``draw_kernels(filters=...)``."""
    return [slice(i, min(i + per_page, num_filters)) for i in range(0, num_filters, per_page)]


def _rgb_composite(k3: np.ndarray) -> np.ndarray:
    """A (3, kh, kw) first-layer kernel as colour, on its own symmetric scale (grey = 0)."""
    m = float(np.abs(k3).max())
    unit = k3 / (2 * m) + 0.5 if m > 0 else np.full_like(k3, 0.5)
    return (np.transpose(unit, (1, 2, 0)) * 255 + 0.5).astype(np.uint8)


def _best_block_columns(f: int, block_w: int, block_h: int, group_gap: int) -> int:
    """How many filter blocks side by side: aim for a landscape page no wider than ~20 in."""
    best, best_cost = 1, math.inf
    for b in range(1, f + 1):
        w = b * block_w + (b - 1) * group_gap
        if w > 3000 and b > 1:
            break
        cost = abs(math.log(w / (math.ceil(f / b) * block_h) / 1.4))
        if cost < best_cost:
            best, best_cost = b, cost
    return best


def draw_kernels(
    weights: Any,
    *,
    layer: str,
    max_in_channels: int = 16,
    filters: slice | list[int] | None = None,
    max_filters: int = 64,
    cmap: str = DIVERGING,
    rgb: bool = True,
    per_channel: bool = True,
) -> Figure:
    """The learned kernels of one conv layer, ``weights`` shaped (O, I, kh, kw).

    Every single-channel tile uses ONE symmetric diverging scale shared by the whole layer
    (blue < 0 < red, white = 0, colorbar "weight"), so strengths and signs compare across filters,
    unlike per-filter min-max which makes every filter look equally strong.

    - I == 1: a grid of O tiles labelled by filter index (#i).
    - I == 3 (first layer of an RGB model): one row per filter: the filter in colour (``rgb``, on
      its own symmetric scale, mid-grey = 0) then its R, G, B kernels (``per_channel``). With
      ``per_channel=False`` it is a grid of colour tiles only (no colorbar: colour has no scale).
    - Other I: one row per filter, one column per input channel. When I > ``max_in_channels`` a
      row is a *summary*: the filter's ``max_in_channels`` input channels with the largest L2
      norm, strongest first, each tile labelled with its channel (the subtitle says so).

    At most ``max_filters`` filters are drawn (the subtitle says which); page with ``filters``
    (e.g. ``slice(64, 128)``, see :func:`kernel_pages`). Rows wrap into side-by-side columns so
    big layers stay a sensible landscape page.
    """
    w = as_float(weights)
    if w.ndim == 3:
        w = w[:, None]
    if w.ndim != 4:
        raise ValueError(f"draw_kernels: need weights (O, I, kh, kw), got shape {w.shape}.")
    if max_in_channels < 1:
        raise ValueError(f"draw_kernels: max_in_channels must be >= 1, got {max_in_channels}.")
    o, i_ch, kh, kw = w.shape
    peak = float(np.nanmax(np.abs(w)))
    m = peak or 1.0  # an all-zero layer still gets a valid (white) scale
    idx, page_note = pick(o, filters, max_filters, "filters", "filters")
    colour_grid = i_ch == 3 and not per_channel
    notes = [
        f"one scale for the whole layer: blue < 0 < red, |weight|\u00a0≤\u00a0{fmt_value(peak)}"
    ]
    if colour_grid:
        notes = ["each filter in colour on its own symmetric scale (mid-grey = 0)"]
    if page_note:
        notes.append(page_note)

    def tile(k2: np.ndarray, target: int) -> np.ndarray:
        return fit_tile(colorize(k2, cmap, -m, m), target)

    if i_ch == 1 or colour_grid:
        target = 84 if len(idx) <= 64 else 60
        tiles = [
            fit_tile(_rgb_composite(w[f]), target) if colour_grid else tile(w[f, 0], target)
            for f in idx
        ]
        sheet = grid_sheet(tiles, [f"#{f}" for f in idx])
    else:
        sheet, block_note = _block_sheet(w, idx, max_in_channels, rgb, tile)
        if block_note:
            notes.append(block_note)

    title = f"{layer} · kernels {o}×{i_ch}×{kh}×{kw}"
    colorbar = not colour_grid
    content_w = sheet.width + (COLORBAR_SPACE if colorbar else 0)
    width = max(content_w + 2 * MARGIN, text_px(title, TITLE_PT, bold=True) + 2 * MARGIN, 640)
    subtitle = [ln for note in notes for ln in wrap_px(note, width - 2 * MARGIN, SUBTITLE_PT)]
    top = header_height(len(subtitle)) + 12
    cbar_h = int(np.clip(sheet.height - 8, 140, 320))
    height = top + max(sheet.height, cbar_h + 8) + MARGIN

    canvas = Canvas(width, height)
    canvas.header(title, subtitle)
    sheet.draw(canvas.axes(MARGIN, top, sheet.width, sheet.height, label="kernels"))
    if colorbar:
        x = MARGIN + sheet.width + 24
        add_colorbar(canvas, x, top + 4, cbar_h, cmap=cmap, vmin=-m, vmax=m, label="weight")
    return canvas.fig


def _block_sheet(
    w: np.ndarray,
    idx: list[int],
    max_in: int,
    rgb: bool,
    tile: Callable[[np.ndarray, int], np.ndarray],
) -> tuple[Sheet, str | None]:
    """Rows = filters, columns = input channels (optionally a colour column first)."""
    _, i_ch, _, _ = w.shape
    summarized = i_ch > max_in
    chans = (
        select_input_channels(w[idx], max_in)
        if summarized
        else np.tile(np.arange(i_ch), (len(idx), 1))
    )
    colour = i_ch == 3 and rgb
    names = ["R", "G", "B"] if i_ch == 3 else [f"ch {c}" for c in range(i_ch)]
    k = chans.shape[1] + (1 if colour else 0)
    target = 60 if len(idx) * k <= 256 else 48
    th, tw = tile(w[idx[0], 0], target).shape[:2]

    pad, gap, row_gap, group_gap = 4, 4, 8, 30
    colour_gap = 10 if colour else 0
    row_label_w = text_px(f"#{max(idx)}", LABEL_PT) + 10
    label_h = line_px(SMALL_PT, 1.3) + 2 if summarized else 0
    header_h = 0 if summarized else line_px(SMALL_PT, 1.3) + 2
    block_w = row_label_w + k * tw + (k - 1) * gap + colour_gap
    pitch_y = th + label_h + row_gap
    b = _best_block_columns(len(idx), block_w, pitch_y, group_gap)
    rows = math.ceil(len(idx) / b)
    sheet = Sheet(
        width=2 * pad + b * block_w + (b - 1) * group_gap,
        height=2 * pad + header_h + rows * pitch_y - row_gap,
    )
    for j, f in enumerate(idx):
        bc, r = divmod(j, rows)  # fill down a column first: filter numbers read top to bottom
        x0 = pad + bc * (block_w + group_gap)
        y = pad + header_h + r * pitch_y
        sheet.text(
            x0 + row_label_w - 8, y + th / 2, f"#{f}", ha="right", va="center", fontsize=LABEL_PT
        )
        x = x0 + row_label_w
        if colour:
            sheet.add(x, y, fit_tile(_rgb_composite(w[f]), th))
            x += tw + gap + colour_gap
        for c in chans[j]:
            sheet.add(x, y, tile(w[f, c], target), f"ch {c}" if summarized else None)
            x += tw + gap
    if not summarized:
        for bc in range(b):
            x = pad + bc * (block_w + group_gap) + row_label_w
            heads = (["RGB"] if colour else []) + names
            for col, name in enumerate(heads):
                cx = x + col * (tw + gap) + (colour_gap if colour and col > 0 else 0) + tw / 2
                sheet.text(
                    cx,
                    pad + header_h - 3,
                    name,
                    ha="center",
                    va="bottom",
                    fontsize=SMALL_PT,
                    color=MUTED,
                )
    note = None
    if summarized:
        note = (
            f"each row: the filter's {max_in} of {i_ch} input channels with the largest L2 norm, "
            "strongest first"
        )
    elif colour:
        note = "RGB column: the filter in colour on its own symmetric scale (mid-grey = 0)"
    return sheet, note
