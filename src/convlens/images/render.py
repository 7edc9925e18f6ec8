"""Pictures of rendered units: display normalization, labelled grids, neurons crop + in place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from PIL import Image

from convlens.images.grids import image_grid
from convlens.images.normalize import as_float, blog_normalize, de_average

Display = Literal["plain", "blog", "signed"]
OUTLINE = np.array([0.93, 0.23, 0.18])  # the receptive-field box drawn on in-place neurons


def display_images(
    images: Any, display: Display = "plain", value_range: tuple[float, float] = (0.0, 1.0)
) -> np.ndarray:
    """(N, C, H, W) rendered images -> [0, 1] for display.

    ``plain``: the value range mapped onto [0, 1] (what the model sees); ``blog``: the Keras
    blog's per-image "centre, std 0.1, +0.5, clip"; ``signed``: zero at mid-gray, each image
    scaled by its largest magnitude (for de-averaged images).
    """
    a = as_float(images)
    if display == "blog":
        return np.stack([blog_normalize(x) for x in a]) if len(a) else a
    if display == "signed":
        m = np.abs(a).reshape(len(a), -1).max(1).reshape(-1, *[1] * (a.ndim - 1)) if len(a) else 1
        return np.clip(0.5 + a / (2 * np.maximum(m, 1e-12)), 0.0, 1.0)
    lo, hi = value_range
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


def de_averaged(images: Any) -> np.ndarray:
    """Class images minus their mean (what sets each class apart), signed."""
    return de_average(images)


def units_grid(
    images: Any,
    labels: Sequence[str],
    *,
    display: Display = "plain",
    value_range: tuple[float, float] = (0.0, 1.0),
    title: str | None = None,
    ncols: int | None = None,
) -> Image.Image:
    """A labelled grid of rendered units (one tile each)."""
    tiles = display_images(images, display, value_range)
    cmap = "RdBu_r" if display == "signed" else "gray"
    return image_grid(tiles, labels=list(labels), norm="none", title=title, ncols=ncols, cmap=cmap)


def neurons_grid(
    crops: Sequence[Any],
    placed: Any,
    windows: Sequence[tuple[int, int, int, int]],
    labels: Sequence[str],
    *,
    display: Display = "plain",
    value_range: tuple[float, float] = (0.0, 1.0),
    title: str | None = None,
) -> Image.Image:
    """Each neuron twice: its receptive-field crop (enlarged to the canvas size) and in place.

    The in-place tile shows the full input canvas with the crop at its window, outlined, so one
    sees both what the neuron wants and where in the image it looks.
    """
    full = display_images(placed, display, value_range)
    n, _, h, w = full.shape
    tiles: list[np.ndarray] = []
    tile_labels: list[str] = []
    for i in range(n):
        crop = display_images(np.asarray(as_float(crops[i]))[None], display, value_range)[0]
        tiles.append(_enlarge(_rgb(crop), h, w))
        tiles.append(_outlined(_rgb(full[i]), windows[i]))
        tile_labels += [labels[i], "in place"]
    arr = np.stack(tiles).transpose(0, 3, 1, 2)
    return image_grid(
        arr,
        labels=tile_labels,
        norm="none",
        title=title,
        ncols=min(len(tiles), 8 if len(tiles) > 8 else len(tiles)),
    )


def _rgb(x: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W, 3)."""
    return np.repeat(x[0][..., None], 3, axis=2) if x.shape[0] == 1 else x[:3].transpose(1, 2, 0)


def _enlarge(rgb: np.ndarray, h: int, w: int) -> np.ndarray:
    """Nearest-neighbour enlargement of a small crop to (about) the canvas size."""
    k = max(1, min(h // rgb.shape[0], w // rgb.shape[1]))
    big = np.kron(rgb, np.ones((k, k, 1)))
    out = np.ones((h, w, 3))
    top, left = (h - big.shape[0]) // 2, (w - big.shape[1]) // 2
    out[top : top + big.shape[0], left : left + big.shape[1]] = big[:h, :w]
    return out


def _outlined(rgb: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    """Draw a 1-pixel box just outside ``window`` (or on its edge at the image border)."""
    out = rgb.copy()
    h, w = out.shape[:2]
    top, left, bottom, right = window
    t, b = max(top - 1, 0), min(bottom, h - 1)
    le, r = max(left - 1, 0), min(right, w - 1)
    out[t, le : r + 1] = OUTLINE
    out[b, le : r + 1] = OUTLINE
    out[t : b + 1, le] = OUTLINE
    out[t : b + 1, r] = OUTLINE
    return out
