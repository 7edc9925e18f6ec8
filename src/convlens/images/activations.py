"""Activation figures: one conv layer's feature maps under the input and the model's verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from convlens.images.colors import (
    BAR,
    DIVERGING,
    FRAME,
    HIGHLIGHT,
    INK,
    SEQUENTIAL,
    colorize,
    to_display,
)
from convlens.images.figures import (
    COLORBAR_SPACE,
    LABEL_PT,
    MARGIN,
    SUBTITLE_PT,
    TITLE_PT,
    Canvas,
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

_INPUT_PX = 220  # the input panel's side
_BARS_W = 340  # the probability chart's plotting width
_TOP_K = 10  # classes listed when there are too many to show all


def _maps3(layer_maps: Any) -> np.ndarray:
    a = as_float(layer_maps)
    while a.ndim > 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 1:  # a dense layer: one 1x1 "map" per unit
        a = a[:, None, None]
    if a.ndim != 3:
        raise ValueError(f"need feature maps (C, H, W) for one input, got shape {a.shape}.")
    return a


def _scale(a: np.ndarray, cmap: str | None) -> tuple[str, float, float]:
    """One colour scale for the whole layer: 0..max (viridis), or ±max (diverging) if signed."""
    finite = a[np.isfinite(a)]
    mn = float(finite.min()) if finite.size else 0.0
    mx = float(finite.max()) if finite.size else 1.0
    if cmap is None and mn < 0:
        m = max(-mn, mx) or 1.0
        return DIVERGING, -m, m
    lo = min(mn, 0.0)
    return cmap or SEQUENTIAL, lo, mx if mx > lo else lo + 1.0


def _draw_probs(ax: Axes, probs: np.ndarray, class_names: Sequence[str]) -> None:
    """Horizontal bars, argmax highlighted; all classes if few, else the top ten."""
    order = np.arange(len(probs)) if len(probs) <= 20 else np.argsort(-probs)[:_TOP_K]
    best = int(np.argmax(probs))
    p = probs[order]
    ys = np.arange(len(order))
    colours = [HIGHLIGHT if i == best else BAR for i in order]
    ax.barh(ys, p, color=colours, height=0.72)
    ax.set_yticks(ys, labels=[str(class_names[i]) for i in order], fontsize=LABEL_PT)
    ax.tick_params(labelsize=LABEL_PT, colors=INK, length=2)
    for tick, i in zip(ax.get_yticklabels(), order, strict=True):
        if i == best:
            tick.set_color(HIGHLIGHT)
            tick.set_fontweight("bold")
    ax.invert_yaxis()
    ax.set_xlim(0, 1.18)
    ax.set_xticks([0, 0.5, 1.0], labels=["0", "0.5", "1"])
    ax.spines["bottom"].set_bounds(0, 1)
    ax.set_xlabel(
        "probability"
        if len(order) == len(probs)
        else f"probability (top {_TOP_K} of {len(probs)})",
        fontsize=LABEL_PT,
        color=INK,
    )
    row = int(np.where(order == best)[0][0]) if best in order else None
    if row is not None:
        ax.text(
            p[row] + 0.02,
            row,
            f"{p[row]:.2f}",
            va="center",
            fontsize=LABEL_PT,
            color=HIGHLIGHT,
            fontweight="bold",
        )
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(FRAME)
    ax.set_title(
        f"predicted: {class_names[best]}   p = {probs[best]:.3f}",
        loc="left",
        fontsize=SUBTITLE_PT + 1,
        color=HIGHLIGHT,
        fontweight="bold",
    )


def activations_figure(
    image: Any,
    layer: str,
    layer_maps: Any,
    probs: Any | None = None,
    class_names: Sequence[str] | None = None,
    *,
    title: str | None = None,
    cmap: str | None = None,
    max_maps: int = 64,
    channels: slice | Sequence[int] | None = None,
) -> Figure:
    """One layer's feature maps for one input, under the input and its class probabilities.

    ``image`` (C, H, W) model input; ``layer_maps`` (C_l, H_l, W_l) that layer's output for it;
    ``probs`` (num_classes,) softmax output, drawn as bars with the argmax highlighted (top ten
    when there are more than 20 classes). All maps share ONE colour scale for the layer (colorbar
    "activation"), so a dim map really is weak: 0..max with viridis for non-negative maps (after
    ReLU), a zero-centred diverging map when the layer has negative values (unless ``cmap`` is
    given). At most ``max_maps`` maps are drawn; choose others with ``channels``.
    """
    a = _maps3(layer_maps)
    c, h, w = a.shape
    idx, note = pick(c, channels, max_maps, "maps", "channels")
    cmap_name, lo, hi = _scale(a, cmap)
    target = 96 if len(idx) <= 16 else 72 if len(idx) <= 64 else 56
    tiles = [fit_tile(colorize(a[i], cmap_name, lo, hi), target) for i in idx]
    sheet = grid_sheet(tiles, [str(i) for i in idx])

    has_probs = probs is not None
    p = as_float(probs).reshape(-1) if has_probs else np.zeros(0)
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(p))]
    if has_probs and len(names) != len(p):
        raise ValueError(
            f"activations_figure: {len(p)} probabilities but {len(names)} class names."
        )
    shown_names = names if len(p) <= 20 else [names[i] for i in np.argsort(-p)[:_TOP_K]]
    names_w = max((text_px(n, LABEL_PT) for n in shown_names), default=0) + 12

    title = title or f"{layer} · activations"
    top_w = MARGIN + _INPUT_PX + (48 + names_w + _BARS_W + 56 if has_probs else 0)
    width = max(
        2 * MARGIN + sheet.width + COLORBAR_SPACE,
        top_w + MARGIN,
        text_px(title, TITLE_PT, bold=True) + 2 * MARGIN,
        640,
    )
    signs = "blue < 0 < red, " if lo < 0 < hi and cmap_name == DIVERGING else ""
    notes = [
        f"{c} feature maps of {h}×{w}, one colour scale for the layer "
        f"({signs}{fmt_value(lo)} … {fmt_value(hi)}); channel index under each map"
    ]
    if note:
        notes.append(note)
    subtitle = [ln for n in notes for ln in wrap_px(n, width - 2 * MARGIN, SUBTITLE_PT)]

    y_top = header_height(len(subtitle)) + 16
    y_panel = y_top + line_px(SUBTITLE_PT + 1) + 4
    y_section = y_panel + _INPUT_PX + 44
    y_sheet = y_section + line_px(LABEL_PT + 2.5) + 6
    cbar_h = int(np.clip(sheet.height - 8, 140, 320))
    height = y_sheet + max(sheet.height, cbar_h + 8) + MARGIN

    canvas = Canvas(width, height)
    canvas.header(title, subtitle)
    disp = to_display(image)
    ax_in = canvas.axes(MARGIN, y_panel, _INPUT_PX, _INPUT_PX, label="input")
    crisp = max(disp.shape[:2]) < _INPUT_PX
    ax_in.imshow(
        disp,
        cmap="gray" if disp.ndim == 2 else None,
        vmin=0,
        vmax=1,
        interpolation="nearest" if crisp else "antialiased",
    )
    ax_in.set_xticks([])
    ax_in.set_yticks([])
    for s in ax_in.spines.values():
        s.set_color(FRAME)
    ax_in.set_title(
        f"input  {disp.shape[1]}×{disp.shape[0]}", loc="left", fontsize=SUBTITLE_PT + 1, color=INK
    )
    if has_probs:
        x_bars = MARGIN + _INPUT_PX + 48 + names_w
        ax_p = canvas.axes(x_bars, y_panel, _BARS_W, _INPUT_PX, label="probabilities")
        _draw_probs(ax_p, p, names)

    canvas.text(
        MARGIN, y_section, f"{layer} · feature maps", fontsize=LABEL_PT + 2.5, fontweight="bold"
    )
    sheet.draw(canvas.axes(MARGIN, y_sheet, sheet.width, sheet.height, label="maps"))
    x_cbar = MARGIN + sheet.width + 24
    add_colorbar(
        canvas, x_cbar, y_sheet + 4, cbar_h, cmap=cmap_name, vmin=lo, vmax=hi, label="activation"
    )
    return canvas.fig


def draw_activations(
    image: Any,
    maps: Mapping[str, Any],
    *,
    probs: Any | None = None,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    **options: Any,
) -> list[tuple[str, Figure]]:
    """One :func:`activations_figure` per layer in ``maps`` (layer name -> (C, H, W)), in order.

    The expected use is one PNG per layer: ``for name, fig in draw_activations(...):
    save_figure(fig, out / f"{name}.png")``. ``options`` go to :func:`activations_figure`.
    """
    return [
        (
            name,
            activations_figure(
                image,
                name,
                m,
                probs,
                class_names,
                title=f"{title} · {name}" if title else None,
                **options,
            ),
        )
        for name, m in maps.items()
    ]
