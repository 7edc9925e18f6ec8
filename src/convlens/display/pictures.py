"""The pictures of analysis results, shared by the CLI's PNG files and the notebook display.

Each builder takes a result (data) and returns PIL images, drawn by ``convlens.images``. The
CLI writes them to disk and the notebook shows them inline, so both always show the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..errors import UnknownNameError, did_you_mean
from ..images import figure_to_image
from ..images.examples import layer_examples_picture, unit_examples_picture
from ..images.render import neurons_grid, units_grid

GAP = 12  # px of white between stacked pictures


def stack(pictures: Sequence[Image.Image]) -> Image.Image:
    """Pictures one under the other, left-aligned, on white."""
    if len(pictures) == 1:
        return pictures[0]
    width = max(p.width for p in pictures)
    height = sum(p.height for p in pictures) + GAP * (len(pictures) - 1)
    out = Image.new("RGB", (width, height), "white")
    y = 0
    for p in pictures:
        out.paste(p.convert("RGB"), (0, y))
        y += p.height + GAP
    return out


# --- render ----------------------------------------------------------------------------------
@dataclass
class RenderPanel:
    """One picture of a render result: the items of one layer and unit kind."""

    key: str  # "conv2d_3", "conv2d_3_neurons", "class" or "objectives" (also the file stem)
    rows: list[int]
    picture: Image.Image
    deaveraged: Image.Image | None = None  # class images minus their mean (the seed preset)


def render_groups(result: Any) -> dict[str, list[int]]:
    """Rows of the result by picture: one per layer and unit kind."""
    out: dict[str, list[int]] = {}
    for i, unit in enumerate(result.units):
        if unit is None:
            key = "objectives"
        elif unit.kind == "class":
            key = "class"
        elif unit.kind == "neuron":
            key = f"{unit.layer}_neurons"
        else:
            key = unit.layer
        out.setdefault(key, []).append(i)
    return out


def tile_label(result: Any, i: int) -> str:
    """What a tile says: channel (and position) with its ratio r, or a class and its p."""
    unit = result.units[i]
    copy = f"#{result.copies[i]}" if result.recipe.get("diversity", 1) > 1 else ""
    if unit is None:
        return result.names[i][:18]
    if unit.kind == "class":
        names = result.class_names
        name = names[unit.channel] if unit.channel < len(names) else unit.channel
        return f"{name}{copy} p={float(result.probability[i]):.2f}"
    where = f"@{unit.position[0]},{unit.position[1]}" if unit.position else ""
    if result.status[i] == "dead":
        return f"{unit.channel}{where}{copy} dead"
    if result.status[i] == "failed":
        return f"{unit.channel}{where}{copy} failed"
    peak = float(result.ratio[i])
    mean = float(result.r_mean[i]) if result.r_mean is not None else float("nan")
    if peak != peak:
        return f"{unit.channel}"
    if mean != mean:  # a neuron: one value
        return f"{unit.channel}{where}{copy} r={peak:.2f}"
    return f"{unit.channel}{copy} r={peak:.2f}/{mean:.2f}"


def _render_title(key: str, result: Any, summary: dict[str, Any]) -> str:
    if key == "class":
        return f"classes ({result.preset}): probability of the class"
    if key == "objectives":
        return f"objectives ({result.preset})"
    label = key.replace("_neurons", " neurons")
    stats = summary.get(label) or summary.get(key) or {}
    if result.dataset is None:
        return f"{label} ({result.preset}): unverified, no dataset to compare with"
    if stats.get("live"):
        if "r_mean_ge_1" not in stats:  # neurons: their own value / its best
            return (
                f"{label} ({result.preset}): r = reached / best real image; r >= 1 for "
                f"{stats['r_peak_ge_1']} of {stats['live']} live, {stats['dead']} dead"
            )
        return (
            f"{label} ({result.preset}): tiles r=r_peak/r_mean (reached / best real image); "
            f"r_peak >= 1 for {stats['r_peak_ge_1']}, r_mean >= 1 for {stats['r_mean_ge_1']} "
            f"of {stats['live']} live, {stats['dead']} dead"
        )
    return f"{label} ({result.preset})"


def _display(result: Any) -> str:
    from ..viz.render import get_preset

    return "blog" if get_preset(result.preset).display == "blog" else "plain"


def render_panels(result: Any) -> list[RenderPanel]:
    """The grids of a render result, one per layer and unit kind, every tile labelled."""
    from ..viz.render import get_preset

    display = _display(result)
    vr = tuple(result.value_range)
    summary = result.summary()
    panels = []
    for key, rows in render_groups(result).items():
        labels = [tile_label(result, i) for i in rows]
        title = _render_title(key, result, summary)
        if key.endswith("_neurons"):
            picture = neurons_grid(
                [result.crops[i] for i in rows], result.images[rows],
                [result.windows[i] for i in rows], labels, display=display, value_range=vr,
                title=title,
            )  # fmt: skip
        else:
            picture = units_grid(
                result.images[rows], labels, display=display, value_range=vr, title=title
            )
        deav = None
        if key == "class" and get_preset(result.preset).de_average_classes and len(rows) > 1:
            images = result.images[rows]
            deav = units_grid(images - images.mean(0, keepdim=True), labels, display="signed",
                              title="classes, de-averaged")  # fmt: skip
        panels.append(RenderPanel(key, rows, picture, deav))
    return panels


def render_picture(result: Any) -> Image.Image:
    """Every grid of a render result, stacked."""
    pictures = []
    for panel in render_panels(result):
        pictures.append(panel.picture)
        if panel.deaveraged is not None:
            pictures.append(panel.deaveraged)
    return stack(pictures)


# --- prototypes ------------------------------------------------------------------------------
def _copy_major(k: int, diversity: int) -> list[int]:
    """Rows to show copy 0 of every class, then copy 1, ... (one row per copy)."""
    return [c * diversity + d for d in range(diversity) for c in range(k)]


def prototype_pictures(protos: Any) -> tuple[Image.Image, Image.Image]:
    """The prototypes with their verdict (p of the class, ✗ when below 0.99), and de-averaged."""
    names = [protos.class_names[int(t)] for t in protos.targets]
    labels = [
        f"{n} p={float(p):.2f}" + ("" if ok else " ✗")
        for n, p, ok in zip(names, protos.probability, protos.correct, strict=True)
    ]
    ncols = len(protos.classes) if protos.diversity > 1 else None
    order = _copy_major(len(protos.classes), protos.diversity)
    raw = units_grid(
        protos.images[order], [labels[i] for i in order], display=_display(protos.result),
        value_range=tuple(protos.result.value_range),
        title=f"class prototypes ({protos.result.preset})", ncols=ncols,
    )  # fmt: skip
    deav = units_grid(
        protos.deaveraged[order], [names[i] for i in order], display="signed",
        title="de-averaged (each minus the mean of all classes)", ncols=ncols,
    )  # fmt: skip
    return raw, deav


# --- activations -----------------------------------------------------------------------------
def activations_picture(acts: Any, index: int = 0, layer: str | None = None) -> Image.Image:
    """Image ``index``: the first layer's figure (with the input and the class probabilities),
    then a grid of maps per further layer, each layer on one colour scale (or one ``layer``)."""
    from ..images import DIVERGING, SEQUENTIAL, activations_figure, image_grid

    names = [layer] if layer is not None else list(acts.maps)
    probs = acts.probabilities[index]
    class_names = list(acts.class_names) or [str(i) for i in range(len(probs))]
    pred = int(probs.argmax())
    title = f"image {index}: predicted {class_names[pred]} ({float(probs[pred]):.1%})"
    pictures = []
    for k, name in enumerate(names):
        maps = acts.maps[name][index]
        if maps.dim() != 3:  # a dense layer: its features as a 1-row map
            maps = maps.reshape(1, 1, -1)
        if k == 0:
            x = acts.inputs[index].numpy()
            fig = activations_figure(x, name, maps.numpy(), probs.numpy(), class_names,
                                     title=f"{title} · {name}")  # fmt: skip
            pictures.append(figure_to_image(fig))
            continue
        signed = float(maps.min()) < 0
        lo, hi = float(maps.min()), float(maps.max())
        shown = maps[:64]
        more = f", first 64 of {maps.shape[0]}" if maps.shape[0] > 64 else ""
        pictures.append(image_grid(
            shown.numpy(), labels=[str(i) for i in range(len(shown))], tile_px=56,
            cmap=DIVERGING if signed else SEQUENTIAL, norm="symmetric" if signed else "minmax",
            shared=True, colorbar=True, colorbar_label="activation",
            title=f"{name} · {maps.shape[0]} maps of {maps.shape[1]}x{maps.shape[2]}{more}, one "
                  f"scale ({lo:.3g} … {hi:.3g})",
        ))  # fmt: skip
    return stack(pictures)


# --- heatmaps --------------------------------------------------------------------------------
def heatmap_picture(heatmap: Any, max_images: int = 16) -> Image.Image:
    """The signed maps of a batch on one shared symmetric scale (red for the target, blue
    against), each labelled with its image and target."""
    from ..images import DIVERGING, image_grid

    n = min(len(heatmap), max_images)
    labels = [f"#{i} target {int(heatmap.target[i])}" for i in range(n)]
    title = f"{heatmap.method}: red raises the target's score, blue lowers it"
    if n < len(heatmap):
        title += f" (first {n} of {len(heatmap)})"
    return image_grid(heatmap.values[:n].numpy(), labels=labels, cmap=DIVERGING,
                      norm="symmetric", shared=True, title=title, colorbar=True,
                      colorbar_label="evidence")  # fmt: skip


def explanation_picture(explanation: Any, index: int = 0) -> Image.Image:
    """Every method's map of image ``index`` side by side with its deletion/insertion AUC."""
    from ..images.heatmaps import (
        PANEL_CAPTIONS,
        PanelEntry,
        faithfulness_warning,
        heatmap_panel,
        map_label,
    )

    entries = []
    for name, ev in explanation.items():
        f = ev.faithfulness
        d, i = float(f.deletion_auc[index]), float(f.insertion_auc[index])
        caption = [f"{d:.2f}", f"{i:.2f}"]
        warning = None
        if f.random_deletion_auc is not None and f.random_insertion_auc is not None:
            rd, ri = float(f.random_deletion_auc[index]), float(f.random_insertion_auc[index])
            caption = [f"{d:.2f} (random {rd:.2f})", f"{i:.2f} (random {ri:.2f})"]
            warning = faithfulness_warning(d, i, rd, ri)
        native = None if ev.heatmap.native is None else ev.heatmap.native[index]
        label = map_label(ev.heatmap.options)
        entries.append(
            PanelEntry(name, ev.heatmap.values[index], native, caption, map_label=label,
                       warning=warning)
        )  # fmt: skip
    first = next(iter(explanation.values())).heatmap
    target = int(first.target[index])
    fig = heatmap_panel(
        explanation.inputs[index], entries,
        title=f"image {index}: why class {target}?",
        subtitle=["red: evidence for the class, blue: against; each map on its own range",
                  "under each column: deletion AUC (lower is better) and insertion AUC (higher "
                  "is better) beside the random order's; red frame: the map does not beat it"],
        caption_labels=PANEL_CAPTIONS,
    )  # fmt: skip
    return figure_to_image(fig)


# --- examples --------------------------------------------------------------------------------
def examples_picture(
    result: Any, layer: str | None = None, unit: Any = None, max_units: int = 16
) -> Image.Image:
    """One unit's examples, or per layer a row of top crops for each of its first units."""
    common = {"num_images": result.num_images, "split": result.split, "bottom": result.bottom}
    if unit is not None:
        return unit_examples_picture(result[unit], class_names=result.class_names, **common)
    pictures = []
    for name in [layer] if layer is not None else result.layers:
        exs = result.for_layer(name)
        if not exs:
            raise UnknownNameError(did_you_mean(name, result.layers, "mined layer"))
        pictures.append(layer_examples_picture(exs[:max_units], layer=name, **common))
    return stack(pictures)


def as_rgb(picture: Image.Image) -> np.ndarray:
    return np.asarray(picture.convert("RGB"))
