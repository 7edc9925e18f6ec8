"""Evolution: the same units after every training epoch, from the checkpoint's snapshots.

Kernels of the first conv layer on one scale for all epochs (so growth shows), and, when the
render analysis is available, the optimized images of a few units of the first and last conv
layers at every epoch. One task per epoch, so a resumed build picks up at the epoch it stopped.

Every epoch renders each unit **from the same start**: the same seeded starting image (render
seeds items by unit name, not by batch or epoch), the same fixed number of steps (no early
stop: a unit that converged a few steps sooner at one epoch would look different for that
reason alone) and no fresh starts (a fresh start begins from another random image, and would
win at some epochs and not at others). So what differs between two columns comes from the
weights alone.

Per followed layer, the stage also measures how much the pictures and the kernels change from
one shown epoch to the next (:func:`picture_change`, :func:`weight_change`, averaged over the
layer's live followed units). The picture change is measured on the sprite sheets as written
(8-bit, what the page shows), by a last task after the epochs: an interrupted build that
resumes reads the same files and gets the same numbers.
"""

from __future__ import annotations

from functools import partial
from itertools import pairwise
from typing import Any

import numpy as np
from PIL import Image

from ...images.atlas import kernel_mosaic
from ...models import snapshot_epochs
from ...viz import kernels as layer_kernels
from ..context import BuildContext
from . import Task

# Render options that make every epoch start from the same image and run the same steps.
SAME_START: dict[str, Any] = {"restarts": 0, "early_stop": False}


def epochs(ctx: BuildContext) -> list[int]:
    """The snapshot epochs shown: all, or ``evolution_epochs`` evenly spaced (first and last)."""
    kept = snapshot_epochs(ctx.lens.path) if ctx.lens.path is not None else []
    k = ctx.options.evolution_epochs
    if k is None or len(kept) <= k:
        return kept
    if k <= 1:
        return kept[-1:]
    picks = sorted({round(i * (len(kept) - 1) / (k - 1)) for i in range(k)})
    return [kept[i] for i in picks]


def conv_layers(ctx: BuildContext) -> list[str]:
    convs = [n for n in ctx.unit_layers if ctx.lens.layer(n).kind == "conv"]
    k = ctx.options.evolution_layers
    if len(convs) <= k:
        return convs
    return convs[: (k + 1) // 2] + convs[len(convs) - k // 2 :] if k > 0 else []


def tasks(ctx: BuildContext) -> list[Task]:
    eps = epochs(ctx)
    if not eps or not conv_layers(ctx):
        return []
    out = [Task("evolution", "evolution/kernels", "kernels per epoch", run_kernels)]
    from .render import render_available

    if render_available():
        out += [
            Task(
                "evolution",
                f"evolution/epoch_{e:03d}",
                f"renders after epoch {e}",
                partial(run_renders, epoch=e),
            )
            for e in eps
        ]
        if len(eps) >= 2:  # after every epoch's renders: it reads their sheets
            out.append(Task("evolution", "evolution/change", "change between epochs", run_change))
    return out


def _header(ctx: BuildContext) -> dict[str, Any]:
    eps = epochs(ctx)
    history = ctx.lens.source.get("config", {}).get("history", []) if ctx.lens.source else []
    acc = {int(h["epoch"]): h.get("val_acc") for h in history}
    return {"epochs": eps, "val_acc": [acc.get(e) for e in eps]}


def _units(ctx: BuildContext, layer: str) -> list[int]:
    return ctx.unit_indices(layer)[: ctx.options.evolution_units]


def _live(ctx: BuildContext, layer: str) -> list[int]:
    """The followed units that fire on real images (a dead unit's picture is only noise)."""
    live = set(ctx.live_units(layer))
    return [u for u in _units(ctx, layer) if u in live]


# --- the distances ----------------------------------------------------------------------------


def picture_change(before: np.ndarray, after: np.ndarray) -> float:
    """Mean absolute pixel difference of two pictures on the display range [0, 1].

    0 for the same picture, 1 for a black picture turned white. For black-and-white pictures
    it is the share of pixels that flipped; for grey ones, how far the average pixel moved as
    a share of the black-to-white range. Defined for flat pictures too (unlike a correlation).
    """
    a = np.asarray(before, dtype=np.float64)
    b = np.asarray(after, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"pictures of different shapes: {a.shape} and {b.shape}")
    return float(np.abs(a - b).mean()) if a.size else 0.0


def weight_change(before: np.ndarray, after: np.ndarray) -> float:
    """How far a kernel's weights moved, as a share of their size: ``|after - before| /
    |before|`` (L2 norms over all its weights). 0 when unchanged; 0.1: moved by a tenth."""
    a = np.asarray(before, dtype=np.float64).ravel()
    b = np.asarray(after, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"kernels of different sizes: {a.size} and {b.size}")
    moved, size = float(np.linalg.norm(b - a)), float(np.linalg.norm(a))
    if size == 0.0:
        return 0.0 if moved == 0.0 else 1.0  # grown from nothing: all new
    return moved / size


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _pairwise(
    eps: list[int], per_unit: dict[int, dict[int, Any]], fn: Any
) -> tuple[dict[int, dict[str, float]], dict[str, float | None]]:
    """Per unit and averaged: the change from each shown epoch to the next (keyed by the
    later epoch; the first epoch has none)."""
    units: dict[int, dict[str, float]] = {u: {} for u in per_unit}
    layer: dict[str, float | None] = {}
    for prev, e in pairwise(eps):
        values = []
        for u, by_epoch in per_unit.items():
            if prev in by_epoch and e in by_epoch:
                units[u][str(e)] = d = fn(by_epoch[prev], by_epoch[e])
                values.append(d)
        layer[str(e)] = _mean(values)
    return units, layer


# --- tasks --------------------------------------------------------------------------------------


def run_kernels(ctx: BuildContext) -> dict[str, Any]:
    """Kernel mosaics of the first conv layer's units after each epoch, one shared scale, and
    for every followed layer how much its live units' kernels moved from epoch to epoch."""
    eps = epochs(ctx)
    layers_out: dict[str, Any] = {}
    rows: dict[str, Any] = {}
    sprites: dict[str, Any] = {}
    kernel_scale = 1.0
    for depth, layer in enumerate(conv_layers(ctx)):
        weights = {e: layer_kernels(ctx.snapshot_lens(e), layer).detach().cpu() for e in eps}
        live = _live(ctx, layer)
        per_unit = {u: {e: weights[e][u].numpy() for e in eps} for u in live}
        unit_change, layer_change = _pairwise(eps, per_unit, weight_change)
        layers_out[layer] = {"units": live, "kernel_change": layer_change}
        if depth:
            continue
        units = _units(ctx, layer)
        kernel_scale = scale = max(float(w.abs().max()) for w in weights.values()) or 1.0
        tiles = [kernel_mosaic(weights[e][u], scale) for u in units for e in eps]
        sprites, refs = ctx.sprite("evolution/kernels", "img/evolution/kernels.png", tiles,
                                   ncols=len(eps), note=f"kernels of {layer}, |weight| <= "
                                   f"{scale:.3g} for all epochs")  # fmt: skip
        for n, u in enumerate(units):
            rows[f"{layer}:{u}/kernel"] = {
                "unit": f"{layer}:{u}",
                "kind": "kernel",
                "tiles": {str(e): refs[n * len(eps) + k] for k, e in enumerate(eps)},
                "change": unit_change.get(u, {}),
            }
    return {"sprites": sprites, "evolution": {**_header(ctx), "rows": rows,
            "kernel_scale": kernel_scale, "layers": layers_out}}  # fmt: skip


def high_frequency(image: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels: high for dots and stripes."""
    a = np.asarray(image, dtype=np.float64)
    return float(np.abs(np.diff(a, axis=-1)).mean() + np.abs(np.diff(a, axis=-2)).mean()) / 2


def _sheet(layer: str, epoch: int) -> str:
    return f"img/evolution/{layer}_epoch_{epoch:03d}.png"


def run_renders(ctx: BuildContext, *, epoch: int) -> dict[str, Any]:
    """Optimized images of the followed units with the weights after ``epoch``, each from the
    same start as at every other epoch (see the module doc)."""
    from .render import render_channels

    lens = ctx.snapshot_lens(epoch)
    rows: dict[str, Any] = {}
    sprites: dict[str, Any] = {}
    for layer in conv_layers(ctx):
        units = _units(ctx, layer)
        images, ratios = render_channels(ctx, lens, layer, units, **SAME_START)
        # One row of tiles, so the change task can cut the sheet back into the units' pictures.
        more, refs = ctx.sprite(f"evolution/{layer}/epoch_{epoch:03d}", _sheet(layer, epoch),
                                images, ncols=len(units),
                                note=f"channel images of {layer} after epoch {epoch}")  # fmt: skip
        sprites.update(more)
        for u, ref, r, image in zip(units, refs, ratios, images, strict=True):
            rows[f"{layer}:{u}/channel"] = {
                "unit": f"{layer}:{u}",
                "kind": "channel",
                "tiles": {str(epoch): ref},
                "r": {str(epoch): r},
                "tv": {str(epoch): high_frequency(image)},
                "contrast": {str(epoch): float(np.std(image))},
            }
    return {"sprites": sprites, "evolution": {**_header(ctx), "rows": rows}}


def read_sheet(path: Any, n: int) -> np.ndarray:
    """The ``n`` pictures of a one-row sprite sheet, as floats in [0, 1] (N, H, W, 3)."""
    with Image.open(path) as im:
        sheet = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    width = sheet.shape[1] // n
    return np.stack([sheet[:, k * width : (k + 1) * width] for k in range(n)])


def run_change(ctx: BuildContext) -> dict[str, Any]:
    """How much each followed layer's pictures change from one shown epoch to the next, read
    from the sheets the epoch tasks wrote (the pictures exactly as the page shows them)."""
    eps = epochs(ctx)
    rows: dict[str, Any] = {}
    layers_out: dict[str, Any] = {}
    for layer in conv_layers(ctx):
        units = _units(ctx, layer)
        pictures = {e: read_sheet(ctx.out / _sheet(layer, e), len(units)) for e in eps}
        live = _live(ctx, layer)
        per_unit = {u: {e: pictures[e][units.index(u)] for e in eps} for u in live}
        unit_change, layer_change = _pairwise(eps, per_unit, picture_change)
        layers_out[layer] = {"units": live, "render_change": layer_change}
        for u in live:
            rows[f"{layer}:{u}/channel"] = {"change": unit_change[u]}
    return {"evolution": {"rows": rows, "layers": layers_out}}
