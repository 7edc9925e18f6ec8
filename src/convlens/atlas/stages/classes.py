"""Classes: each class's prototype, and for sample validation images the model's verdict, its
heatmaps by several methods, and their deletion/insertion check."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...images import DIVERGING, colorize, heatmap_overlay
from ...images.atlas import curves_figure
from ...images.examples import pixels_rgb
from ...images.heatmaps import map_label
from ..context import BuildContext
from . import Task


def tasks(ctx: BuildContext) -> list[Task]:
    out = [Task("classes", "classes/samples", "sample verdicts", run_samples)]
    if _methods(ctx):
        out.append(Task("classes", "classes/heatmaps", "heatmaps", run_heatmaps))
    if _methods(ctx) and ctx.options.sanity and _sanity_available():
        out.append(Task("classes", "classes/sanity", "heatmap sanity check", run_sanity))
    if ctx.options.prototypes and _prototypes_available() and ctx.lens.num_classes:
        out.append(Task("classes", "classes/prototypes", "class prototypes", run_prototypes))
    return out


def _methods(ctx: BuildContext) -> list[str]:
    try:
        from ...viz.attribution import method_names
    except ImportError:
        return []
    known = set(method_names())
    return [m for m in ctx.options.heatmap_methods if m in known]


def _sanity_available() -> bool:
    try:
        from ...viz.sanity import sanity_check  # noqa: F401
    except ImportError:
        return False
    return True


def _prototypes_available() -> bool:
    try:
        from ...viz.prototypes import prototypes  # noqa: F401
    except ImportError:
        return False
    return True


def _sample_images(ctx: BuildContext) -> tuple[list[int], list[int], torch.Tensor]:
    classes = [c for c, _ in ctx.samples]
    index = [i for _, i in ctx.samples]
    return classes, index, ctx.dataset.x_val[index]


def run_samples(ctx: BuildContext) -> dict[str, Any]:
    """The sample images with their labels and the model's probabilities."""
    if not ctx.samples:
        return {}
    classes, index, x = _sample_images(ctx)
    probs = ctx.lens.predict(x, batch_size=ctx.options.batch_size)
    vr = tuple(ctx.lens.spec.value_range)
    tiles = [pixels_rgb(im, vr) for im in x]
    sprites, refs = ctx.sprite(
        "samples/images", "img/samples/images.png", tiles, note="sample validation images"
    )
    out: dict[str, Any] = {}
    for k, (c, i) in enumerate(zip(classes, index, strict=True)):
        p = probs[k]
        out.setdefault(str(c), {"samples": {}})["samples"][str(i)] = {
            "index": i,
            "order": k,
            "label": int(ctx.dataset.y_val[i]),
            "predicted": int(p.argmax()),
            "probability": float(p.max()),
            "probabilities": [round(float(v), 4) for v in p],
            "image": refs[k],
        }
    return {"sprites": sprites, "classes": out}


def run_heatmaps(ctx: BuildContext) -> dict[str, Any]:
    """Heatmaps of the predicted class by each method, deletion/insertion AUC and curves."""
    from ...viz.attribution import attribute
    from ...viz.faithfulness import faithfulness

    if not ctx.samples:
        return {}
    lens, opts = ctx.lens, ctx.options
    classes, index, x = _sample_images(ctx)
    methods = _methods(ctx)
    maps: dict[str, np.ndarray] = {}
    labels: dict[str, str] = {}
    checks: dict[str, Any] = {}
    for n, method in enumerate(methods):
        hm = attribute(lens, x, None, method=method)
        maps[method] = hm.values.detach().cpu().numpy()
        labels[method] = map_label(hm.options)
        # The random-order baseline depends only on images and target: compute it once.
        checks[method] = faithfulness(
            lens,
            x,
            hm,
            steps=opts.faithfulness_steps,
            seed=opts.seed,
            random_order=n == 0,
            batch_size=opts.batch_size,
        )
    target = checks[methods[0]].target
    first_check = checks[methods[0]]  # holds the random-order baseline (computed once)
    tiles, order = [], []
    for method in methods:
        # One symmetric scale per method over all samples: maps of a method compare across images.
        scale = float(np.percentile(np.abs(maps[method]), 99.5)) or 1.0
        for k in range(len(x)):
            tiles.append(np.asarray(heatmap_overlay(x[k], maps[method][k], scale=scale)))
            order.append((method, k))
    sprites, refs = ctx.sprite(
        "samples/heatmaps",
        "img/samples/heatmaps.png",
        tiles,
        note="heatmaps over the image: red for the class, blue against; one scale per method",
    )
    ref_of = {key: refs[n] for n, key in enumerate(order)}
    figures: dict[str, Any] = {}
    out: dict[str, Any] = {}
    names = lens.class_names
    for k, (c, i) in enumerate(zip(classes, index, strict=True)):
        t = int(target[k])
        heatmaps = []
        curves = {}
        for method in methods:
            f = checks[method]
            dele, ins = float(f.deletion_auc[k]), float(f.insertion_auc[k])
            rd, ri = (
                _opt(first_check.random_deletion_auc, k),
                _opt(first_check.random_insertion_auc, k),
            )
            heatmaps.append(
                {
                    "method": method,
                    "image": ref_of[(method, k)],
                    "map": labels[method],
                    "deletion_auc": dele,
                    "insertion_auc": ins,
                    "random_deletion_auc": rd,
                    "random_insertion_auc": ri,
                    # Its own check: a faithful map beats the random order on both curves.
                    "faithful": (rd is None or dele < rd) and (ri is None or ins > ri),
                }
            )
            curves[method] = (f.deletion_curve[k], f.insertion_curve[k])
        first = checks[methods[0]]
        if first.random_deletion_curve is not None and first.random_insertion_curve is not None:
            curves["random order"] = (
                first.random_deletion_curve[k],
                first.random_insertion_curve[k],
            )
        fid = f"curves/{i}"
        fig = curves_figure(
            first.fractions,
            curves,
            title=f"validation image #{i}: is the heatmap faithful to the model?",
            ylabel=f"p(class {names[t]})",
        )
        figures.update(
            ctx.figure(
                fid,
                f"img/samples/{i}_curves.png",
                fig,
                title=f"deletion and insertion, image #{i}",
                caption="Pixels are removed (deletion, to black) or restored (insertion, from a "
                "blurred copy) in the order each heatmap ranks them. A faithful heatmap makes the "
                "probability fall fast under deletion and rise fast under insertion, and beats the "
                "random order.",
            )
        )
        out.setdefault(str(c), {"samples": {}})["samples"][str(i)] = {
            "index": i,
            "order": k,
            "target": t,
            "heatmaps": heatmaps,
            "curves": fid,
        }
    return {"sprites": sprites, "figures": figures, "classes": out}


def _opt(t: torch.Tensor | None, k: int) -> float | None:
    return None if t is None else float(t[k])


def run_prototypes(ctx: BuildContext) -> dict[str, Any]:
    """One optimized image per class, raw and de-averaged, with the model's verdict on it."""
    from ...viz.prototypes import prototypes

    opts = ctx.options
    result = prototypes(
        ctx.lens,
        None,
        preset=opts.render_preset,
        steps=opts.render_steps,
        seed=opts.seed,
        data=ctx.dataset,
    )
    lo, hi = ctx.lens.spec.value_range
    raw = np.clip((result.images.numpy() - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
    sprites, raw_refs = ctx.sprite(
        "classes/prototypes",
        "img/classes/prototypes.png",
        raw,
        note="class prototypes, pixel values on the model's range",
    )
    signed = result.deaveraged.numpy()
    scale = float(np.abs(signed).max()) or 1.0
    tiles = [colorize(t.mean(0), DIVERGING, -scale, scale) for t in signed]
    more, dev_refs = ctx.sprite(
        "classes/deaveraged",
        "img/classes/deaveraged.png",
        tiles,
        note=f"prototype minus the mean prototype, |value| <= {scale:.3g}",
    )
    sprites.update(more)
    classes: dict[str, Any] = {}
    for k, c in enumerate(result.classes):
        classes[str(c)] = {
            "prototype": {
                "raw": raw_refs[k],
                "deaveraged": dev_refs[k],
                "predicted": int(result.predicted[k]),
                "probability": float(result.probability[k]),
                "correct": bool(result.correct[k]),
            }
        }
    return {
        "sprites": sprites,
        "classes": classes,
        "model": {"prototypes": {"deaveraged_scale": scale, "all_correct": result.ok}},
    }


def run_sanity(ctx: BuildContext) -> dict[str, Any]:
    """The model-randomization check of every heatmap method, on one sample image per class.

    The Spearman correlation is read on the digit's pixels only (``where``): on MNIST many maps
    are exactly zero on the black background for any model, which alone would keep it high.
    """
    from ...viz.sanity import sanity_check

    seen: set[int] = set()
    index = []
    for c, i in ctx.samples:
        if c not in seen:
            seen.add(c)
            index.append(i)
    if not index:
        return {}
    x = ctx.dataset.x_val[index]
    low = ctx.lens.spec.value_range[0]
    where = (x > low).any(dim=1)
    checks = {}
    for method in _methods(ctx):
        result = sanity_check(ctx.lens, x, method, seed=ctx.options.seed, where=where)
        checks[method] = {
            "passed": result.passed,
            "mean_spearman": result.mean_spearman,
            "final_spearman": result.final_spearman,
            "threshold": result.threshold,
            "images": len(index),
            "stages": result.rows(),
        }
    return {"model": {"heatmap_sanity": checks}}
