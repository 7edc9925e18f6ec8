"""Examples: each unit's top real validation images (Zeiler & Fergus) and its field crops."""

from __future__ import annotations

from functools import partial
from typing import Any

from ...images.examples import tile_rgb
from ...viz.examples import examples
from ..context import BuildContext
from . import Task

CROP_PX = 48  # crops are enlarged to about this size, so every layer's crops line up


def tasks(ctx: BuildContext) -> list[Task]:
    return [
        Task("examples", f"examples/{n}", f"examples {n}", partial(run, layer=n))
        for n in ctx.unit_layers
    ]


def run(ctx: BuildContext, *, layer: str) -> dict[str, Any]:
    result = examples(
        ctx.lens,
        ctx.unit_spec(layer),
        ctx.dataset,
        k=ctx.options.examples_k,
        split="val",
        batch_size=ctx.options.batch_size,
        progress=False,
        executor=ctx.executor,
    )
    vr = tuple(ctx.lens.spec.value_range)
    images, crops, spatial = [], [], False
    for ex in result:
        images.extend(tile_rgb(im, None, max(im.shape[-2:]), vr) for im in ex.images)
        if ex.locations is not None:
            spatial = True
            crops.extend(
                tile_rgb(cr, mask, CROP_PX, vr)
                for cr, mask in zip(ex.crops, ex.crop_mask, strict=True)
            )
    k = result.k
    sprites, image_refs = ctx.sprite(
        f"{layer}/examples", f"img/{layer}/examples.png", images, ncols=k * 4,
        note=f"top {k} validation images per unit, pixels on the model's fixed range",
    )  # fmt: skip
    crop_refs: list[dict[str, Any]] = []
    if spatial:
        more, crop_refs = ctx.sprite(
            f"{layer}/crops", f"img/{layer}/crops.png", crops, ncols=k * 4,
            note="receptive-field crops, enlarged; hatched = outside the image",
        )  # fmt: skip
        sprites.update(more)
    units: dict[str, Any] = {}
    for u, ex in enumerate(result):
        n = len(ex.values)
        record = ex.to_record()
        units[str(ex.unit.channel)] = {
            "examples": {
                "score": record["score"],
                "values": record["values"],
                "indices": record["indices"],
                "labels": record["labels"],
                "locations": record["locations"],
                "windows": record["windows"],
                "crop_size": record["crop_size"],
                "images": image_refs[u * k : u * k + n],
                "crops": crop_refs[u * k : u * k + n] if spatial else [],
            }
        }
    return {"sprites": sprites, "units": {layer: units}}
