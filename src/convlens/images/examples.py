"""Pictures of dataset examples: a unit's top images with the receptive field boxed, its field
crops enlarged, and a whole layer as one row of crops per unit.

Pixels are drawn on the model's fixed value range (not per-tile min-max), so a faint crop looks
faint. Crop pixels outside the image (padding at the border) are hatched, so nobody mistakes the
padding for a dark stroke.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from convlens.images.colors import FRAME, HIGHLIGHT, INK, MUTED
from convlens.images.figures import fit_tile
from convlens.images.grids import _ellipsize, _wrap, font
from convlens.images.normalize import as_float

HATCH = np.array([110, 140, 190], dtype=np.uint8)  # stripes over padding outside the image
DEAD, DEAD_BG = "#b42318", "#fdf1f0"  # a dead unit's label and note (as the atlas's badge)
PAD, GAP = 14, 8


def pixels_rgb(image: Any, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """A (C, H, W) pixel-space image as uint8 (H, W, 3) on the fixed ``value_range``."""
    a = as_float(image)
    if a.ndim == 2:
        a = a[None]
    lo, hi = value_range
    a = np.clip((a - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    if a.shape[0] == 1:
        a = np.repeat(a, 3, axis=0)
    elif a.shape[0] != 3:
        raise ValueError(f"need 1 or 3 channels to draw, got shape {a.shape}")
    return (np.transpose(a[:3], (1, 2, 0)) * 255 + 0.5).astype(np.uint8)


def tile_rgb(
    image: Any,
    mask: Any | None,
    target: int,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> np.ndarray:
    """An image enlarged to about ``target`` px (crisp pixels), padding (mask False) hatched."""
    rgb = pixels_rgb(image, value_range)
    up = fit_tile(rgb, target).copy()
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if not m.all():
            f = up.shape[0] // m.shape[0]
            big = np.repeat(np.repeat(~m, f, axis=0), f, axis=1)
            yy, xx = np.indices(big.shape)
            stripes = big & ((yy + xx) % 6 < 2)
            up[stripes] = HATCH
    return up


@dataclass(frozen=True)
class Row:
    """One row of tiles: a heading, the tiles (N, C, h, w), optional masks and captions."""

    heading: str
    tiles: Any
    masks: Any | None = None
    captions: Sequence[Sequence[str]] = ()  # per tile, one or two short lines
    boxes: Sequence[tuple[int, int, int, int] | None] = ()  # per tile (top, left, bottom, right)


def _text_block(
    draw: ImageDraw.ImageDraw, x: int, y: int, width: int, text: str, size: int, fill: str
) -> int:
    """Draw wrapped text; return the height used."""
    f = font(size)
    lines = _wrap(text, width, f)
    step = int(size * 1.35)
    for i, line in enumerate(lines):
        draw.text((x, y + i * step), line, fill=fill, font=f)
    return len(lines) * step


def draw_unit_examples(
    rows: Sequence[Row],
    *,
    title: str,
    subtitle: str = "",
    tile_px: int = 84,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> Image.Image:
    """A picture of one unit's examples: rows of same-sized tiles with headings and captions.

    Tiles get a box (``Row.boxes``, in the tile's own pixel coordinates) drawn in the highlight
    colour, e.g. the receptive field of the neuron that fired.
    """
    prepared = []
    for row in rows:
        tiles = as_float(row.tiles)
        masks = None if row.masks is None else np.asarray(row.masks, dtype=bool)
        rgbs = [
            tile_rgb(t, None if masks is None else masks[i], tile_px, value_range)
            for i, t in enumerate(tiles)
        ]
        prepared.append((row, tiles, rgbs))
    n = max((len(r[2]) for r in prepared), default=1)
    cell = max((max(t.shape[:2]) for _, _, rgbs in prepared for t in rgbs), default=tile_px)
    width = max(2 * PAD + n * cell + (n - 1) * GAP, 420)
    cap_size, head_size = 11, 12
    cap_lines = max((len(c) for r in rows for c in r.captions), default=0)
    cap_h = cap_lines * (cap_size + 4) + 4

    title_f = font(16, bold=True)
    title_lines = _wrap(title, width - 2 * PAD, title_f)
    sub_lines = _wrap(subtitle, width - 2 * PAD, font(11)) if subtitle else []
    head_h = int(head_size * 1.35) + 4
    height = (
        PAD + len(title_lines) * 22 + len(sub_lines) * 15 + 8
        + len(prepared) * (head_h + cell + cap_h + GAP) + PAD
    )  # fmt: skip
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = PAD
    for line in title_lines:
        draw.text((PAD, y), line, fill=INK, font=title_f)
        y += 22
    for line in sub_lines:
        draw.text((PAD, y), line, fill=MUTED, font=font(11))
        y += 15
    y += 8
    for row, tiles, rgbs in prepared:
        draw.text((PAD, y), row.heading, fill=INK, font=font(head_size, bold=True))
        y += head_h
        for i, rgb in enumerate(rgbs):
            x0 = PAD + i * (cell + GAP)
            th, tw = rgb.shape[:2]
            ox, oy = x0 + (cell - tw) // 2, y + (cell - th) // 2
            canvas.paste(Image.fromarray(rgb), (ox, oy))
            draw.rectangle((ox - 1, oy - 1, ox + tw, oy + th), outline=FRAME)
            box = row.boxes[i] if i < len(row.boxes) else None
            if box is not None:
                h, w = tiles[i].shape[-2:]
                s = th / h
                top, left = max(box[0], 0), max(box[1], 0)  # the part inside the image
                bottom, right = min(box[2], h), min(box[3], w)
                draw.rectangle(
                    (ox + left * s, oy + top * s, ox + right * s - 1, oy + bottom * s - 1),
                    outline=HIGHLIGHT, width=2,
                )  # fmt: skip
            caps = row.captions[i] if i < len(row.captions) else ()
            for j, text in enumerate(caps):
                f = font(cap_size, bold=j == 0)
                text = _ellipsize(text, cell + GAP - 2, f)
                draw.text((x0 + cell / 2, y + cell + 3 + j * (cap_size + 4)), text,
                          fill=INK if j == 0 else MUTED, font=f, anchor="ma")  # fmt: skip
        y += cell + cap_h + GAP
    return canvas


def draw_layer_examples(
    labels: Sequence[str],
    tiles: Any,
    *,
    values: Any,
    masks: Any | None = None,
    title: str,
    subtitle: str = "",
    tile_px: int = 48,
    value_range: tuple[float, float] = (0.0, 1.0),
    notes: Sequence[str | None] = (),
) -> Image.Image:
    """A whole layer: one row per unit (``labels``), its k tiles (U, k, C, h, w) left to right
    (best first), each captioned with its value. A unit with a ``notes`` entry (a dead unit)
    shows that text instead of its tiles: images that never excited it are no examples."""
    t = as_float(tiles)
    v = as_float(values)
    m = None if masks is None else np.asarray(masks, dtype=bool)
    units, k = t.shape[:2]
    first = tile_rgb(t[0, 0], None, tile_px, value_range)
    cell = max(first.shape[:2])
    label_f, cap_f = font(12, bold=True), font(9)
    gutter = int(max((label_f.getlength(s) for s in labels), default=20)) + 12
    rank_h = 14
    row_h = cell + 13
    width = max(PAD * 2 + gutter + k * cell + (k - 1) * 4, 360)
    title_f = font(15, bold=True)
    title_lines = _wrap(title, width - 2 * PAD, title_f)
    sub_lines = _wrap(subtitle, width - 2 * PAD, font(11)) if subtitle else []
    top = PAD + len(title_lines) * 21 + len(sub_lines) * 15 + 8 + rank_h
    height = top + units * (row_h + 4) + PAD
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = PAD
    for line in title_lines:
        draw.text((PAD, y), line, fill=INK, font=title_f)
        y += 21
    for line in sub_lines:
        draw.text((PAD, y), line, fill=MUTED, font=font(11))
        y += 15
    x_tiles = PAD + gutter
    for j in range(k):
        draw.text((x_tiles + j * (cell + 4) + cell / 2, top - rank_h), f"#{j + 1}",
                  fill=MUTED, font=cap_f, anchor="ma")  # fmt: skip
    for u in range(units):
        y0 = top + u * (row_h + 4)
        note = notes[u] if u < len(notes) else None
        draw.text((PAD, y0 + cell / 2), labels[u], fill=DEAD if note else INK, font=label_f,
                  anchor="lm")  # fmt: skip
        if note:
            draw.rectangle((x_tiles - 1, y0 - 1, width - PAD, y0 + cell), fill=DEAD_BG)
            text = _ellipsize(note, width - PAD - x_tiles - 16, font(11))
            draw.text((x_tiles + 8, y0 + cell / 2), text, fill=DEAD, font=font(11), anchor="lm")
            continue
        for j in range(k):
            x0 = x_tiles + j * (cell + 4)
            rgb = tile_rgb(t[u, j], None if m is None else m[u, j], tile_px, value_range)
            th, tw = rgb.shape[:2]
            canvas.paste(Image.fromarray(rgb), (x0 + (cell - tw) // 2, y0 + (cell - th) // 2))
            draw.rectangle((x0 - 1, y0 - 1, x0 + cell, y0 + cell), outline=FRAME)
            draw.text((x0 + cell / 2, y0 + cell + 1), f"{v[u, j]:.3g}", fill=MUTED, font=cap_f,
                      anchor="ma")  # fmt: skip
    return canvas


# --- from analysis results (duck-typed: convlens.viz.examples.UnitExamples) ------------------
def _where(split: str, num_images: int) -> str:
    names = {"val": "validation", "train": "training", "all": "training + validation"}
    return f"{num_images} {names.get(split, '')} images".replace("  ", " ")


def unit_examples_picture(
    ex: Any,
    *,
    num_images: int,
    split: str = "val",
    class_names: Sequence[str] = (),
    value_range: tuple[float, float] = (0.0, 1.0),
    bottom: bool = False,
) -> Image.Image:
    """One unit: its k images with the field of the max neuron boxed, then the field crops.

    ``ex`` has ``unit``, ``score``, ``values``, ``indices``, ``labels``, ``locations``,
    ``windows``, ``images``, ``crops``, ``crop_mask`` (a ``UnitExamples``).
    """
    n = len(ex.values)
    which = "bottom" if bottom else "top"
    if is_dead(ex, bottom):
        return draw_unit_examples(
            [], title=f"{ex.unit}: dead unit", subtitle=dead_note(ex, num_images, split)
            + ". No image excites it, so it has no top examples.",
        )  # fmt: skip
    labels = ex.labels.tolist() if ex.labels is not None else [None] * n
    captions = []
    for v, i, lab in zip(ex.values.tolist(), ex.indices.tolist(), labels, strict=True):
        second = f"#{i}" + (f" · {_class(lab, class_names)}" if lab is not None else "")
        captions.append((f"{v:.3g}", second))
    spatial = ex.locations is not None
    rows = []
    if spatial:
        rh, rw = ex.crops.shape[-2:]
        boxes = [tuple(w) for w in ex.windows.tolist()]
        neuron = "the most negative neuron" if bottom else "the neuron that fired"
        heading = f"{which} {n} images (orange box: receptive field of {neuron})"
        rows.append(Row(heading, ex.images, None, captions, boxes))
        crop_caps = [(f"at ({r},{c})",) for r, c in ex.locations.tolist()]
        rows.append(Row(f"its receptive field, {rh}x{rw} px, enlarged (hatched: outside the "
                        "image)", ex.crops, ex.crop_mask, crop_caps))  # fmt: skip
    else:
        rows.append(Row(f"{which} {n} images", ex.images, None, captions))
    subtitle = (
        f"{which} {n} of {_where(split, num_images)}, ranked by {ex.score}. "
        "Under each image: the value, then the image index · its label."
    )
    return draw_unit_examples(rows, title=f"{ex.unit}: dataset examples", subtitle=subtitle,
                              value_range=value_range)  # fmt: skip


def is_dead(ex: Any, bottom: bool = False) -> bool:
    """A unit that never responds on the mined images: its *top* value is <= 0 (after a ReLU,
    exactly 0 on every image). Class scores and bottom rankings are never called dead."""
    if bottom or ex.unit.kind == "class" or len(ex.values) == 0:
        return False
    return float(np.nanmax(as_float(ex.values))) <= 0.0


def dead_note(ex: Any, num_images: int, split: str = "val") -> str:
    peak = float(np.nanmax(as_float(ex.values))) if len(ex.values) else 0.0
    return f"dead: never active on the {_where(split, num_images)} (largest value {peak:.3g})"


def _class(label: int, class_names: Sequence[str]) -> str:
    return class_names[label] if 0 <= label < len(class_names) else str(label)


def layer_examples_picture(
    exs: Sequence[Any],
    *,
    layer: str,
    num_images: int,
    split: str = "val",
    value_range: tuple[float, float] = (0.0, 1.0),
    show: str = "crops",
    bottom: bool = False,
    class_names: Sequence[str] = (),
) -> Image.Image:
    """A whole layer: one row per unit, its k crops (or images) best first, values below.

    Rows are labelled by channel (the layer is in the title) or, for class units, by class
    name; a dead unit's row says so instead of showing images that never excited it."""
    if show not in ("crops", "images"):
        raise ValueError(f"show must be 'crops' or 'images', got {show!r}")
    n = min(len(e.values) for e in exs)
    crops = show == "crops" and exs[0].locations is not None
    tiles = np.stack([as_float(e.crops if crops else e.images)[:n] for e in exs])
    masks = np.stack([np.asarray(e.crop_mask)[:n] for e in exs]) if crops else None
    values = np.stack([as_float(e.values)[:n] for e in exs])
    notes = ["never active on these images: no examples" if is_dead(e, bottom) else None
             for e in exs]  # fmt: skip
    labels = [_short(e.unit, class_names) + (" dead" if note else "")
              for e, note in zip(exs, notes, strict=True)]  # fmt: skip
    which = "bottom" if bottom else "top"
    what = (
        f"receptive-field crops ({tiles.shape[-2]}x{tiles.shape[-1]} px; hatched: outside the "
        "image)"
        if crops
        else "images"
    )
    subtitle = (
        f"One row per unit: its {which} {n} {what} from {_where(split, num_images)}, best first, "
        f"ranked by {exs[0].score}; the value is under each tile."
    )
    tile_px = 48 if crops else 56
    dead = sum(note is not None for note in notes)
    if dead:
        subtitle += f" {dead} of {len(exs)} units are dead (never active): no examples."
    return draw_layer_examples(labels, tiles, values=values, masks=masks,
                               title=f"{layer}: dataset examples", subtitle=subtitle,
                               tile_px=tile_px, value_range=value_range, notes=notes)  # fmt: skip


def _short(unit: Any, class_names: Sequence[str] = ()) -> str:
    """Row label: the channel (and position) without the layer name, which is in the title; a
    class unit by its class name ("seven", or "3" for digits), never ``class:3``."""
    if unit.kind == "class":
        return _class(int(unit.channel), class_names)
    text = str(unit)
    return text.split(":", 1)[1] if ":" in text else text
