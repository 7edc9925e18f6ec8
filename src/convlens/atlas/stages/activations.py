"""Activations: per-unit statistics over the validation images (mean, peak, how often a unit
fires, dead units) and the feature maps of the sample images of each class."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...images import SEQUENTIAL, image_grid
from ..context import BuildContext
from . import Task


def tasks(ctx: BuildContext) -> list[Task]:
    return [
        Task("activations", "activations/stats", "unit statistics", run_stats),
        Task("activations", "activations/samples", "sample feature maps", run_samples),
    ]


def run_stats(ctx: BuildContext) -> dict[str, Any]:
    """Mean activation, peak, share of images where each unit fires; dead units flagged."""
    units: dict[str, dict[str, Any]] = {}
    summary: dict[str, Any] = {}
    for name, stats in ctx.unit_stats.items():
        mean, peak, active = (stats[k].tolist() for k in ("mean", "max", "active"))
        units[name] = {
            str(i): {
                "stats": {
                    "mean": mean[i],
                    "max": peak[i],
                    "active": active[i],
                    "dead": peak[i] <= 0.0,
                }
            }
            for i in ctx.unit_indices(name)
        }
        summary[name] = {
            "dead_units": int(sum(p <= 0.0 for p in peak)),
            "units_total": len(peak),
            "mean_activation": float(np.mean(mean)),
        }
    return {"units": units, "layer_extras": {n: {"stats": s} for n, s in summary.items()}}


def run_samples(ctx: BuildContext) -> dict[str, Any]:
    """Feature maps of every conv layer for each sample image: one grid, one scale per layer."""
    lens = ctx.lens
    convs = [n for n in ctx.unit_layers if lens.layer(n).is_spatial]
    if not ctx.samples or not convs:
        return {}
    index = [i for _, i in ctx.samples]
    x = ctx.dataset.x_val[index]
    with ctx.no_grad_eval():
        maps = lens.forward(x.to(lens.device), convs)
    figures: dict[str, Any] = {}
    classes: dict[str, Any] = {}
    for k, (c, i) in enumerate(ctx.samples):
        sample: dict[str, Any] = {"index": i, "order": k, "activations": {}}
        for name in convs:
            m = maps[name][k].cpu()
            grid = image_grid(
                m,
                labels=[f"#{j}" for j in range(m.shape[0])],
                cmap=SEQUENTIAL,
                shared=True,
                colorbar=True,
                colorbar_label=f"{name} activation (one scale for the layer)",
                tile_px=56 if m.shape[0] <= 32 else 42,
                title=f"{name}: {m.shape[0]} feature maps of validation image #{i}",
            )
            fid = f"activations/{i}/{name}"
            figures.update(ctx.figure(fid, f"img/samples/{i}_{name}.png", grid,
                                      title=f"{name} feature maps"))  # fmt: skip
            sample["activations"][name] = fid
        classes.setdefault(str(c), {"samples": {}})["samples"][str(i)] = sample
    return {"figures": figures, "classes": classes}
