"""Render: each unit's optimized image, for the whole channel and for one neuron at the size of
its receptive field, with the verification ratio r against the best real image.

One batched render per layer (channels and centre neurons together); the neuron's image is its
receptive-field crop, so a first-layer neuron is a 3x3 patch, not a 28x28 texture. Dead units
(never active on the validation images) are skipped.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from ...lens import Lens
from ...units import Unit
from ..context import BuildContext
from . import Task


def render_available() -> bool:
    """Whether the render analysis (``convlens.viz.render.render``) is installed."""
    try:
        from ...viz.render import render  # noqa: F401
    except ImportError:
        return False
    return True


def tasks(ctx: BuildContext) -> list[Task]:
    if not render_available():
        return []
    return [
        Task("render", f"render/{n}", f"render {n}", partial(run, layer=n)) for n in ctx.unit_layers
    ]


def _render(ctx: BuildContext, lens: Lens, units: list[Unit], **overrides: Any) -> Any:
    from ...viz.render import render

    return render(
        lens,
        units,
        preset=ctx.options.render_preset,
        steps=ctx.options.render_steps,
        seed=ctx.options.seed,
        data=ctx.dataset,
        progress=False,
        executor=ctx.executor,
        **overrides,
    )


def _display(result: Any, images: Any, vr: tuple[float, float]) -> np.ndarray:
    """Images as the preset shows them: pixel space on the model's range, or blog-normalized."""
    from ...images import blog_normalize

    a = images.detach().cpu().float().numpy() if hasattr(images, "detach") else np.asarray(images)
    if getattr(result, "preset", "") == "seed":
        return np.stack([blog_normalize(im) for im in a])
    lo, hi = vr
    return np.clip((a - lo) / ((hi - lo) or 1.0), 0.0, 1.0)


def _num(v: Any) -> float | None:
    x = float(v)
    return None if not np.isfinite(x) else x


def run(ctx: BuildContext, *, layer: str) -> dict[str, Any]:
    lens = ctx.lens
    info = lens.layer(layer)
    # Dead units never fire on real images: an optimized image would only show noise (and r
    # is undefined), so they are not rendered; the pages mark them dead instead.
    idx = ctx.live_units(layer)
    if not idx:
        return {}
    units = [Unit("channel", layer, i) for i in idx]
    if info.is_spatial:
        centre = (info.output_shape[1] // 2, info.output_shape[2] // 2)
        units += [Unit("neuron", layer, i, centre) for i in idx]
    result = _render(ctx, lens, units)
    vr = tuple(lens.spec.value_range)
    n = len(idx)
    channel_images = _display(result, result.images[:n], vr)
    sprites, channel_refs = ctx.sprite(
        f"{layer}/channels", f"img/{layer}/channels.png", channel_images,
        note=f"channel images ({result.preset} preset), pixel values on the model's range",
    )  # fmt: skip
    neuron_refs: list[dict[str, Any]] = []
    if info.is_spatial:
        crops = [result.crops[n + k] for k in range(n)]
        more, neuron_refs = ctx.sprite(
            f"{layer}/neurons", f"img/{layer}/neurons.png", _display(result, np.stack(crops), vr),
            note="neuron images: the receptive-field crop of the centre neuron",
        )  # fmt: skip
        sprites.update(more)
    units_out: dict[str, Any] = {}
    for k, i in enumerate(idx):
        record: dict[str, Any] = {
            "channel": {
                "image": channel_refs[k],
                "activation": _num(result.activation[k]),
                "reference": _num(result.reference[k]),
                "r": _num(result.ratio[k]),  # r_peak, the ratio the pages have always shown
                "r_mean": _num(result.r_mean[k]),
                "mean_reference": _num(result.mean_reference[k]),
                "match": _num(result.match[k]),
                "match_top1": bool(result.match_top1[k]),
                "at_limits": _num(result.at_limits[k]),
                "flat": _num(result.flat[k]),
                "constant_r_peak": _num(result.constant_r_peak[k]),
                "constant_r_mean": _num(result.constant_r_mean[k]),
                "status": result.status[k],
                "contrast": float(channel_images[k].std()),
            }
        }
        if info.is_spatial:
            j = n + k
            record["neuron"] = {
                "image": neuron_refs[k],
                "position": list(units[j].position or ()),
                "window": list(result.windows[j]) if result.windows[j] else None,
                "activation": _num(result.activation[j]),
                "r": _num(result.ratio[j]),
                "at_limits": _num(result.at_limits[j]),
                "flat": _num(result.flat[j]),
                "status": result.status[j],
            }
        units_out[str(i)] = record
    extras = {layer: {"render": {"preset": result.preset, "steps": ctx.options.render_steps}}}
    return {"sprites": sprites, "units": {layer: units_out}, "layer_extras": extras}


def render_channels(
    ctx: BuildContext, lens: Lens, layer: str, units: list[int], **overrides: Any
) -> tuple[np.ndarray, list[float | None]]:
    """Channel images of ``units`` of ``layer`` under ``lens`` (e.g. a snapshot), for display;
    ``overrides``: render options (e.g. ``restarts=0``) on top of the atlas's own."""
    result = _render(ctx, lens, [Unit("channel", layer, i) for i in units], **overrides)
    images = _display(result, result.images, tuple(lens.spec.value_range))
    return images, [_num(r) for r in result.ratio]
