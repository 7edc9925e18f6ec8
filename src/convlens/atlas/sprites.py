"""Sprite sheets: many small tiles of one kind in one PNG, plus the box of each tile.

One file per layer and kind (kernels, renders, examples...) keeps a page of 512 units to a few
requests; the pages load each sheet only when its first tile scrolls into view, and Python
readers (:class:`SpriteReader`) open a sheet only when a tile of it is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..images import save_png, sprite_sheet
from ..images.normalize import as_float


def write_sprite(
    out: Path,
    rel: str,
    tiles: Any,
    *,
    tile_px: int | None = None,
    ncols: int | None = None,
    cmap: str = "gray",
    norm: str = "none",
    note: str = "",
) -> tuple[dict[str, Any], list[dict[str, int]]]:
    """Write tiles as one sheet at ``out/rel`` (atomic); return its manifest entry and boxes.

    ``tiles``: uint8 RGB arrays (H, W, 3) of one size, or a float batch (N, C, H, W) as
    :func:`convlens.images.sprite_sheet` takes it (``cmap``/``norm`` then apply). ``tile_px``
    defaults to the tiles' own longer side (no resampling: the pages enlarge with crisp pixels).
    """
    batch = _as_batch(tiles)
    side = tile_px or max(batch.shape[-2:])
    columns = ncols or max(1, min(len(batch), int(np.ceil(np.sqrt(len(batch) * 1.5)))))
    sheet, boxes = sprite_sheet(batch, tile_px=side, ncols=columns, cmap=cmap, norm=norm)  # type: ignore[arg-type]
    save_png(sheet, out / rel)
    entry = {
        "file": rel,
        "width": sheet.width,
        "height": sheet.height,
        "tiles": len(boxes),
        "colormap": cmap if batch.shape[1] == 1 else "rgb",
        "note": note,
    }
    return entry, boxes


def _as_batch(tiles: Any) -> np.ndarray:
    if isinstance(tiles, Sequence) and tiles and isinstance(tiles[0], np.ndarray):
        if tiles[0].dtype == np.uint8 and tiles[0].ndim == 3 and tiles[0].shape[2] == 3:
            stacked = np.stack(tiles).astype(np.float32) / 255.0
            return stacked.transpose(0, 3, 1, 2)
        return np.stack([as_float(t) for t in tiles])
    return as_float(tiles)


def tile_refs(sprite_id: str, boxes: Sequence[Mapping[str, int]]) -> list[dict[str, Any]]:
    """Manifest tile references (``{"sprite", "x", "y", "w", "h"}``) for the boxes of a sheet."""
    return [{"sprite": sprite_id, **dict(box)} for box in boxes]


class SpriteReader:
    """Cut tiles out of an atlas's sprite sheets, opening each sheet on first use."""

    def __init__(self, folder: str | Path, manifest: Mapping[str, Any]) -> None:
        self.folder = Path(folder)
        self.sprites = manifest.get("sprites", {})
        self._sheets: dict[str, Image.Image] = {}

    def sheet(self, sprite_id: str) -> Image.Image:
        if sprite_id not in self._sheets:
            with Image.open(self.folder / self.sprites[sprite_id]["file"]) as im:
                self._sheets[sprite_id] = im.convert("RGB")
        return self._sheets[sprite_id]

    def tile(self, ref: Mapping[str, Any]) -> Image.Image:
        """The tile a manifest reference points at, as a PIL image."""
        x, y, w, h = (int(ref[k]) for k in ("x", "y", "w", "h"))
        return self.sheet(str(ref["sprite"])).crop((x, y, x + w, y + h))
