"""Kernels: each unit's learned filter as a tile, plus the layer's kernel figure.

A first-layer filter (1 or 3 input channels) is its whole kernel. A deeper filter mixes many
input channels (64 kernels of 3x3 would be 2-pixel specks in a thumbnail), so its tile is a
*summary*: its ``SUMMARY_CHANNELS`` strongest input-channel kernels (largest L2 norm) in a 2x2
mosaic, readable at thumbnail size; the unit page also shows the whole mosaic.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from ...images import draw_kernels
from ...images.atlas import kernel_mosaic
from ...images.kernels import select_input_channels
from ...viz import kernels as layer_kernels
from ..context import BuildContext
from . import Task


def tasks(ctx: BuildContext) -> list[Task]:
    convs = [n for n in ctx.unit_layers if ctx.lens.layer(n).kind == "conv"]
    return [Task("kernels", f"kernels/{n}", f"kernels {n}", partial(run, layer=n)) for n in convs]


SUMMARY_CHANNELS = 4


def run(ctx: BuildContext, *, layer: str) -> dict[str, Any]:
    w = layer_kernels(ctx.lens, layer)
    idx = ctx.unit_indices(layer)
    scale = float(w.abs().max()) or 1.0
    summary = w.shape[1] > SUMMARY_CHANNELS
    strongest = select_input_channels(w[idx].numpy(), SUMMARY_CHANNELS) if summary else None
    if strongest is not None:
        pairs = zip(idx, strongest, strict=True)
        tiles = [kernel_mosaic(w[i][list(ch)], scale, cols=2) for i, ch in pairs]
    else:
        tiles = [kernel_mosaic(w[i], scale) for i in idx]
    what = (
        f"the {SUMMARY_CHANNELS} strongest input channels of each filter" if summary else "kernels"
    )
    sprites, refs = ctx.sprite(
        f"{layer}/kernels",
        f"img/{layer}/kernels.png",
        tiles,
        note=f"{what}, one diverging scale for the layer: |weight| <= {scale:.3g}",
    )
    full_refs: list[dict[str, Any]] = []
    if summary:
        more, full_refs = ctx.sprite(
            f"{layer}/kernels_full",
            f"img/{layer}/kernels_full.png",
            [kernel_mosaic(w[i], scale) for i in idx],
            note=f"every input channel of each filter, |weight| <= {scale:.3g}",
        )
        sprites.update(more)
    fid = f"{layer}/kernels"
    figure = ctx.figure(
        fid,
        f"img/{layer}/kernels_figure.png",
        draw_kernels(w, layer=layer, filters=idx, max_in_channels=8),
        title=f"{layer} kernels",
        caption="Blue weights subtract, red ones add; white is zero. One scale for the layer.",
    )
    units: dict[str, Any] = {str(i): {"kernel": ref} for i, ref in zip(idx, refs, strict=True)}
    if strongest is not None:
        for k, i in enumerate(idx):
            units[str(i)]["kernel_channels"] = [int(c) for c in strongest[k]]
            units[str(i)]["kernel_full"] = full_refs[k]
    shape = list(w.shape)
    return {
        "sprites": sprites,
        "figures": figure,
        "units": {layer: units},
        "layer_extras": {
            layer: {"kernels_figure": fid, "kernel_scale": scale, "kernel_shape": shape}
        },
    }
