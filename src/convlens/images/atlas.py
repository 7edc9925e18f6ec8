"""Pictures the atlas needs beyond the shared ones: receptive fields to scale, training curves,
kernel mosaics and deletion/insertion curves. Same palette and typography as the rest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from convlens.images.colors import DIVERGING, FRAME, HIGHLIGHT, INK, MUTED, colorize, get_cmap
from convlens.images.normalize import as_float

DPI = 150
_SERIES = ("#1f5fa8", HIGHLIGHT)  # train, validation (and deletion, insertion)


def _style(ax: Any) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(FRAME)
    ax.tick_params(labelsize=7, colors=INK, length=2)
    ax.grid(True, color="#eeeeee", linewidth=0.6)
    ax.set_axisbelow(True)


def receptive_fields_figure(
    image: Any, fields: Sequence[tuple[str, Any]], *, title: str | None = None
) -> Figure:
    """The input image with the field of each layer's centre unit drawn to scale.

    ``fields``: (layer name, ReceptiveField) pairs, shallow to deep. Each square is the input
    window of the unit at the centre of that layer's map, so the growth of what one unit can see
    reads directly off the picture.
    """
    img = as_float(image)
    while img.ndim > 2:
        img = img[0] if img.shape[0] == 1 else img.mean(0)
    h, w = img.shape
    fig = Figure(figsize=(6.4, 3.6), dpi=DPI, facecolor="white")
    ax = fig.add_axes((0.09, 0.12, 0.45, 0.8))
    ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([0, w // 2, w - 1])
    ax.set_yticks([0, h // 2, h - 1])
    ax.tick_params(labelsize=6.5, colors=MUTED, length=2)
    ax.set_xlabel("input column (px)", fontsize=7, color=MUTED)
    ax.set_ylabel("input row (px)", fontsize=7, color=MUTED)
    cmap = get_cmap("plasma")
    handles = []
    n = max(len(fields), 1)
    for k, (name, rf) in enumerate(fields):
        colour = cmap(0.1 + 0.75 * k / max(n - 1, 1))
        size_h, size_w = rf.size
        ci = round((h / 2 - 0.5 - rf.offset[0]) / rf.jump[0])
        cj = round((w / 2 - 0.5 - rf.offset[1]) / rf.jump[1])
        top, left, bottom, right = rf.window(max(ci, 0), max(cj, 0))
        rect = Rectangle(
            (left - 0.5, top - 0.5), right - left, bottom - top,
            fill=False, edgecolor=colour, linewidth=1.6,
        )  # fmt: skip
        ax.add_patch(rect)
        label = f"{name}: {size_h}×{size_w} px, stride {rf.jump[0]}"
        handles.append((Rectangle((0, 0), 1, 1, fill=False, edgecolor=colour, lw=1.6), label))
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    for s in ax.spines.values():
        s.set_color(FRAME)
    leg = fig.legend(
        [hd for hd, _ in handles],
        [lb for _, lb in handles],
        loc="center left",
        bbox_to_anchor=(0.57, 0.5),
        fontsize=7,
        frameon=False,
        title="receptive field of the centre unit",
        title_fontsize=7.5,
    )
    leg.get_title().set_color(INK)
    if title:
        fig.text(0.03, 0.96, title, fontsize=9, fontweight="bold", color=INK, va="top")
    return fig


def training_curves_figure(history: Sequence[Mapping[str, float]]) -> Figure:
    """Loss and accuracy per epoch, training against validation, side by side."""
    epochs = [int(h["epoch"]) for h in history]
    fig = Figure(figsize=(7.2, 2.7), dpi=DPI, facecolor="white")
    axes = fig.subplots(1, 2, gridspec_kw={"wspace": 0.28, "left": 0.08, "right": 0.98,
                                           "bottom": 0.18, "top": 0.86})  # fmt: skip
    panels = (("loss", "val_loss", "cross-entropy loss"), ("train_acc", "val_acc", "accuracy"))
    for ax, (train_key, val_key, ylabel) in zip(axes, panels, strict=True):
        for key, colour, name in ((train_key, _SERIES[0], "training"),
                                  (val_key, _SERIES[1], "validation")):  # fmt: skip
            values = [h.get(key) for h in history]
            if all(v is not None for v in values):
                ax.plot(epochs, values, marker="o", ms=3.2, lw=1.5, color=colour, label=name)
        _style(ax)
        ax.set_xlabel("epoch", fontsize=7.5, color=INK)
        ax.set_ylabel(ylabel, fontsize=7.5, color=INK)
        ax.set_xticks(epochs)
        ax.set_title(ylabel, loc="left", fontsize=8.5, color=INK, fontweight="bold")
    axes[1].set_ylim(top=1.0)
    axes[1].legend(fontsize=7, frameon=False, loc="lower right")
    return fig


def kernel_mosaic(
    weights: Any, scale: float, *, gap: int = 1, cols: int | None = None
) -> np.ndarray:
    """One filter (I, kh, kw) as a uint8 RGB mosaic of its input-channel kernels.

    Colours use ONE symmetric diverging scale ``[-scale, scale]`` (shared by the whole layer so
    filters compare), with ``gap`` px of white between the kernels.
    """
    w = as_float(weights)
    if w.ndim == 2:
        w = w[None]
    i, kh, kw = w.shape
    cols = cols or int(np.ceil(np.sqrt(i)))
    rows = int(np.ceil(i / cols))
    out = np.full((rows * (kh + gap) - gap, cols * (kw + gap) - gap, 3), 255, dtype=np.uint8)
    m = scale or 1.0
    for c in range(i):
        r, col = divmod(c, cols)
        y, x = r * (kh + gap), col * (kw + gap)
        out[y : y + kh, x : x + kw] = colorize(w[c], DIVERGING, -m, m)
    return out


def curves_figure(
    fractions: Any,
    curves: Mapping[str, tuple[Any, Any]],
    *,
    title: str,
    ylabel: str = "probability of the class",
) -> Figure:
    """Deletion (falls fast = faithful) and insertion (rises fast) curves of heatmap methods.

    ``curves``: method -> (deletion scores, insertion scores) over ``fractions`` of pixels
    removed / restored, most important first; the legend gives each curve's area (AUC).
    """
    x = as_float(fractions)
    fig = Figure(figsize=(6.4, 2.5), dpi=DPI, facecolor="white")
    axes = fig.subplots(1, 2, gridspec_kw={"wspace": 0.25, "left": 0.09, "right": 0.98,
                                           "bottom": 0.2, "top": 0.8})  # fmt: skip
    palette = get_cmap("tab10")
    for k, (method, (deletion, insertion)) in enumerate(curves.items()):
        colour = palette(k % 10)
        for ax, ys in zip(axes, (deletion, insertion), strict=True):
            y = as_float(ys)
            auc = float(np.trapezoid(y, x)) if hasattr(np, "trapezoid") else float(np.trapz(y, x))
            ax.plot(x, y, lw=1.4, color=colour, label=f"{method} (AUC {auc:.2f})")
    for ax, name, hint in zip(
        axes,
        ("deletion", "insertion"),
        ("lower area = more faithful", "higher = more faithful"),
        strict=True,
    ):
        _style(ax)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"fraction of pixels {'removed' if name == 'deletion' else 'restored'}",
                      fontsize=7, color=INK)  # fmt: skip
        ax.set_ylabel(ylabel, fontsize=7, color=INK)
        ax.set_title(f"{name} · {hint}", loc="left", fontsize=7.5, color=INK)
        ax.legend(fontsize=6, frameon=False)
    fig.text(0.09, 0.96, title, fontsize=8.5, fontweight="bold", color=INK, va="top")
    return fig
