"""Colormaps, colorizing and heatmap overlays: the house palette in one place.

Every picture uses the same few maps so a reader learns them once: a diverging map centred on zero
for signed data (weights, attributions, de-averaged prototypes), viridis for non-negative
activations, gray for inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Colormap
from PIL import Image

from convlens.images.normalize import as_float, to_unit_range

DIVERGING = "RdBu_r"  # signed data: blue < 0 < red, white at zero
SEQUENTIAL = "viridis"  # non-negative data: activations
GRAY = "gray"  # inputs
INK = "#222222"  # text
MUTED = "#6b7280"  # secondary text
FRAME = "#c4c4c4"  # tile outlines
BAR = "#a8b3bf"  # ordinary bars
HIGHLIGHT = "#d95f02"  # the one thing to look at (argmax class)


def get_cmap(cmap: str | Colormap) -> Colormap:
    """A matplotlib colormap by name (or the given instance), without touching pyplot."""
    if isinstance(cmap, Colormap):
        return cmap
    try:
        return colormaps[cmap]
    except KeyError:
        raise ValueError(f"unknown colormap {cmap!r}; try 'gray', 'viridis' or 'RdBu_r'.") from None


def colorize(
    x: Any,
    cmap: str | Colormap = SEQUENTIAL,
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray:
    """Map a 2-D array through ``cmap`` over [vmin, vmax] to a uint8 (H, W, 3) RGB array.

    Passing the same vmin/vmax for many tiles gives them one shared, comparable scale; they
    default to this array's own min/max. NaNs become white (read as "no data").
    """
    a = as_float(x)
    if a.ndim != 2:
        raise ValueError(f"colorize: need a 2-D (H, W) array, got shape {a.shape}.")
    finite = a[np.isfinite(a)]
    if vmin is None:
        vmin = float(finite.min()) if finite.size else 0.0
    if vmax is None:
        vmax = float(finite.max()) if finite.size else 1.0
    lo, hi = float(vmin), float(vmax)
    t = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    rgb = get_cmap(cmap)(np.clip(np.nan_to_num(t, nan=0.0), 0.0, 1.0), bytes=True)[..., :3]
    rgb[np.isnan(a)] = 255
    return np.ascontiguousarray(rgb)


def to_display(image: Any) -> np.ndarray:
    """An input image (C, H, W) / (1, C, H, W) / (H, W) as (H, W) or (H, W, 3) floats in [0, 1].

    Per-image min-max, because inputs arrive in model space (mean/std normalized) and only their
    relative values matter for a picture.
    """
    a = as_float(image)
    while a.ndim > 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 2:
        return to_unit_range(a)
    if a.ndim == 3 and a.shape[0] == 3:
        return np.transpose(to_unit_range(a), (1, 2, 0))
    raise ValueError(f"need an image shaped (1|3, H, W) or (H, W), got shape {a.shape}.")


def to_gray(image: Any) -> np.ndarray:
    """Luminance (ITU-R 601 weights) of an input image, as (H, W) floats in [0, 1]."""
    d = to_display(image)
    return d if d.ndim == 2 else d @ np.array([0.299, 0.587, 0.114], dtype=d.dtype)


def heatmap_overlay(
    image: Any,
    heat: Any,
    *,
    alpha: float = 0.6,
    scale: float | None = None,
    cmap: str | Colormap = DIVERGING,
) -> Image.Image:
    """A signed heatmap over a grayscale copy of ``image``, zero fully transparent.

    Opacity grows with |heat| / scale (up to ``alpha``), so weak evidence fades into the image and
    the sign reads from the diverging colour (red for, blue against), saturated at any strength
    so the overlay stays visible on colour photos too. Pass the same ``scale`` to
    every overlay of a comparison so they share one symmetric range (default: this map's max|heat|,
    per-image as in most libraries, which makes maps incomparable). A ``heat`` at another
    resolution (e.g. a CAM at feature-map size) is resized bilinearly to the image.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"heatmap_overlay: alpha must be in [0, 1], got {alpha}.")
    gray = to_gray(image).astype(np.float32)
    h = as_float(heat).astype(np.float32)
    while h.ndim > 2 and h.shape[0] == 1:
        h = h[0]
    if h.ndim != 2:
        raise ValueError(f"heatmap_overlay: need a 2-D heat (H, W), got shape {h.shape}.")
    if h.shape != gray.shape:
        resized = Image.fromarray(h).resize(
            (gray.shape[1], gray.shape[0]), Image.Resampling.BILINEAR
        )
        h = np.asarray(resized, dtype=np.float32)
    s = float(np.nanmax(np.abs(h))) if scale is None else float(scale)
    t = np.clip(np.nan_to_num(h / s), -1.0, 1.0) if s > 0 else np.zeros_like(h)
    mag = np.abs(t)
    # The hue says the sign and stays saturated however weak the evidence (a colour fading to
    # the map's white centre reads as grey); opacity carries the magnitude, with a gamma so
    # middling evidence is seen. The map's darkest ends are avoided: near-black maroon/navy
    # would read as shadow rather than as colour.
    rgb = get_cmap(cmap)(0.5 + np.sign(t) * (0.22 + 0.2 * mag))[..., :3].astype(np.float32)
    w = (alpha * mag**0.7)[..., None]
    # Colour photos are dimmed more than digits on black, so the overlay stands out of them.
    colour_input = as_float(image).squeeze().ndim == 3
    base = ((0.08 + 0.55 * gray) if colour_input else (0.1 + 0.8 * gray))[..., None]
    out = base * (1.0 - w) + rgb * w
    return Image.fromarray((np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8))
