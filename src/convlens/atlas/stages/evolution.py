"""Evolution: the same units after every training epoch, from the checkpoint's snapshots.

Kernels of the first conv layer on one scale for all epochs (so growth shows), and, when the
render analysis is available, the optimized images of a few units of the first and last conv
layers with the same recipe and seeds at every epoch. One task per epoch, so a resumed build
picks up at the epoch it stopped.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from ...images.atlas import kernel_mosaic
from ...models import snapshot_epochs
from ...viz import kernels as layer_kernels
from ..context import BuildContext
from . import Task


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
    return out


def _header(ctx: BuildContext) -> dict[str, Any]:
    eps = epochs(ctx)
    history = ctx.lens.source.get("config", {}).get("history", []) if ctx.lens.source else []
    acc = {int(h["epoch"]): h.get("val_acc") for h in history}
    return {"epochs": eps, "val_acc": [acc.get(e) for e in eps]}


def _units(ctx: BuildContext, layer: str) -> list[int]:
    return ctx.unit_indices(layer)[: ctx.options.evolution_units]


def run_kernels(ctx: BuildContext) -> dict[str, Any]:
    """Kernel mosaics of the first conv layer's units after each epoch, one shared scale."""
    layer = conv_layers(ctx)[0]
    units = _units(ctx, layer)
    eps = epochs(ctx)
    weights = {e: layer_kernels(ctx.snapshot_lens(e), layer) for e in eps}
    scale = max(float(w.abs().max()) for w in weights.values()) or 1.0
    tiles = [kernel_mosaic(weights[e][u], scale) for u in units for e in eps]
    sprites, refs = ctx.sprite("evolution/kernels", "img/evolution/kernels.png", tiles,
                               ncols=len(eps), note=f"kernels of {layer}, |weight| <= {scale:.3g} "
                               "for all epochs")  # fmt: skip
    rows = {}
    for n, u in enumerate(units):
        rows[f"{layer}:{u}/kernel"] = {
            "unit": f"{layer}:{u}",
            "kind": "kernel",
            "tiles": {str(e): refs[n * len(eps) + k] for k, e in enumerate(eps)},
        }
    return {"sprites": sprites, "evolution": {**_header(ctx), "rows": rows,
                                              "kernel_scale": scale}}  # fmt: skip


def high_frequency(image: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels: high for dots and stripes."""
    a = np.asarray(image, dtype=np.float64)
    return float(np.abs(np.diff(a, axis=-1)).mean() + np.abs(np.diff(a, axis=-2)).mean()) / 2


def run_renders(ctx: BuildContext, *, epoch: int) -> dict[str, Any]:
    """Optimized images of the followed units with the weights after ``epoch``."""
    from .render import render_channels

    lens = ctx.snapshot_lens(epoch)
    rows: dict[str, Any] = {}
    sprites: dict[str, Any] = {}
    for layer in conv_layers(ctx):
        units = _units(ctx, layer)
        images, ratios = render_channels(ctx, lens, layer, units)
        more, refs = ctx.sprite(f"evolution/{layer}/epoch_{epoch:03d}",
                                f"img/evolution/{layer}_epoch_{epoch:03d}.png", images,
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
