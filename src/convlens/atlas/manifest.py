"""``manifest.json``: the one description of an atlas folder that every reader (pages, app) uses.

Schema ``convlens-atlas``, version 1. Paths are relative to the atlas folder and use ``/``.
Every picture the pages show is listed, either as a *figure* (a PNG of its own) or as a *tile*
of a sprite sheet (one PNG per layer and kind, cut out by pixel box)::

    {
      "schema": "convlens-atlas", "version": 1,
      "generator": "convlens 0.1.0", "created": "2026-01-01T00:00:00+00:00",
      "complete": true,                      # every requested stage finished
      "stages": {"overview": "done", "render": "pending", "evolution": "skipped", ...},
      "options": {...},                      # AtlasOptions of the build (quick, steps, ...)
      "model": {
        "name": "kaggle4", "checkpoint": "/abs/runs/kaggle4" | null, "epoch": null,
        "input": {channels, height, width, value_range, mean, std, class_names},
        "class_names": [...], "parameters": 901250, "logits_layer": "dense_3",
        "logits_source": "dense_3",          # the layer whose output is the logits (the input
                                             # of logits_layer when that is a final softmax)
        "history": [{epoch, loss, train_acc, val_loss, val_acc, seconds}, ...],
        "data": {...},                       # how the checkpoint was trained
        "accuracy": {"value": 0.98, "images": 500, "source": "mnist", "split": "val"}
      },
      "layers": [                            # the layer table, execution order
        {"name", "kind", "type", "output_shape", "params",
         "receptive_field": {"size": [h, w], "jump": [h, w], "offset": [r, c]} | null,
         "page": "layer-conv2d_1.html" | null, "units_total": 32,
         "kernels_figure": FIGURE-ID | null,
         "units": [UNIT, ...]}               # the units shown (may be the first N only)
      ],
      "sprites": {ID: {"file", "width", "height", "tiles", "colormap", "note"}},
      "figures": {ID: {"file", "width", "height", "title", "caption"}},
      "classes": [CLASS, ...],
      "evolution": {"epochs": [...], "val_acc": [...], "rows": [ROW, ...],
                    "kernel_scale": float, "layers": [CHANGE, ...]} | null,
      "guide": {...}                         # picture choices of "how to read this atlas"
    }

``TILE`` = ``{"sprite": ID, "x", "y", "w", "h"}`` (pixels in the sheet);
``FIGURE`` refs are ids into ``figures``.

``UNIT`` = ``{"index", "unit": "conv2d_1:3", "page": "units/conv2d_1-3.html",
"kernel": TILE | null, "kernel_channels": [c, ...] | absent, "kernel_full": TILE | absent,
"stats": {"mean", "max", "active", "dead"},
"channel": {"image": TILE, "activation", "r" (r_peak), "r_mean", "match", "match_top1",
"at_limits", "flat", "constant_r_peak", "constant_r_mean", ...} | null,
"neuron": {"image": TILE, "position": [i, j], "activation", "r", "at_limits", "flat"} | null,
"examples": {"score", "values", "indices", "labels", "windows": [[top, left, bottom, right]],
"images": [TILE], "crops": [TILE]} | null}``. ``stats.mean`` is the mean activation over the
validation images and positions; a filter with more than 4 input channels has as ``kernel``
its 4 strongest input-channel kernels (``kernel_channels``, by L2 norm) in a 2x2 mosaic and
as ``kernel_full`` all of them; ``stats.active`` the share of images on which the unit fires
anywhere, ``stats.dead`` true when it never fires. ``r`` is the verification ratio: activation
reached by the rendered image divided by the best real image's.

``CLASS`` = ``{"index", "name", "prototype": {"raw": TILE, "deaveraged": TILE,
"probability", "predicted"} | null, "samples": [SAMPLE]}`` with ``SAMPLE`` =
``{"index", "label", "predicted", "probability", "image": TILE, "activations": {LAYER: FIGURE},
"heatmaps": [{"method", "image": TILE, "map": "signed" | "positive part (ReLU)",
"deletion_auc", "insertion_auc", "random_deletion_auc", "random_insertion_auc",
"faithful": bool}],
"curves": FIGURE | null}``.

``ROW`` (evolution) = ``{"unit", "kind": "kernel" | "channel", "tiles": [TILE per epoch],
"r": [r per epoch], "tv": [mean neighbour-pixel difference per epoch],
"contrast": [pixel std per epoch] (channel rows), "change": [None, change since the previous
shown epoch, ...]}``: for a channel row the picture change, for a kernel row the weight change
(see :mod:`convlens.atlas.stages.evolution`).

``CHANGE`` (one per followed conv layer) = ``{"layer", "units": [live followed units],
"render_change": [None, d, ...], "kernel_change": [None, d, ...]}``: per shown epoch, the
change since the previous shown epoch averaged over ``units`` (None for the first epoch, or
where nothing was measured); ``render_change`` is absent without renders.

Missing analyses are absent (``null`` or missing keys), never placeholder pictures. Stages write
their files first and the manifest last, each atomically, so whatever the manifest lists exists.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConvlensError

SCHEMA = "convlens-atlas"
VERSION = 1
MANIFEST = "manifest.json"
# Evolution row fields keyed by epoch in fragments, lists (in epoch order) in the manifest.
EPOCHWISE = ("tiles", "r", "tv", "contrast", "change")
# Per-layer change figures keyed by epoch in fragments, lists in the manifest.
LAYER_EPOCHWISE = ("render_change", "kernel_change")


def deep_merge(into: dict[str, Any], fragment: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``fragment`` into ``into`` in place: dicts recursively, anything else replaced."""
    for key, value in fragment.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            deep_merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)
    return into


def assemble(
    header: dict[str, Any], layer_rows: list[dict[str, Any]], fragments: list[Mapping[str, Any]]
) -> dict[str, Any]:
    """The manifest from its header, the layer table and the results of finished tasks.

    Tasks return fragments keyed like the manifest, except that units and classes are keyed by
    index (``{"units": {layer: {"3": {...}}}}``, ``{"classes": {"3": {...}}}``) so fragments of
    different stages merge; here they become lists sorted by index.
    """
    merged: dict[str, Any] = {}
    for fragment in fragments:
        deep_merge(merged, fragment)
    units = merged.pop("units", {})
    extras = merged.pop("layer_extras", {})
    evolution = _evolution(merged.pop("evolution", None), units)
    layers = []
    for row in layer_rows:
        row = dict(row)
        row.update(extras.get(row["name"], {}))
        by_index = units.get(row["name"], {})
        row["units"] = [
            {"index": int(k), "unit": f"{row['name']}:{k}",
             "page": f"units/{row['name']}-{k}.html", **by_index[k]}
            for k in sorted(by_index, key=int)
        ]  # fmt: skip
        layers.append(row)
    classes = merged.pop("classes", {})
    manifest = {**header, "layers": layers}
    manifest["model"] = deep_merge(dict(header.get("model", {})), merged.pop("model", {}))
    manifest["sprites"] = merged.pop("sprites", {})
    manifest["figures"] = merged.pop("figures", {})
    names = header.get("model", {}).get("class_names", [])
    manifest["classes"] = [
        _class_record(int(k), classes[k], names) for k in sorted(classes, key=int)
    ]
    manifest["evolution"] = evolution
    manifest["guide"] = merged.pop("guide", {})
    manifest.update(merged)
    return manifest


def _evolution(
    evolution: dict[str, Any] | None, units: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """Rows keyed by unit become a list, tiles keyed by epoch a list in epoch order; each unit
    followed by a channel row also gets its own tiles under ``evolution``; the per-layer change
    figures become one record per layer with lists in epoch order."""
    if not evolution:
        return None
    epochs = evolution.get("epochs", [])
    rows = []
    for row in evolution.get("rows", {}).values():
        if "unit" not in row:  # change figures of a row whose pictures are not recorded
            continue
        per_epoch = {k: [v.get(str(e)) for e in epochs] for k, v in row.items() if k in EPOCHWISE}
        rows.append({**row, **per_epoch})
        if row.get("kind") == "channel":
            layer, index = row["unit"].rsplit(":", 1)
            if index in units.get(layer, {}):
                units[layer][index]["evolution"] = rows[-1]["tiles"]
    layers = [
        {"layer": name, **record,
         **{k: [v.get(str(e)) for e in epochs] for k, v in record.items() if k in LAYER_EPOCHWISE}}
        for name, record in evolution.get("layers", {}).items()
    ]  # fmt: skip
    return {**evolution, "rows": rows, "layers": layers}


def _class_record(index: int, record: dict[str, Any], names: list[str]) -> dict[str, Any]:
    samples = record.get("samples", {})
    ordered = sorted(samples.values(), key=lambda s: s.get("order", 0))
    name = names[index] if index < len(names) else str(index)
    return {"index": index, "name": name, "prototype": None, **record, "samples": ordered}


def load_manifest(folder: str | Path) -> dict[str, Any]:
    """Read and check an atlas folder's manifest (schema name and version)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ConvlensError(f"{folder} holds no atlas ({MANIFEST} missing); build one first")
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("schema") != SCHEMA:
        raise ConvlensError(f"{path} is not a convlens atlas manifest")
    if int(data.get("version", 0)) > VERSION:
        raise ConvlensError(f"{path} was written by a newer convlens (version {data['version']})")
    return data


def iter_tiles(node: Any) -> Iterator[dict[str, Any]]:
    """Every sprite tile reference anywhere in a manifest (or part of one)."""
    if isinstance(node, dict):
        if "sprite" in node and {"x", "y", "w", "h"} <= node.keys():
            yield node
        for value in node.values():
            yield from iter_tiles(value)
    elif isinstance(node, list):
        for value in node:
            yield from iter_tiles(value)


def referenced_files(manifest: Mapping[str, Any]) -> set[str]:
    """Relative paths of every file the manifest lists (sprite sheets, figures, pages)."""
    files = {s["file"] for s in manifest.get("sprites", {}).values()}
    files |= {f["file"] for f in manifest.get("figures", {}).values()}
    for layer in manifest.get("layers", []):
        if layer.get("page"):
            files.add(layer["page"])
        files |= {u["page"] for u in layer.get("units", []) if u.get("page")}
    files |= set(manifest.get("pages", []))
    return files


def validate(manifest: Mapping[str, Any], folder: str | Path) -> list[str]:
    """Problems with a manifest against its folder (empty when sound): a reader's checklist."""
    from PIL import Image

    folder = Path(folder)
    problems: list[str] = []
    if manifest.get("schema") != SCHEMA or manifest.get("version") != VERSION:
        problems.append(f"schema/version is {manifest.get('schema')}/{manifest.get('version')}")
    for rel in sorted(referenced_files(manifest)):
        if not (folder / rel).is_file():
            problems.append(f"missing file {rel}")
    sprites = manifest.get("sprites", {})
    for sid, sprite in sprites.items():
        path = folder / sprite["file"]
        if path.is_file():
            with Image.open(path) as im:
                if im.size != (sprite["width"], sprite["height"]):
                    problems.append(f"sprite {sid}: size {im.size} differs from the manifest")
    for fid, fig in manifest.get("figures", {}).items():
        path = folder / fig["file"]
        if path.is_file():
            with Image.open(path) as im:
                if im.size != (fig["width"], fig["height"]):
                    problems.append(f"figure {fid}: size {im.size} differs from the manifest")
    for tile in iter_tiles(dict(manifest)):
        sprite = sprites.get(tile["sprite"])
        if sprite is None:
            problems.append(f"tile refers to unknown sprite {tile['sprite']}")
        elif tile["x"] + tile["w"] > sprite["width"] or tile["y"] + tile["h"] > sprite["height"]:
            problems.append(f"tile {tile} lies outside sprite {tile['sprite']}")
    return problems
