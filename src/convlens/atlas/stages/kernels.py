"""Kernels: each unit's learned filter as a mosaic tile, plus the layer's kernel figure."""

from __future__ import annotations

from functools import partial
from typing import Any

from ...images import draw_kernels
from ...images.atlas import kernel_mosaic
from ...viz import kernels as layer_kernels
from ..context import BuildContext
from . import Task


def tasks(ctx: BuildContext) -> list[Task]:
    convs = [n for n in ctx.unit_layers if ctx.lens.layer(n).kind == "conv"]
    return [Task("kernels", f"kernels/{n}", f"kernels {n}", partial(run, layer=n)) for n in convs]


def run(ctx: BuildContext, *, layer: str) -> dict[str, Any]:
    w = layer_kernels(ctx.lens, layer)
    idx = ctx.unit_indices(layer)
    scale = float(w.abs().max()) or 1.0
    tiles = [kernel_mosaic(w[i], scale) for i in idx]
    sprites, refs = ctx.sprite(
        f"{layer}/kernels",
        f"img/{layer}/kernels.png",
        tiles,
        note=f"kernels, one diverging scale for the layer: |weight| <= {scale:.3g}",
    )
    fid = f"{layer}/kernels"
    figure = ctx.figure(
        fid,
        f"img/{layer}/kernels_figure.png",
        draw_kernels(w, layer=layer, filters=idx, max_in_channels=8),
        title=f"{layer} kernels",
        caption="Blue weights subtract, red ones add; white is zero. One scale for the layer.",
    )
    units = {str(i): {"kernel": ref} for i, ref in zip(idx, refs, strict=True)}
    shape = list(w.shape)
    return {
        "sprites": sprites,
        "figures": figure,
        "units": {layer: units},
        "layer_extras": {
            layer: {"kernels_figure": fid, "kernel_scale": scale, "kernel_shape": shape}
        },
    }
